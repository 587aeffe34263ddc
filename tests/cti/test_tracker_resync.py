"""The tracker's resync at a takeover: the agents come back as ready, and the channel list
says which of their seats are busy. The calls found waiting are handed to the ACD only once
the whole list is read, and a seat found ringing (the fallback queue rings it) counts as
ringing, so that no seat is offered a second call."""

from __future__ import annotations

from datetime import UTC, datetime

from cti.agents.board import Agent, AgentBoard
from cti.bus import Bus
from cti.calls.model import Call
from cti.calls.tracker import CallTracker
from cti.seats.registry import Seat, SeatRegistry


def now() -> datetime:
    return datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def channel(name: str, uid: str, linkedid: str, state: str, context: str, **more: str) -> dict:
    return {
        "Event": "CoreShowChannel",
        "Channel": name,
        "Uniqueid": uid,
        "Linkedid": linkedid,
        "ChannelStateDesc": state,
        "Context": context,
        "Exten": "12345",
        "CallerIDNum": more.pop("caller", "8001"),
        "CallerIDName": "",
        "BridgeId": more.pop("bridge", ""),
        **more,
    }


def test_waiting_calls_are_handed_over_once_every_seat_is_known() -> None:
    bus = Bus()
    seats = SeatRegistry(
        [Seat(id="A01", extension="8001"), Seat(id="A02", extension="8002")], bus, now
    )
    agents = AgentBoard(
        [Agent(id="li", name="李娜", skills={}), Agent(id="wang", name="王强", skills={})],
        seats,
        bus,
        now,
        wrapup_s=0,
        reasons=[],
    )
    tracker = CallTracker(bus, seats, agents, now)
    # Restored by the new leader as they were: ready.
    agents.login("li", "A01", ready=True)
    agents.login("wang", "A02", ready=True)
    seen: list[tuple[str, str, str]] = []

    def acd(call: Call) -> None:
        seen.append((call.call_id, agents.get("li").state, agents.get("wang").state))

    tracker.on_waiting.append(acd)
    inbound = "from-citizen"
    talking = {"caller": "13800000001", "bridge": "b1"}
    listed = [
        # li talks with the first caller; the fallback queue rings wang for the second;
        # the third waits on hold in the old CTI's line.
        channel("PJSIP/trunk-00000001", "1.1", "1.1", "Up", inbound, **talking),
        channel("PJSIP/trunk-00000002", "1.2", "1.2", "Up", inbound, caller="13800000002"),
        channel("PJSIP/trunk-00000003", "1.3", "1.3", "Up", "cti-hold", caller="13800000003"),
        channel("PJSIP/8001-00000004", "1.4", "1.1", "Up", "from-seat", bridge="b1"),
        channel("PJSIP/8002-00000005", "1.5", "1.2", "Ringing", "from-seat"),
    ]  # fmt: skip
    tracker.resync("pbx1", listed)

    assert (agents.get("li").state, agents.get("wang").state) == ("on_call", "ringing")
    assert sorted(seen) == [("1.2", "on_call", "ringing"), ("1.3", "on_call", "ringing")]
