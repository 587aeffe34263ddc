"""Several processes on one database mix nothing up: ticket numbers are the database's, a call
joins only its own caller's ticket, and timers and SMS run once per due time whichever CTI's
scheduler sees them. The races are real OS processes (``race_process``) started together."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.claims import forget_old, once_per
from cti.db import create_schema, make_engine, session_factory
from cti.models import JobClaim
from tests.conftest import PG_URL
from tests.tickets.fake_twilio import SID, TOKEN, FakeTwilio
from tests.tickets.race_process import caller_of
from tests.tickets.support import AGENT, DEPARTMENTS, Clock, race, ticket_in
from tests.tickets.timer_process import FAST
from tickets.models import SmsMessage, Ticket, TicketCall, TicketEvent
from tickets.notify import NullNotifier
from tickets.service import TicketService
from tickets.settings import DeadlineRule, SmsSettings
from tickets.sms import SENDING_LEASE, SmsNotifier
from tickets.timers import TABLE as TIMER_TABLE
from tickets.timers import TicketTimers

ROOT = Path(__file__).resolve().parents[2]

postgres_only = pytest.mark.skipif(
    not PG_URL, reason="one CTI per SQLite file (hotline serve refuses a second one)"
)


@pytest.fixture
def shared(any_db_url: str) -> Any:
    engine = make_engine(any_db_url)
    create_schema(engine)
    yield session_factory(engine)
    engine.dispose()


# --- ticket numbers and callers -------------------------------------------------------------


def test_processes_opening_tickets_at_once_never_mix_up_citizens(
    any_db_url: str, shared: sessionmaker[Session], tmp_path: Path
) -> None:
    """Four processes (four CTIs, or classic AGI scripts) each open tickets for callers of
    their own: every number is drawn once, every ticket holds only its own caller's call.
    Runs on SQLite too: classic AGI scripts are processes drawing numbers there."""
    processes, count = 4, 40
    results = race(tmp_path, *(["open", any_db_url, str(i), str(count)] for i in range(processes)))
    opened = {call_id: ticket_id for result in results for call_id, ticket_id in result}
    assert len(opened) == processes * count
    assert len(set(opened.values())) == processes * count  # one ticket per call
    with shared() as session:
        tickets = {t.id: t for t in session.scalars(select(Ticket))}
        calls = session.execute(
            select(TicketCall.ticket_id, TicketCall.call_id, TicketCall.caller)
        ).all()
    assert set(tickets) == set(opened.values())
    assert len(calls) == processes * count
    for ticket_id, call_id, caller in calls:
        index, i = (int(x) for x in call_id.split("-")[1:])
        assert opened[call_id] == ticket_id
        assert caller == tickets[ticket_id].caller == caller_of(index, i)


def test_a_number_found_on_another_callers_ticket_opens_a_new_ticket(
    service: TicketService,
) -> None:
    first = service.open_for_call("20260915000001", call_id="c1", node="pbx1", caller="13811110000")
    second = service.open_id_for_call(
        first.id, call_id="c2", node="pbx2", caller="13922220000", caller_name="李四"
    )
    assert second != first.id
    view = service.get(second)
    assert view.caller == "13922220000" and [c.call_id for c in view.calls] == ["c2"]
    assert [c.call_id for c in service.get(first.id).calls] == ["c1"]
    # the same caller's call with that number joins the ticket
    again = service.open_for_call(first.id, call_id="c3", node="pbx1", caller="13811110000")
    assert again.id == first.id and [c.call_id for c in again.calls] == ["c1", "c3"]


def test_withheld_callers_are_not_joined_by_a_number(service: TicketService) -> None:
    first = service.open_for_call("20260915000001", call_id="c1", node="pbx1", caller="")
    second = service.open_id_for_call(first.id, call_id="c2", node="pbx1", caller="")
    assert second != first.id
    assert [c.call_id for c in service.get(first.id).calls] == ["c1"]


# --- timers ------------------------------------------------------------------------------------


def test_a_timer_acts_once_however_often_it_fires(service: TicketService) -> None:
    ticket = ticket_in(service, "dispatched")
    with service.sessions() as session:
        due = session.get(Ticket, ticket.id).due_at  # type: ignore[union-attr]
    assert due is not None
    for _ in range(3):
        service.on_timer(ticket.id, "due", "overdue", due.isoformat())
    view = service.get(ticket.id)
    assert view.supervision_level == 1
    assert [e.action for e in view.events].count("due_overdue") == 1


@postgres_only
async def test_two_schedulers_on_one_store_fire_each_timer_once(
    any_db_url: str, shared: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two CTIs' schedulers share the job store: both see the same due timers at once (both
    were paused until every timer fell due, then resumed together)."""
    timers = TicketTimers(any_db_url)
    service = TicketService(shared, Bus(), FAST, DEPARTMENTS, NullNotifier(), timers)
    timers.start(service, paused=True)  # stores the timers, runs none
    try:
        ids = []
        for i in range(20):
            view = service.open_for_call(
                f"20261001{i + 1:06d}", call_id=f"c{i}", caller=f"1380000{i:04d}", topic="快"
            )
            service.transition(view.id, "dispatch", AGENT, department="zjj")
            ids.append(view.id)
        jobs = len(timers.jobs())
    finally:
        timers.shutdown(wait=False)
    assert jobs == 3 * len(ids)  # response overdue, due reminder, due overdue

    runs = race(tmp_path, ["timers", any_db_url], ["timers", any_db_url])

    with shared() as session:
        fired = Counter(
            session.execute(
                select(TicketEvent.ticket_id, TicketEvent.action).where(
                    TicketEvent.action.in_(["due_overdue", "response_overdue"])
                )
            ).all()
        )
        levels = dict(session.execute(select(Ticket.id, Ticket.supervision_level)).all())
        claims = Counter(session.scalars(select(JobClaim.claimed_by)))
    assert sum(run["submitted"] for run in runs) >= jobs
    for ticket_id in ids:
        assert fired[(ticket_id, "due_overdue")] == 1
        assert fired[(ticket_id, "response_overdue")] == 1
        assert levels[ticket_id] == 2
    assert sum(claims.values()) == jobs
    print("runs started per process:", runs, "claims won per process:", dict(claims))


