"""Ticket numbers: ``YYYYMMDD`` (local date) + a 6-digit sequence, e.g. ``20261122000123``.

The database decides: each process reserves a block of numbers of the day in
``ticket_counters`` (one short transaction: ``UPDATE ... SET last = last + block``, or the
day's first row), then hands them out from memory. Two CTI processes, or a CTI and classic AGI
scripts, on one database never draw the same number. The FastAGI route draws a number before
the call is answered, in the event loop: when half a block is left, the next block is reserved
in a thread (``prefetch``), so a draw waits for the database only when the whole block went
before that reservation came back (the first draw, or the database away for a while).

A block's unused numbers are skipped when the process stops or the day ends, and numbers of
different processes interleave: numbers are unique and grow within a process, with gaps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.db import utcnow
from tickets.models import Ticket, TicketCounter

log = logging.getLogger(__name__)

SEQUENCE_DIGITS = 6
LARGEST = 10**SEQUENCE_DIGITS - 1
# The day's counter row is created by one process; the others retry their UPDATE.
_CREATE_ATTEMPTS = 5


class TicketNumbers:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] = utcnow,
        *,
        block: int = 20,
        prefetch: bool = True,
    ) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self._sessions = sessions
        self._tz = ZoneInfo(timezone)
        self._clock = clock
        self._block = block
        self._prefetch = prefetch and block > 1
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._day: date | None = None
        self._next = 1
        self._end = 0  # the last number of the reserved block
        self._spare: tuple[date, int, int] | None = None  # the next block, reserved ahead
        # The reservations ahead are made by one thread that waits for the next: starting a
        # thread for each block cost the route ~1 ms in the event loop (Thread.start waits
        # for the new thread to run).
        self._ask: date | None = None  # a block of this day wanted ahead
        self._busy = False  # a reservation ahead under way
        self._closing = False
        self._refiller: threading.Thread | None = None

    def next(self) -> str:
        day = self._clock().astimezone(self._tz).date()
        with self._lock:
            if day != self._day or self._next > self._end:
                spare, self._spare = self._spare, None
                if spare is not None and spare[0] == day:
                    self._next, self._end = spare[1], spare[2]
                else:
                    self._next, self._end = self.reserve(day, self._block)
                self._day = day
            number = self._next
            self._next += 1
            if (
                self._prefetch
                and self._spare is None
                and self._ask is None
                and not self._busy
                and self._end - self._next < self._block // 2
            ):
                self._ask_ahead(day)
            return f"{day:%Y%m%d}{number:0{SEQUENCE_DIGITS}d}"

    def prime(self) -> None:
        """Reserve today's first block in the refilling thread, now: without it the first
        call's route waits for that transaction in the event loop."""
        if not self._prefetch:
            return
        day = self._clock().astimezone(self._tz).date()
        with self._cond:
            if self._spare is not None or self._ask is not None or self._busy:
                return
            if self._day == day and self._next <= self._end:
                return
            self._day = day  # so that the block reserved is kept as the spare
            self._ask_ahead(day)

    def _ask_ahead(self, day: date) -> None:
        """Ask the refilling thread for a block of ``day`` (under the lock); started once."""
        self._ask = day
        if self._refiller is None:
            self._refiller = threading.Thread(
                target=self._reserve_ahead, name="ticket-numbers", daemon=True
            )
            self._refiller.start()
        else:
            self._cond.notify()

    def _reserve_ahead(self) -> None:
        """The refilling thread: reserves the block asked for, then waits for the next ask;
        ends when :meth:`close` is called and nothing is asked."""
        with self._cond:
            while True:
                while self._ask is None and not self._closing:
                    self._cond.wait()
                day = self._ask
                if day is None:  # closing
                    self._refiller = None
                    return
                self._ask, self._busy = None, True
                spare: tuple[date, int, int] | None = None
                self._cond.release()
                try:
                    spare = (day, *self.reserve(day, self._block))
                except Exception as exc:  # the next draw reserves, or fails, in its thread
                    log.warning("ticket numbers of %s not reserved ahead: %s", day, exc)
                finally:
                    self._cond.acquire()
                if spare is not None and self._day == day:
                    self._spare = spare
                self._busy = False

    def close(self) -> None:
        """Wait for a reservation ahead that is asked or under way (before the engine is
        disposed), and end the refilling thread; a later draw starts it again."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            refiller = self._refiller
        if refiller is not None:
            refiller.join()
        with self._cond:
            self._closing = False

    def reserve(self, day: date, count: int) -> tuple[int, int]:
        """Reserve ``count`` numbers of ``day`` (fewer at the end of the day's range);
        returns the first and last sequence numbers of the block."""
        key = f"{day:%Y%m%d}"
        for _ in range(_CREATE_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    # The row lock taken by the UPDATE (a write lock on SQLite) is held until
                    # commit: no other reservation of the day reads between it and the SELECT.
                    done = session.execute(
                        update(TicketCounter)
                        .where(TicketCounter.day == key)
                        .values(last=TicketCounter.last + count)
                    )
                    if done.rowcount == 1:  # type: ignore[attr-defined]
                        last = session.scalar(
                            select(TicketCounter.last).where(TicketCounter.day == key)
                        )
                        assert last is not None
                    else:
                        # The day's first reservation: after any ticket of the day already
                        # numbered (tickets of a database older than the counter table).
                        last = _highest(session, key) + count
                        session.add(TicketCounter(day=key, last=last))
                        session.flush()
            except IntegrityError:
                continue  # another process created the day's row meanwhile: update it
            first = last - count + 1
            if first > LARGEST:
                raise OverflowError(f"more than {LARGEST} tickets on {day}")
            return first, min(last, LARGEST)
        raise RuntimeError(f"could not reserve ticket numbers of {day}")


def _highest(session: Session, key: str) -> int:
    highest = session.scalar(
        select(func.max(Ticket.id)).where(
            Ticket.id.like(key + "%"),
            func.length(Ticket.id) == len(key) + SEQUENCE_DIGITS,
        )
    )
    return int(highest[len(key) :]) if highest else 0
