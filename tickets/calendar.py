"""China's official working-day calendar, with a local override for years not yet released.

``chinese-calendar`` knows the State Council's holiday notice of each year it was released
for, including the 调休 weekend working days (2026-10-10, a Saturday, is a working day).
Next year's notice arrives in November; until a new release of the package, the year is
loaded from an override file, so no code change is needed.

Override file format (TOML or JSON; ``calendar_override`` may name one file or a directory
whose ``*.toml``/``*.json`` files are all read, in name order)::

    # config/calendar/2027.toml
    [2027]
    holidays = ["2027-01-01", "2027-02-06..2027-02-12"]  # days off, ranges inclusive
    workdays = ["2027-02-20"]                              # 调休: weekend days worked

A year present in an override replaces the package's data for that whole year: a date is a
working day if it is listed in ``workdays``, or if it is Monday to Friday and not listed in
``holidays``. For a year known to neither, ``strict=True`` raises ``CalendarError``; otherwise
Monday to Friday are taken as working days and a warning is logged once per year.
"""

from __future__ import annotations

import json
import logging
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar

log = logging.getLogger(__name__)


class CalendarError(ValueError):
    """The calendar of a year is unknown (strict mode) or an override file is malformed."""


@dataclass(frozen=True, slots=True)
class YearOverride:
    year: int
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays


def _parse_days(year: int, key: str, items: Any, source: str) -> frozenset[date]:
    if not isinstance(items, list):
        raise CalendarError(f"{source}: [{year}].{key} must be a list of dates")
    days: set[date] = set()
    for item in items:
        text = item.isoformat() if isinstance(item, date) else str(item)
        try:
            if ".." in text:
                first_text, last_text = text.split("..", 1)
                first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
                if last < first:
                    raise ValueError("range ends before it starts")
                days.update(first + timedelta(n) for n in range((last - first).days + 1))
            else:
                days.add(date.fromisoformat(text))
        except ValueError as exc:
            raise CalendarError(f"{source}: [{year}].{key}: bad date {text!r}: {exc}") from exc
    wrong = sorted(d for d in days if d.year != year)
    if wrong:
        raise CalendarError(f"{source}: [{year}].{key} lists {wrong[0]} of another year")
    return frozenset(days)


def parse_override(data: dict[str, Any], source: str = "override") -> dict[int, YearOverride]:
    years: dict[int, YearOverride] = {}
    for key, body in data.items():
        try:
            year = int(key)
        except ValueError as exc:
            raise CalendarError(f"{source}: top-level key {key!r} is not a year") from exc
        if not isinstance(body, dict):
            raise CalendarError(f"{source}: [{year}] must be a table")
        unknown = set(body) - {"holidays", "workdays"}
        if unknown:
            raise CalendarError(f"{source}: [{year}] has unknown keys {sorted(unknown)}")
        holidays = _parse_days(year, "holidays", body.get("holidays", []), source)
        workdays = _parse_days(year, "workdays", body.get("workdays", []), source)
        both = holidays & workdays
        if both:
            raise CalendarError(f"{source}: {min(both)} is both a holiday and a workday")
        years[year] = YearOverride(year, holidays, workdays)
    return years


def load_override(path: Path) -> dict[int, YearOverride]:
    files: Iterable[Path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".toml", ".json"))
    elif path.exists():
        files = [path]
    else:
        raise CalendarError(f"calendar override {path} does not exist")
    years: dict[int, YearOverride] = {}
    for file in files:
        raw = file.read_bytes()
        try:
            data = json.loads(raw) if file.suffix == ".json" else tomllib.loads(raw.decode())
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise CalendarError(f"{file}: {exc}") from exc
        for year, override in parse_override(data, str(file)).items():
            if year in years:
                raise CalendarError(f"{file}: year {year} is defined twice")
            years[year] = override
    return years


class WorkCalendar:
    """``is_workday(day)``; thread-safe, cached per day."""

    def __init__(
        self,
        override: Path | dict[int, YearOverride] | None = None,
        *,
        strict: bool = False,
    ) -> None:
        if isinstance(override, Path):
            self._years = load_override(override)
        else:
            self._years = dict(override or {})
        self._strict = strict
        self._warned: set[int] = set()
        self._lock = threading.Lock()
        self._cache: dict[date, bool] = {}

    @property
    def override_years(self) -> list[int]:
        return sorted(self._years)

    def is_workday(self, day: date) -> bool:
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        result = self._lookup(day)
        with self._lock:
            if len(self._cache) > 20_000:
                self._cache.clear()
            self._cache[day] = result
        return result

    def _lookup(self, day: date) -> bool:
        override = self._years.get(day.year)
        if override is not None:
            return override.is_workday(day)
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError as exc:
            if self._strict:
                raise CalendarError(
                    f"no official calendar for {day.year}: add it to the override file"
                ) from exc
            with self._lock:
                first = day.year not in self._warned
                self._warned.add(day.year)
            if first:
                log.warning(
                    "no official calendar for %s: counting Monday to Friday as working days "
                    "until the year is added to the calendar override",
                    day.year,
                )
            return day.weekday() < 5

    def next_workday(self, day: date) -> date:
        """The first working day on or after ``day``."""
        for _ in range(366):
            if self.is_workday(day):
                return day
            day += timedelta(days=1)
        raise CalendarError(f"no working day within a year after {day}")
