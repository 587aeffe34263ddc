"""Ticket numbers: YYYYMMDD + 6 digits, reserved in blocks from the database, unique across
threads and across instances (the processes are in ``test_concurrency``)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
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


def test_one_database_round_trip_per_block(sessions: sessionmaker[Session]) -> None:
    calls = []

    class Counting(TicketNumbers):
        def reserve(self, day, count):  # type: ignore[no-untyped-def]
            calls.append(day)
            return super().reserve(day, count)

    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = Counting(sessions, "Asia/Shanghai", clock, block=20, prefetch=False)
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
    assert len(calls) == 800 // 20


def test_two_instances_never_draw_the_same_number(sessions: sessionmaker[Session]) -> None:
    """Two allocators on one database (two processes, in effect) interleave their blocks."""
    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    first = TicketNumbers(sessions, "Asia/Shanghai", clock, block=3, prefetch=False)
    second = TicketNumbers(sessions, "Asia/Shanghai", clock, block=1)
    drawn = [first.next(), second.next(), first.next(), second.next(), first.next()]
    assert drawn == [
        "20261122000001",
        "20261122000004",
        "20261122000002",
        "20261122000005",
        "20261122000003",
    ]
    assert first.next() == "20261122000006"


def test_the_next_block_is_reserved_ahead_in_a_thread(sessions: sessionmaker[Session]) -> None:
    """Drawing a number waits for the database only at the first draw: with half a block
    left, the next block is reserved by another thread."""
    reserved_by: list[str] = []

    class Watching(TicketNumbers):
        def reserve(self, day, count):  # type: ignore[no-untyped-def]
            reserved_by.append(threading.current_thread().name)
            return super().reserve(day, count)

    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = Watching(sessions, "Asia/Shanghai", clock, block=10)
    drawn = [numbers.next() for _ in range(6)]  # under half the block left: the next is asked
    numbers.close()  # that reservation is done
    drawn += [numbers.next() for _ in range(14)]  # 7..10, then 11..20 from the spare block
    numbers.close()
    assert drawn == [f"20261122{n:06d}" for n in range(1, 21)]
    main = threading.current_thread().name
    assert reserved_by[0] == main
    assert reserved_by[1:] == ["ticket-numbers"] * (len(reserved_by) - 1)
    assert len(reserved_by) == 3  # the first, the second ahead, the third ahead


def test_the_end_of_the_days_range(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(Ticket(id="20261122999998", state="intake"))
    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = TicketNumbers(sessions, "Asia/Shanghai", clock, block=5, prefetch=False)
    assert numbers.next() == "20261122999999"
    with pytest.raises(OverflowError):
        numbers.next()


def test_one_thread_reserves_every_block_ahead(sessions: sessionmaker[Session]) -> None:
    """Not a thread per block: starting one held the event loop that draws the numbers."""
    threads: list[threading.Thread] = []

    class Watching(TicketNumbers):
        def reserve(self, day, count):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread())
            return super().reserve(day, count)

    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = Watching(sessions, "Asia/Shanghai", clock, block=4)
    drawn = []
    for _ in range(40):
        drawn.append(numbers.next())
        while numbers._ask is not None or numbers._busy:  # the reservation ahead, done
            time.sleep(0.001)
    numbers.close()
    assert drawn == [f"20261122{n:06d}" for n in range(1, 41)]
    ahead = [t for t in threads if t is not threading.main_thread()]
    assert len(ahead) == 10  # every block after the first was reserved ahead (and the 11th)
    assert len({id(t) for t in ahead}) == 1


def test_primed_the_first_draw_does_not_reserve(sessions: sessionmaker[Session]) -> None:
    """The CTI primes the numbers when it starts to lead: the first route does not wait for
    the database in the event loop."""
    by: list[str] = []

    class Watching(TicketNumbers):
        def reserve(self, day, count):  # type: ignore[no-untyped-def]
            by.append(threading.current_thread().name)
            return super().reserve(day, count)

    clock = Clock(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    numbers = Watching(sessions, "Asia/Shanghai", clock, block=10)
    numbers.prime()
    while numbers._ask is not None or numbers._busy:
        time.sleep(0.001)
    assert numbers.next() == "20261122000001"
    numbers.close()
    assert by == ["ticket-numbers"]
