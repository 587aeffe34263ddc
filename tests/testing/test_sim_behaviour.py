"""Simulator behaviour that the transcripts describe in words: login, filters, AGI guard,
hold/deliver, recordings, errors."""

from __future__ import annotations

import asyncio
import socket
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.dialplan_table import DIALPLAN, EXTENSIONS_CONF, read_extensions, read_globals
from cti.testing.frames import header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.testing.conftest import fresh_heartbeat, login

SCALE = 0.01


@pytest.fixture
async def agi() -> AsyncIterator[FastAgiStub]:
    stub = FastAgiStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def sim(agi: FastAgiStub) -> AsyncIterator[AsteriskSimulator]:
    simulator = AsteriskSimulator(SimConfig(agi_port=agi.port, scale=SCALE))
    await simulator.start()
    yield simulator
    await simulator.stop()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_wrong_secret_is_refused_and_closed(sim: AsteriskSimulator) -> None:
    client = RawAmiClient("127.0.0.1", sim.ami_port)
    response = await client.login(secret="nope")
    assert [(k, v) for k, v in response if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "Authentication failed"),
    ]
    await asyncio.wait_for(client.closed.wait(), 5)
    assert client.banner == b"Asterisk Call Manager/11.0.0\r\n"
    await client.close()


async def test_actions_before_login_are_denied(sim: AsteriskSimulator) -> None:
    client = RawAmiClient("127.0.0.1", sim.ami_port)
    await client.connect()
    response = await client.action(Action="Ping")
    assert header(response, "Message") == "Permission denied"
    await client.close()


async def test_unknown_action_and_missing_headers(sim: AsteriskSimulator) -> None:
    client = await login(sim)
    r = await client.action(Action="Frobnicate")
    assert header(r, "Message") == (
        "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands."
    )
    bad = await client.wait_event("RequestBadFormat")
    assert header(bad, "RequestType") == "Action: Frobnicate"
    assert header(await client.action(Action="Hangup"), "Message") == "No channel specified"
    r = await client.action(Action="Hangup", Channel="PJSIP/none-00000001")
    assert header(r, "Message") == "No such channel"
    assert header(await client.action(Action="Redirect"), "Message") == "Channel not specified"
    r = await client.action(Action="Getvar", Channel="PJSIP/x-1", Variable="A")
    assert header(r, "Message") == "No such channel"
    r = await client.action(Action="Atxfer", Exten="9001")
    assert header(r, "Message") == "Channel not specified"
    await client.close()


async def test_events_filter_on_login(sim: AsteriskSimulator) -> None:
    everything = await login(sim)
    silent = await login(sim, Events="off")
    agents = await login(sim, Events="agent")
    sim.register_phone("8002")
    await agents.action(Action="QueueAdd", Queue="hotline", Interface="PJSIP/8002")
    await everything.wait_event("QueueMemberAdded")
    await agents.wait_event("QueueMemberAdded")
    await asyncio.sleep(0.05)
    assert silent.events() == []
    assert {header(m, "Event") for m in agents.events()} == {"QueueMemberAdded"}
    assert everything.events("ContactStatus")
    assert everything.events("FullyBooted")
    # Responses are never filtered.
    assert header(await silent.action(Action="Ping"), "Ping") == "Pong"
    r = await silent.action(Action="Events", EventMask="call")
    assert header(r, "Events") == "On"
    sim.unregister_phone("8002")
    await silent.wait_event("DeviceStateChange", Device="PJSIP/8002", State="UNAVAILABLE")
    for client in (everything, silent, agents):
        await client.close()


async def test_fresh_heartbeat_routes_through_agi(sim: AsteriskSimulator, agi: FastAgiStub) -> None:
    client = await login(sim)
    sim.register_phone("8001")
    await client.action(Action="DBPut", Family="cti", Key="heartbeat", Val=str(int(time.time())))
    r = await client.action(Action="DBGet", Family="cti", Key="heartbeat")
    assert header(r, "EventList") == "start"
    assert header(await client.wait_event("DBGetResponse"), "Family") == "cti"
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call(talk_s=1)
    assert await call.wait(5) == "answered"
    env = agi.sessions[0]
    assert env["agi_network_script"] == "route"
    assert env["agi_request"] == f"agi://127.0.0.1:{agi.port}/route"
    assert env["agi_arg_1"] == "12345"
    assert env["agi_calleridname"] == "张三"
    commands = [header(m, "Command") for m in client.events("AGIExecStart")]
    assert commands[0] == "GET VARIABLE CALLERID(name)"
    agistatus = [m for m in client.events("VarSet") if header(m, "Variable") == "AGISTATUS"]
    assert header(agistatus[0], "Value") == "SUCCESS"
    await client.close()


