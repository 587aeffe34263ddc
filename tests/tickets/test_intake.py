"""``tickets.intake`` on its own: which open ticket a request joins (the number, the category,
the week), that a request delivered twice opens one ticket, the web form's code (its life,
its attempts), that texts of one number at once open one ticket, and that the KPIs count an
intake ticket like a call's once an agent acts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.config import default_data, parse
from cti.errors import ApiError, ConfigError
from cti.events import TicketUpdated
from tests.tickets.conftest import PG_URL
from tests.tickets.fake_twilio import SID, TOKEN, FakeTwilio
from tests.tickets.support import Clock, RecordingBus, do, open_ticket, race
from tickets.channels import Channel
from tickets.intake import Intake, Request
from tickets.models import IntakeCode, SmsMessage, Ticket
from tickets.service import TicketService
from tickets.settings import IntakeSettings, SmsSettings
from tickets.sms import SmsNotifier

PHONE = "13812345678"  # support.open_ticket's caller


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def intake(service: TicketService, clock: Clock, twilio: FakeTwilio) -> Intake:
    sms = SmsNotifier(
        service.sessions,
        SmsSettings(
            enabled=True,
            account_sid=SID,
            auth_token=TOKEN,  # type: ignore[arg-type]
            from_number="+8610690012345",
            api_base_url=twilio.url,
        ),
        clock=clock,
    )
    return Intake(service, IntakeSettings(code_attempts=2), sms, clock)


def request(intake: Intake, external_id: str, category: str = "", **fields: str) -> Request:
    return intake.clean_request(
        Channel.WECHAT,
        "wechat-mp",
        external_id,
        fields.pop("phone", PHONE),
        {"description": "路灯不亮", "category": category, **fields},
    )


def count(sessions: sessionmaker[Session], model: object) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_a_request_joins_the_numbers_open_ticket_of_its_category_within_the_week(
    intake: Intake, service: TicketService, clock: Clock, bus: RecordingBus
) -> None:
    call = open_ticket(service, topic="求助")
    assert intake.submit(request(intake, "wx-1", "求助")).ticket_id == call.id
    other = intake.submit(request(intake, "wx-2", "投诉"))  # another kind of matter
    assert other.kind == "opened" and other.ticket_id != call.id
    assert intake.submit(request(intake, "wx-3")).ticket_id == other.ticket_id  # any, newest
    updates = [e for e in bus.events if isinstance(e, TicketUpdated)]
    assert [u.what for u in updates] == ["intake_attached", "intake_opened", "intake_attached"]
    clock.advance(days=8)
    late = intake.submit(request(intake, "wx-4", "投诉"))
    assert late.kind == "opened" and late.ticket_id not in (call.id, other.ticket_id)


def test_a_closed_matter_is_not_joined(intake: Intake, service: TicketService) -> None:
    call = open_ticket(service, topic="求助")
    do(service, call.id, "answer")  # S1: answered on the spot, no longer open
    outcome = intake.submit(request(intake, "wx-1", "求助"))
    assert outcome.kind == "opened" and outcome.ticket_id != call.id


def test_the_same_request_twice_opens_one_ticket(
    intake: Intake, service: TicketService, sessions: sessionmaker[Session]
) -> None:
    first = intake.submit(request(intake, "wx-1"))
    again = intake.submit(request(intake, "wx-1", location="别处"))
    assert again.ticket_id == first.ticket_id and again.replayed and not first.replayed
    assert count(sessions, Ticket) == 1


def test_an_intake_ticket_is_counted_like_a_calls_once_an_agent_acts(
    intake: Intake, service: TicketService, sessions: sessionmaker[Session]
) -> None:
    outcome = intake.submit(request(intake, "wx-1"))
    assert service.get(outcome.ticket_id).channel == "wechat"

    def row() -> Ticket:
        with sessions() as session:
            ticket = session.get(Ticket, outcome.ticket_id)
            assert ticket is not None
            return ticket

    assert row().state == "intake" and row().accepted_at is None
    do(service, outcome.ticket_id, "answer")
    # what 直接答复率 and the other intake KPIs read (tickets.kpi)
    assert row().accepted_at is not None and row().intake_outcome == "answered"


def test_a_code_lives_its_lifetime_and_its_attempts(
    intake: Intake, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    fields = {"description": "井盖缺失"}
    pending = intake.request_code(PHONE, fields, "192.0.2.7")
    with pytest.raises(ApiError) as wrong:
        intake.confirm(pending.id, "not-it")
    assert wrong.value.error_id == "wrong-code"
    with pytest.raises(ApiError):
        intake.confirm(pending.id, "not-it")
    with pytest.raises(ApiError) as spent:
        intake.confirm(pending.id, "not-it")
    assert spent.value.status == 429 and spent.value.error_id == "too-many-attempts"
    late = intake.request_code(PHONE, fields, "192.0.2.7")
    clock.advance(seconds=601)
    with pytest.raises(ApiError) as expired:
        intake.confirm(late.id, "123456")
    assert expired.value.error_id == "code-expired"
    assert count(sessions, Ticket) == 0 and count(sessions, SmsMessage) == 2
    clock.advance(days=1)
    assert intake.forget_expired() == 2 and count(sessions, IntakeCode) == 0


def test_texts_of_one_number_at_once_open_one_ticket(
    intake: Intake, sessions: sessionmaker[Session]
) -> None:
    # Threads of one process; other processes on PostgreSQL wait on the same advisory lock.
    for round_ in range(3):
        requests = [
            request(intake, f"wx-{round_}-{n}", phone=f"1391234000{round_}") for n in range(4)
        ]
        barrier = threading.Barrier(len(requests))

        def submit(req: Request, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return intake.submit(req).kind

        with ThreadPoolExecutor(len(requests)) as pool:
            kinds = sorted(pool.map(submit, requests))
        assert kinds == ["attached", "attached", "attached", "opened"], round_
    assert count(sessions, Ticket) == 3


def test_a_configuration_naming_tickets_channels_is_told_to_remove_it() -> None:
    data = default_data()
    data["tickets"] = {"channels": ["phone", "web"]}
    with pytest.raises(ConfigError, match="channels is no longer a setting"):
        parse(data)


@pytest.mark.skipif(not PG_URL, reason="one CTI per SQLite file (hotline serve refuses a second)")
def test_processes_submitting_one_numbers_requests_at_once_open_one_ticket(
    db_url: str, engine: object, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    commands = [[db_url, str(i), "3", "13912340009"] for i in range(3)]
    runs = race(tmp_path, *commands, module="tests.tickets.intake_race_process", timeout=120)
    kinds = [kind for run in runs for kind in run]
    assert sorted(kinds) == ["attached"] * 8 + ["opened"]
    assert count(sessions, Ticket) == 1
