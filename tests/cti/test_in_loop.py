"""The facts of tests/fixtures/in_loop/README.md (recorded with hotline itself against a real
Asterisk 22), through the CTI's real code: its FastAGI server and route script, its AMI
client, the Hotline app. The recordings are replayed over loopback sockets (the AMI replay
in lenient mode: the fixed client legitimately acts differently from the recorded one, and
gets the recorded answers by action); where a fact needs a live PBX, the simulator plays it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from agi_scripts import route as route_script
from agi_scripts.route import RouteAnswer, RouteRequest, serve, split_route
from cti.agi.server import FastAgiServer
from cti.ami.actions import ChannelNotUp, ShuttingDown, build
from cti.ami.client import AmiNode
from cti.events import AmiResynced, CallAnswered, CallEnded, CallRouted
from cti.testing import AgiReplayClient, AmiReplayServer, load_transcript
from cti.testing.transcript import Entry
from tests.cti.live import Floor, close_floor, open_floor
from tests.cti.routes import answer

PIPELINED = "in_loop/cti_route_pipelined.agi.jsonl"
START = "in_loop/cti_session_start_and_call.ami.jsonl"
DURING = "in_loop/cti_session_asterisk_restart.ami.jsonl"
AFTER = "in_loop/cti_session_after_restart.ami.jsonl"


async def until(predicate: Any, timeout: float = 10.0) -> None:  # noqa: ANN401
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- 1. FastAGI commands run one at a time --------------------------------------------------


async def route_server(seen: list[RouteRequest], form: str = "script") -> FastAgiServer:
    """The route as a coroutine script, or as the CTI serves it (``immediate``)."""

    def decide_now(req: RouteRequest) -> RouteAnswer:
        seen.append(req)
        return answer()

    async def decide(req: RouteRequest) -> RouteAnswer:
        return decide_now(req)

    if form == "immediate":
        immediate = {"route": lambda s: route_script.answer_now(s, decide_now)}
        server = FastAgiServer("127.0.0.1", 0, {}, immediate=immediate)
    else:
        server = FastAgiServer("127.0.0.1", 0, {"route": lambda s: serve(s, decide)})
    await server.start()
    return server


FORMS = pytest.mark.parametrize("form", ["script", "immediate"])


@FORMS
async def test_route_answers_as_asterisk_reads_it(form: str) -> None:
    """The recorded session stalled 3 s after the first answer (the CTI had written four
    commands at once). Played by an Asterisk-like reader, the CTI's route must finish at
    once: every command sent after the answer to the one before. (Waits on the client fix.)"""
    seen: list[RouteRequest] = []
    server = await route_server(seen, form)
    try:
        client = AgiReplayClient(PIPELINED, "127.0.0.1", server.port, timeout=2.5)
        result = await client.run()
    finally:
        await server.stop()
    assert result.error is None, result.error
    assert result.closed_by_server
    assert split_route(result.variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    assert split_route(result.variables["HOTLINE_ROUTE"])["HOTLINE_TICKET"] == "T1"
    assert max(result.times) < 0.5, result.times  # no command waited for the close
    # One command: the answer in one round trip.
    assert [c.split(" ")[:3] for c in result.commands] == [["SET", "VARIABLE", "HOTLINE_ROUTE"]]


def as_local_channel(path: str) -> Any:  # noqa: ANN401
    """The recorded session as the new dialplan asks it: from Local;2 in [cti-route], with
    the citizen's uniqueid and channel as the 2nd and 3rd arguments."""
    transcript = load_transcript(path)
    swap = {
        "agi_channel": "Local/12345@cti-route-00000001;2",
        "agi_type": "Local",
        "agi_uniqueid": "1796589130.31",
        "agi_dnid": "unknown",
        "agi_context": "cti-route",
        "agi_priority": "1",
    }
    entries: list[Entry] = []
    for entry in transcript.entries:
        key = entry.data.split(":", 1)[0]
        if entry.dir == "in" and key in swap:
            entry = dataclasses.replace(entry, data=f"{key}: {swap[key]}\n")
        entries.append(entry)
        if entry.data.startswith("agi_arg_1:"):
            entries.append(dataclasses.replace(entry, data="agi_arg_2: 1796589130.29\n"))
            entries.append(dataclasses.replace(entry, data="agi_arg_3: PJSIP/trunk-00000011\n"))
    return dataclasses.replace(transcript, entries=tuple(entries))


@FORMS
async def test_route_asked_from_the_helper_channel_is_about_the_citizen(form: str) -> None:
    seen: list[RouteRequest] = []
    server = await route_server(seen, form)
    try:
        result = await AgiReplayClient(
            as_local_channel(PIPELINED), "127.0.0.1", server.port, timeout=2.5
        ).run()
    finally:
        await server.stop()
    assert result.closed_by_server
    (request,) = seen
    assert (request.uniqueid, request.channel) == ("1796589130.29", "PJSIP/trunk-00000011")
    assert (request.caller, request.caller_name, request.did) == ("13800000001", "张三", "12345")


