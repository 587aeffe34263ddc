"""Conformance: the simulator answers every action the way real Asterisk answered it in the
recordings, and reads FastAGI the way it did.

Why this file exists: the simulator's answers had been written from a model of Asterisk, and
its tests compared the simulator with itself; the replay peers were more lenient than
Asterisk (a pipelining FastAGI server was answered at once, every list action got a list).
So a PBX that answers ``No Contacts found`` with an Error, or runs one FastAGI command per
read, passed every test. Here every distinct answer found in the recordings (any
``*.ami.jsonl`` of tests/fixtures/transcripts and the CTI's own sessions in
tests/fixtures/in_loop) must have a case that puts the simulator in the same state, sends
the same action and gets an answer of the same shape: the same Response, Message text (to
the byte), EventList, list events and header names (ids, times and values aside). A new
recording with a new kind of answer fails ``test_every_recorded_answer_has_a_case`` until the
simulator reproduces it. For FastAGI, every recorded session is played from the CTI's side
against the simulator and against the replay client, and what the PBX answered, step by
step, must be what the recording shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cti.testing.agi_protocol import parse_env_lines
from cti.testing.agi_replay import AgiReplayClient, AgiScriptServer, agi_sessions
from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.compare import event_shapes
from cti.testing.frames import Pairs, header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from cti.testing.transcript import FIXTURES, load_transcript
from tests.testing.conftest import SCALE, fresh_heartbeat, login

AMI_RECORDINGS = sorted((FIXTURES / "transcripts").glob("*.ami.jsonl")) + sorted(
    (FIXTURES / "in_loop").glob("cti_session_*.ami.jsonl")
)
AGI_RECORDINGS = [
    p
    for p in [
        *sorted((FIXTURES / "transcripts").glob("*.agi.jsonl")),
        *sorted((FIXTURES / "in_loop").glob("*.agi.jsonl")),
    ]
    if agi_sessions(load_transcript(p))
]

# (action, Response, Message, EventList, names of the listed events)
Key = tuple[str, str, str | None, str | None, tuple[str, ...]]


@dataclass(frozen=True)
class Shape:
    """An answer without its values: what a client can depend on."""

    response: tuple[str | None, str | None, str | None]  # Response, Message, EventList
    fields: frozenset[str]  # header names of the response, ActionID aside
    items: frozenset[tuple[str, frozenset[str]]]  # (event, header names) of the listed events


def shape(frames: list[Pairs]) -> Shape:
    first = frames[0]
    return Shape(
        (header(first, "Response"), header(first, "Message"), header(first, "EventList")),
        frozenset(k for k, _ in first if k != "ActionID"),
        frozenset((header(f, "Event") or "", frozenset(k for k, _ in f)) for f in frames[1:]),
    )


def key_of(action: str, frames: list[Pairs]) -> Key:
    first = frames[0]
    items = tuple(sorted({header(f, "Event") or "" for f in frames[1:]}))
    return (
        action.lower(),
        header(first, "Response") or "",
        header(first, "Message"),
        header(first, "EventList"),
        items,
    )


def recorded_answers() -> dict[Key, tuple[str, list[Pairs]]]:
    """Every distinct answer in the recordings (the first one seen), with its file."""
    found: dict[Key, tuple[str, list[Pairs]]] = {}
    for path in AMI_RECORDINGS:
        actions: dict[str | None, str] = {}
        open_lists: dict[str, list[Pairs]] = {}
        for entry in load_transcript(path).entries:
            if entry.dir == "out" and entry.data:
                pairs = entry.pairs()
                actions[header(pairs, "ActionID")] = header(pairs, "Action") or ""
                continue
            if entry.dir != "in" or not entry.data:
                continue
            pairs = entry.pairs()
            aid = header(pairs, "ActionID")
            if entry.data.startswith("Response:") and aid in actions:
                if header(pairs, "EventList") == "start":
                    open_lists[aid or ""] = [pairs]
                else:
                    found.setdefault(key_of(actions[aid], [pairs]), (path.name, [pairs]))
            elif aid in open_lists:
                frames = open_lists[aid or ""]
                frames.append(pairs)
                if header(pairs, "EventList") == "Complete":
                    del open_lists[aid or ""]
                    found.setdefault(key_of(actions[aid], frames), (path.name, frames))
    return found


# -- the cases: the simulator in the recorded state, the same action -----------------------

Case = Callable[[AsteriskSimulator, RawAmiClient, FastAgiStub], Awaitable[dict[str, str]]]
CASES: dict[Key, Case] = {}


def case(action: str, response: str, message: str | None, events: str = "", *items: str):  # noqa: ANN201
    def register(fn: Case) -> Case:
        CASES[(action.lower(), response, message, events or None, tuple(sorted(items)))] = fn
        return fn

    return register


async def talking(sim: AsteriskSimulator, agi: FastAgiStub) -> tuple[str, str]:
    """A citizen routed to seat 8001 (Dial options tT) and talking: (citizen, seat)."""
    sim.register_phone("8001")
    sim.register_phone("9001", ip="127.0.0.6")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call(talk_s=500)
    await asyncio.wait_for(call.connected.wait(), 5)
    return call.channel.name, sim.channels_of("8001")[0].name


@case("Atxfer", "Success", "Atxfer successfully queued")
async def _atxfer(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    _, seat = await talking(sim, agi)
    return {"Action": "Atxfer", "Channel": seat, "Context": "cti-window", "Exten": "9001"}


@case("BlindTransfer", "Success", "Transfer succeeded")
async def _blind(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    _, seat = await talking(sim, agi)
    return {"Action": "BlindTransfer", "Channel": seat, "Context": "cti-window", "Exten": "9001"}


@case("Redirect", "Success", "Dual Redirect successful")
async def _dual(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    citizen, seat = await talking(sim, agi)
    return {
        "Action": "Redirect",
        "Channel": citizen,
        "ExtraChannel": seat,
        "Context": "cti-conf",
        "Exten": "3w-1",
        "Priority": "1",
        "ExtraContext": "cti-conf",
        "ExtraExten": "3w-1",
        "ExtraPriority": "1",
    }


@case("ConfbridgeList", "Success", "Confbridge user list will follow", "start",
      "ConfbridgeList", "ConfbridgeListComplete")  # fmt: skip
async def _conf(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    sim.register_phone("9001", ip="127.0.0.6")
    await c.action(Action="Originate", Channel="PJSIP/9001", Context="cti-conf", Exten="3w-1")
    await c.wait_event("ConfbridgeJoin")
    return {"Action": "ConfbridgeList", "Conference": "3w-1"}


@case("CoreShowChannels", "Success", "Channels will follow", "start",
      "CoreShowChannel", "CoreShowChannelsComplete")  # fmt: skip
async def _channels(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await talking(sim, agi)
    return {"Action": "CoreShowChannels"}


async def nothing(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> None:
    return None


def simple(action: str, **headers: str) -> Case:
    async def run(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
        return {"Action": action, **headers}

    return run


case("CoreShowChannels", "Success", "Channels will follow", "start", "CoreShowChannelsComplete")(
    simple("CoreShowChannels")
)
case("CoreStatus", "Success", None)(simple("CoreStatus"))
case("Ping", "Success", None)(simple("Ping"))
case("Getvar", "Success", None)(simple("Getvar", Variable="NOSUCHVAR"))
case("DBPut", "Success", "Updated database successfully")(
    simple("DBPut", Family="cti", Key="heartbeat", Val="1")
)
case("Logoff", "Goodbye", "Thanks for all the fish.")(simple("Logoff"))
case(
    "Nonsense",
    "Error",
    "Invalid/unknown command: Nonsense. Use Action: ListCommands to show available commands.",
)(simple("Nonsense"))
case("Status", "Success", "Channel status will follow", "start", "StatusComplete")(simple("Status"))
case("Originate", "Success", "Originate successfully queued")(
    simple(
        "Originate", Channel="PJSIP/8001", Context="cti-callback", Exten="13800000007", Async="true"
    )
)
case("PJSIPShowContacts", "Error", "No Contacts found\n")(simple("PJSIPShowContacts"))


@case("Login", "Success", "Authentication accepted")
async def _login(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    return {"Action": "Login", "Username": "cti", "Secret": "cti-secret", "_fresh": "1"}


@case("DBPut", "Error", "Asterisk is shutting down")
async def _down(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    sim.config.shutdown_s = 1.0
    sim.spawn(sim.restart())
    await c.wait_event("Shutdown")
    return {"Action": "DBPut", "Family": "cti", "Key": "heartbeat", "Val": "1"}


@case(
    "PJSIPShowContacts",
    "Error",
    "Invalid/unknown command: PJSIPShowContacts. "
    "Use Action: ListCommands to show available commands.",
)
async def _booting(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    sim.config.shutdown_s, sim.config.boot_delay_s = 0.0, 5.0
    await sim.restart()
    return {"Action": "PJSIPShowContacts", "_fresh": "1"}


@case("PJSIPShowContacts", "Success",
      "A listing of Contacts follows, presented as ContactList events",
      "start", "ContactList", "ContactListComplete")  # fmt: skip
async def _contacts(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    sim.register_phone("8001")
    return {"Action": "PJSIPShowContacts"}


case("PJSIPShowEndpoints", "Success",
     "A listing of Endpoints follows, presented as EndpointList events", "start",
     "EndpointList", "EndpointListComplete")(simple("PJSIPShowEndpoints"))  # fmt: skip
case("DeviceStateList", "Success", "Device State Changes will follow", "start",
     "DeviceStateChange", "DeviceStateListComplete")(simple("DeviceStateList"))  # fmt: skip
case("QueueSummary", "Success", "Queue summary will follow", "start",
     "QueueSummary", "QueueSummaryComplete")(simple("QueueSummary"))  # fmt: skip


async def member(sim: AsteriskSimulator, c: RawAmiClient, *, paused: bool = False) -> None:
    sim.register_phone("8001")
    await c.action(
        Action="QueueAdd",
        Queue="hotline",
        Interface="PJSIP/8001",
        MemberName="李娜",
        StateInterface="PJSIP/8001",
        Paused="true" if paused else "false",
    )


ADD = {"Action": "QueueAdd", "Queue": "hotline", "Interface": "PJSIP/8001", "MemberName": "李娜"}
case("QueueAdd", "Success", "Added interface to queue")(
    simple("QueueAdd", **{k: v for k, v in ADD.items() if k != "Action"})
)


@case("QueueAdd", "Error", "Unable to add interface: Already there")
async def _again(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c)
    return dict(ADD)


@case("QueuePause", "Success", "Interface paused successfully")
async def _pause(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c)
    return {"Action": "QueuePause", "Queue": "hotline", "Interface": "PJSIP/8001", "Paused": "true"}


@case("QueuePause", "Success", "Interface unpaused successfully")
async def _unpause(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c, paused=True)
    return {
        "Action": "QueuePause",
        "Queue": "hotline",
        "Interface": "PJSIP/8001",
        "Paused": "false",
    }


@case("QueuePause", "Error", "Interface not found")
async def _gone(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c)
    sim.config.shutdown_s, sim.config.boot_delay_s = 0.0, 0.05
    await sim.restart()  # Asterisk forgets its dynamic members
    await asyncio.sleep(0.2)
    return {
        "Action": "QueuePause",
        "Queue": "hotline",
        "Interface": "PJSIP/8001",
        "Paused": "true",
        "_fresh": "1",
    }


@case("QueueRemove", "Success", "Removed interface from queue")
async def _remove(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c)
    return {"Action": "QueueRemove", "Queue": "hotline", "Interface": "PJSIP/8001"}


@case("QueueStatus", "Success", "Queue status will follow", "start",
      "QueueMember", "QueueParams", "QueueStatusComplete")  # fmt: skip
async def _status(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await member(sim, c)
    return {"Action": "QueueStatus", "Queue": "hotline"}


@case("Hangup", "Success", "Channel Hungup")
async def _hangup(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    _, seat = await talking(sim, agi)
    return {"Action": "Hangup", "Channel": seat}


@case("Hangup", "Success", "Channels hung up will follow", "start",
      "ChannelHungup", "ChannelsHungupListComplete")  # fmt: skip
async def _hangups(sim: AsteriskSimulator, c: RawAmiClient, agi: FastAgiStub) -> dict[str, str]:
    await talking(sim, agi)
    return {"Action": "Hangup", "Channel": "/^PJSIP\\/8001-.*$/"}


# -- the tests ----------------------------------------------------------------------------

RECORDED = recorded_answers()


def test_every_recorded_answer_has_a_case() -> None:
    missing = sorted(set(RECORDED) - set(CASES), key=str)
    assert not missing, "recorded answers the simulator is not checked against: " + "; ".join(
        f"{k} ({RECORDED[k][0]})" for k in missing
    )
    stale = sorted(set(CASES) - set(RECORDED), key=str)
    assert not stale, f"cases with no recorded answer: {stale}"


async def answer(
    sim: AsteriskSimulator, client: RawAmiClient, headers: dict[str, str]
) -> list[Pairs]:
    """Send one action; its answer: the response and, for a list, its events to Complete."""
    action_id = client.send(**headers, ActionID="conf-1")
    first = await client.wait_for(
        lambda m: header(m, "Response") is not None and header(m, "ActionID") == action_id
    )
    if header(first, "EventList") != "start":
        return [first]
    await client.wait_for(
        lambda m: header(m, "ActionID") == action_id and header(m, "EventList") == "Complete"
    )
    return [m for m in client.messages if header(m, "ActionID") == action_id]


@pytest.mark.parametrize("key", sorted(CASES, key=str), ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
async def test_the_simulator_answers_as_recorded(key: Key) -> None:
    agi = FastAgiStub()
    await agi.start()
    sim = AsteriskSimulator(SimConfig(agi_port=agi.port, scale=SCALE, restart_delay_s=0.01))
    await sim.start()
    clients: list[RawAmiClient] = []
    try:
        client = await login(sim)
        clients.append(client)
        headers = await CASES[key](sim, client, agi)
        if headers.pop("_fresh", None):
            # Asked on a new connection (after a restart, or the login itself).
            client = RawAmiClient("127.0.0.1", sim.ami_port)
            clients.append(client)
            await client.connect()
            if headers["Action"] != "Login":
                await client.action(Action="Login", Username="cti", Secret="cti-secret")
        produced = await asyncio.wait_for(answer(sim, client, headers), 5)
        source, recorded = RECORDED[key]
        assert shape(produced) == shape(recorded), f"recorded in {source}"
    finally:
        for c in clients:
            await c.close()
        await sim.stop()
        await agi.stop()


# -- FastAGI ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", AGI_RECORDINGS, ids=lambda p: Path(p).name)
async def test_the_simulator_reads_fastagi_as_recorded(path: Path) -> None:
    """The recorded CTI's commands, played at their recorded moments against the simulator:
    each answer comes after the same write of the CTI as in the recording (the pipelined
    session's three last commands, none before the CTI's close)."""
    transcript = load_transcript(path)
    env, _ = parse_env_lines(agi_sessions(transcript)[0].env_lines)
    server = AgiScriptServer(transcript, speed=0.1)
    await server.start()
    # The recording ran the AGI on the caller's channel, with no time limit.
    sim = AsteriskSimulator(SimConfig(agi_port=server.port, scale=SCALE, route_timeout_s=30))
    await sim.start()
    try:
        fresh_heartbeat(sim)
        call = sim.place_call(
            env["agi_callerid"],
            env["agi_calleridname"],
            env["agi_extension"],
            talk_s=1,
        )
        await asyncio.wait_for(server.done.wait(), 10)
        assert server.received == server.recorded
        sim.hangup(call.channel)
        await call.wait(10)
    finally:
        await sim.stop()
        await server.stop()


@pytest.mark.parametrize("path", AGI_RECORDINGS, ids=lambda p: Path(p).name)
async def test_the_replay_client_reads_fastagi_as_recorded(path: Path) -> None:
    transcript = load_transcript(path)
    server = AgiScriptServer(transcript, speed=0.1)
    await server.start()
    try:
        await AgiReplayClient(transcript, "127.0.0.1", server.port).run()
        assert server.received == server.recorded
    finally:
        await server.stop()


# -- events ---------------------------------------------------------------------------------


async def test_every_event_shape_the_simulator_makes_was_recorded() -> None:
    """A day on the simulated PBX (routed, queued, held and delivered calls, a stalled CTI,
    a callback, a phone losing power, a restart and its boot): every event it sends has the
    name and header set of an event real Asterisk sent in some recording. Events are not
    invented either."""
    recorded: set[object] = set()
    for path in [*AMI_RECORDINGS, *sorted((FIXTURES / "in_loop").glob("observer_*.ami.jsonl"))]:
        recorded |= set(event_shapes(load_transcript(path), keep_noise=True))
    agi = FastAgiStub()
    await agi.start()
    config = SimConfig(
        agi_port=agi.port,
        scale=SCALE,
        route_timeout_s=0.3,
        shutdown_s=0.05,
        boot_delay_s=0.1,
        restart_delay_s=0.01,
    )
    sim = AsteriskSimulator(config)
    await sim.start()
    c = await login(sim)
    try:
        sim.register_phone("8001")
        sim.register_phone("9001", ip="127.0.0.6")
        await c.action(
            Action="QueueAdd",
            Queue="hotline",
            Interface="PJSIP/8001",
            MemberName="李娜",
            Paused="true",
            Reason="login",
            StateInterface="PJSIP/8001",
        )
        await c.action(Action="QueuePause", Queue="hotline", Interface="PJSIP/8001", Paused="0")
        fresh_heartbeat(sim)
        agi.route = lambda env: "PJSIP/8001"
        await sim.place_call("13800000001", "张三", talk_s=3).wait(5)
        agi.route = lambda env: ""
        await sim.place_call("13800000002", "李四", talk_s=3).wait(5)
        agi.hold = True
        call = sim.place_call("13800000003", "王五", talk_s=3)
        await c.wait_event("MusicOnHoldStart", Context="cti-hold")
        await c.action(
            Action="Redirect",
            Channel=call.channel.name,
            Context="cti-deliver",
            Exten="8001",
            Priority="1",
        )
        await call.wait(5)
        agi.hold, agi.silent = False, True
        await sim.place_call("13800000004", "赵六", talk_s=3).wait(5)
        agi.silent = False
        await c.action(
            Action="Originate",
            Channel="PJSIP/8001",
            Context="cti-callback",
            Exten="13800000010",
            CallerID="12345 回访 <12345>",
            Async="true",
        )
        await c.wait_event("BridgeEnter")
        await c.action(Action="Hangup", Channel="/^PJSIP\\/8001-.*$/")
        sim.unregister_phone("9001", clean=False)
        await c.wait_event("ContactStatus", ContactStatus="Unreachable")
        restart = asyncio.ensure_future(sim.restart())
        await asyncio.wait_for(c.closed.wait(), 5)
        await restart
        after = await login(sim)
        await after.wait_event("FullyBooted")
        await asyncio.sleep(0.3)
        await after.close()
        produced = set(event_shapes([*c.messages, *after.messages], keep_noise=True))
        assert sorted(map(str, produced - recorded)) == []
    finally:
        await c.close()
        await sim.stop()
        await agi.stop()
