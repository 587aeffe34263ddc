"""Every route × every role, against the table ``console.scopes.ACCESS``.

The table is the one place that says who reaches what; this walks the console as each role
(li the agent, mayor the leader, boss the supervisor, root the administrator, rsj the unit,
clerk the shebao window) over a small world of tickets and recordings, and compares what
comes back with what the table's cells mean. ``docs/access.md`` is printed from the same
table, and must match it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount

from console import scopes
from console.scopes import ACCESS, ACCESS_BY_ROUTE, FIELDS, ROLE_ORDER, Scope
from tests.console.conftest import TestClient
from tests.console.test_console_routes import OPEN, roles_of, routes
from tests.console.test_scopes import AT, CALLER, PNG, REC, World, build_world, same_as_missing
from tickets.statemachine import Actor

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "access.md"
# One login per role; what the world holds for each.
LOGINS = {
    "agent": "li",
    "leader": "mayor",
    "supervisor": "boss",
    "admin": "root",
    "department": "rsj",
    "window": "clerk",
}
AGENT_ID = {"agent": "li", "leader": "mayor"}
MISSING_TICKET = "20261020999999"


@dataclass
class Walk:
    world: World
    recordings: dict[int, str]  # recording id -> agent of its call
    recordings_of: dict[str, set[int]]  # ticket -> its recordings
    attachments: dict[str, int]  # ticket -> an attachment
    checked: set[tuple[str, str]] = field(default_factory=set)

    @property
    def tickets(self) -> tuple[str, str, str]:
        w = self.world
        return w.li, w.wang, w.other

    def tickets_in(self, cell: Scope) -> set[str]:
        """The fixture tickets a cell means, for the role's login."""
        w = self.world
        return {
            Scope.ALL: {w.li, w.wang, w.other},
            Scope.UNIT: {w.li},  # rsj's
            Scope.WINDOW: {w.wang},  # the shebao window joined its call
        }.get(cell, set())

    def recordings_in(self, cell: Scope, role: str) -> set[int]:
        if cell == Scope.ALL:
            return set(self.recordings)
        if cell == Scope.OWN:
            return {r for r, agent in self.recordings.items() if agent == AGENT_ID.get(role)}
        return set()

    def transcripts_in(self, cell: Scope, role: str) -> set[str]:
        heard = self.recordings_in(cell, role)
        return {t for t, recs in self.recordings_of.items() if recs <= heard}


@pytest.fixture
def walk(hotline: Any, users: Any, tmp_path: Path) -> Walk:
    world = build_world(hotline, users)
    hotline.tickets.settings = hotline.tickets.settings.model_copy(
        update={"attachments_dir": tmp_path / "attachments"}
    )
    recordings: dict[int, str] = {}
    recordings_of: dict[str, set[int]] = {}
    attachments: dict[str, int] = {}
    for n, (ticket_id, agent) in enumerate(
        ((world.li, "li"), (world.wang, "wang"), (world.other, "wang")), start=1
    ):
        rid = hotline.recordings.register_stopped(
            call_id=f"1001.{n}",
            node="pbx1",
            ticket_id=ticket_id,
            agent_id=agent,
            path=f"{REC}/{ticket_id}/1001.{n}.wav",
            started_at=AT - timedelta(seconds=30),
            ended_at=AT,
        )
        recordings[rid] = agent
        recordings_of[ticket_id] = {rid}
        photo = tmp_path / f"{ticket_id}.png"
        photo.write_bytes(PNG)
        view = hotline.tickets.add_attachment(
            ticket_id,
            Actor(agent, frozenset({"agent"})),
            name="现场.png",
            path=str(photo),
            content_type="image/png",
            size=len(PNG),
        )
        attachments[ticket_id] = view.attachments[-1]["id"]
    return Walk(world, recordings, recordings_of, attachments)


@pytest.fixture
def logged_in(client: TestClient, clients: Any) -> Iterator[dict[str, TestClient]]:
    from tests.console.conftest import login

    browsers = {}
    for n, (role, name) in enumerate(LOGINS.items()):
        browsers[role] = client if n == 0 else clients()
        login(browsers[role], name)
    yield browsers


def _refused(r: Any) -> bool:
    """Refused for the role (403): the route's role check, a page's 403, or a scope refusal
    of the whole route (a window's answer from someone not a window's staff)."""
    return bool(r.status_code == 403)


def _admitted(r: Any) -> bool:
    if r.status_code != 403:
        return True
    try:
        return r.json().get("error") not in ("forbidden", None)
    except ValueError:
        return False  # a 403 page


