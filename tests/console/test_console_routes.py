"""No route is open by accident: every route of the app (the console's and those of the
slices it includes) declares its roles, except an explicit allow-list; and anonymous requests
to every declared route are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount

from tests.console.conftest import TestClient, csrf_of

# Open on purpose, each for a reason.
OPEN = {
    "/": "redirects to the login page or the user's home page",
    "/login": "the login page",
    "/api/login": "logging in (needs the anonymous session's CSRF token)",
    "/healthz": "load balancer probe; dependency states only",
    "/metrics": "loopback or bearer token, checked in the route",
    "/api/sms/status": "twilio webhook, verified by its signature",
    "/api/sms/inbound": "twilio webhook of citizens' texts, verified by its signature",
    "/intake": "the public web form",
    "/api/intake/web": "the public web form, rate limited, confirmed by a code sent by SMS",
    "/api/intake/web/confirm": "the public web form's code",
    "/api/police/handovers": "110's system: a police110 intake token, checked in the route",
}
STATIC_MOUNTS = {"/static"}


def roles_of(dependant: Any) -> Iterator[tuple[str, ...]]:
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "required_roles", None)
        if roles is not None:
            yield tuple(roles)
        yield from roles_of(dep)


def routes(app: Any) -> Iterator[Any]:
    """Every effective route (FastAPI keeps included routers as branches of ``app.routes``)."""
    return iter_route_contexts(app.routes)


def test_every_route_declares_its_roles(app: Any) -> None:
    unprotected = []
    seen = set()
    for route in routes(app):
        original = route.original_route
        if isinstance(original, Mount):
            assert route.path in STATIC_MOUNTS, f"unexpected mount {route.path}"
            continue
        assert isinstance(original, APIRoute | APIWebSocketRoute), f"{original!r} is no API route"
        seen.add(route.path)
        if route.path in OPEN:
            continue
        roles = list(roles_of(route.dependant))
        if not roles or not all(roles):
            unprotected.append(route.path)
    assert unprotected == []
    assert {"/ws", "/api/calls", "/api/agents/me/login", "/agent", "/wallboard"} <= seen
    # The slices are wired in when their modules exist: their routes went through the audit.
    assert "/api/tickets/{ticket_id}" in seen
    assert "/api/recordings/{recording_id}/audio" in seen


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_anonymous_requests_to_declared_routes_are_refused(app: Any, client: TestClient) -> None:
    token = csrf_of(client)  # an anonymous session: CSRF passes, the role check must not
    checked = 0
    for route in routes(app):
        if not isinstance(route.original_route, APIRoute) or route.path in OPEN:
            continue
        for method in route.methods - {"HEAD"}:
            r = client.request(
                method,
                _url(route.path),
                headers={"X-CSRF-Token": token},
                follow_redirects=False,
            )
            if route.path.startswith("/api/") or route.path in ("/openapi.json",):
                assert r.status_code == 401, (method, route.path, r.status_code)
            else:  # pages send the browser to the login page
                assert r.status_code == 303, (method, route.path, r.status_code)
                assert r.headers["location"].startswith("/login?next=")
            checked += 1
    assert checked > 40


def test_websocket_refuses_anonymous_and_foreign_origins(client: TestClient) -> None:
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008
    from tests.console.conftest import login

    login(client, "boss")
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}),
    ):
        pass
    with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "Snapshot"


def test_openapi_lists_roles_and_the_rest_endpoints(client: TestClient) -> None:
    from tests.console.conftest import login

    login(client, "boss")
    spec = client.get("/openapi.json").json()
    for path in ("/api/calls", "/api/seats", "/api/tickets", "/healthz", "/metrics"):
        assert path in spec["paths"], path
    assert spec["paths"]["/api/calls"]["get"]["x-roles"] == ["supervisor"]
    assert spec["paths"]["/healthz"]["get"]["x-roles"] == []
    assert client.get("/docs").status_code == 200
