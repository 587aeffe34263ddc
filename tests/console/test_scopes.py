"""The findings of issue 15 that scopes fix, each as the console answers it (every one of these
failed before ``console.scopes``): window staff reading any ticket, the transcript's side door,
forged window answers, existence leaks; and the answer to "may agents edit each other's
tickets" (yes, audited)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from console.live import LiveHub
from console.scopes import WINDOW_FIELDS
from console.security import User
from cti.bus import Bus
from cti.events import CallRouted, RecordingStarted, RecordingStopped
from tests.console.conftest import TestClient, login
from tickets.service import TicketService
from tickets.statemachine import Actor

REC = "/var/spool/asterisk/monitor/hotline/2026/10/20"
MISSING = "20261020999999"
CALLER = "13700001111"
AT = datetime(2026, 10, 20, 2, 0, tzinfo=UTC)


@dataclass
class World:
    """li's ticket (dispatched to rsj, transcribed), wang's ticket (the shebao window joined
    its call), and another of wang's (dispatched to scjg)."""

    tickets: TicketService
    li: str = "20261020000001"
    wang: str = "20261020000002"
    other: str = "20261020000003"


def _open(tickets: TicketService, ticket_id: str, agent: str, call_id: str) -> None:
    tickets.open_for_call(
        ticket_id,
        call_id=call_id,
        node="pbx1",
        caller=CALLER,
        caller_name="张伟",
        did="12345",
        topic="社保就业",
        agent_id=agent,
        answered_at=AT,
        recording_path=f"{REC}/{ticket_id}/{call_id}.wav",
    )
    tickets.set_transcript(
        ticket_id, "我想问养老保险", [{"start": 0.0, "end": 1.0, "text": "我想"}]
    )


def build_world(hotline: Any, users: Any) -> World:
    users.create("wang", "password-wang", ["agent"], agent_id="wang")
    users.create("rsj", "password-rsj", ["department"], department_id="rsj")
    users.create("scjg", "password-scjg", ["department"], department_id="scjg")
    world = World(hotline.tickets)
    t = world.tickets
    _open(t, world.li, "li", "1001.1")
    _open(t, world.wang, "wang", "1001.2")
    _open(t, world.other, "wang", "1001.3")
    t.transition(world.li, "dispatch", Actor("li", frozenset({"agent"})), department="rsj")
    t.transition(world.other, "dispatch", Actor("wang", frozenset({"agent"})), department="scjg")
    t.record_window_call(world.wang, "shebao", "1001.2", Actor("wang", frozenset({"agent"})))
    return world


@pytest.fixture
def world(hotline: Any, users: Any) -> World:
    return build_world(hotline, users)


@pytest.fixture
def as_user(client: TestClient, clients: Callable[[], TestClient]) -> Iterator[Any]:
    """``as_user("li")``: a browser logged in as li (one per user, on the app's loop)."""
    made: dict[str, TestClient] = {}

    def get(name: str) -> TestClient:
        if name not in made:
            made[name] = client if not made else clients()
            login(made[name], name)
        return made[name]

    yield get


def same_as_missing(r: Any, missing: Any, ticket_id: str) -> bool:
    """``r`` answers exactly as ``missing`` (for ``MISSING``) would for ``ticket_id``."""
    expected = json.loads(json.dumps(missing.json()).replace(MISSING, ticket_id))
    return bool(r.status_code == missing.status_code == 404 and r.json() == expected)


def test_window_staff_read_only_tickets_their_window_was_in_a_call_about(
    world: World, as_user: Any
) -> None:
    clerk = as_user("clerk")
    missing = clerk.get(f"/api/tickets/{MISSING}")
    for ticket_id in (world.li, world.other):  # never sent to the window: as if missing
        assert same_as_missing(clerk.get(f"/api/tickets/{ticket_id}"), missing, ticket_id)
    r = clerk.get(f"/api/tickets/{world.wang}")
    assert r.status_code == 200
    data = r.json()
    assert set(data) <= set(WINDOW_FIELDS)
    assert data["description"] == "" and data["category"] == "社保就业"
    for secret in ("caller", "contact_phone", "transcript", "transcript_segments", "calls"):
        assert secret not in data
    assert CALLER not in r.text and REC not in r.text