async def test_stale_heartbeat_skips_agi_and_queues(
    sim: AsteriskSimulator, agi: FastAgiStub
) -> None:
    client = await login(sim)
    sim.astdb[("cti", "heartbeat")] = str(int(time.time()) - 10)
    call = sim.place_call(talk_s=1, patience_s=1)
    await client.wait_event("QueueCallerJoin")
    assert await call.wait(5) == "abandoned"
    assert agi.sessions == []
    guard = [m for m in client.events("Newexten") if header(m, "Application") == "GotoIf"][0]
    assert header(guard, "AppData") == "1?routed"
    assert client.events("MixMonitorStart")
    await client.close()


async def test_refused_fastagi_goes_on_to_queue() -> None:
    sim = AsteriskSimulator(SimConfig(agi_port=_unused_port(), scale=SCALE))
    await sim.start()
    try:
        client = await login(sim)
        fresh_heartbeat(sim)
        call = sim.place_call(talk_s=1, patience_s=1)
        await client.wait_event("QueueCallerJoin")
        await call.wait(5)
        status = [m for m in client.events("VarSet") if header(m, "Variable") == "AGISTATUS"]
        assert header(status[0], "Value") == "FAILURE"
        await client.close()
    finally:
        await sim.stop()


async def test_silent_fastagi_holds_the_call_until_it_closes(
    sim: AsteriskSimulator, agi: FastAgiStub
) -> None:
    client = await login(sim)
    agi.silent = True
    fresh_heartbeat(sim)
    call = sim.place_call(talk_s=1)
    await asyncio.sleep(0.3)  # 30 simulated seconds: no timeout, the caller waits in silence
    assert not call.done.is_set()
    assert client.events("MixMonitorStart") == []
    await agi.stop()  # the stalled CTI finally closes its sockets
    await client.wait_event("QueueCallerJoin")
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()


async def test_hold_then_redirect_to_deliver(sim: AsteriskSimulator, agi: FastAgiStub) -> None:
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.hold = True
    call = sim.place_call(talk_s=2)
    start = await client.wait_event("MusicOnHoldStart", Context="cti-hold")
    assert header(start, "Class") == "default"
    r = await client.action(
        Action="Redirect",
        Channel=call.channel.name,
        Context="cti-deliver",
        Exten="8001",
        Priority="1",
    )
    assert header(r, "Message") == "Redirect successful"
    assert await call.wait(5) == "answered"
    assert client.events("MusicOnHoldStop")
    dial = [m for m in client.events("DialBegin") if header(m, "Channel") == call.channel.name]
    # The first Dial is the routing question's helper channel; then the delivery.
    assert header(dial[0], "DestChannel").startswith("Local/12345@cti-route-")
    assert header(dial[-1], "DestChannel").startswith("PJSIP/8001-")
    assert header(dial[-1], "Context") == "cti-deliver"
    await client.close()


async def test_hold_falls_back_to_queue_when_cti_dies(
    sim: AsteriskSimulator, agi: FastAgiStub
) -> None:
    client = await login(sim)
    fresh_heartbeat(sim)
    agi.hold = True
    call = sim.place_call(talk_s=1, patience_s=30)
    await client.wait_event("MusicOnHoldStart", Context="cti-hold")
    sim.astdb[("cti", "heartbeat")] = "0"  # the CTI stopped writing
    join = await client.wait_event("QueueCallerJoin", timeout=5)
    assert header(join, "Context") == "cti-hold"
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()


async def test_seat_that_does_not_answer_sends_the_call_to_hold(
    sim: AsteriskSimulator, agi: FastAgiStub
) -> None:
    client = await login(sim)
    sim.register_phone("8001", on_ring=lambda channel: "busy")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call(talk_s=1, patience_s=12)
    end = await client.wait_for(
        lambda m: (
            header(m, "Event") == "DialEnd"
            and (header(m, "DestChannel") or "").startswith("PJSIP/8001-")
        )
    )
    assert header(end, "DialStatus") == "BUSY"
    await client.wait_event("MusicOnHoldStart", Context="cti-hold")
    assert await call.wait(5) == "abandoned"
    await client.close()


async def test_recordings_are_written(tmp_path: Path, agi: FastAgiStub) -> None:
    sim = AsteriskSimulator(
        SimConfig(
            agi_port=agi.port, scale=SCALE, write_recordings=True, rec_dir=str(tmp_path / "rec")
        )
    )
    await sim.start()
    try:
        sim.register_phone("8001")
        fresh_heartbeat(sim)
        agi.route = lambda env: "PJSIP/8001"
        agi.rec_dir = str(tmp_path / "cti")
        call = sim.place_call(talk_s=3)
        await call.wait(5)
    finally:
        await sim.stop()
    mixed = tmp_path / "cti" / f"{call.uniqueid}.wav"
    for path in (
        mixed,
        mixed.with_name(f"{call.uniqueid}-in.wav"),
        mixed.with_name(f"{call.uniqueid}-out.wav"),
    ):
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            # Scheduling noise at scale 0.01 stretches calls a little on a busy machine.
            assert 2.5 * 8000 <= wav.getnframes() <= 6 * 8000


