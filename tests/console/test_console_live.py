"""The websocket fan-out: the snapshot, role filtering, and dropping slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from console import live
from console.live import DROP, LiveHub
from console.security import User
from cti.bus import Bus
from cti.events import AgentStateChanged, Alarm, CallRinging
from tests.console.conftest import TestClient, login


def _until(ws: Any, kind: str, limit: int = 50) -> dict[str, Any]:
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind} in {limit} messages")


def test_supervisor_sees_every_agent_and_the_agent_only_herself(
    app: Any, client: TestClient, clients: Callable[[], TestClient]
) -> None:
    boss, li, wang_client = client, clients(), clients()
    login(boss, "boss")
    login(li, "li")
    app.state.users.create("wang", "password-wang", ["agent"], agent_id="wang")
    login(wang_client, "wang")
    with boss.websocket_connect("/ws") as wall, li.websocket_connect("/ws") as desk:
        snap = wall.receive_json()
        assert snap["type"] == "Snapshot"
        assert {a["id"] for a in snap["agents"]} >= {"li", "wang", "mayor"}
        assert {s["id"] for s in snap["seats"]} >= {"A01", "W01"}
        mine = desk.receive_json()
        assert mine["type"] == "Snapshot" and mine["me"]["id"] == "li"
        assert "agents" not in mine and "seats" not in mine  # not the whole floor
        r = wang_client.post("/api/agents/me/login", json={"seat": "A02"})
        assert r.status_code == 200
        r = li.post("/api/agents/me/login", json={"seat": "A01", "ready": True})
        assert r.status_code == 200
        seen = [_until(wall, "AgentStateChanged"), _until(wall, "AgentStateChanged")]
        assert [(e["agent_id"], e["new"]) for e in seen] == [
            ("wang", "not_ready"),
            ("li", "ready"),
        ]
        own = _until(desk, "AgentStateChanged")
        assert (own["agent_id"], own["new"], own["seat"]) == ("li", "ready", "8001")
        summary = _until(desk, "FloorSummary")  # pushed within a second of a change
        assert summary["agents"]["ready"] == 1 and summary["agents"]["not_ready"] == 1


class _Agents:
    def __init__(self) -> None:
        self.seat = {"li": "8001"}

    def find(self, agent_id: str) -> Any:
        seat = self.seat.get(agent_id)
        return type("A", (), {"seat": seat})() if seat else None

    def all(self) -> list[Any]:
        return []


class _Hotline:
    def __init__(self) -> None:
        self.bus = Bus()
        self.agents = _Agents()
        self.settings = type("S", (), {"windows": []})()
        self.tracker = type("T", (), {"active_calls": lambda self: []})()
        self.acd = type("Q", (), {"snapshot": lambda self: {"waiting": []}})()


NOW = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)


async def test_a_slow_client_is_dropped_without_blocking_the_bus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "QUEUE_MAX", 10)
    hotline = _Hotline()
    hub = LiveHub(hotline)
    slow = hub.connect(User(1, "boss", "boss", frozenset({"supervisor"})))
    fast = hub.connect(User(2, "boss2", "boss2", frozenset({"supervisor"})))
    for i in range(25):
        hotline.bus.publish(Alarm(kind="test", message=str(i), at=NOW))
        if i < 24:
            while not fast.queue.empty():  # this one keeps up
                fast.queue.get_nowait()
    assert slow.dropped and slow.queue.get_nowait() is DROP and slow.queue.empty()
    assert not fast.dropped and fast.queue.qsize() == 1
    assert hub.dropped == 1
    await hub.disconnect(slow)
    await hub.disconnect(fast)
    await hub.close()
    assert hub._summary_task is None


async def test_agents_get_their_own_calls_only() -> None:
    hotline = _Hotline()
    hub = LiveHub(hotline)
    li = hub.connect(User(1, "li", "li", frozenset({"agent"}), agent_id="li"))
    hotline.bus.publish(CallRinging(node="pbx1", call_id="c1", seat="8002", at=NOW))
    hotline.bus.publish(CallRinging(node="pbx1", call_id="c2", seat="8001", at=NOW))
    hotline.bus.publish(
        AgentStateChanged(
            agent_id="wang", seat="8002", old="ready", new="ringing", reason="", at=NOW
        )
    )
    got = [li.queue.get_nowait() for _ in range(li.queue.qsize())]
    assert [(m["type"], m.get("call_id")) for m in got] == [("CallRinging", "c2")]
    assert li.calls == {"c2"}
    await hub.close()
    await asyncio.sleep(0)
