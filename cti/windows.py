"""The directory of service windows (三方通话 targets) and their opening hours.

A window is open on the working days of the official calendar (``tickets.calendar``, with
its 调休 weekend working days) during its ``hours`` spans ("09:00-12:00"), local time of the
site. A window with no spans at all (``hours = []``) is staffed around the clock, every day.
Spans are half-open: a window with "09:00-12:00" is closed at 12:00 sharp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cti.config import WindowSettings
from cti.errors import NotFound

# How far ahead ``next_open`` looks: the longest holiday (Spring Festival, National Day) is
# 8-9 days; a window closed for longer than this has no "next opening" worth showing.
LOOKAHEAD_DAYS = 40


class Calendar(Protocol):
    def is_workday(self, day: date) -> bool: ...


@dataclass(frozen=True, slots=True)
class Span:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Span:
        first, _, last = text.partition("-")
        return cls(time.fromisoformat(first), time.fromisoformat(last))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    name: str
    department: str
    services: tuple[str, ...]
    extension: str
    external_number: str
    spans: tuple[Span, ...]

    @classmethod
    def from_settings(cls, w: WindowSettings) -> Window:
        return cls(
            id=w.id,
            name=w.name,
            department=w.department,
            services=tuple(w.services),
            extension=w.extension,
            external_number=w.external_number,
            spans=tuple(sorted((Span.parse(s) for s in w.hours), key=lambda s: s.start)),
        )

    @property
    def always_open(self) -> bool:
        return not self.spans

    @property
    def number(self) -> str:
        """What is dialled: the SIP extension, else the external number."""
        return self.extension or self.external_number


class WindowDirectory:
    def __init__(
        self, windows: Iterable[WindowSettings], calendar: Calendar, tz: str | ZoneInfo
    ) -> None:
        self._windows: dict[str, Window] = {}
        for w in windows:
            if w.id in self._windows:
                raise ValueError(f"duplicate window id {w.id!r}")
            self._windows[w.id] = Window.from_settings(w)
        self._by_number: dict[str, Window] = {}
        for win in self._windows.values():
            for number in (win.extension, win.external_number):
                if number:
                    self._by_number.setdefault(number, win)
        self.calendar = calendar
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)

    # --- lookups ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._windows)

    def all(self) -> list[Window]:
        return list(self._windows.values())

    def find(self, window_id: str) -> Window | None:
        return self._windows.get(window_id)

    def get(self, window_id: str) -> Window:
        win = self._windows.get(window_id)
        if win is None:
            raise NotFound("no-such-window", f"no service window {window_id!r}", window=window_id)
        return win

    def by_extension(self, number: str) -> Window | None:
        """The window reached at ``number`` (its SIP extension or its external number)."""
        return self._by_number.get(number)

    # --- opening hours ----------------------------------------------------------------

    def is_open(self, window_id: str, at: datetime) -> tuple[bool, datetime | None]:
        """(open now, next opening). ``next_open`` is None when the window is open, or when
        it does not open within ``LOOKAHEAD_DAYS``. ``at`` must be timezone-aware."""
        win = self.get(window_id)
        if at.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        local = at.astimezone(self.tz)
        if win.always_open:
            return True, None
        if self.calendar.is_workday(local.date()):
            now = local.time().replace(tzinfo=None)
            for span in win.spans:
                if span.start <= now < span.end:
                    return True, None
        return False, self.next_open(win, local)

    def closes_at(self, window_id: str, at: datetime) -> datetime | None:
        """When the current opening span ends (None if closed now or always open)."""
        win = self.get(window_id)
        local = at.astimezone(self.tz)
        if win.always_open or not self.calendar.is_workday(local.date()):
            return None
        now = local.time().replace(tzinfo=None)
        for span in win.spans:
            if span.start <= now < span.end:
                return self._at(local.date(), span.end)
        return None

    def next_open(self, win: Window, local: datetime) -> datetime | None:
        day = local.date()
        now = local.time().replace(tzinfo=None)
        for offset in range(LOOKAHEAD_DAYS + 1):
            current = day + timedelta(days=offset)
            if not self.calendar.is_workday(current):
                continue
            for span in win.spans:
                if offset == 0 and span.start <= now:
                    continue
                return self._at(current, span.start)
        return None

    def _at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=self.tz)

    # --- presentation ---------------------------------------------------------------

    def to_dict(self, at: datetime | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for win in self._windows.values():
            item: dict[str, Any] = {
                "id": win.id,
                "name": win.name,
                "department": win.department,
                "services": list(win.services),
                "extension": win.extension,
                "external_number": win.external_number,
                "hours": [str(s) for s in win.spans],
                "always_open": win.always_open,
            }
            if at is not None:
                is_open, nxt = self.is_open(win.id, at)
                item["open"] = is_open
                item["next_open"] = nxt.isoformat() if nxt is not None else None
                closes = self.closes_at(win.id, at)
                item["closes_at"] = closes.isoformat() if closes is not None else None
            out.append(item)
        return out
