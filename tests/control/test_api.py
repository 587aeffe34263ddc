"""The REST routes: roles, whose call an action applies to, typed errors as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from console.security import User
from cti.config import WindowSettings
from cti.control import NoActiveCall, WindowClosed
from cti.control_api import router
from cti.errors import ApiError, NotFound
from cti.windows import WindowDirectory
from tickets.calendar import WorkCalendar

USERS = {
    "li": User(1, "li", "李娜", frozenset({"agent"}), agent_id="li"),
    "boss": User(2, "boss", "主管", frozenset({"supervisor"})),
    "clerk": User(3, "clerk", "窗口", frozenset({"window"}), window_id="shebao"),
    "admin": User(4, "admin", "管理员", frozenset({"admin"})),
}


class StubView:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class StubTickets:
    """T-1 had the shebao window in a three-way call; T-2 had no window."""

    def get(self, ticket_id: str) -> StubView:
        joined = [{"action": "window_call", "data": {"window_id": "shebao", "call_id": "1.1"}}]
        events = {"T-1": joined, "T-2": []}
        if ticket_id not in events:
            raise NotFound("no-such-ticket", f"no ticket {ticket_id}", ticket_id=ticket_id)
        return StubView({"id": ticket_id, "agent_id": "li", "events": events[ticket_id]})


class StubHotline:
    tickets = StubTickets()


class StubControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.hotline = StubHotline()
        self.windows = WindowDirectory(
            [
                WindowSettings(id="shebao", name="社保窗口", extension="9001"),
                WindowSettings(id="night", name="夜间窗口", extension="9003", hours=[]),
            ],
            WorkCalendar(),
            "Asia/Shanghai",
        )

    def __getattr__(self, name: str) -> Any:
        async def action(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args + tuple(kwargs.values())))
            if name == "three_way":
                window = self.windows.get(args[1])
                raise WindowClosed(window, None)
            if name == "hold" and args[0] == "zhao":
                raise NoActiveCall("zhao")
            if name == "window_outcome":
                return None
            return {"ok": name}

        return action

    def session_of(self, agent_id: str) -> None:
        return None

    async def window_joined(self, window_id: str, ticket_id: str) -> None:
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"call_id": "1.1", "state": "three_way"}]


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, StubControl]]:
    control = StubControl()
    app = FastAPI()

    @app.middleware("http")
    async def who(request: Request, call_next: Any) -> Any:
        name = request.headers.get("x-user")
        request.state.user = USERS.get(name) if name else None
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router(control))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, control


async def test_agent_acts_on_own_call(client: tuple[httpx.AsyncClient, StubControl]) -> None:
    http, control = client
    r = await http.post(
        "/api/control/blind-transfer", json={"target": "9001"}, headers={"x-user": "li"}
    )
    assert r.status_code == 200 and r.json() == {"ok": "blind_transfer"}
    r = await http.post("/api/control/hold", headers={"x-user": "li"})
    assert r.status_code == 200
    r = await http.post(
        "/api/control/recording-mute", json={"muted": True}, headers={"x-user": "li"}
    )
    assert r.status_code == 200
    assert control.calls == [
        ("blind_transfer", ("li", "9001")),
        ("hold", ("li",)),
        ("mute_recording", ("li", True)),
    ]


async def test_agent_cannot_act_on_another_agents_call(
    client: tuple[httpx.AsyncClient, StubControl],
) -> None:
    http, control = client
    r = await http.post("/api/control/hangup", json={"agent_id": "wang"}, headers={"x-user": "li"})
    assert r.status_code == 403 and r.json()["error"] == "not-your-call"
    assert control.calls == []


async def test_supervisor_names_the_agent_and_spies(
    client: tuple[httpx.AsyncClient, StubControl],
) -> None:
    http, control = client
    r = await http.post("/api/control/hold", json={"agent_id": "zhao"}, headers={"x-user": "boss"})
    assert r.status_code == 409 and r.json()["error"] == "no-active-call"
    r = await http.post(
        "/api/control/spy",
        json={"seat": "S01", "agent_id": "li", "mode": "barge"},
        headers={"x-user": "boss"},
    )
    assert r.status_code == 200
    assert control.calls[-1] == ("spy", ("S01", "li", "barge"))
    r = await http.post("/api/control/hold", headers={"x-user": "boss"})
    assert r.status_code == 409 and r.json()["error"] == "not-an-agent"
    r = await http.get("/api/control/sessions", headers={"x-user": "boss"})
    assert r.json() == {"sessions": [{"call_id": "1.1", "state": "three_way"}]}
    assert (await http.get("/api/control/sessions", headers={"x-user": "li"})).status_code == 403


async def test_roles(client: tuple[httpx.AsyncClient, StubControl]) -> None:
    http, control = client
    spy = {"seat": "S01", "agent_id": "li", "mode": "listen"}
    assert (
        await http.post("/api/control/spy", json=spy, headers={"x-user": "li"})
    ).status_code == 403
    assert (await http.post("/api/control/spy", json=spy)).status_code == 401
    r = await http.post("/api/control/hold", headers={"x-user": "clerk"})
    assert r.status_code == 403
    outcome = {"ticket_id": "T-1", "text": "可以办理，带身份证"}
    r = await http.post("/api/control/window-outcome", json=outcome, headers={"x-user": "li"})
    assert r.status_code == 403
    r = await http.post("/api/control/window-outcome", json=outcome, headers={"x-user": "clerk"})
    assert r.status_code == 200
    assert control.calls[-1][0] == "window_outcome"
    assert control.calls[-1][1][0] is USERS["clerk"]
    # a ticket the window was in no call about answers as a missing one, and is not written
    calls = len(control.calls)
    for ticket_id in ("T-2", "T-9"):
        r = await http.post(
            "/api/control/window-outcome",
            json={**outcome, "ticket_id": ticket_id},
            headers={"x-user": "clerk"},
        )
        assert r.status_code == 404 and r.json()["details"] == {"ticket_id": ticket_id}
        assert r.json()["message"] == f"no ticket {ticket_id}"
    assert len(control.calls) == calls
    r = await http.post(
        "/api/control/spy", json={**spy, "mode": "shout"}, headers={"x-user": "boss"}
    )
    assert r.status_code == 422


async def test_three_way_closed_window_is_rendered_with_dispatch_suggestion(
    client: tuple[httpx.AsyncClient, StubControl],
) -> None:
    http, _control = client
    r = await http.post(
        "/api/control/three-way", json={"window_id": "shebao"}, headers={"x-user": "li"}
    )
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "window-closed"
    assert body["details"]["suggestion"] == "dispatch"


async def test_window_directory(client: tuple[httpx.AsyncClient, StubControl]) -> None:
    http, _control = client
    r = await http.get(
        "/api/windows", params={"at": "2026-10-10T10:00:00+08:00"}, headers={"x-user": "clerk"}
    )
    assert r.status_code == 200
    windows = {w["id"]: w for w in r.json()["windows"]}
    assert windows["shebao"]["open"] is True  # 调休: Saturday 10 October 2026 is worked
    assert windows["shebao"]["closes_at"] == "2026-10-10T12:00:00+08:00"
    assert windows["night"]["always_open"] is True
    r = await http.get(
        "/api/windows", params={"at": "2026-10-03T10:00:00"}, headers={"x-user": "li"}
    )
    shebao = {w["id"]: w for w in r.json()["windows"]}["shebao"]
    assert shebao["open"] is False and shebao["next_open"] == "2026-10-08T09:00:00+08:00"
    assert (await http.get("/api/windows")).status_code == 401


def test_every_route_requires_a_role() -> None:
    api = router(StubControl())
    for route in api.routes:
        deps = [d.call for d in route.dependant.dependencies]  # type: ignore[attr-defined]
        assert any(getattr(d, "required_roles", None) for d in deps), route.path  # type: ignore[attr-defined]
