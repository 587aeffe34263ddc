"""One of several processes racing on one database (``test_concurrency``).

Each prints ``ready`` once it is connected, waits for a line on stdin (so that all start
together), does its part and prints one JSON line with what it did:

``python -m tests.tickets.race_process open URL INDEX COUNT``
    draws COUNT ticket numbers and opens a ticket with each for a call of its own caller.
``python -m tests.tickets.race_process timers URL [wait]``
    runs a ticket scheduler on the shared job store until no ticket timer is left in it
    (with ``wait``: until timers came, and then none is left).
``python -m tests.tickets.race_process start URL``
    starts a ticket scheduler (paused) on a database that may have no job store table yet.
``python -m tests.tickets.race_process sms URL TWILIO_URL``
    sends due SMS until none is left to send.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from sqlalchemy import Column, MetaData, String, Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.db import make_engine, session_factory
from tests.tickets.fake_twilio import SID, TOKEN
from tests.tickets.support import DEPARTMENTS
from tests.tickets.timer_process import FAST
from tickets.models import SmsMessage
from tickets.notify import NullNotifier
from tickets.numbers import TicketNumbers
from tickets.service import TicketService
from tickets.settings import SmsSettings
from tickets.sms import PENDING, SmsNotifier
from tickets.timers import TABLE, TicketTimers

# APScheduler's job store table, as far as these processes read it.
TIMERS = Table(TABLE, MetaData(), Column("id", String(191)))


def caller_of(index: int, i: int) -> str:
    return f"138{index:04d}{i:04d}"


def ready() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def open_tickets(sessions: sessionmaker[Session], index: int, count: int) -> Any:
    service = TicketService(sessions, Bus(), FAST, (), NullNotifier(), None)
    # Small blocks: the processes' reservations interleave many times.
    numbers = TicketNumbers(sessions, FAST.timezone, block=3)
    ready()
    opened = []
    for i in range(count):
        call_id = f"call-{index}-{i}"
        ticket_id = service.open_id_for_call(
            numbers.next(), call_id=call_id, node=f"pbx{index}", caller=caller_of(index, i)
        )
        opened.append([call_id, ticket_id])
    return opened


async def run_timers(url: str, sessions: sessionmaker[Session], wait: bool) -> Any:
    service = TicketService(sessions, Bus(), FAST, DEPARTMENTS, NullNotifier(), None)
    timers = TicketTimers(url, poll_s=0.2)
    counts = {"submitted": 0, "ended": 0}
    lock = threading.Lock()

    def count(event: JobEvent) -> None:
        if event.job_id.startswith("ticket:"):
            with lock:
                counts["submitted" if event.code == EVENT_JOB_SUBMITTED else "ended"] += 1

    timers.scheduler.add_listener(
        count, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
    )
    timers.start(service, paused=True)
    await asyncio.to_thread(ready)
    timers.resume()

    def left() -> int:
        with sessions() as session:
            query = select(func.count()).select_from(TIMERS).where(TIMERS.c.id.like("ticket:%"))
            return int(session.scalar(query) or 0)

    while wait and not left():
        await asyncio.sleep(0.05)
    # Done when the store holds no ticket timer and every run this scheduler started ended
    # (a run is submitted before the job leaves the store, in one step of the loop).
    while left() or counts["submitted"] != counts["ended"]:
        await asyncio.sleep(0.05)
    timers.shutdown(wait=True)
    return counts


async def start_timers(url: str, sessions: sessionmaker[Session]) -> Any:
    service = TicketService(sessions, Bus(), FAST, (), NullNotifier(), None)
    timers = TicketTimers(url)
    await asyncio.to_thread(ready)
    try:
        timers.start(service, paused=True)
    finally:
        timers.shutdown(wait=False)
    return "started"


def send_sms(sessions: sessionmaker[Session], twilio_url: str) -> Any:
    settings = SmsSettings(
        enabled=True,
        account_sid=SID,
        auth_token=TOKEN,  # type: ignore[arg-type]
        from_number="+8610690000",
        api_base_url=twilio_url,
    )
    sms = SmsNotifier(sessions, settings)
    ready()
    attempted = 0
    while True:
        attempted += sms.send_due()
        with sessions() as session:
            pending = session.scalar(
                select(func.count()).where(SmsMessage.status.in_(PENDING + ("sending",)))
            )
        if not pending:
            return attempted


def main(mode: str, url: str, *args: str) -> int:
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        if mode == "open":
            result = open_tickets(sessions, int(args[0]), int(args[1]))
        elif mode == "timers":
            result = asyncio.run(run_timers(url, sessions, args[:1] == ("wait",)))
        elif mode == "start":
            result = asyncio.run(start_timers(url, sessions))
        elif mode == "sms":
            result = send_sms(sessions, args[0])
        else:
            raise SystemExit(f"unknown mode {mode}")
    finally:
        engine.dispose()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