@postgres_only
def test_ctis_starting_together_on_a_new_database_all_start(
    any_db_url: str, tmp_path: Path
) -> None:
    """Each scheduler creates the job store's table if it is missing: four at once, on a new
    database, three times over (the check-then-create race was lost in 4 of 5 rounds)."""
    for attempt in range(3):
        url = f"{any_db_url}&application_name=start{attempt}"
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {TIMER_TABLE}"))
        engine.dispose()
        assert race(tmp_path, *(["start", url] for _ in range(4))) == ["started"] * 4


@postgres_only
async def test_timers_of_a_cti_that_went_away_fire_on_the_one_still_running(
    any_db_url: str, shared: sessionmaker[Session], tmp_path: Path
) -> None:
    """The running CTI's scheduler learns of timers only it did not schedule by looking at the
    shared store now and then: those of a CTI that stopped before they fell due fire there."""
    rule = DeadlineRule(category="快", limit="3s", response_limit="3s", remind_before="1s")
    settings = FAST.model_copy(update={"rules": [rule]})
    with (tmp_path / "running.log").open("wb") as log:
        running = subprocess.Popen(
            [sys.executable, "-m", "tests.tickets.race_process", "timers", any_db_url, "wait"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert running.stdout is not None and running.stdin is not None
        assert running.stdout.readline() == b"ready\n", (tmp_path / "running.log").read_text()
        running.stdin.write(b"go\n")
        running.stdin.flush()
        timers = TicketTimers(any_db_url)
        service = TicketService(shared, Bus(), settings, DEPARTMENTS, NullNotifier(), timers)
        service.start_timers()
        try:
            view = service.open_for_call("20261001000001", call_id="c1", topic="快")
            service.transition(view.id, "dispatch", AGENT, department="zjj")
        finally:
            timers.shutdown(wait=False)  # this CTI stops before its timers fall due
        out, _ = await asyncio.to_thread(running.communicate, timeout=180)
        assert running.returncode == 0, (tmp_path / "running.log").read_text()
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert json.loads(out.decode().splitlines()[-1])["ended"] >= 2
    actions = [e.action for e in service.get(view.id).events]
    assert actions.count("due_overdue") == 1 and actions.count("response_overdue") == 1


# --- SMS -------------------------------------------------------------------------------------


def sms_settings(url: str) -> SmsSettings:
    return SmsSettings.model_validate(
        {
            "enabled": True,
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": "+8610690000",
            "api_base_url": url,
        }
    )


@postgres_only
def test_three_workers_send_each_sms_once(
    any_db_url: str, shared: sessionmaker[Session], tmp_path: Path
) -> None:
    with FakeTwilio() as twilio:
        sms = SmsNotifier(shared, sms_settings(twilio.url))
        for i in range(60):
            sms.enqueue("13812345678", f"短信 {i}", ticket_id=None, purpose="test")
        runs = race(tmp_path, *(["sms", any_db_url, twilio.url] for _ in range(3)))
        bodies = Counter(form["Body"] for form in twilio.requests)
    assert sum(runs) >= 60
    assert bodies == Counter({f"短信 {i}": 1 for i in range(60)})
    with shared() as session:
        statuses = Counter(session.scalars(select(SmsMessage.status)))
    assert statuses == {"sent": 60}


async def test_a_send_in_progress_elsewhere_is_not_sent_again(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    """A CTI starting (or any worker's pass) leaves alone a message another CTI is sending;
    one whose sender died is sent again once its claim is older than the lease."""
    with FakeTwilio() as twilio:
        elsewhere = SmsNotifier(sessions, sms_settings(twilio.url), clock=clock)
        message_id = elsewhere.enqueue("13812345678", "您的工单", ticket_id=None, purpose="test")
        with sessions.begin() as session:  # what the other CTI's claim leaves in the row
            session.execute(
                update(SmsMessage)
                .where(SmsMessage.id == message_id)
                .values(status="sending", attempts=1, updated_at=clock())
            )
        here = SmsNotifier(sessions, sms_settings(twilio.url), clock=clock)
        clock.advance(seconds=30)
        here.start(poll_s=3600)  # a CTI starting
        with sessions() as session:
            assert session.get(SmsMessage, message_id).status == "sending"  # type: ignore[union-attr]
        await here.stop()
        assert here.send_due() == 0
        assert twilio.requests == []
        clock.advance(seconds=SENDING_LEASE.total_seconds())
        assert here.send_due() == 1
        assert [form["Body"] for form in twilio.requests] == ["您的工单"]
    with sessions() as session:
        row = session.get(SmsMessage, message_id)
        assert row is not None and (row.status, row.attempts) == ("sent", 2)


def test_a_message_being_sent_cannot_be_queued_again_by_hand(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    from cti.errors import Conflict

    sms = SmsNotifier(sessions, sms_settings("http://127.0.0.1:9"), clock=clock)
    message_id = sms.enqueue("13812345678", "您的工单", ticket_id=None, purpose="test")
    with sessions.begin() as session:
        session.execute(
            update(SmsMessage).where(SmsMessage.id == message_id).values(status="sending")
        )
    with pytest.raises(Conflict):
        sms.retry(message_id)
    with sessions() as session:
        assert session.scalar(select(func.count()).where(SmsMessage.status == "sending")) == 1


def test_a_sweep_runs_once_per_slot(sessions: sessionmaker[Session]) -> None:
    hour = timedelta(hours=1)
    at = datetime(2026, 12, 7, 10, 20, tzinfo=UTC)
    assert once_per(sessions, "retention", hour, at)
    assert not once_per(sessions, "retention", hour, at + timedelta(minutes=30))  # 10:50
    assert once_per(sessions, "other sweep", hour, at)
    assert once_per(sessions, "retention", hour, at + timedelta(minutes=40))  # 11:00
    with sessions() as session:
        slots = sorted(session.scalars(select(JobClaim.due_at).where(JobClaim.job == "retention")))
    assert slots == [datetime(2026, 12, 7, 10, tzinfo=UTC), datetime(2026, 12, 7, 11, tzinfo=UTC)]


def test_old_claims_are_forgotten(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(JobClaim(job="old", due_at=now, claimed_at=now - timedelta(days=8)))
        session.add(JobClaim(job="new", due_at=now, claimed_at=now))
    forget_old(sessions, now)
    with sessions() as session:
        assert list(session.scalars(select(JobClaim.job))) == ["new"]
