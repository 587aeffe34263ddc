"""The whole CTI (``Hotline``) against the Asterisk simulator on loopback TCP.

``Pbx.received`` lists every AMI action the simulator got, in order, so that a test can
assert that nothing was sent when an input was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import cti.testing.ami_actions as sim_actions
from cti.app import Hotline
from cti.calls.model import Call
from cti.config import default_data, parse
from cti.events import Event
from cti.testing.frames import Pairs, header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator, CallHandle

SCALE = 0.02
BACKGROUND = frozenset({"login", "ping", "dbput", "logoff"})


class Pbx:
    def __init__(self, sim: AsteriskSimulator, hotline: Hotline, received: list[Pairs]) -> None:
        self.sim = sim
        self.hotline = hotline
        self.received = received
        self.events: list[Event] = []
        hotline.bus.subscribe_all(self.events.append)

    @property
    def control(self) -> Any:
        return self.hotline.control

    def actions(self, *names: str) -> list[Pairs]:
        """What the CTI sent, without login, heartbeat and pings; only ``names`` if given."""
        wanted = {n.lower() for n in names}
        out = []
        for request in self.received:
            name = (header(request, "Action") or "").lower()
            if name in BACKGROUND:
                continue
            if wanted and name not in wanted:
                continue
            out.append(request)
        return out

    def mark(self) -> int:
        return len(self.received)

    def sent_since(self, mark: int) -> list[str]:
        return [
            header(r, "Action") or ""
            for r in self.received[mark:]
            if (header(r, "Action") or "").lower() not in BACKGROUND
        ]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    def heartbeat(self) -> None:
        self.sim.astdb[("cti", "heartbeat")] = str(int(time.time()))

    def login(self, agent_id: str = "li", seat: str = "A01") -> None:
        self.hotline.agents.login(agent_id, seat, ready=True)

    async def answered_call(
        self, caller: str = "13800000004", name: str = "赵六", seat: str = "8001"
    ) -> tuple[CallHandle, Call]:
        """A citizen calls; the CTI routes it to ``seat``; returns once they talk."""
        self.heartbeat()
        handle = self.sim.place_call(caller, name, "12345", talk_s=None)

        def talking() -> Call | None:
            for call in self.hotline.tracker.active_calls():
                if call.caller == caller and call.state == "talking" and call.seat == seat:
                    return call
            return None

        call = await self.until(talking)
        return handle, call

    def channels(self, prefix: str) -> list[str]:
        return [name for name in self.sim.channels if name.startswith(prefix)]


def make_settings(ami_port: int, db_url: str, rec_dir: Path, **overrides: Any) -> Any:
    data = default_data()
    data["asterisk"][0]["port"] = ami_port
    data["asterisk"][0]["backoff_max_s"] = 0.5
    data["asterisk"][0]["ping_interval_s"] = 60
    data["database"] = {"url": db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(rec_dir)}
    data["control"] = {"wrapup_s": 0}
    data["windows"] = [
        {
            "id": "shebao",
            "name": "社保窗口",
            "department": "人社局",
            "services": ["社保缴费", "养老金"],
            "extension": "9001",
            "hours": [],
        },
        {
            "id": "gongjijin",
            "name": "公积金窗口",
            "department": "公积金中心",
            "extension": "9002",
            "hours": ["09:00-12:00", "13:30-17:30"],
        },
    ]
    data["seats"].append({"id": "S01", "extension": "8009", "kind": "supervisor"})
    data.update(overrides)
    return parse(data)


@contextlib.asynccontextmanager
async def running_pbx(tmp_path: Path, **overrides: Any) -> AsyncIterator[Pbx]:
    received: list[Pairs] = []
    original = sim_actions.dispatch

    async def recording(sim: AsteriskSimulator, session: Any, request: Pairs) -> None:
        received.append(request)
        await original(sim, session, request)

    sim_actions.dispatch = recording  # type: ignore[assignment]
    sim = AsteriskSimulator(SimConfig(scale=SCALE))
    sim.endpoints["8009"] = "Supervisor 8009"
    sim.endpoints["9002"] = "Window 9002"
    port = await sim.start()
    settings = make_settings(
        port, f"sqlite:///{tmp_path / 'hotline.db'}", tmp_path / "rec", **overrides
    )
    hotline = Hotline(settings, console=False)
    try:
        await hotline.start()
        sim.config.agi_port = hotline.agi.port
        assert await hotline.wait_connected(5)
        pbx = Pbx(sim, hotline, received)
        for ext in ("8001", "8002", "8009", "9001"):
            sim.register_phone(ext)
        await pbx.until(lambda: hotline.seats.get("9001").usable)  # type: ignore[union-attr]
        yield pbx
    finally:
        await hotline.stop()
        await sim.stop()
        sim_actions.dispatch = original  # type: ignore[assignment]


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    async with running_pbx(tmp_path) as p:
        yield p