def _ticket(client: TestClient, ticket_id: str) -> dict[str, Any]:
    r = client.get(f"/api/tickets/{ticket_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_transcript_inside_a_ticket_follows_the_recording_rule(
    world: World, as_user: Any
) -> None:
    own = _ticket(as_user("li"), world.li)
    assert own["transcript"] == "我想问养老保险" and own["transcript_segments"]
    for name in ("wang", "mayor", "rsj"):  # another agent, a leader, the unit
        data = _ticket(as_user(name), world.li)
        assert "transcript" not in data and "transcript_segments" not in data, name
    # The same in lists and the caller's history.
    wang = as_user("wang")
    for url in ("/api/tickets", f"/api/callers/{CALLER}/tickets"):
        shown = {t["id"]: t for t in wang.get(url).json()}
        assert set(shown) == {world.li, world.wang, world.other}
        assert "transcript" not in shown[world.li] and shown[world.wang]["transcript"]
    # Supervisors hear everything; filesystem paths reach administrators only.
    for name in ("li", "wang", "mayor", "boss", "rsj"):
        data = _ticket(as_user(name), world.li)
        assert REC not in json.dumps(data), name
        assert [c["recorded"] for c in data["calls"]] == [True]
    assert _ticket(as_user("boss"), world.li)["transcript"]
    [call] = _ticket(as_user("root"), world.li)["calls"]
    assert call["recording_path"].startswith(REC)


def test_window_answers_cannot_be_forged(world: World, as_user: Any) -> None:
    clerk, li = as_user("clerk"), as_user("li")
    url = "/api/tickets/{}/window-outcomes"
    body = {"window_id": "shebao", "text": "可以办理"}
    missing = clerk.post(url.format(MISSING), json=body)
    # a ticket the window was never in a call about: as if missing, and nothing is written
    r = clerk.post(url.format(world.li), json=body)
    assert same_as_missing(r, missing, world.li)
    r = clerk.post("/api/control/window-outcome", json={"ticket_id": world.li, "text": "可以"})
    assert r.status_code == 404 and r.json()["details"] == {"ticket_id": world.li}
    # an agent writes no window's answer, whichever window it names
    for window in ("shebao", "nowhere", "bad\r\nid"):
        r = li.post(url.format(world.li), json={**body, "window_id": window})
        assert r.status_code == 403, window
    # the clerk writes for the own window only, on the ticket of its call
    r = clerk.post(url.format(world.wang), json={**body, "window_id": "gongjijin"})
    assert r.status_code == 403 and r.json()["error"] == "not-your-window"
    r = clerk.post(url.format(world.wang), json=body)
    assert r.status_code == 200 and r.json()["window_outcomes"][0]["window_id"] == "shebao"
    assert world.tickets.get(world.li).window_outcomes == ()
    r = clerk.post("/api/control/window-outcome", json={"ticket_id": world.wang, "text": "再补"})
    assert r.status_code == 200 and "transcript" not in r.json()["ticket"]
    assert len(world.tickets.get(world.wang).window_outcomes) == 2


PNG = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(40)


def test_acting_on_another_units_ticket_answers_as_a_missing_one(
    world: World, as_user: Any, hotline: Any, tmp_path: Any
) -> None:
    hotline.tickets.settings = hotline.tickets.settings.model_copy(
        update={"attachments_dir": tmp_path / "attachments"}
    )
    scjg, rsj = as_user("scjg"), as_user("rsj")
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/tickets/{}", {}),
        ("POST", "/api/tickets/{}/transitions", {"json": {"action": "sign_off"}}),
        ("POST", "/api/tickets/{}/transitions", {"json": {"action": "return"}}),
        ("POST", "/api/tickets/{}/attachments", {"files": {"file": ("a.png", PNG, "image/png")}}),
        ("GET", "/api/tickets/{}/attachments/1", {}),
    ]
    for method, url, kwargs in requests:
        missing = scjg.request(method, url.format(MISSING), **kwargs)
        r = scjg.request(method, url.format(world.li), **kwargs)
        assert same_as_missing(r, missing, world.li), (method, url, r.status_code, r.text)
    assert world.tickets.get(world.li).state.value == "dispatched"
    assert world.tickets.get(world.li).attachments == ()
    # its own unit acts on it
    r = rsj.post(f"/api/tickets/{world.li}/transitions", json={"action": "sign_off"})
    assert r.status_code == 200 and r.json()["state"] == "handling"