async def test_recordings_grow_while_the_call_goes_on(tmp_path: Path, agi: FastAgiStub) -> None:
    """As on Asterisk: the files are there from MixMonitor's start, the header's sizes 0
    until the end, the audio appended as the call goes on; the finished files hold what
    ``write_recordings`` writes at once for the same length."""
    from cti.testing.recording import write_recordings

    sim = AsteriskSimulator(
        SimConfig(agi_port=agi.port, scale=0.1, write_recordings=True, rec_dir=str(tmp_path / "r"))
    )
    await sim.start()
    try:
        sim.register_phone("8001")
        fresh_heartbeat(sim)
        agi.route = lambda env: "PJSIP/8001"
        agi.rec_dir = str(tmp_path / "cti")
        call = sim.place_call(talk_s=20)
        await asyncio.wait_for(call.connected.wait(), 5)
        leg = tmp_path / "cti" / f"{call.uniqueid}-in.wav"
        sizes = []
        for _ in range(3):
            await asyncio.sleep(0.3)
            sizes.append(leg.stat().st_size)
        head = leg.read_bytes()[:44]
        assert head[:4] == b"RIFF" and head[40:44] == b"\0\0\0\0"  # data size not yet known
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
        await call.wait(10)
    finally:
        await sim.stop()
    with wave.open(str(leg)) as wav:
        frames = wav.getnframes()
        live = wav.readframes(frames)
    assert 18 * 8000 <= frames <= 26 * 8000
    files = {"in": str(tmp_path / "once-in.wav")}
    write_recordings(files, frames / 8000, 600)
    with wave.open(files["in"]) as wav:
        assert wav.readframes(wav.getnframes()) == live


async def test_variables_astdb_and_mixmonitor_actions(
    sim: AsteriskSimulator, agi: FastAgiStub
) -> None:
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call(talk_s=50)
    await asyncio.wait_for(call.connected.wait(), 5)
    name = call.channel.name
    assert (
        header(
            await client.action(Action="Setvar", Channel=name, Variable="X", Value="1"), "Message"
        )
        == "Variable Set"
    )
    assert header(await client.action(Action="Getvar", Channel=name, Variable="X"), "Value") == "1"
    r = await client.action(Action="Getvar", Channel=name, Variable="CALLERID(name)")
    assert header(r, "Value") == "张三"
    r = await client.action(Action="MixMonitorMute", Channel=name, Direction="read", State="1")
    assert header(r, "Response") == "Success"
    assert call.channel.mixmonitor_mute == {"read": True}
    assert (
        header(await client.action(Action="StopMixMonitor", Channel=name), "Response") == "Success"
    )
    r = await client.action(Action="Status", Channel=name)
    assert header(await client.wait_event("StatusComplete"), "Items") == "1"
    assert (
        header(await client.action(Action="DBDel", Family="cti", Key="nope"), "Response") == "Error"
    )
    sim.hangup(name)
    await call.wait(5)
    await client.close()


async def test_unclean_unregister_reports_unreachable_later(sim: AsteriskSimulator) -> None:
    client = await login(sim)
    sim.register_phone("8003", ip="127.0.0.5")
    sim.unregister_phone("8003", clean=False)
    assert (
        not client.events("PeerStatus")
        or header(client.events("PeerStatus")[-1], "PeerStatus") == "Reachable"
    )
    status = await client.wait_event("ContactStatus", ContactStatus="Unreachable")
    assert header(status, "AOR") == "8003"
    await client.action(Action="PJSIPShowContacts")
    contact = await client.wait_event("ContactList")
    assert header(contact, "Status") == "Unreachable"
    await client.close()


def test_dialplan_model_follows_extensions_conf_priority_for_priority() -> None:
    """Every extension of the file, every priority with its label and application, is the
    model's; a change of the file that the model does not follow fails here."""
    text = EXTENSIONS_CONF.read_text(encoding="utf-8")
    model = {key: [(label, app) for _, label, app in steps] for key, steps in DIALPLAN.items()}
    assert read_extensions(text) == model


def test_sim_defaults_follow_the_dialplan_globals() -> None:
    values = read_globals(EXTENSIONS_CONF.read_text(encoding="utf-8"))
    config = SimConfig()
    assert float(values["CTI_STALE"]) == config.heartbeat_stale_s
    assert float(values["CTI_ROUTE_TIMEOUT"]) == config.route_timeout_s
    assert float(values["QUEUE_TIMEOUT"]) == config.queue_timeout_s
    assert values["HOTLINE_QUEUE"] == config.queue_name
    assert values["REC_DIR"] == config.rec_dir
