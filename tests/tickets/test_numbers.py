"""Ticket numbers: YYYYMMDD + 6 digits, seeded once from the database, unique across threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from tests.tickets.support import Clock
from tickets.models import Ticket
from tickets.numbers import TicketNumbers


def test_format_and_local_date(sessions: sessionmaker[Session]) -> None:
    clock = Clock(datetime(2026, 11, 21, 16, 30, tzinfo=UTC))  # 22 Nov 00:30 in Shanghai
    numbers = TicketNumbers(sessions, "Asia/Shanghai", clock)
    assert numbers.next() == "20261122000001"
    assert numbers.next() == "20261122000002"
    clock.advance(days=1)
    assert numbers.next() == "20261123000001"


def test_continues_after_the_highest_number_of_the_day(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for tid in ("20261122000041", "20261122000007", "20261121000999", "2026112200000"):
            session.add(Ticket(id=tid, state="intake"))
    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = TicketNumbers(sessions, "Asia/Shanghai", clock)
    assert numbers.next() == "20261122000042"


def test_no_database_round_trip_after_the_first(sessions: sessionmaker[Session]) -> None:
    calls = []

    class Counting(TicketNumbers):
        def _load(self, day):  # type: ignore[no-untyped-def]
            calls.append(day)
            return super()._load(day)

    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = Counting(sessions, "Asia/Shanghai", clock)
    results: list[str] = []

    def take() -> None:
        for _ in range(200):
            results.append(numbers.next())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(set(results)) == 800
    assert max(results) == "20261122000800"
    assert len(calls) == 1
