"""Ticket numbers: ``YYYYMMDD`` (local date) + a 6-digit sequence, e.g. ``20261122000123``.

The FastAGI route hands the ticket number to Asterisk before the call is answered, so the
number must not cost a database round trip: the counter of a day is read from the database
once (the highest number of that day), then kept in memory. One process allocates numbers
for a site (the CTI); numbers are unique as long as that holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import utcnow
from tickets.models import Ticket

SEQUENCE_DIGITS = 6


class TicketNumbers:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._last = 0

    def _load(self, day: date) -> int:
        prefix = day.strftime("%Y%m%d")
        with self._sessions() as session:
            highest = session.scalar(
                select(func.max(Ticket.id)).where(
                    Ticket.id.like(prefix + "%"),
                    func.length(Ticket.id) == len(prefix) + SEQUENCE_DIGITS,
                )
            )
        return int(highest[len(prefix) :]) if highest else 0

    def next(self) -> str:
        day = self._clock().astimezone(self._tz).date()
        with self._lock:
            if day != self._day:
                # Only at the first number of a day (or of the process) is the DB read.
                self._last = self._load(day)
                self._day = day
            self._last += 1
            if self._last >= 10**SEQUENCE_DIGITS:
                raise OverflowError(f"more than {10**SEQUENCE_DIGITS - 1} tickets on {day}")
            return f"{day:%Y%m%d}{self._last:0{SEQUENCE_DIGITS}d}"
