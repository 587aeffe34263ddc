"""Requests that are no call, through the console's routes: citizens' SMS (twilio's signed
webhook), the public web form confirmed by an SMS code, and the intake API of other systems.
Outgoing SMS go to the local stand-in for twilio's API; signatures are made and checked with
twilio's own ``RequestValidator``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from console.app import create_app
from cti.app import Hotline
from cti.config import Settings
from tests.console.conftest import TestClient, console_settings, login
from tests.tickets.fake_twilio import SID, TOKEN, FakeTwilio
from tickets.models import IntakeCode, SmsMessage, Ticket, TicketIntake
from tickets.statemachine import Actor

INBOUND = "https://hotline.example.gov.cn/api/sms/inbound"
WECHAT_TOKEN = "wechat-token-0123456789abcdefghij"
POLICE_TOKEN = "police-token-0123456789abcdefghij"
CITIZEN = "+8613912345678"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def settings(any_db_url: str, tmp_path: Path, twilio: FakeTwilio) -> Settings:
    return console_settings(
        any_db_url,
        tmp_path,
        sms={
            "enabled": True,
            "account_sid": SID,
            "auth_token": TOKEN,
            "from_number": "+8610690012345",
            "api_base_url": twilio.url,
        },
        intake={
            "sms_inbound_url": INBOUND,
            "web_per_address_per_hour": 3,
            "web_per_phone_per_hour": 2,
            "clients": [
                {"name": "wechat-mp", "token": WECHAT_TOKEN, "channels": ["wechat"]},
                {"name": "police110", "token": POLICE_TOKEN, "channels": ["police110"]},
            ],
        },
    )


@pytest.fixture
def client(hotline: Hotline, users: Any) -> Iterator[TestClient]:
    with TestClient(create_app(hotline), base_url="http://testserver") as c:
        yield c


def count(hotline: Hotline, model: Any) -> int:
    with hotline.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stored(hotline: Hotline) -> tuple[int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        count(hotline, m) for m in (Ticket, TicketIntake, IntakeCode, SmsMessage)
    )


def texted(twilio: FakeTwilio, hotline: Hotline) -> list[dict[str, str]]:
    assert hotline.sms is not None
    hotline.sms.send_due()
    return twilio.requests


def sms_params(body: str, sid: str = "SM" + "a" * 32, sender: str = CITIZEN) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SID,
        "From": sender,
        "To": "+8610690012345",
        "Body": body,
        "NumMedia": "0",
    }


def post_sms(client: TestClient, params: dict[str, str], token: str = TOKEN) -> Any:
    signature = RequestValidator(token).compute_signature(INBOUND, params)
    return client.post(
        "/api/sms/inbound",
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


# --- SMS -----------------------------------------------------------------------------------


def test_a_signed_sms_opens_a_ticket_and_the_citizen_gets_its_number(
    client: TestClient, hotline: Hotline, twilio: FakeTwilio
) -> None:
    r = post_sms(client, sms_params("幸福路12号路灯不亮三天了"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    assert "<Message>" not in r.text  # the reply goes through the outbox
    (ticket,) = hotline.tickets.list_tickets()
    assert ticket.channel == "sms" and ticket.state == "intake"
    assert ticket.contact_phone == "13912345678" and ticket.caller == "13912345678"
    assert ticket.description == "幸福路12号路灯不亮三天了"
    (reply,) = texted(twilio, hotline)
    assert reply["To"] == CITIZEN and ticket.id in reply["Body"]


def test_a_second_sms_joins_the_open_ticket_and_says_so(
    client: TestClient, hotline: Hotline, twilio: FakeTwilio
) -> None:
    post_sms(client, sms_params("小区门口垃圾没人清运"))
    r = post_sms(client, sms_params("今天还是没有清运", sid="SM" + "b" * 32))
    assert r.status_code == 200
    (ticket,) = hotline.tickets.list_tickets()
    view = hotline.tickets.get(ticket.id)
    contact = [e for e in view.to_dict()["events"] if e["action"] == "intake_contact"]
    assert len(contact) == 1 and contact[0]["data"]["text"] == "今天还是没有清运"
    opened, attached = texted(twilio, hotline)
    assert ticket.id in opened["Body"] and ticket.id in attached["Body"]
    assert "已补充" in attached["Body"]


def test_a_forged_or_replayed_sms_is_refused_and_stores_nothing(
    client: TestClient, hotline: Hotline
) -> None:
    params = sms_params("噪音扰民")
    assert post_sms(client, params, token="not-the-token").status_code == 403
    r = client.post("/api/sms/inbound", content=urlencode(params))  # no signature at all
    assert r.status_code == 403 and r.json()["error"] == "bad-signature"
    other = {**params, "AccountSid": "AC" + "9" * 32}
    assert post_sms(client, other).json()["error"] == "wrong-account"
    tampered = {**params, "Body": "改过的内容"}
    signature = RequestValidator(TOKEN).compute_signature(INBOUND, params)
    r = client.post(
        "/api/sms/inbound",
        content=urlencode(tampered),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert r.status_code == 403
    assert stored(hotline) == (0, 0, 0, 0)
    assert post_sms(client, params).status_code == 200
    before = stored(hotline)
    r = post_sms(client, params)  # the same MessageSid again
    assert r.status_code == 403 and r.json()["error"] == "replayed"
    assert stored(hotline) == before == (1, 1, 0, 1)


@pytest.mark.parametrize(
    ("body", "sender", "reply"),
    [
        ("   ", CITIZEN, "短信内容为空"),
        ("路灯" * 1001, CITIZEN, "内容过长"),
        ("路灯\x1b[31m不亮", CITIZEN, "无法识别的字符"),
        ("路灯不亮", "+14155550100", "无法识别您的手机号码"),
    ],
)
def test_a_signed_sms_that_cannot_be_a_ticket_gets_its_reason_and_stores_nothing(
    client: TestClient, hotline: Hotline, body: str, sender: str, reply: str
) -> None:
    r = post_sms(client, sms_params(body, sender=sender))
    assert r.status_code == 200 and reply in r.text and "<Message>" in r.text
    assert stored(hotline) == (0, 0, 0, 0)


# --- the web form --------------------------------------------------------------------------

FORM = {"phone": "13912345678", "location": "文游路88号", "description": "人行道井盖缺失"}


def code_of(twilio: FakeTwilio, hotline: Hotline) -> str:
    body = texted(twilio, hotline)[-1]["Body"]
    return body.split("验证码为", 1)[1][:6]


def test_the_web_form_opens_a_ticket_once_the_code_is_typed_back(
    client: TestClient, hotline: Hotline, twilio: FakeTwilio
) -> None:
    page = client.get("/intake")
    assert page.status_code == 200 and 'id="intake-form"' in page.text
    r = client.post("/api/intake/web", json=FORM)
    assert r.status_code == 201, r.text
    pending = r.json()
    assert pending["phone"] == "139****5678"
    code = code_of(twilio, hotline)
    assert count(hotline, Ticket) == 0  # nothing before the code
    wrong = "000000" if code != "000000" else "111111"
    r = client.post("/api/intake/web/confirm", json={"id": pending["id"], "code": wrong})
    assert r.status_code == 422 and r.json()["message"] == "the code is wrong: 4 attempts left"
    assert count(hotline, Ticket) == 0
    r = client.post("/api/intake/web/confirm", json={"id": pending["id"], "code": code})
    assert r.status_code == 200 and r.json()["kind"] == "opened"
    ticket = hotline.tickets.get(r.json()["ticket_id"])
    assert ticket.channel == "web" and ticket.location == "文游路88号"
    assert ticket.description == "人行道井盖缺失" and ticket.contact_phone == "13912345678"
    assert ticket.id in texted(twilio, hotline)[-1]["Body"]
    again = client.post("/api/intake/web/confirm", json={"id": pending["id"], "code": code})
    assert again.json() == {**r.json(), "replayed": True}
    assert count(hotline, Ticket) == 1


def test_a_flood_from_one_address_or_to_one_number_is_rate_limited(
    client: TestClient, hotline: Hotline, twilio: FakeTwilio
) -> None:
    for n in range(2):
        assert client.post("/api/intake/web", json=FORM).status_code == 201, n
    r = client.post("/api/intake/web", json=FORM)  # the number's third within the hour
    assert r.status_code == 429 and "number" in r.json()["message"]
    assert int(r.headers["Retry-After"]) > 0
    other = {**FORM, "phone": "13800000001"}
    assert client.post("/api/intake/web", json=other).status_code == 201
    r = client.post("/api/intake/web", json={**FORM, "phone": "13800000002"})
    assert r.status_code == 429 and "address" in r.json()["message"]  # the address's fourth
    assert count(hotline, IntakeCode) == 3
    assert len(texted(twilio, hotline)) == 3


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({**FORM, "description": "井盖" * 20_000}, 413, "too-large"),
        ({**FORM, "description": "井盖" * 1001}, 422, "field-too-long"),
        ({**FORM, "location": "文游路\x00"}, 422, "control-character"),
        ({**FORM, "description": ""}, 422, "empty-description"),
        ({**FORM, "phone": "0514-84612345"}, 422, "mobile-required"),
        ({**FORM, "phone": "<script>"}, 422, "invalid-phone"),
        ({**FORM, "admin": True}, 422, "unknown-field"),
        ({**FORM, "location": ["a"]}, 422, "invalid-field"),
        ({**FORM, "category": "DROP TABLE"}, 422, "unknown-category"),
        ([FORM], 422, "not-json"),
    ],
)
def test_an_oversized_or_hostile_form_is_refused_with_a_sentence_and_stores_nothing(
    client: TestClient, hotline: Hotline, body: Any, status: int, error: str
) -> None:
    r = client.post("/api/intake/web", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["message"].count(".") <= 1
    assert stored(hotline) == (0, 0, 0, 0)


# --- the intake API ------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


RECORD = {
    "channel": "police110",
    "external_id": "JJ20261207000123",
    "phone": "13912345678",
    "category": "求助",
    "location": "盂城驿北侧",
    "description": "邻居家漏水渗到楼下,非警务求助",
    "record": {"unit": "高邮市公安局110指挥中心", "received_at": "2026-12-07T09:12:00+08:00"},
}


def test_110_hands_a_record_over_and_it_becomes_a_ticket_carrying_its_data(
    client: TestClient, hotline: Hotline
) -> None:
    r = client.post("/api/tickets", json=RECORD, headers=bearer(POLICE_TOKEN))
    assert r.status_code == 201, r.text
    ticket = hotline.tickets.get(r.json()["ticket_id"])
    assert ticket.channel == "police110" and ticket.category == "求助"
    (opened,) = [e for e in ticket.to_dict()["events"] if e["action"] == "open"]
    assert opened["data"]["external_id"] == "JJ20261207000123"
    assert opened["data"]["record"]["unit"] == "高邮市公安局110指挥中心"
    again = client.post("/api/tickets", json=RECORD, headers=bearer(POLICE_TOKEN))
    assert again.status_code == 200 and again.json()["ticket_id"] == ticket.id
    assert again.json()["replayed"] is True and count(hotline, Ticket) == 1


def test_110s_record_of_a_call_it_put_through_joins_the_calls_draft(
    client: TestClient, hotline: Hotline
) -> None:
    draft = hotline.tickets.open_for_call(
        "20261207000001", call_id="1765090000.1", caller="13912345678", topic="求助"
    )
    r = client.post("/api/tickets", json=RECORD, headers=bearer(POLICE_TOKEN))
    assert r.status_code == 201 and r.json() == {
        "ticket_id": draft.id,
        "kind": "attached",
        "replayed": False,
    }
    assert hotline.tickets.get(draft.id).channel == "police110"


def test_the_intake_api_wants_a_clients_token_and_its_channels(
    client: TestClient, hotline: Hotline
) -> None:
    assert client.post("/api/tickets", json=RECORD).status_code == 401
    r = client.post("/api/tickets", json=RECORD, headers=bearer("x" * 40))
    assert r.status_code == 401 and r.json()["error"] == "bad-token"
    r = client.post("/api/tickets", json=RECORD, headers=bearer(WECHAT_TOKEN))
    assert r.status_code == 403 and r.json()["error"] == "channel-not-allowed"
    for bad, error in (
        ({**RECORD, "external_id": "../../x"}, "invalid-external-id"),
        ({**RECORD, "channel": "phone"}, "unknown-channel"),
        ({**RECORD, "record": {"unit": "x" * 501}}, "invalid-record"),
        ({**RECORD, "record": "110"}, "invalid-record"),
    ):
        r = client.post("/api/tickets", json=bad, headers=bearer(POLICE_TOKEN))
        assert r.status_code == 422 and r.json()["error"] == error, r.text
    login(client, "li")  # a person's session is no intake client
    r = client.post("/api/tickets", json=RECORD)
    assert r.status_code == 403 and r.json()["error"] == "intake-token-required"
    assert stored(hotline) == (0, 0, 0, 0)
    wechat = {**RECORD, "channel": "wechat", "external_id": "wx-1", "record": {}}
    r = client.post("/api/tickets", json=wechat, headers=bearer(WECHAT_TOKEN))
    assert r.status_code == 201 and hotline.tickets.get(r.json()["ticket_id"]).channel == "wechat"


def test_12345_hands_the_tickets_content_to_110_not_only_its_number(
    client: TestClient, hotline: Hotline
) -> None:
    draft = hotline.tickets.open_for_call(
        "20261207000002", call_id="1765090000.2", caller="13912345678", topic="求助"
    )
    agent = Actor("li", frozenset({"agent"}))
    hotline.tickets.update_fields(
        draft.id, agent, location="东大街3号", description="有人持刀在楼道徘徊", citizen_name="王芳"
    )
    hotline.tickets.transition(draft.id, "transfer_police", agent, "transferred to 110")
    r = client.get("/api/police/handovers", headers=bearer(POLICE_TOKEN))
    assert r.status_code == 200, r.text
    (handover,) = r.json()
    assert handover["ticket_id"] == draft.id and handover["agent"] == "li"
    content = handover["ticket"]
    assert content["description"] == "有人持刀在楼道徘徊" and content["location"] == "东大街3号"
    assert content["contact_phone"] == "13912345678" and content["citizen_name"] == "王芳"
    after = {"after": handover["cursor"]}
    assert (
        client.get("/api/police/handovers", params=after, headers=bearer(POLICE_TOKEN)).json() == []
    )
    r = client.get("/api/police/handovers", headers=bearer(WECHAT_TOKEN))
    assert r.status_code == 403 and r.json()["error"] == "channel-not-allowed"
    assert client.get("/api/police/handovers").status_code == 401
