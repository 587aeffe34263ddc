"""SMS through twilio's client against a local stand-in for the API: the fields twilio
requires, retries with backoff, permanent failures, and signed delivery reports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from cti.errors import ApiError
from tests.tickets.fake_twilio import SID, TOKEN, FakeTwilio
from tests.tickets.support import Clock, RecordingBus
from tickets.api import router
from tickets.models import SmsMessage
from tickets.service import TicketService
from tickets.settings import SmsSettings, TicketSettings
from tickets.sms import SmsNotifier

CALLBACK = "https://hotline.example.gov.cn/api/sms/status"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def settings(url: str, **extra: object) -> SmsSettings:
    base: dict[str, object] = {
        "enabled": True,
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": "+8610690000",
        "api_base_url": url,
        "status_callback_url": CALLBACK,
        "max_attempts": 3,
        "retry_backoff_s": 10,
    }
    base.update(extra)
    return SmsSettings.model_validate(base)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 10, 8, 1, 0, tzinfo=UTC))


def test_sends_what_twilio_requires(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    sms.notify("citizen_opened", "13812345678", "20261008000001")
    assert sms.send_due() == 1
    assert twilio.rejected == []
    (form,) = twilio.requests
    assert form["To"] == "+8613812345678" and form["From"] == "+8610690000"
    assert "20261008000001" in form["Body"]
    assert form["StatusCallback"] == CALLBACK
    (row,) = sms.messages()
    assert row["status"] == "sent" and row["sid"].startswith("SM") and row["attempts"] == 1
    assert sms.send_due() == 0  # nothing sent twice


def test_messaging_service_instead_of_from(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    conf = settings(twilio.url, from_number="", messaging_service_sid="MG" + "1" * 32)
    sms = SmsNotifier(sessions, conf, clock=clock)
    sms.notify("department_reminder", "0558-5123456", "T1", due="2026-10-09 10:00")
    sms.send_due()
    (form,) = twilio.requests
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form
    assert form["To"] == "+865585123456"


def test_temporary_failures_are_retried_with_backoff(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    twilio.failures.extend([(500, 20500), (429, 20429)])
    sms.enqueue("13812345678", "测试", ticket_id="T2", purpose="test")
    sms.send_due()
    (row,) = sms.messages()
    assert row["status"] == "retrying" and row["error_code"] == "20500" and row["attempts"] == 1
    assert row["next_attempt_at"] == datetime(2026, 10, 8, 1, 0, 10, tzinfo=UTC)
    assert sms.send_due() == 0  # not yet
    clock.advance(seconds=10)
    sms.send_due()
    (row,) = sms.messages()
    assert row["status"] == "retrying" and row["error_code"] == "20429"
    assert row["next_attempt_at"] == datetime(2026, 10, 8, 1, 0, 30, tzinfo=UTC)  # 10 s, 20 s
    clock.advance(seconds=20)
    sms.send_due()
    (row,) = sms.messages()
    assert row["status"] == "sent" and row["attempts"] == 3 and row["error_code"] == ""
    assert len(twilio.requests) == 3


def test_gives_up_after_max_attempts_and_can_be_retried(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    twilio.failures.extend([(503, 20503)] * 3)
    message_id = sms.enqueue("13812345678", "测试", ticket_id="T3", purpose="test")
    for _ in range(3):
        sms.send_due()
        clock.advance(minutes=5)
    (row,) = sms.messages(status="failed")
    assert row["attempts"] == 3 and row["error_code"] == "20503"
    sms.retry(message_id)
    sms.send_due()
    assert sms.messages()[0]["status"] == "sent"


def test_permanent_failure_is_not_retried(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    twilio.failures.append((400, 21211))
    sms.enqueue("13812345678", "测试", ticket_id="T4", purpose="test")
    sms.send_due()
    (row,) = sms.messages(status="failed")
    assert row["error_code"] == "21211" and row["attempts"] == 1
    assert "21211" in row["error_message"]


def test_network_errors_are_retried(sessions: sessionmaker[Session], clock: Clock) -> None:
    with FakeTwilio() as fake:
        dead = fake.url  # nothing listens here after the server closes
    sms = SmsNotifier(sessions, settings(dead), clock=clock)
    sms.enqueue("13812345678", "测试", ticket_id="T5", purpose="test")
    sms.send_due()
    (row,) = sms.messages()
    assert row["status"] == "retrying" and row["error_code"] == "network"


def test_wrong_credentials_are_reported(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url, auth_token="wrong"), clock=clock)
    sms.enqueue("13812345678", "测试", ticket_id="T6", purpose="test")
    sms.send_due()
    (row,) = sms.messages(status="failed")
    assert row["error_code"] == "20003"


def test_token_is_never_logged(
    twilio: FakeTwilio,
    sessions: sessionmaker[Session],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = settings(twilio.url)
    assert TOKEN not in repr(conf) and TOKEN not in str(conf.model_dump())
    sms = SmsNotifier(sessions, conf, clock=clock)
    twilio.failures.append((400, 21211))
    with caplog.at_level(logging.DEBUG):
        sms.enqueue("13812345678", "测试", ticket_id="T7", purpose="test")
        sms.send_due()
    assert caplog.records and all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_worker_sends_off_the_loop(
    twilio: FakeTwilio, sessions: sessionmaker[Session]
) -> None:
    import asyncio

    sms = SmsNotifier(sessions, settings(twilio.url))
    sms.start(poll_s=30)
    try:
        await asyncio.sleep(0.05)
        sms.notify("citizen_reply", "13812345678", "T8", reply="已修复")
        for _ in range(100):
            if sms.messages()[0]["status"] == "sent":
                break
            await asyncio.sleep(0.02)
        assert sms.messages()[0]["status"] == "sent"
        assert "已修复" in twilio.requests[0]["Body"]
    finally:
        await sms.stop()


def webhook_app(sms: SmsNotifier, sessions: sessionmaker[Session]) -> httpx.AsyncClient:
    service = TicketService(sessions, RecordingBus(), TicketSettings())
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router(service, sms=sms))
    transport = httpx.ASGITransport(app=app)
    # The URL as the ASGI app sees it differs from the public one twilio signed.
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_status_webhook_checks_twilios_signature(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    sms.enqueue("13812345678", "测试", ticket_id="T9", purpose="test")
    sms.send_due()
    sid = sms.messages()[0]["sid"]
    async with webhook_app(sms, sessions) as client:
        await _webhook_checks(client, sms, sid)


async def _webhook_checks(client: httpx.AsyncClient, sms: SmsNotifier, sid: str) -> None:
    params = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": SID, "To": "+86138"}
    signature = RequestValidator(TOKEN).compute_signature(CALLBACK, params)

    bad = await client.post(
        "/api/sms/status", data=params, headers={"X-Twilio-Signature": "x" + signature}
    )
    assert bad.status_code == 403 and bad.json()["error"] == "bad-signature"
    assert (await client.post("/api/sms/status", data=params)).status_code == 403
    forged = {**params, "MessageStatus": "failed"}
    forged_reply = await client.post(
        "/api/sms/status", data=forged, headers={"X-Twilio-Signature": signature}
    )
    assert forged_reply.status_code == 403
    assert sms.messages()[0]["status"] == "sent"

    ok = await client.post(
        "/api/sms/status", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert ok.status_code == 204
    assert sms.messages()[0]["status"] == "delivered"
    # A late "sent" report does not undo "delivered".
    late = {**params, "MessageStatus": "sent"}
    sig = RequestValidator(TOKEN).compute_signature(CALLBACK, late)
    await client.post("/api/sms/status", data=late, headers={"X-Twilio-Signature": sig})
    assert sms.messages()[0]["status"] == "delivered"


def test_undelivered_report_keeps_the_error(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    sms.enqueue("13812345678", "测试", ticket_id="T10", purpose="test")
    sms.send_due()
    sid = sms.messages()[0]["sid"]
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert sms.verify(
        "http://ignored/", params, RequestValidator(TOKEN).compute_signature(CALLBACK, params)
    )
    assert sms.handle_status(params)
    row = sms.messages()[0]
    assert row["status"] == "undelivered" and row["error_code"] == "30003"
    assert not sms.handle_status({"MessageSid": "SMunknown", "MessageStatus": "delivered"})


def test_every_purpose_the_workflow_uses_has_a_template(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    import re
    from pathlib import Path

    import tickets

    source = "".join(p.read_text() for p in Path(tickets.__file__).parent.glob("*.py"))
    purposes = set(re.findall(r'(?:notify\(|_notify_citizen\(step,)\s*"([a-z_]+)"', source))
    assert purposes == {
        "citizen_opened",
        "citizen_reply",
        "citizen_extension",
        "department_dispatch",
        "department_reminder",
    }
    sms = SmsNotifier(sessions, settings("http://127.0.0.1:9"), clock=clock)
    fields = {"reply": "r", "due": "d", "department": "x"}
    for purpose in sorted(purposes):
        sms.notify(purpose, "13812345678", "T", **fields)
    assert len(sms.messages()) == len(purposes)


def test_a_confirmation_code_is_not_readable_from_the_outbox(
    twilio: FakeTwilio, sessions: sessionmaker[Session], clock: Clock
) -> None:
    """The web form's code reaches the citizen, but neither GET /api/sms nor the stored row
    shows it once twilio has the message; a code message is not sent again by hand."""
    sms = SmsNotifier(sessions, settings(twilio.url), clock=clock)
    text = "【12345】您在网上提交诉求的验证码为042917,10分钟内有效。"
    message_id = sms.enqueue("13812345678", text, ticket_id=None, purpose="intake_code")
    (waiting,) = sms.messages()
    assert "042917" not in waiting["body"] and "验证码为******,10分钟" in waiting["body"]
    sms.send_due()
    assert twilio.requests[0]["Body"] == text  # the citizen gets the real code
    with sessions() as session:
        stored = session.get(SmsMessage, message_id)
        assert stored is not None and "042917" not in stored.body
    with pytest.raises(ApiError) as refused:
        sms.retry(message_id)
    assert refused.value.error_id == "sms-code-gone"
    other = sms.enqueue("13812345678", "工单号123456已受理", ticket_id="T9", purpose="test")
    assert sms.messages()[0]["id"] == other and "123456" in sms.messages()[0]["body"]
