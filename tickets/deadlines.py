"""Deadlines: wall-clock limits and working-day limits on the official calendar.

Minutes, hours, seconds and calendar days (``"10min"``, ``"1h"``, ``"2d"``) run 7x24.
Working days (``"3wd"``) count only time that falls on working days, in the hotline's time
zone: each working day is 24 hours of the clock, rest days do not count. So a ticket
dispatched at 15:00 on the last working day before a holiday with a limit of ``"1wd"`` is due
at 15:00 on the first working day after it; one dispatched during the holiday is due at the
end of the first working day after it. With the anchor ``day_after_receipt`` the clock starts
at midnight after the day of receipt, which gives "by the end of the Nth working day".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from tickets.calendar import WorkCalendar
from tickets.settings import Anchor, DeadlineRule, SurveyRule

Unit = Literal["wd", "d", "h", "min", "s"]

_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|d|h|min|s)\s*$")
_SECONDS: dict[str, int] = {"d": 86400, "h": 3600, "min": 60, "s": 1}


@dataclass(frozen=True, slots=True)
class Limit:
    amount: float
    unit: Unit

    @property
    def working_days(self) -> bool:
        return self.unit == "wd"

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}"


def parse_limit(text: str) -> Limit:
    match = _LIMIT_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time limit (e.g. '10min', '1h', '2d', '3wd')")
    unit: Unit = match.group(2)  # type: ignore[assignment]
    return Limit(float(match.group(1)), unit)


@dataclass(frozen=True, slots=True)
class TicketClock:
    """The deadlines of one dispatch. ``due_at`` is None while its anchor (sign-off) is
    still in the future."""

    response_due_at: datetime
    due_at: datetime | None
    feedback_due_at: datetime | None
    remind_at: datetime | None


class Deadlines:
    def __init__(self, calendar: WorkCalendar, timezone: str = "Asia/Shanghai") -> None:
        self.calendar = calendar
        self.tz = ZoneInfo(timezone)

    def add(self, start: datetime, limit: Limit | str) -> datetime:
        """``start`` plus ``limit``; aware datetimes in, aware UTC out."""
        if start.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime")
        if isinstance(limit, str):
            limit = parse_limit(limit)
        if not limit.working_days:
            return (start + timedelta(seconds=limit.amount * _SECONDS[limit.unit])).astimezone(UTC)
        return self._add_working(start, limit.amount)

    def _add_working(self, start: datetime, days: float) -> datetime:
        remaining = timedelta(days=days)
        cursor = start.astimezone(self.tz)
        for _ in range(3660):
            day = cursor.date()
            day_end = datetime.combine(day + timedelta(days=1), time(0), self.tz)
            if self.calendar.is_workday(day):
                available = day_end - cursor
                if remaining <= available:
                    return (cursor + remaining).astimezone(UTC)
                remaining -= available
            cursor = day_end
        raise ValueError(f"{days} working days after {start} is more than ten years away")

    def working_seconds_between(self, start: datetime, end: datetime) -> float:
        """The working time (as counted by ``add``) from ``start`` to ``end``."""
        if end <= start:
            return 0.0
        total = 0.0
        cursor = start.astimezone(self.tz)
        end_local = end.astimezone(self.tz)
        while cursor < end_local:
            day_end = datetime.combine(cursor.date() + timedelta(days=1), time(0), self.tz)
            stop = min(day_end, end_local)
            if self.calendar.is_workday(cursor.date()):
                total += (stop - cursor).total_seconds()
            cursor = stop
        return total

    def anchor_time(
        self,
        anchor: Anchor,
        *,
        receipt: datetime,
        dispatched_at: datetime | None,
        signed_at: datetime | None,
    ) -> datetime | None:
        if anchor == "receipt":
            return receipt
        if anchor == "day_after_receipt":
            local = receipt.astimezone(self.tz)
            return datetime.combine(local.date() + timedelta(days=1), time(0), self.tz)
        if anchor == "dispatch":
            return dispatched_at
        return signed_at

    def remind_at(
        self, start: datetime, due: datetime, remind_before: str | float
    ) -> datetime | None:
        """When to remind: a duration before ``due`` or a fraction of the span before it;
        None when that moment is not after ``start``."""
        if isinstance(remind_before, str):
            limit = parse_limit(remind_before)
            if limit.working_days:
                span = self.working_seconds_between(start, due)
                before = timedelta(seconds=min(span, limit.amount * 86400))
                at = due - before
                # Step back over rest days so that the reminder falls on working time.
                while not self.calendar.is_workday(at.astimezone(self.tz).date()) and at > start:
                    at -= timedelta(hours=1)
            else:
                at = due - timedelta(seconds=limit.amount * _SECONDS[limit.unit])
        else:
            at = due - (due - start) * remind_before
        return at.astimezone(UTC) if at > start else None

    def clock_for(
        self,
        rule: DeadlineRule,
        *,
        receipt: datetime,
        dispatched_at: datetime,
        signed_at: datetime | None,
    ) -> TicketClock:
        response_due = self.add(dispatched_at, rule.response_limit)
        start = self.anchor_time(
            rule.anchor, receipt=receipt, dispatched_at=dispatched_at, signed_at=signed_at
        )
        if start is None:
            return TicketClock(response_due, None, None, None)
        due = self.add(start, rule.limit)
        feedback = self.add(start, rule.feedback_limit) if rule.feedback_limit else due
        remind = self.remind_at(max(start, dispatched_at), due, rule.remind_before)
        return TicketClock(response_due, due, feedback, remind)

    def survey_due(
        self, rule: SurveyRule, replied_at: datetime
    ) -> tuple[datetime, datetime | None]:
        due = self.add(replied_at, rule.limit)
        return due, self.remind_at(replied_at, due, rule.remind_before)