def test_agents_edit_each_others_tickets_and_the_edit_names_the_handler(
    world: World, as_user: Any
) -> None:
    wang, li = as_user("wang"), as_user("li")
    r = wang.patch(f"/api/tickets/{world.li}", json={"location": "人民路12号"})
    assert r.status_code == 200 and r.json()["location"] == "人民路12号"
    last = world.tickets.get(world.li).events[-1]
    assert (last.action, last.actor) == ("update", "wang")
    assert last.data == {"location": ["", "人民路12号"], "handled_by": "li"}
    r = li.patch(f"/api/tickets/{world.li}", json={"location": "人民路14号"})
    assert r.status_code == 200
    last = world.tickets.get(world.li).events[-1]
    assert (last.actor, last.data) == ("li", {"location": ["人民路12号", "人民路14号"]})


def test_the_window_page_names_only_tickets_the_window_may_open(
    world: World, as_user: Any, app: Any
) -> None:
    app.state.hub.remember_window_ticket("shebao", world.li)  # put through, never three-way
    app.state.hub.remember_window_ticket("shebao", world.wang)
    r = as_user("clerk").get("/api/window/current")
    assert r.status_code == 200
    assert [x["ticket_id"] for x in r.json()["recent"]] == [world.wang]


# --- the websocket ------------------------------------------------------------------------


class _Hotline:
    def __init__(self) -> None:
        self.bus = Bus()
        self.agents = type("A", (), {"find": lambda self, _id: None, "all": lambda self: []})()
        self.settings = type("S", (), {"windows": []})()
        self.tracker = type("T", (), {"active_calls": lambda self: []})()
        self.acd = type("Q", (), {"snapshot": lambda self: {"waiting": []}})()


async def test_live_events_carry_recording_paths_to_administrators_only() -> None:
    hotline = _Hotline()
    hub = LiveHub(hotline)
    boss = hub.connect(User(1, "boss", "boss", frozenset({"supervisor"})))
    root = hub.connect(User(2, "root", "root", frozenset({"admin"})))
    dept = hub.connect(User(3, "rsj", "rsj", frozenset({"department"}), department_id="rsj"))
    path = f"{REC}/T1/1001.1.wav"
    hotline.bus.publish(RecordingStarted(node="pbx1", call_id="1001.1", path=path, at=AT))
    hotline.bus.publish(
        CallRouted(
            node="pbx1", call_id="1001.1", target="8001", skill="general", topic="咨询",
            reason="skill", priority=0, ticket_id="T1", recording=path, leader=False, at=AT,
        )
    )  # fmt: skip
    hotline.bus.publish(
        RecordingStopped(node="pbx1", call_id="1001.1", path=path, ticket_id="T1", at=AT)
    )

    def received(client: Any) -> list[dict[str, Any]]:
        out = []
        while not client.queue.empty():
            out.append(client.queue.get_nowait())
        return out

    seen = received(boss)
    assert [e["type"] for e in seen] == ["RecordingStarted", "CallRouted", "RecordingStopped"]
    assert path not in json.dumps(seen)
    assert [e.get("path") or e.get("recording") for e in received(root)] == [path] * 3
    assert received(dept) == []
    assert "summary" not in hub.snapshot(dept)
    for client in (boss, root, dept):
        await hub.disconnect(client)
    await hub.close()
