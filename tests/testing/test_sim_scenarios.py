"""The live PBX model replays each recorded scenario; its events must have the recorded shapes.

Each test drives the simulator the way the rig drove the real Asterisk (phones, FastAGI
answers, AMI actions) and compares the event names and field sets with the transcript. The
rig's dialplan ran the FastAGI on the caller's channel; ours asks from a helper Local channel,
whose events are left out of these comparisons (``without_route_helper``; they are checked
in test_sim_in_loop.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cti.testing import compare_event_shapes, compare_shape_sets, event_shapes, load_transcript
from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.compare import without_route_helper
from cti.testing.frames import Pairs, header
from cti.testing.load import generate_calls
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator

# The real Asterisk emits device-state, contact and queue-member events from several threads;
# the transcripts themselves disagree on their relative order, so a small window is allowed.
WINDOW = 4
SCALE = 0.01


@dataclass
class Rig:
    sim: AsteriskSimulator
    agi: FastAgiStub
    ami: RawAmiClient

    async def heartbeat(self) -> None:
        await self.ami.action(
            Action="DBPut", Family="cti", Key="heartbeat", Val=str(int(time.time()))
        )

    async def logoff(self) -> None:
        await self.ami.action(Action="Logoff")
        await asyncio.wait_for(self.ami.closed.wait(), 5)

    def compare(
        self, scenario: str, window: int = WINDOW, *, without: tuple[str, ...] = ()
    ) -> list[str]:
        """``without``: events our dialplan adds to what the rig's did (left out here and
        checked against another recording by the test)."""
        recorded = load_transcript(f"{scenario}.ami.jsonl")
        produced = [
            m for m in without_route_helper(self.ami.messages) if header(m, "Event") not in without
        ]
        diffs = compare_event_shapes(recorded, produced, window=window)
        if diffs:  # shown by pytest on failure
            print("\n".join(diffs))
            print("recorded:", [s.name for s in event_shapes(recorded)])
            print("produced:", [s.name for s in event_shapes(produced)])
        return diffs


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    agi = FastAgiStub()
    agi_port = await agi.start()
    sim = AsteriskSimulator(SimConfig(agi_port=agi_port, scale=SCALE))
    port = await sim.start()
    ami = RawAmiClient("127.0.0.1", port)
    response = await ami.login()
    assert header(response, "Message") == "Authentication accepted"
    yield Rig(sim, agi, ami)
    await ami.close()
    await sim.stop()
    await agi.stop()


async def test_direct_to_seat(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    await rig.heartbeat()
    rig.agi.route = lambda env: "PJSIP/8001"
    call = rig.sim.place_call("13800000001", "张三", "12345", talk_s=6)
    assert await call.wait(5) == "answered"
    assert call.answered_by.startswith("PJSIP/8001-")
    rig.sim.unregister_phone("8001")
    await rig.logoff()
    assert rig.compare("direct_to_seat") == []
    newchannel = rig.ami.events("Newchannel")[0]
    assert header(newchannel, "CallerIDName") == "张三"
    assert header(newchannel, "Channel") == "PJSIP/trunk-00000019"
    assert rig.agi.sessions[0]["agi_calleridname"] == "张三"
    assert rig.agi.sessions[0]["agi_request"].endswith("/route")


async def test_queue_answered(rig: Rig) -> None:
    # On the rig queue_abandoned ran just before: the pause device was already NOT_INUSE.
    rig.sim.devices["Queue:hotline_pause_PJSIP/8002"] = "NOT_INUSE"
    rig.sim.register_phone("8002", ip="127.0.0.4")
    await rig.heartbeat()
    r = await rig.ami.action(
        Action="QueueAdd",
        Queue="hotline",
        Interface="PJSIP/8002",
        MemberName="agent-li",
        StateInterface="PJSIP/8002",
    )
    assert header(r, "Message") == "Added interface to queue"
    call = rig.sim.place_call("13800000002", "李四", talk_s=6)
    assert await call.wait(5) == "answered"
    start = len(rig.ami.messages)
    await rig.ami.action(Action="QueueStatus", Queue="hotline")
    await rig.ami.wait_for(lambda m: header(m, "Event") == "QueueStatusComplete", start=start)
    member = rig.ami.events("QueueMember")[-1]
    assert header(member, "CallsTaken") == "1"
    await rig.ami.action(Action="QueueRemove", Queue="hotline", Interface="PJSIP/8002")
    rig.sim.unregister_phone("8002")
    await rig.logoff()
    assert rig.compare("queue_answered") == []
    complete = rig.ami.events("AgentComplete")[0]
    assert header(complete, "TalkTime") in ("6", "7")
    assert header(complete, "Reason") == "caller"


async def test_queue_abandoned(rig: Rig) -> None:
    # A coarser scale keeps the recorded HoldTime (4 s) stable on a busy machine.
    rig.sim.config.scale = 0.1
    await rig.heartbeat()
    await rig.ami.action(
        Action="QueueAdd",
        Queue="hotline",
        Interface="PJSIP/8002",
        MemberName="agent-li",
        Paused="true",
        Reason="lunch",
    )
    call = rig.sim.place_call("13800000003", "王五", talk_s=None, patience_s=4)
    assert await call.wait(5) == "abandoned"
    r = await rig.ami.action(
        Action="QueuePause", Queue="hotline", Interface="PJSIP/8002", Paused="false"
    )
    assert header(r, "Message") == "Interface unpaused successfully"
    await rig.ami.action(Action="QueueRemove", Queue="hotline", Interface="PJSIP/8002")
    await rig.logoff()
    assert rig.compare("queue_abandoned") == []
    abandon = rig.ami.events("QueueCallerAbandon")[0]
    assert header(abandon, "HoldTime") in ("3", "4")
    hangup = [m for m in rig.ami.events("Hangup") if header(m, "Channel") == call.channel.name]
    assert header(hangup[0], "Cause") == "0"


async def test_three_way_window(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    rig.sim.register_phone("9001", ip="127.0.0.6")
    await rig.heartbeat()
    rig.agi.route = lambda env: "PJSIP/8001"
    call = rig.sim.place_call("13800000004", "赵六", talk_s=14)
    await asyncio.wait_for(call.connected.wait(), 5)
    seat = rig.sim.channels_of("8001")[0]
    conf = f"3w-{call.uniqueid.replace('.', '-')}"
    r = await rig.ami.action(
        Action="Redirect",
        Channel=call.channel.name,
        ExtraChannel=seat.name,
        Context="cti-conf",
        Exten=conf,
        Priority="1",
        ExtraContext="cti-conf",
        ExtraExten=conf,
        ExtraPriority="1",
    )
    assert header(r, "Message") == "Dual Redirect successful"
    r = await rig.ami.action(
        Action="Originate",
        Channel="PJSIP/9001",
        Context="cti-conf",
        Exten=conf,
        Priority="1",
        CallerID="12345 <12345>",
        Async="true",
        Variable="HOTLINE_TICKET=T-0004",
    )
    assert header(r, "Message") == "Originate successfully queued"
    await rig.ami.wait_for(lambda m: len(rig.ami.events("ConfbridgeJoin")) >= 3)
    start = len(rig.ami.messages)
    await rig.ami.action(Action="ConfbridgeList", Conference=conf)
    done = await rig.ami.wait_event("ConfbridgeListComplete")
    assert header(done, "ListItems") == "3"
    assert start
    await call.wait(5)
    rig.sim.hangup(rig.sim.channels_of("8001")[0])
    await rig.ami.wait_event("Hangup", Channel=seat.name)
    rig.sim.hangup(rig.sim.channels_of("9001")[0])
    await rig.ami.wait_event("ConfbridgeEnd")
    await rig.ami.wait_for(lambda m: not rig.sim.channels)
    rig.sim.unregister_phone("9001")
    rig.sim.unregister_phone("8001")
    await rig.logoff()
    # On the real PBX the window's Originate overtook the Redirect's conference setup.
    assert rig.compare("three_way_window", window=8) == []


async def test_blind_transfer(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    rig.sim.register_phone("9001", ip="127.0.0.6")
    await rig.heartbeat()
    rig.agi.route = lambda env: "PJSIP/8001"
    call = rig.sim.place_call("13800000005", "钱七", talk_s=9)
    await asyncio.wait_for(call.connected.wait(), 5)
    seat = rig.sim.channels_of("8001")[0]
    r = await rig.ami.action(
        Action="BlindTransfer", Channel=seat.name, Context="cti-window", Exten="9001"
    )
    assert header(r, "Message") == "Transfer succeeded"
    await call.wait(5)
    rig.sim.unregister_phone("9001")
    rig.sim.unregister_phone("8001")
    await rig.logoff()
    assert rig.compare("blind_transfer") == []


async def test_attended_transfer(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    rig.sim.register_phone("9001", ip="127.0.0.6")
    await rig.heartbeat()
    rig.agi.route = lambda env: "PJSIP/8001"
    call = rig.sim.place_call("13800000006", "孙八", talk_s=12)
    await asyncio.wait_for(call.connected.wait(), 5)
    seat = rig.sim.channels_of("8001")[0]
    r = await rig.ami.action(Action="Atxfer", Channel=seat.name, Context="cti-window", Exten="9001")
    assert header(r, "Message") == "Atxfer successfully queued"
    await rig.ami.wait_for(lambda m: len(rig.ami.events("BridgeEnter")) >= 6)
    await rig.ami.action(Action="CoreShowChannels")
    listed = await rig.ami.wait_event("CoreShowChannelsComplete")
    assert header(listed, "ListItems") == "5"
    r = await rig.ami.action(Action="Hangup", Channel=seat.name)
    assert header(r, "Message") == "Channel Hungup"
    await call.wait(5)
    await rig.ami.wait_for(lambda m: not rig.sim.channels)
    rig.sim.unregister_phone("8001")
    rig.sim.unregister_phone("9001")
    await rig.logoff()
    assert rig.compare("attended_transfer") == []
    transfer = rig.ami.events("AttendedTransfer")[0]
    assert header(transfer, "TransfereeChannel") == call.channel.name


async def test_atxfer_without_transfer_feature_fails_like_asterisk(rig: Rig) -> None:
    rig.sim.register_phone("9001", ip="127.0.0.6")
    r = await rig.ami.action(
        Action="Originate", Channel="PJSIP/9001", Context="cti-conf", Exten="c1", Async="true"
    )
    await rig.ami.wait_event("ConfbridgeJoin")
    window = rig.sim.channels_of("9001")[0]
    r = await rig.ami.action(
        Action="Atxfer", Channel=window.name, Context="cti-window", Exten="8001"
    )
    assert header(r, "Response") == "Error"
    assert header(r, "Message") == "No attended transfer feature code found"


async def test_callback_originate(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    r = await rig.ami.action(
        Action="Originate",
        Channel="PJSIP/8001",
        Context="cti-callback",
        Exten="13800000007",
        Priority="1",
        CallerID="12345 回访 <12345>",
        Async="true",
        Timeout="20000",
        Variable="HOTLINE_TICKET=T-0007",
    )
    action_id = header(r, "ActionID")
    response = await rig.ami.wait_event("OriginateResponse")
    assert header(response, "ActionID") == action_id
    assert header(response, "Reason") == "4"
    await rig.ami.wait_for(lambda m: len(rig.ami.events("BridgeEnter")) >= 2)
    seat = rig.sim.channels_of("8001")[0]
    assert seat.variables["HOTLINE_TICKET"] == "T-0007"
    # Our [cti-callback] records the call on the seat's channel (the rig's dialplan did not):
    # the MixMonitorStart has the shape of the real one of an inbound call, and the file name
    # is on the channel for the CTI's Getvar.
    (started,) = rig.ami.events("MixMonitorStart")
    (real,) = [s for s in event_shapes(load_transcript("direct_to_seat.ami.jsonl"))
               if s.name == "MixMonitorStart"]  # fmt: skip
    assert event_shapes([started]) == [real]
    assert header(started, "Channel") == seat.name
    assert header(started, "Context") == "cti-callback"
    assert seat.variables["MIXMONITOR_FILENAME"].endswith(f"/{seat.uniqueid}.wav")
    rig.ami.send(Action="Hangup", Channel="/^PJSIP\\/8001-.*$/")
    listed = await rig.ami.wait_event("ChannelsHungupListComplete")
    assert header(listed, "ListItems") == "1"
    await rig.ami.wait_for(lambda m: len(rig.ami.events("Hangup")) >= 2)
    rig.sim.unregister_phone("8001")
    await rig.logoff()
    assert rig.compare("callback_originate", without=("MixMonitorStart",)) == []


async def test_seat_status(rig: Rig) -> None:
    rig.sim.register_phone("8001", ip="127.0.0.3")
    rig.sim.register_phone("8003", ip="127.0.0.5")
    list_ids = {}
    for name in (
        "PJSIPShowContacts",
        "PJSIPShowEndpoints",
        "DeviceStateList",
        "QueueSummary",
        "CoreShowChannels",
        "Status",
    ):
        list_ids[name] = (await rig.ami.action(Action=name))[1][1]
    r = await rig.ami.action(Action="Ping")
    assert header(r, "Ping") == "Pong"
    r = await rig.ami.action(Action="CoreStatus")
    assert header(r, "CoreCurrentCalls") == "0"
    r = await rig.ami.action(Action="Getvar", Variable="NOSUCHVAR")
    assert (header(r, "Variable"), header(r, "Value")) == ("NOSUCHVAR", "")
    r = await rig.ami.action(Action="Nonsense")
    assert header(r, "Message") == (
        "Invalid/unknown command: Nonsense. Use Action: ListCommands to show available commands."
    )
    await rig.ami.wait_event("RequestBadFormat")
    rig.sim.unregister_phone("8001", clean=True)
    rig.sim.unregister_phone("8003", clean=False)
    await rig.ami.wait_event("ContactStatus", ContactStatus="Unreachable", AOR="8003")
    await rig.logoff()
    # The device list depends on what ran on the PBX before; compare it apart.
    device_list = list_ids["DeviceStateList"]

    def without_device_list(messages: list[Pairs], action_id: str) -> list[Pairs]:
        return [
            m
            for m in messages
            if not (
                header(m, "ActionID") == action_id and header(m, "Event") == "DeviceStateChange"
            )
        ]

    recorded = load_transcript("seat_status.ami.jsonl")
    diffs = compare_event_shapes(
        without_device_list(recorded.events(), "cap-4"),
        without_device_list(without_route_helper(rig.ami.messages), device_list),
        window=WINDOW,
    )
    assert diffs == []
    devices = {
        header(m, "Device"): header(m, "State")
        for m in rig.ami.events("DeviceStateChange")
        if header(m, "ActionID") == device_list
    }
    assert devices["PJSIP/8001"] == "NOT_INUSE"
    assert devices["PJSIP/8002"] == "UNAVAILABLE"
    endpoints = [m for m in rig.ami.events("EndpointList")]
    assert [header(m, "ObjectName") for m in endpoints] == ["8001", "8002", "8003", "9001", "trunk"]


async def test_asterisk_restart(rig: Rig) -> None:
    rig.sim.config.restart_delay_s = 0.05
    rig.sim.register_phone("8001")
    await rig.ami.action(Action="QueueAdd", Queue="hotline", Interface="PJSIP/8001")
    call = rig.sim.place_call(talk_s=100)
    await asyncio.wait_for(call.connected.wait(), 5)
    rig.ami.send(Action="Command", Command="core restart now")
    await asyncio.wait_for(rig.ami.closed.wait(), 5)
    names = [header(m, "Event") for m in rig.ami.messages]
    assert "Shutdown" not in names
    assert not any(header(m, "ActionID") == "t-3" for m in rig.ami.messages)
    recorded = [e for e in load_transcript("asterisk_restart.ami.jsonl").events()]
    assert (
        compare_event_shapes(
            recorded, [m for m in rig.ami.messages if header(m, "Event") == "FullyBooted"]
        )
        == []
    )
    # The manager comes back; dynamic members are gone, registrations survive.
    for _ in range(100):
        try:
            again = RawAmiClient("127.0.0.1", rig.sim.ami_port)
            r = await again.login()
            break
        except OSError:
            await asyncio.sleep(0.02)
    assert header(r, "Response") == "Success"
    assert rig.sim.channels == {}
    assert call.done.is_set()
    # Logged in while the PBX boots: app_queue's actions come with the FullyBooted.
    await again.wait_event("FullyBooted")
    await again.action(Action="QueueStatus")
    await again.wait_event("QueueStatusComplete")
    assert again.events("QueueMember") == []
    await again.close()


async def test_peak_load_small(rig: Rig) -> None:
    for ext, ip in (("8002", "127.0.0.4"), ("8001", "127.0.0.3"), ("8003", "127.0.0.5")):
        rig.sim.register_phone(ext, ip=ip)
    await rig.heartbeat()
    for ext in ("8001", "8002", "8003"):
        await rig.ami.action(
            Action="QueueAdd", Queue="hotline", Interface=f"PJSIP/{ext}", MemberName=f"agent-{ext}"
        )
    stats = await generate_calls(
        rig.sim,
        rate_per_s=3,
        count=9,
        dids=["12345"],
        talk_s=(5, 5),
        patience_s=(60, 60),
        seed=1,
        names=["市民"],
    )
    assert stats.placed == 9
    assert stats.answered == 9
    await rig.ami.action(Action="QueueStatus", Queue="hotline")
    await rig.ami.wait_event("QueueStatusComplete")
    for ext in ("8001", "8002", "8003"):
        await rig.ami.action(Action="QueueRemove", Queue="hotline", Interface=f"PJSIP/{ext}")
    await rig.logoff()
    recorded = load_transcript("peak_load.ami.jsonl")
    assert compare_shape_sets(recorded, without_route_helper(rig.ami.messages)) == []
    taken = sum(int(header(m, "CallsTaken") or 0) for m in rig.ami.events("QueueMember"))
    assert taken == 9
