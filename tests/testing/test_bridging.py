"""Fact 8 of in_loop/README.md: with qualify on the trunk's AOR and a carrier that does not
answer OPTIONS, chan_pjsip refuses to dial out (CHANUNAVAIL): no channel is even created."""

from __future__ import annotations

from cti.testing.bridging import parse_target
from cti.testing.frames import header
from tests.testing.conftest import MakeSim, login


def test_dial_strings_of_our_dialplan() -> None:
    assert parse_target("PJSIP/13800000010@trunk") == ("trunk", "13800000010@trunk", "13800000010")
    assert parse_target("PJSIP/8001") == ("8001", "8001", "")


async def callback(client, action_id: str) -> None:  # noqa: ANN001
    await client.action(
        Action="Originate",
        Channel="PJSIP/8001",
        Context="cti-callback",
        Exten="13800000010",
        Priority="1",
        CallerID="12345 回访 <12345>",
        Async="true",
        ActionID=action_id,
    )


async def test_unqualified_trunk_refuses_outbound_calls(make_sim: MakeSim) -> None:
    sim = await make_sim(carrier_answers_options=False)
    client = await login(sim)
    sim.register_phone("8001")
    r = await client.action(Action="DeviceStateList")
    assert header(r, "EventList") == "start"
    trunk = await client.wait_event("DeviceStateChange", Device="PJSIP/trunk")
    assert header(trunk, "State") == "UNAVAILABLE"
    await callback(client, "cb-1")
    seat = await client.wait_event("Hangup", timeout=5)
    # The seat answered, its Dial found no usable contact for the trunk and the dialplan
    # ended: the seat's channel goes with "No route to destination".
    assert header(seat, "Channel").startswith("PJSIP/8001-")
    assert (header(seat, "Cause"), header(seat, "Cause-txt")) == ("3", "No route to destination")
    assert not [m for m in client.events("Newchannel") if "trunk" in (header(m, "Channel") or "")]
    assert not [
        m for m in client.events("DialBegin") if header(m, "DialString") == "13800000010@trunk"
    ]
    dialstatus = [
        header(m, "Value") for m in client.events("VarSet") if header(m, "Variable") == "DIALSTATUS"
    ]
    assert dialstatus[-1] == "CHANUNAVAIL"

    # The carrier starts answering the qualify: the trunk is usable again (rig order).
    start = len(client.messages)
    sim.set_carrier_options(True)
    await client.wait_event("ContactStatus", AOR="trunk", ContactStatus="Reachable")
    assert [header(m, "Event") for m in client.messages[start : start + 3]] == [
        "DeviceStateChange",
        "PeerStatus",
        "ContactStatus",
    ]
    await callback(client, "cb-2")
    begin = await client.wait_event("DialBegin", DialString="13800000010@trunk", timeout=5)
    assert header(begin, "DestChannel").startswith("PJSIP/trunk-")
    await client.close()


async def test_trunk_without_qualify_is_always_tried(make_sim: MakeSim) -> None:
    sim = await make_sim(trunk_qualify=False, carrier_answers_options=False)
    client = await login(sim)
    sim.register_phone("8001")
    await callback(client, "cb-1")
    await client.wait_event("DialBegin", DialString="13800000010@trunk", timeout=5)
    await client.close()