@pytest.fixture
async def floor(any_db_url: str, tmp_path: Path):  # noqa: ANN201
    f = await open_floor(any_db_url, tmp_path)
    yield f
    await close_floor(f)


async def test_routed_call_through_the_helper_channel(floor: Floor) -> None:
    """The simulator runs the new dialplan: the CTI is asked from Local;2 and must route the
    citizen's call (not the helper's), promptly."""
    await floor.ready(("li", "8001"))
    started = time.monotonic()
    handle = floor.sim.place_call(caller="13800000001", name="张三", did="12345", talk_s=6)
    await asyncio.wait_for(handle.connected.wait(), 5)
    assert time.monotonic() - started < 1.5
    (routed,) = floor.of(CallRouted)
    assert routed.target == "PJSIP/8001"
    (ans,) = floor.of(CallAnswered)
    assert ans.seat == "8001" and ans.caller_name == "张三"
    assert await handle.wait(10) == "answered"
    await floor.until(lambda: bool(floor.of(CallEnded)))
    calls = {c.uniqueid for c in floor.hotline.tracker.active_calls()}
    assert not any("Local/" in u for u in calls)


# -- 7. the heartbeat guard's window: a stalled CTI holds only the helper --------------------


async def test_stalled_cti_costs_the_caller_the_route_timeout(
    floor: Floor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observer_cti_stalled: a call that came within CTI_STALE of a stall waited 32 s in
    silence. Now it waits CTI_ROUTE_TIMEOUT (2 s) with music, then the fallback queue
    answers; the stalled session, answered late, must not reserve a seat."""
    await floor.ready(("li", "8001"))
    server = floor.hotline.agi
    original = server._begin

    def stalled(conn: Any, block: bytes) -> None:  # noqa: ANN401
        # The CTI's loop is stopped (the heartbeat still fresh): it reads the question 3.5 s
        # late (its block waits in the socket meanwhile).
        asyncio.get_running_loop().call_later(3.5, original, conn, block)

    monkeypatch.setattr(server, "_begin", stalled)
    started = time.monotonic()
    handle = floor.sim.place_call(caller="13800000012", name="沈十二", did="12345", talk_s=4)
    await asyncio.wait_for(handle.connected.wait(), 10)
    waited = time.monotonic() - started
    assert floor.sim.config.route_timeout_s <= waited < floor.sim.config.route_timeout_s + 1.5
    assert await handle.wait(15) == "answered"


# -- 2. an empty list can be an error ---------------------------------------------------------


async def test_no_contacts_error_is_an_empty_list(make_hotline: Any) -> None:  # noqa: ANN401
    """cti_session_start_and_call: PJSIPShowContacts answered ``No Contacts found`` as an
    Error; the recorded client waited for its list until a timeout. (Waits on the client
    fix.)"""
    server = AmiReplayServer(START, strict=False, action_timeout=0.3)
    port = await server.start()
    try:
        started = time.monotonic()
        s = await make_hotline(port)
        await until(lambda: bool(s.of(AmiResynced)), 10)
        (resynced,) = s.of(AmiResynced)[:1]
        assert resynced.contacts == 0
        assert time.monotonic() - started < 8
        actions = [a for who, a in server.timeline if who == "client"]
        assert actions.index("PJSIPShowContacts") < actions.index("DeviceStateList")
    finally:
        await server.stop()


# -- 3. a login before the PBX has booted --------------------------------------------------


async def test_resync_waits_for_fully_booted(make_hotline: Any) -> None:  # noqa: ANN401
    """cti_session_after_restart: the login was accepted while Asterisk booted; the recorded
    client resynced at once and PJSIPShowContacts did not exist yet. The CTI must wait for
    FullyBooted. (Waits on the client fix.)"""
    server = AmiReplayServer(AFTER, strict=False, action_timeout=0.3)
    port = await server.start()
    try:
        s = await make_hotline(port)
        await until(lambda: ("asterisk", "Event: FullyBooted") in server.timeline, 15)
        await until(lambda: bool(s.of(AmiResynced)), 10)
        booted = server.timeline.index(("asterisk", "Event: FullyBooted"))
        before = [a for who, a in server.timeline[:booted] if who == "client"]
        assert "PJSIPShowContacts" not in before and "CoreShowChannels" not in before
        assert "PJSIPShowContacts" in [a for who, a in server.timeline[booted:] if who == "client"]
    finally:
        await server.stop()


async def test_resync_after_a_restart_of_the_simulator(floor: Floor) -> None:
    """The same against the simulator, whose boot takes a while: one resync, after the
    boot, with no action refused."""
    sim = floor.sim
    sim.config.boot_delay_s, sim.config.shutdown_s = 1.0, 0.2
    before = len(floor.of(AmiResynced))
    counts = dict(sim.ami.action_counts)
    await sim.restart()
    restarted = time.monotonic()
    await floor.until(lambda: len(floor.of(AmiResynced)) > before, 15)
    assert time.monotonic() - restarted >= 0.9  # not before FullyBooted
    assert sim.booted
    contacts = sim.ami.action_counts["PJSIPShowContacts"] - counts.get("PJSIPShowContacts", 0)
    assert contacts == 1


# -- 4. Asterisk is shutting down -------------------------------------------------------------


async def test_shutting_down_is_a_typed_refusal() -> None:
    """cti_session_asterisk_restart: after the Shutdown event, the heartbeat's DBPut was
    answered "Asterisk is shutting down", then the socket closed."""
    server = AmiReplayServer(DURING, strict=False, action_timeout=0.2)
    port = await server.start()
    shutdown = asyncio.Event()

    def on_event(node: str, msg: dict[str, str]) -> None:
        if msg.get("Event") == "Shutdown":
            shutdown.set()

    node = AmiNode("pbx1", "127.0.0.1", port, "cti", "cti-secret", on_event=on_event)
    await node.start()
    try:
        await asyncio.wait_for(shutdown.wait(), 10)
        with pytest.raises(ShuttingDown):
            await node.send(build("DBPut", Family="cti", Key="heartbeat", Val="1"), timeout=2)
        await until(lambda: not node.connected, 5)
    finally:
        await node.stop()
        await server.stop()


# -- 5. dynamic members outlive the CTI, not Asterisk ----------------------------------------


async def test_already_there_is_not_a_failure(make_hotline: Any) -> None:  # noqa: ANN401
    """cti_session_start_and_call: the members of the previous CTI process were still there,
    QueueAdd answered "Already there"; the CTI must go on to set the pause state."""
    server = AmiReplayServer(START, strict=False, action_timeout=0.3)
    port = await server.start()
    try:
        s = await make_hotline(port)
        await until(lambda: bool(s.of(AmiResynced)), 10)
        s.hotline.agents.login("li", "A01", ready=True)

        def actions() -> list[str]:
            return [a for who, a in server.timeline if who == "client"]

        await until(lambda: "QueueAdd" in actions(), 5)
        await until(lambda: "QueuePause" in actions()[actions().index("QueueAdd") :], 10)
    finally:
        await server.stop()


# -- 6. Redirect of a channel that is hanging up ------------------------------------------------


async def test_redirect_of_a_hanging_up_caller_is_typed(floor: Floor) -> None:
    """ "Redirect failed, channel not up." means the caller is going, not "try again"."""
    sim = floor.sim
    sim.config.hangup_notice_s = 0.5  # a busy PBX: the channel refuses moves for a while
    handle = sim.place_call(caller="13800000013", name="韩十三", did="12345", talk_s=4)
    await floor.until(lambda: len(floor.hotline.acd.snapshot()["waiting"]) == 1)
    sim.hangup(handle.channel)
    node = floor.hotline.nodes["pbx1"]
    redirect = build(
        "Redirect", Channel=handle.channel.name, Context="cti-deliver", Exten="8001", Priority=1
    )
    with pytest.raises(ChannelNotUp):
        await node.send(redirect)
    assert await handle.wait(10) == "abandoned"


# -- 8. outbound calls need the trunk's qualify ------------------------------------------------


async def test_callback_through_an_unqualified_trunk_fails(floor: Floor) -> None:
    """With qualify on the trunk and a carrier that ignores OPTIONS, chan_pjsip does not dial
    out: the seat answers the callback, its Dial finds no usable contact (CHANUNAVAIL) and
    the seat's channel ends with "No route to destination"; no citizen is ever reached."""
    sim = floor.sim
    sim.set_carrier_options(False)
    await floor.ready(("li", "8001"))
    await floor.hotline.control.callback("li", "13800000010")
    await floor.until(lambda: bool(floor.of(CallEnded)), 10)
    (ended,) = floor.of(CallEnded)
    assert not ended.answered
    assert not [c for c in sim.channels.values() if c.device == "PJSIP/trunk"]
    sim.set_carrier_options(True)
    await floor.until(lambda: floor.hotline.agents.get("li").state == "ready", 10)
    await floor.hotline.control.callback("li", "13800000010")
    await floor.until(lambda: any(c.device == "PJSIP/trunk" for c in sim.channels.values()), 10)