def _url(path: str, **values: Any) -> str:
    placeholders: dict[str, Any] = {"task_id": 999_999, "message_id": 999_999}
    placeholders.update(name="replay.js", session_id=999_999, username="nobody")
    placeholders["caller"] = CALLER
    placeholders.update(values)
    return re.sub(r"\{(\w+)\}", lambda m: str(placeholders[m.group(1)]), path)


# --- the table and the app agree -----------------------------------------------------------


def _app_routes(app: Any) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for route in routes(app):
        original = route.original_route
        if isinstance(original, Mount):
            continue
        if isinstance(original, APIWebSocketRoute):
            found[("WS", route.path)] = route
        elif isinstance(original, APIRoute):
            for method in original.methods - {"HEAD"}:
                found[(method, route.path)] = route
    return found


def test_every_route_has_a_row_and_every_row_a_route(app: Any) -> None:
    found = _app_routes(app)
    missing = sorted(set(found) - set(ACCESS_BY_ROUTE))
    assert missing == [], f"routes with no row in console.scopes.ACCESS: {missing}"
    stale = sorted(a.key for a in ACCESS if not a.optional and a.key not in found)
    assert stale == [], f"rows of console.scopes.ACCESS with no route: {stale}"
    assert len(ACCESS_BY_ROUTE) == len(ACCESS), "a route has two rows"


def test_the_roles_each_route_declares_are_the_tables(app: Any) -> None:
    for key, route in _app_routes(app).items():
        row = ACCESS_BY_ROUTE[key]
        declared = [set(r) for r in roles_of(route.dependant)]
        if route.path in OPEN:
            assert declared == [] and set(row.cells.values()) == {Scope.OPEN}, key
            continue
        assert Scope.OPEN not in row.cells.values(), key
        for role in ROLE_ORDER:
            if role == "admin":  # administrators pass every role check (a scope may refuse)
                continue
            admitted = all(role in roles for roles in declared)
            assert admitted == (row.cells[role] != Scope.NONE), (key, role)


# --- the walk ------------------------------------------------------------------------------


def _check_ticket_view(walk: Walk, role: str, data: dict[str, Any]) -> None:
    """What of a ticket in scope the role gets, by ``FIELDS``."""
    ticket_id = data["id"]
    for name, cells in FIELDS:
        cell = cells[role]
        if name.startswith("the matter"):
            keys = ["category", "location", "description", "window_outcomes"]
            assert all(k in data for k in keys) == (cell != Scope.NONE), (role, name)
        elif name.startswith("caller"):
            keys = ["caller", "contact_phone", "calls", "assignments", "events"]
            for k in keys:
                assert (k in data) == (cell != Scope.NONE), (role, name, k)
        elif name.startswith("transcript"):
            heard = ticket_id in walk.transcripts_in(cell, role)
            assert ("transcript" in data) == heard, (role, ticket_id)
            assert ("transcript_segments" in data) == heard, (role, ticket_id)
        elif name.startswith("calls[].recording_path"):
            for call in data.get("calls", ()):
                assert ("recording_path" in call) == (cell == Scope.ALL), (role, name)
        else:
            raise AssertionError(f"no check for the FIELDS row {name!r}")


def _walk_ticket_route(walk: Walk, row: Any, role: str, browser: TestClient) -> None:
    cell = row.cells[role]
    method, path = row.key
    body: dict[str, Any] = {}
    if method == "PATCH":
        body = {"json": {"location": "人民路1号"}}
    elif path.endswith("/transitions"):
        body = {"json": {"action": "archive"}}  # illegal in every state here: nothing moves
    elif path.endswith("/attachments") and method == "POST":
        body = {"files": {"file": ("x.html", b"<html></html>", "text/html")}}  # refused type
    elif path.endswith("/merge"):
        body = {"json": {"into": "{}"}}  # into itself: refused after the scope check
    elif path.endswith("/calls"):
        body = {"json": {"call_id": "walk-1"}}
    elif path.endswith("/suggestions") and method == "POST":
        body = {"json": {"field": "category", "suggested": "投诉", "outcome": "ignored"}}
    elif "window-outcome" in path:
        body = {"json": {"window_id": "shebao", "text": "带身份证原件办理"}}

    def request(ticket_id: str) -> Any:
        url = _url(path, ticket_id=ticket_id, attachment_id=walk.attachments.get(ticket_id, 1))
        kwargs = dict(body)
        if "json" in kwargs:
            raw = dict(kwargs["json"])
            if raw.get("into") == "{}":
                raw["into"] = ticket_id
            if path == "/api/control/window-outcome":
                raw = {"ticket_id": ticket_id, "text": raw["text"]}
            kwargs["json"] = raw
        return browser.request(method, url, **kwargs)

    if "{ticket_id}" not in path and path != "/api/control/window-outcome":  # lists
        r = browser.request(method, _url(path))
        if cell == Scope.NONE:
            assert _refused(r), (row.key, role, r.status_code)
            return
        assert r.status_code == 200, (row.key, role, r.text)
        assert {t["id"] for t in r.json()} == walk.tickets_in(cell), (row.key, role)
        for data in r.json():
            _check_ticket_view(walk, role, data)
        return
    missing = request(MISSING_TICKET)
    if cell == Scope.NONE:
        assert _refused(missing), (row.key, role, missing.status_code)
        for ticket_id in walk.tickets:
            assert _refused(request(ticket_id)), (row.key, role, ticket_id)
        return
    visible = walk.tickets_in(cell)
    for ticket_id in walk.tickets:
        r = request(ticket_id)
        if ticket_id in visible:
            assert not same_as_missing(r, missing, ticket_id), (row.key, role, ticket_id)
            assert r.status_code < 500, (row.key, role, r.text)
            if method == "GET" and path == "/api/tickets/{ticket_id}":
                assert r.status_code == 200
                _check_ticket_view(walk, role, r.json())
        else:
            assert same_as_missing(r, missing, ticket_id), (row.key, role, ticket_id, r.text)


