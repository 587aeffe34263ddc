"""Call control against the recorded AMI sessions of the real Asterisk 22: the actions the
CTI sends must be the ones the rig's client sent (same headers, any ActionID), and the
recorded answers must drive the state machines to the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cti.agents.board import Agent, AgentBoard
from cti.ami.actions import build
from cti.ami.client import AmiNode
from cti.bus import Bus
from cti.calls.tracker import CallTracker
from cti.control import CallControl
from cti.events import CallTransferred, Event
from cti.seats.registry import Seat, SeatRegistry
from cti.testing import AmiReplayServer
from cti.testing.frames import header
from tests.control.harness import make_settings


@dataclass
class Replay:
    server: AmiReplayServer
    control: CallControl
    tracker: CallTracker
    node: AmiNode
    events: list[Event]

    def actions(self) -> list[str]:
        return [header(r, "Action") or "" for r in self.server.received]

    def errors_about(self, *actions: str) -> list[str]:
        return [e for e in self.server.errors if any(f"Action: {a}" in e for a in actions)]

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached; replay errors: {self.server.errors}")
            await asyncio.sleep(0.01)
        return value

    def talking(self) -> Any:
        return next((c for c in self.tracker.active_calls() if c.state == "talking"), None)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def replay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replay]:
    server = AmiReplayServer(f"{request.param}.ami.jsonl", strict=False, action_timeout=3)
    port = await server.start()
    settings = make_settings(port, "sqlite://", tmp_path)
    bus = Bus()
    events: list[Event] = []
    bus.subscribe_all(events.append)
    seats = SeatRegistry(
        [Seat(id=s.id, extension=s.extension, kind=s.kind) for s in settings.seats], bus, now
    )
    agents = AgentBoard(
        [Agent(id=a.id, name=a.name, skills=dict(a.skills)) for a in settings.agents],
        seats,
        bus,
        now,
        wrapup_s=0,
        reasons=["break"],
    )
    tracker = CallTracker(bus, seats, agents, now)
    node = AmiNode(
        "pbx1", "127.0.0.1", port, "cti", "cti-secret", on_event=tracker.handle, ping_interval=600
    )
    hotline = SimpleNamespace(
        settings=settings, tracker=tracker, seats=seats, agents=agents, bus=bus,
        nodes={"pbx1": node}, tickets=None, store=None, recordings=None,
    )  # fmt: skip
    control = CallControl(hotline)
    agents.login("li", "A01", ready=True)  # seat 8001, as in the rig
    await node.start()
    assert await node.wait_ready(5)
    yield Replay(server, control, tracker, node, events)
    await control.stop()
    await node.stop()
    await server.stop()


@pytest.mark.parametrize("replay", ["three_way_window"], indirect=True)
async def test_three_way_window(replay: Replay) -> None:
    call = await replay.until(replay.talking)

    conference = await replay.control.three_way("li", "shebao", ticket_id="T-0004")

    assert conference == "3w-1795317450-34"  # the rig's name for Linkedid 1795317450.34
    await replay.until(lambda: len(replay.actions()) >= 4)
    assert replay.actions()[:4] == ["Login", "Redirect", "Originate", "ConfbridgeList"]
    assert replay.errors_about("Redirect", "Originate", "ConfbridgeList") == []
    transferred = await replay.until(
        lambda: [e for e in replay.events if isinstance(e, CallTransferred)]
    )
    assert (transferred[0].kind, transferred[0].result) == ("three_way", "Success")
    # The recorded session goes on to the citizen hanging up first: the CTI then releases
    # the window and the seat (the rig's client left them to hang up themselves).
    await replay.until(lambda: call.state == "ended")
    assert replay.control.sessions == {}
    released = [header(r, "Channel") for r in replay.server.received[4:]]
    assert set(released) <= {"PJSIP/9001-00000020", "PJSIP/8001-0000001f", None}


@pytest.mark.parametrize("replay", ["blind_transfer"], indirect=True)
async def test_blind_transfer(replay: Replay) -> None:
    await replay.until(replay.talking)

    result = await replay.control.blind_transfer("li", "shebao")

    assert (result["context"], result["target"]) == ("cti-window", "9001")
    await replay.until(lambda: len(replay.actions()) >= 2)
    assert replay.actions()[1] == "BlindTransfer"
    assert replay.errors_about("BlindTransfer") == []
    transferred = await replay.until(
        lambda: [e for e in replay.events if isinstance(e, CallTransferred)]
    )
    assert (transferred[0].kind, transferred[0].target) == ("blind", "9001")


@pytest.mark.parametrize("replay", ["attended_transfer"], indirect=True)
async def test_attended_transfer(replay: Replay) -> None:
    await replay.until(replay.talking)

    await replay.control.attended_transfer("li", "9001")

    await replay.until(lambda: len(replay.actions()) >= 2)
    assert replay.actions()[1] == "Atxfer"
    # The recorded client sent Exten "9001"; this one ends the digits with "#" (no 3 s wait
    # for more digits): that is the only difference.
    errors = replay.errors_about("Atxfer")
    assert all("Exten: 9001#" in e and "Exten: 9001," in e for e in errors), errors
    # The rig's client then listed the channels and hung the agent up, which completes it.
    await replay.node.send_list(build("CoreShowChannels"))
    await replay.node.send(build("Hangup", Channel="PJSIP/8001-00000025"))
    transferred = await replay.until(
        lambda: [e for e in replay.events if isinstance(e, CallTransferred)]
    )
    assert (transferred[0].kind, transferred[0].result) == ("attended", "Success")


@pytest.mark.parametrize("replay", ["callback_originate"], indirect=True)
async def test_callback_and_hangup_by_seat(replay: Replay) -> None:
    result = await replay.control.callback("li", "13800000007", ticket_id="T-0007")

    call = await replay.until(replay.talking)
    assert call.direction == "callback" and call.caller == "13800000007"
    await replay.until(lambda: call.ticket_id == "T-0007")
    assert result["action_id"].startswith("hl-")

    done = await replay.control.hangup("li")

    assert done["hung_up"] == ["PJSIP/8001-00000027"]
    assert replay.actions()[:3] == ["Login", "Originate", "Hangup"]
    assert replay.errors_about("Originate", "Hangup") == []
    await replay.until(lambda: call.state == "ended")
