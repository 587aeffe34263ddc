"""The per-call state machine with an AMI node that answers at once and delivers events in the
worst order: a Hangup event before the response to the Hangup action."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cti.agents.board import Agent, AgentBoard
from cti.bus import Bus
from cti.calls.tracker import CallTracker
from cti.control import SESSION_TRANSITIONS, CallControl, IllegalControlTransition
from cti.events import Alarm, Event
from cti.seats.registry import Seat, SeatRegistry
from tests.control.harness import make_settings

CITIZEN, SEAT = "PJSIP/trunk-00000001", "PJSIP/8001-00000002"


def now() -> datetime:
    return datetime.now(UTC)


class EagerNode:
    """Answers every action with Success; a Hangup's event arrives before its response."""

    name = "pbx1"
    connected = True

    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.sent: list[dict[str, Any]] = []
        self.uids = {CITIZEN: "100.1", SEAT: "100.2"}

    async def send(self, action: dict[str, Any], **_: Any) -> dict[str, str]:
        self.sent.append(action)
        if action["Action"] == "Hangup" and action["Channel"] in self.uids:
            self.tracker.handle(
                "pbx1",
                {
                    "Event": "Hangup",
                    "Channel": action["Channel"],
                    "Uniqueid": self.uids[action["Channel"]],
                    "Linkedid": "100.1",
                    "Cause": "16",
                },
            )
        return {"Response": "Success"}

    async def send_list(self, action: dict[str, Any], **_: Any) -> list[dict[str, str]]:
        self.sent.append(action)
        return []

    def sent_of(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.sent if a["Action"] == name]


@pytest.fixture
def rig(tmp_path: Path) -> tuple[CallControl, EagerNode, list[Event]]:
    settings = make_settings(5038, "sqlite://", tmp_path)
    bus = Bus()
    events: list[Event] = []
    bus.subscribe_all(events.append)
    seats = SeatRegistry(
        [Seat(id=s.id, extension=s.extension, kind=s.kind) for s in settings.seats], bus, now
    )
    agents = AgentBoard(
        [Agent(id=a.id, name=a.name, skills={}) for a in settings.agents],
        seats,
        bus,
        now,
        wrapup_s=0,
        reasons=[],
    )
    tracker = CallTracker(bus, seats, agents, now)
    node = EagerNode(tracker)
    hotline = SimpleNamespace(
        settings=settings, tracker=tracker, seats=seats, agents=agents, bus=bus,
        nodes={"pbx1": node}, tickets=None, store=None, recordings=None,
    )  # fmt: skip
    agents.login("li", "A01", ready=True)
    base = {"Linkedid": "100.1", "ChannelStateDesc": "Up", "CallerIDName": "张三"}
    for event in (
        {"Event": "Newchannel", "Channel": CITIZEN, "Uniqueid": "100.1", "Context": "from-citizen",
         "Exten": "12345", "CallerIDNum": "13800000001"},
        {"Event": "Newchannel", "Channel": SEAT, "Uniqueid": "100.2", "Context": "from-seat",
         "Exten": "s", "CallerIDNum": "8001"},
        {"Event": "BridgeEnter", "Channel": SEAT, "Uniqueid": "100.2", "BridgeUniqueid": "b1"},
        {"Event": "BridgeEnter", "Channel": CITIZEN, "Uniqueid": "100.1", "BridgeUniqueid": "b1"},
    ):  # fmt: skip
        tracker.handle("pbx1", {**base, **event})
    assert tracker.active_calls()[0].state == "talking"
    return CallControl(hotline), node, events


async def test_transfer_from_hold_does_not_release_the_transferred_citizen(rig: Any) -> None:
    control, node, _ = rig
    await control.hold("li")

    await control.blind_transfer("li", "8002")
    await asyncio.sleep(0.01)

    hangups = [a["Channel"] for a in node.sent_of("Hangup")]
    assert hangups == [SEAT]  # the seat's Hangup event did not make the CTI drop the citizen
    assert control.sessions == {}


async def test_agent_hanging_up_on_hold_ends_the_call(rig: Any) -> None:
    control, node, _ = rig
    await control.hold("li")
    control.tracker.handle(
        "pbx1",
        {"Event": "Hangup", "Channel": SEAT, "Uniqueid": "100.2", "Linkedid": "100.1"},
    )
    await asyncio.sleep(0.01)
    assert [a["Channel"] for a in node.sent_of("Hangup")] == [CITIZEN]
    assert control.sessions == {}


async def test_window_failing_after_the_agent_left_ends_the_call(rig: Any) -> None:
    control, node, events = rig
    await control.three_way("li", "shebao")
    [originate] = node.sent_of("Originate")
    await control.agent_leave_three_way("li")
    assert control.snapshot()[0]["state"] == "agent_left"

    control.tracker.handle(
        "pbx1",
        {"Event": "OriginateResponse", "ActionID": originate["ActionID"], "Response": "Failure",
         "Reason": "3", "Channel": "PJSIP/9001", "Uniqueid": "<null>"},
    )  # fmt: skip
    await asyncio.sleep(0.01)

    assert [a["Channel"] for a in node.sent_of("Hangup")] == [SEAT, CITIZEN]
    assert [e.kind for e in events if isinstance(e, Alarm)] == ["window-no-answer"]
    assert control.sessions == {}
    await control.stop()


async def test_busy_call_refuses_a_second_action(rig: Any) -> None:
    control, node, _ = rig
    gate = asyncio.Event()
    original = node.send

    async def slow(action: dict[str, Any], **kw: Any) -> dict[str, str]:
        await gate.wait()
        return await original(action, **kw)

    node.send = slow
    first = asyncio.ensure_future(control.hold("li"))
    await asyncio.sleep(0.01)
    with pytest.raises(Exception) as err:
        await control.hold("li")
    assert getattr(err.value, "error_id", "") == "control-busy"
    gate.set()
    assert (await first)["state"] == "held"


def test_transition_table() -> None:
    assert all(
        new in SESSION_TRANSITIONS for targets in SESSION_TRANSITIONS.values() for new in targets
    )
    assert SESSION_TRANSITIONS["ended"] == frozenset()
    err = IllegalControlTransition("1.1", "held", "three_way")
    assert err.status == 409 and err.details == {
        "call_id": "1.1",
        "old": "held",
        "new": "three_way",
    }
