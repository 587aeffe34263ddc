"""The REST routes: roles on every route, department scoping, typed errors as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from console.security import User
from cti.errors import ApiError
from tests.tickets.support import (
    AGENT,
    CGJ,
    LEADER,
    SUPERVISOR,
    WINDOW,
    ZJJ,
    open_ticket,
    ticket_in,
    user,
)
from tickets.api import router
from tickets.service import TicketService
from tickets.settings import SmsSettings
from tickets.sms import SmsNotifier

USERS: dict[str, User] = {
    "agent": AGENT,
    "leader": LEADER,
    "supervisor": SUPERVISOR,
    "window": User(5, "win1", "窗口", frozenset({"window"}), window_id="w12"),
    "zjj": ZJJ,
    "cgj": CGJ,
    "admin": user("admin", name="root"),
}


def build_app(service: TicketService, sms: SmsNotifier | None = None) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def login(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        name = request.headers.get("X-User")
        if name:
            request.state.user = USERS[name]
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router(service, sms=sms))
    return app


@pytest.fixture
async def client(service: TicketService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def as_(name: str) -> dict[str, str]:
    return {"X-User": name}


def test_every_route_but_the_webhook_declares_roles(service: TicketService) -> None:
    sms = SmsNotifier(service.sessions, SmsSettings(account_sid="AC1", auth_token="t"))
    routes = [r for r in router(service, sms=sms).routes if isinstance(r, APIRoute)]
    assert len(routes) >= 14
    for route in routes:
        roles = [
            getattr(d.call, "required_roles", None)
            for d in route.dependant.dependencies
            if getattr(d.call, "required_roles", None)
        ]
        if route.path == "/api/sms/status":
            assert roles == []  # twilio's signature instead of a session
        else:
            assert roles, route.path


async def test_transitions_over_http(client: httpx.AsyncClient, service: TicketService) -> None:
    ticket = open_ticket(service)
    url = f"/api/tickets/{ticket.id}"
    r = await client.get(url)
    assert r.status_code == 401
    r = await client.get(url, headers=as_("agent"))
    assert r.status_code == 200 and r.json()["state"] == "intake"
    assert r.json()["state_code"] == "S0" and "dispatch" in r.json()["allowed_actions"]

    r = await client.patch(url, json={"contact_phone": "12345"}, headers=as_("agent"))
    assert r.status_code == 422 and r.json()["error"] == "invalid-phone"
    r = await client.patch(url, json={"location": "花戏楼社区"}, headers=as_("agent"))
    assert r.json()["location"] == "花戏楼社区"
    r = await client.patch(url, json={"state": "closed"}, headers=as_("agent"))
    assert r.status_code == 422

    body = {"action": "dispatch", "data": {"department": "zjj"}}
    r = await client.post(url + "/transitions", json=body, headers=as_("agent"))
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    # the department sees its own ticket only
    r = await client.get(url, headers=as_("zjj"))
    assert r.status_code == 200, r.text
    assert (await client.get(url, headers=as_("cgj"))).status_code == 404
    # acting on another unit's ticket answers as for a missing one: nothing leaks
    r = await client.post(url + "/transitions", json={"action": "sign_off"}, headers=as_("cgj"))
    assert r.status_code == 404 and r.json()["error"] == "no-such-ticket"
    r = await client.post(url + "/transitions", json={"action": "sign_off"}, headers=as_("zjj"))
    assert r.json()["state"] == "handling"
    r = await client.post(url + "/transitions", json={"action": "archive"}, headers=as_("admin"))
    assert r.status_code == 409 and r.json()["error"] == "illegal-transition"
    assert r.json()["details"]["state"] == "handling"
    r = await client.post(url + "/transitions", json={"action": "reply"}, headers=as_("window"))
    assert r.status_code == 403


async def test_lists_history_departments(client: httpx.AsyncClient, service: TicketService) -> None:
    mine = ticket_in(service, "dispatched", caller="13700001111")
    ticket_in(service, "answered", caller="13700001111")
    r = await client.get("/api/tickets", headers=as_("zjj"))
    assert [t["id"] for t in r.json()] == [mine.id]
    r = await client.get("/api/tickets?state=answered", headers=as_("supervisor"))
    assert len(r.json()) == 1
    r = await client.get("/api/callers/13700001111/tickets", headers=as_("agent"))
    assert len(r.json()) == 2
    assert (await client.get("/api/callers/1/tickets", headers=as_("zjj"))).status_code == 403
    r = await client.get("/api/departments", headers=as_("zjj"))
    assert {d["id"] for d in r.json()} == {"zjj", "cgj", "scj", "gaj"}


async def test_merge_and_window_outcome(client: httpx.AsyncClient, service: TicketService) -> None:
    target = ticket_in(service, "dispatched")
    dup = open_ticket(service)
    r = await client.post(
        f"/api/tickets/{dup.id}/merge", json={"into": target.id}, headers=as_("agent")
    )
    assert r.json()["state"] == "merged"
    body = {"window_id": "w12", "text": "材料齐全即可办理"}
    url = f"/api/tickets/{target.id}/window-outcomes"
    # a window answers only on a ticket it was in a three-way call about
    r = await client.post(url, json=body, headers=as_("window"))
    assert r.status_code == 404 and r.json()["error"] == "no-such-ticket"
    service.record_window_call(target.id, "w12", "call-3w", AGENT)
    r = await client.post(url, json=body, headers=as_("window"))
    assert r.status_code == 200 and r.json()["window_outcomes"][0]["window_id"] == "w12"
    r = await client.post(
        f"/api/tickets/{target.id}/window-outcomes",
        json={"window_id": "w99", "text": "x"},
        headers=as_("window"),
    )
    assert r.status_code == 403
    # attaching a call (the server's record of it, not the client's): tests/tickets/test_input.py


async def test_reports(client: httpx.AsyncClient, service: TicketService) -> None:
    ticket_in(service, "closed")
    r = await client.get("/api/reports/kpi?period=2026-09", headers=as_("supervisor"))
    assert r.status_code == 200
    data = r.json()
    assert data["departments"][0]["department_id"] == "all"
    assert data["departments"][0]["satisfaction_rate"] == 1.0
    r = await client.get("/api/reports/kpi?period=soon", headers=as_("supervisor"))
    assert r.status_code == 422 and r.json()["error"] == "invalid-period"
    assert (
        await client.get("/api/reports/kpi?period=2026-09", headers=as_("agent"))
    ).status_code == 403
    r = await client.get("/api/reports/hotspots?period=2026-09", headers=as_("leader"))
    assert r.json()[0]["week"] == "2026-W38"


async def test_window_user_cannot_list(client: httpx.AsyncClient) -> None:
    assert WINDOW.roles == {"window"}
    assert (await client.get("/api/tickets", headers=as_("window"))).status_code == 403


PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(40)


@pytest.fixture
def attach_dir(service: TicketService, tmp_path: Path) -> Path:
    folder = tmp_path / "attachments"
    service.settings = service.settings.model_copy(
        update={"attachments_dir": folder, "attachment_max_mb": 0.01}
    )
    return folder


async def test_attachment_upload_and_download(
    client: httpx.AsyncClient, service: TicketService, attach_dir: Path
) -> None:
    view = open_ticket(service)
    files = {"file": ("../../路灯 照片.png", PNG, "image/png")}
    r = await client.post(f"/api/tickets/{view.id}/attachments", files=files, headers=as_("agent"))
    assert r.status_code == 201, r.text
    (att,) = r.json()["attachments"]
    assert att["name"] == "路灯 照片.png" and att["size"] == len(PNG)
    assert att["content_type"] == "image/png" and "path" not in att
    stored = list((attach_dir / view.id).iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == PNG  # named by its hash
    assert [e.action for e in service.get(view.id).events][-1] == "attach_file"
    url = f"/api/tickets/{view.id}/attachments/{att['id']}"
    r = await client.get(url, headers=as_("supervisor"))
    assert r.status_code == 200 and r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "filename*=utf-8''%E8%B7%AF%E7%81%AF" in r.headers["content-disposition"]
    # whoever may see the ticket may see its files; a unit it is not dispatched to may not
    assert (await client.get(url, headers=as_("zjj"))).status_code == 404
    assert (await client.get(url + "9", headers=as_("agent"))).status_code == 404


async def test_attachment_refusals_leave_nothing_behind(
    client: httpx.AsyncClient, service: TicketService, attach_dir: Path
) -> None:
    view = open_ticket(service)
    url = f"/api/tickets/{view.id}/attachments"
    cases = [
        (("x.png", b"<html><script>alert(1)</script>", "image/png"), 422, "attachment-content"),
        (("x.html", b"<html></html>", "text/html"), 422, "attachment-type"),
        (("x.txt", b"", "text/plain"), 422, "attachment-empty"),
        (("big.png", PNG + bytes(20_000), "image/png"), 413, "attachment-too-large"),
    ]
    for file, status, error in cases:
        r = await client.post(url, files={"file": file}, headers=as_("agent"))
        assert (r.status_code, r.json()["error"]) == (status, error), file[0]
    assert list((attach_dir / view.id).iterdir()) == []  # no partial files
    assert service.get(view.id).attachments == ()
    r = await client.post(
        url, files={"file": ("a.txt", "市民来信".encode(), "text/plain")}, headers=as_("window")
    )
    assert r.status_code == 403


async def test_department_attaches_only_to_its_own_tickets(
    client: httpx.AsyncClient, service: TicketService, attach_dir: Path
) -> None:
    view = ticket_in(service, "handling")
    lead = service.get(view.id).lead_department_id
    own, other = ("zjj", "cgj") if lead == "zjj" else ("cgj", "zjj")
    url = f"/api/tickets/{view.id}/attachments"
    file = {"file": ("修复后.png", PNG, "image/png")}
    assert (await client.post(url, files=file, headers=as_(other))).status_code == 404
    r = await client.post(url, files=file, headers=as_(own))
    assert r.status_code == 201, r.text
