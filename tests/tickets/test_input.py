"""What a ticket may store: the console's single-line and multi-line rules for its text, the
configured categories, a channel that is never edited, and calls as the CTI recorded them
(issue 15: NUL and control characters in citizen_name and location, ``<script>`` as a channel,
a call id with CR/LF, a recording path of ``../../../../etc/passwd``, another agent's id, all
stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from console.security import User
from cti.errors import ApiError, Invalid
from cti.models import CallRow
from tests.tickets.support import AGENT, open_ticket, ticket_in
from tickets.api import router
from tickets.service import TicketService

USERS = {
    "li": User(1, "li", "李娜", frozenset({"agent"}), agent_id="li"),
    "wang": User(2, "wang", "王强", frozenset({"agent"}), agent_id="wang"),
    "boss": User(3, "boss", "值班长", frozenset({"supervisor"})),
    "zjj": User(4, "zjj-clerk", "住建局", frozenset({"department"}), department_id="zjj"),
}


@pytest.fixture
async def client(service: TicketService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.middleware("http")
    async def login(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.user = USERS[request.headers["X-User"]]
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router(service))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def as_(name: str) -> dict[str, str]:
    return {"X-User": name}


# --- text fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("citizen_name", "张\x00三"),
        ("citizen_name", "张三\x1b[31m"),
        ("location", "花戏楼社区\r\nX-Injected: 1"),
        ("occurred", "昨晚\u202e十点"),  # a right-to-left override (Cf)
        ("description", "路灯不亮\x07"),
        ("category", "咨\n询"),
    ],
)
async def test_control_characters_are_refused(
    client: httpx.AsyncClient, service: TicketService, field: str, value: str
) -> None:
    ticket = open_ticket(service)
    r = await client.patch(f"/api/tickets/{ticket.id}", json={field: value}, headers=as_("li"))
    assert r.status_code == 422, r.text
    with pytest.raises(Invalid) as err:  # the service refuses it from any caller
        service.update_fields(ticket.id, AGENT, **{field: value})
    assert err.value.error_id == "control-character" and err.value.details["field"] == field
    assert getattr(service.get(ticket.id), field) == getattr(ticket, field)


async def test_text_keeps_its_line_breaks_only_where_they_belong(
    client: httpx.AsyncClient, service: TicketService
) -> None:
    ticket = open_ticket(service)
    body = {"description": "路灯不亮\r\n已三天\t请修", "location": "  花戏楼社区 "}
    r = await client.patch(f"/api/tickets/{ticket.id}", json=body, headers=as_("li"))
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "路灯不亮\n已三天\t请修"
    assert r.json()["location"] == "花戏楼社区"
    r = await client.patch(
        f"/api/tickets/{ticket.id}", json={"citizen_name": "张" * 51}, headers=as_("li")
    )
    assert r.status_code == 422


async def test_category_comes_from_the_configuration_and_the_channel_is_not_edited(
    client: httpx.AsyncClient, service: TicketService
) -> None:
    ticket = open_ticket(service, topic="消费维权")
    url = f"/api/tickets/{ticket.id}"
    for channel in ("<script>", "wechat"):
        r = await client.patch(url, json={"channel": channel}, headers=as_("li"))
        assert r.status_code == 422 and r.json()["error"] == "channel-not-editable"
    assert service.get(ticket.id).channel == "phone"
    r = await client.patch(url, json={"category": "城建"}, headers=as_("li"))
    assert r.status_code == 422 and r.json()["error"] == "unknown-category"
    assert service.get(ticket.id).category == "消费维权"
    # tickets.categories, a deadline rule's category, and the ticket's own topic
    for category in ("求助", "复杂咨询", "消费维权"):
        r = await client.patch(url, json={"category": category}, headers=as_("li"))
        assert r.status_code == 200 and r.json()["category"] == category


async def test_transition_text_follows_the_same_rules(
    client: httpx.AsyncClient, service: TicketService
) -> None:
    ticket = open_ticket(service)
    url = f"/api/tickets/{ticket.id}/transitions"
    body = {"action": "answer", "data": {"text": "按政策\x00可直接办理"}}
    r = await client.post(url, json=body, headers=as_("li"))
    assert r.status_code == 422 and r.json()["error"] == "control-character"
    r = await client.post(url, json={"action": "answer", "reason": "\x1b"}, headers=as_("li"))
    assert r.status_code == 422
    r = await client.post(url, json={"action": "<script>"}, headers=as_("li"))
    assert r.status_code == 422
    body = {"action": "transfer_police", "data": {"police_ref": "110-1\r\nX: y"}}
    r = await client.post(url, json=body, headers=as_("li"))
    assert r.status_code == 422 and r.json()["details"]["field"] == "police_ref"
    assert service.get(ticket.id).state.value == "intake"


async def test_dates_and_ratings_out_of_range_are_refused(
    client: httpx.AsyncClient, service: TicketService
) -> None:
    handling = ticket_in(service, "handling")
    url = f"/api/tickets/{handling.id}/transitions"
    for until in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"):
        body = {"action": "request_extension", "reason": "需现场勘查", "data": {"until": until}}
        r = await client.post(url, json=body, headers=as_("zjj"))
        assert r.status_code == 422 and r.json()["error"] == "invalid-date", r.text
    assert service.get(handling.id).state.value == "handling"
    survey = ticket_in(service, "survey")
    body = {"action": "survey", "data": {"rating": ["satisfied"]}}
    r = await client.post(f"/api/tickets/{survey.id}/transitions", json=body, headers=as_("li"))
    assert r.status_code == 422 and r.json()["error"] == "invalid-rating"


# --- calls --------------------------------------------------------------------------------


def record_call(sessions: sessionmaker[Session], linkedid: str, agent_id: str) -> None:
    with sessions.begin() as s:
        s.add(
            CallRow(
                node="pbx1",
                linkedid=linkedid,
                direction="callback",
                caller="13900001111",
                started_at=datetime(2026, 9, 15, 2, 5, tzinfo=UTC),
                answered_at=datetime(2026, 9, 15, 2, 6, tzinfo=UTC),
                agent_id=agent_id,
                recording="/var/spool/asterisk/monitor/2026/09/15/1757901960.7.wav",
            )
        )


async def test_a_call_is_attached_as_the_cti_recorded_it(
    client: httpx.AsyncClient, service: TicketService
) -> None:
    ticket = open_ticket(service)
    url = f"/api/tickets/{ticket.id}/calls"
    record_call(service.sessions, "1757901960.7", "li")
    forged = {
        "call_id": "1757901960.7",
        "recording_path": "../../../../etc/passwd",
        "agent_id": "wang",
    }
    r = await client.post(url, json=forged, headers=as_("li"))
    assert r.status_code == 422  # fields a client does not set
    r = await client.post(url, json={"call_id": "1.1\r\nAction: Hangup"}, headers=as_("li"))
    assert r.status_code == 422
    r = await client.post(url, json={"call_id": "no.such.call"}, headers=as_("li"))
    assert r.status_code == 404 and r.json()["error"] == "no-such-call"
    # another agent's call is not theirs to attach
    r = await client.post(url, json={"call_id": "1757901960.7"}, headers=as_("wang"))
    assert r.status_code == 404 and r.json()["error"] == "no-such-call"

    r = await client.post(url, json={"call_id": "1757901960.7"}, headers=as_("li"))
    assert r.status_code == 200, r.text
    call = service.get(ticket.id).calls[-1]
    assert (call.call_id, call.node, call.agent_id, call.caller) == (
        "1757901960.7",
        "pbx1",
        "li",
        "13900001111",
    )
    assert call.recording_path.endswith("/1757901960.7.wav")
    # a supervisor attaches any recorded call; its agent stays the one who took it
    other = open_ticket(service)
    record_call(service.sessions, "1757901999.9", "wang")
    r = await client.post(
        f"/api/tickets/{other.id}/calls", json={"call_id": "1757901999.9"}, headers=as_("boss")
    )
    assert r.status_code == 200 and service.get(other.id).calls[-1].agent_id == "wang"