def _walk_recording_route(walk: Walk, row: Any, role: str, browser: TestClient) -> None:
    cell = row.cells[role]
    method, path = row.key
    if row.what == "transcript":
        heard = walk.transcripts_in(cell, role)
        for ticket_id in walk.tickets:
            r = browser.get(_url(path, ticket_id=ticket_id))
            if cell == Scope.NONE:
                assert _refused(r), (row.key, role)
            elif ticket_id in heard:
                assert r.status_code == 200, (row.key, role, ticket_id, r.text)
            else:
                assert r.status_code == 403 and r.json()["error"] == "recording-not-yours"
        return
    if "{recording_id}" not in path:  # the list
        r = browser.get(path)
        if cell == Scope.NONE:
            assert _refused(r), (row.key, role)
            return
        ids = {x["id"] for x in r.json()["recordings"]}
        assert ids == walk.recordings_in(cell, role), (row.key, role)
        return
    heard = walk.recordings_in(cell, role)
    for rid in walk.recordings:
        r = browser.get(_url(path, recording_id=rid))
        if cell == Scope.NONE or rid not in heard:
            assert r.status_code == 403, (row.key, role, rid, r.status_code)
            if cell != Scope.NONE and path.startswith("/api/"):
                assert r.json()["error"] == "recording-not-yours"
        else:
            assert r.status_code not in (401, 403, 404), (row.key, role, rid, r.text)


def _walk_other_route(row: Any, role: str, browser: TestClient) -> None:
    method, path = row.key
    r = browser.request(method, _url(path), follow_redirects=False)
    if row.cells[role] == Scope.NONE:
        assert _refused(r), (row.key, role, r.status_code)
    else:
        assert _admitted(r), (row.key, role, r.status_code, r.text[:200])
        assert r.status_code < 500, (row.key, role, r.text[:200])


def test_every_route_as_every_role(
    app: Any, walk: Walk, logged_in: dict[str, TestClient], clients: Any
) -> None:
    found = _app_routes(app)
    walked = set()
    late = {("POST", "/api/logout")}  # logs the browser out: last
    for row in ACCESS:
        if row.key not in found or row.key in late or set(row.cells.values()) == {Scope.OPEN}:
            continue
        for role in ROLE_ORDER:
            browser = logged_in[role]
            if row.method == "WS":
                with browser.websocket_connect(row.path) as ws:
                    snap = ws.receive_json()
                assert snap["type"] == "Snapshot"
                assert ("summary" in snap) == (row.cells[role] in (Scope.OWN, Scope.ALL))
            elif row.what in ("ticket", "window answer"):
                _walk_ticket_route(walk, row, role, browser)
            elif row.what in ("recording", "transcript") and row.path != "/replay-static/{name}":
                _walk_recording_route(walk, row, role, browser)
            else:
                _walk_other_route(row, role, browser)
        walked.add(row.key)
    for role in ROLE_ORDER:
        for key in late:
            _walk_other_route(ACCESS_BY_ROUTE[key], role, logged_in[role])
    walked |= late
    open_rows = {a.key for a in ACCESS if set(a.cells.values()) == {Scope.OPEN}}
    assert set(found) - open_rows <= walked


def test_docs_access_md_is_printed_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == scopes.markdown(), (
        "docs/access.md is stale: python -m console.scopes --markdown > docs/access.md"
    )
