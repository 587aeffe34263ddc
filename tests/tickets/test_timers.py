"""SLA timers on APScheduler with the job store in the same database: firing, replacing,
cancelling, and surviving a restart (a new scheduler, and a real second process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from cti.events import Alarm
from tests.tickets.support import AGENT, DEPARTMENTS, SUPERVISOR, ZJJ, RecordingBus
from tests.tickets.timer_process import FAST
from tickets.notify import NullNotifier
from tickets.service import TicketService
from tickets.settings import DeadlineRule
from tickets.timers import TicketTimers

ROOT = Path(__file__).resolve().parents[2]


def make(
    sessions: sessionmaker[Session], timers: TicketTimers | None
) -> tuple[TicketService, RecordingBus, NullNotifier]:
    bus, notifier = RecordingBus(), NullNotifier()
    service = TicketService(sessions, bus, FAST, DEPARTMENTS, notifier, timers)
    return service, bus, notifier


async def wait_for(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_reminder_then_escalation(db_url: str, sessions: sessionmaker[Session]) -> None:
    timers = TicketTimers(db_url)
    # Remind 0.5 s after dispatch, overdue after 2 s: slack for a loaded machine, since a
    # reminder that runs after its deadline is dropped.
    rule = DeadlineRule(category="快", limit="2s", response_limit="1s", remind_before="1.5s")
    bus, notifier = RecordingBus(), NullNotifier()
    settings = FAST.model_copy(update={"rules": [rule]})
    service = TicketService(sessions, bus, settings, DEPARTMENTS, notifier, timers)
    service.start_timers()
    try:
        ticket = service.open_for_call("20261001000001", call_id="c1", topic="快")
        service.transition(ticket.id, "dispatch", AGENT, department="zjj")
        ids = {job["id"] for job in timers.jobs(ticket.id)}
        assert ids == {
            f"ticket:{ticket.id}:response:overdue",
            f"ticket:{ticket.id}:due:remind",
            f"ticket:{ticket.id}:due:overdue",
        }

        def escalated() -> bool:
            return service.get(ticket.id).supervision_level >= 2

        await wait_for(escalated)
        view = service.get(ticket.id)
        actions = [e.action for e in view.events]
        assert {"due_remind", "due_overdue", "response_overdue"} <= set(actions)
        assert view.supervision_reason == "overdue"
        assert ("department_reminder", "13900000001") in [(p, to) for p, to, _, _ in notifier.sent]

        def alarm_kinds() -> set[str]:
            return {e.kind for e in bus.events if isinstance(e, Alarm)}

        # The alarm is published after the escalation is committed: wait for it, not for any.
        await wait_for(lambda: {"ticket_due_overdue", "ticket_due_reminder"} <= alarm_kinds())
        assert timers.jobs(ticket.id) == []
    finally:
        timers.shutdown(wait=False)


async def test_redispatch_replaces_and_reply_cancels(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    timers = TicketTimers(db_url)
    slow = FAST.model_copy(update={"rules": []})  # default rule: 5 working days
    service = TicketService(sessions, RecordingBus(), slow, DEPARTMENTS, NullNotifier(), timers)
    service.start_timers()
    try:
        ticket = service.open_for_call("20261001000002", call_id="c2")
        service.transition(ticket.id, "dispatch", AGENT, department="zjj")
        first = {j["id"]: j["run_at"] for j in timers.jobs(ticket.id)}
        service.transition(ticket.id, "return", ZJJ, "非本单位", legal_basis="职责清单")
        service.transition(ticket.id, "grant_return", SUPERVISOR, department="cgj")
        second = {j["id"]: j["run_at"] for j in timers.jobs(ticket.id)}
        assert set(first) == set(second) and len(second) == 3  # same ids, replaced
        assert second != first  # new deadlines
        from tests.tickets.support import CGJ

        service.transition(ticket.id, "sign_off", CGJ)
        service.transition(ticket.id, "contact_citizen", CGJ)
        assert {j["id"].split(":")[2] for j in timers.jobs(ticket.id)} == {"due"}
        service.transition(ticket.id, "reply", CGJ, text="已办")
        assert timers.jobs(ticket.id) == []
        service.transition(ticket.id, "approve_reply", SUPERVISOR)
        assert {j["id"].split(":", 2)[2] for j in timers.jobs(ticket.id)} == {
            "survey:overdue",
            "survey:remind",
        }
        service.transition(ticket.id, "survey", AGENT, rating="satisfied")
        assert timers.jobs(ticket.id) == []
    finally:
        timers.shutdown(wait=False)


async def test_timer_due_while_down_fires_on_the_next_scheduler(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    timers = TicketTimers(db_url)
    service, _, _ = make(sessions, timers)
    service.start_timers()
    ticket = service.open_for_call("20261001000003", call_id="c3", topic="快")
    service.transition(ticket.id, "dispatch", AGENT, department="zjj")
    timers.shutdown(wait=False)  # the process "stops" before anything fell due
    await asyncio.sleep(2.5)  # well past the 1 s grace APScheduler would give by default
    assert service.get(ticket.id).supervision_level == 0

    timers2 = TicketTimers(db_url)
    service2, _, _ = make(sessions, timers2)
    service2.start_timers()
    try:
        await wait_for(lambda: service2.get(ticket.id).supervision_level >= 2)
        actions = [e.action for e in service2.get(ticket.id).events]
        # coalesce: each stored job ran once although it was late
        assert actions.count("due_overdue") == 1 and actions.count("response_overdue") == 1
    finally:
        timers2.shutdown(wait=False)


def test_timer_survives_a_real_process_restart(db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "tests.tickets.timer_process"]
    first = subprocess.run(
        [*run, db_url, "schedule"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    ticket_id = first.stdout.split()[-1]
    time.sleep(2.0)  # the deadline passes while no process runs
    second = subprocess.run(
        [*run, db_url, "resume", ticket_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert int(second.stdout.split()[-1]) >= 1
