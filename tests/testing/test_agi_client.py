"""Fact 1 of in_loop/README.md: Asterisk runs FastAGI commands one per readiness of the socket.

res_agi polls the socket, reads ONE line with fgets() from a buffered FILE*, runs it and
answers; lines that came in with it stay in the stdio buffer, unseen by poll, until more bytes
arrive or the server closes. The simulator's FastAGI client and the replay client do the same.
"""

from __future__ import annotations

import asyncio

from cti.testing.agi_protocol import RESULT_DEAD, StdioLineReader
from cti.testing.agi_replay import AgiReplayClient, AgiScriptServer, agi_sessions
from cti.testing.clients import FastAgiStub
from cti.testing.frames import header
from cti.testing.transcript import load_transcript
from tests.testing.conftest import MakeSim, fresh_heartbeat, login

PIPELINED = "in_loop/cti_route_pipelined.agi.jsonl"


def test_stdio_reader_takes_one_line_per_readiness() -> None:
    lines = StdioLineReader()
    lines.feed(b"SET VARIABLE A 1\nSET VARIABLE B 2\nSET VARIABLE C 3\n")
    assert lines.readable
    assert lines.fgets() == b"SET VARIABLE A 1\n"
    # B and C were read into the stdio buffer with A: poll() no longer sees anything.
    assert not lines.readable
    # More bytes make the socket readable again, and fgets serves the oldest line first.
    lines.feed(b"SET VARIABLE D 4\n")
    assert lines.readable
    assert lines.fgets() == b"SET VARIABLE B 2\n"
    assert lines.readable  # D is still in the socket
    assert lines.fgets() == b"SET VARIABLE C 3\n"
    assert lines.fgets() == b"SET VARIABLE D 4\n"
    assert not lines.readable
    # The server's close: readable, and every buffered line runs, then the end.
    lines.feed(b"VERBOSE x\nNOOP\n")
    assert lines.fgets() == b"VERBOSE x\n"
    assert not lines.readable
    lines.feed_eof()
    assert lines.readable
    assert lines.fgets() == b"NOOP\n"
    assert lines.fgets() == b""


def test_stdio_reader_waits_for_the_rest_of_a_line() -> None:
    lines = StdioLineReader()
    lines.feed(b"SET VARI")
    assert lines.fgets() is None
    lines.feed(b"ABLE A 1\n")
    assert lines.fgets() == b"SET VARIABLE A 1\n"


async def test_pipelined_session_is_reproduced_by_the_replay_client() -> None:
    """cti_route_pipelined.agi.jsonl: four SET VARIABLE at once, one answer, nothing until the
    CTI closes (3.0 s later, 0.3 s here), then the other three run."""
    transcript = load_transcript(PIPELINED)
    (session,) = agi_sessions(transcript)
    server = AgiScriptServer(transcript, speed=0.1)
    await server.start()
    try:
        result = await AgiReplayClient(transcript, "127.0.0.1", server.port).run()
    finally:
        await server.stop()
    assert [line for _, line in server.received] == session.replies == ["200 result=1"]
    assert result.commands == session.commands
    assert result.closed_by_server and result.closed_at is not None
    assert result.times[0] < 0.1
    assert all(t >= result.closed_at for t in result.times[1:])
    assert set(result.variables) == {
        "HOTLINE_REC",
        "HOTLINE_TICKET",
        "HOTLINE_HOLD",
        "ROUTE_TARGET",
    }


async def test_one_command_at_a_time_is_answered_promptly(
    make_sim: MakeSim, agi: FastAgiStub
) -> None:
    sim = await make_sim()
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = sim.place_call(talk_s=1)
    await asyncio.wait_for(call.connected.wait(), 5)
    # Seven commands, each answered before the next; the seat rings well within the
    # routing timeout (2 s), and nothing waited for a close.
    assert loop.time() - started < 1.0
    assert len(agi.replies[0]) == len(agi.commands(agi.sessions[0]))
    assert agi.replies[0][0] == "200 result=1 (张三)"
    await call.wait(5)


async def test_pipelined_commands_stall_until_the_server_closes(
    make_sim: MakeSim, agi: FastAgiStub
) -> None:
    sim = await make_sim()
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    agi.pipelined, agi.close_after = True, 0.4
    call = sim.place_call(talk_s=1)
    await asyncio.wait_for(call.connected.wait(), 5)
    # The stub saw one answer before it gave up and closed...
    assert agi.replies[0] == ["200 result=1 (张三)"]
    # ...and the PBX ran the rest only then: one command alone, the others together.
    starts = [
        t
        for m, t in zip(client.messages, client.times, strict=True)
        if header(m, "Event") == "AGIExecStart"
    ]
    assert len(starts) == len(agi.commands(agi.sessions[0]))
    assert starts[1] - starts[0] >= 0.35
    assert starts[-1] - starts[1] < 0.1
    await call.wait(5)
    await client.close()


async def test_stall_pattern_matches_the_observer_recording(
    make_sim: MakeSim, agi: FastAgiStub
) -> None:
    """observer_cti_stalled: the CTI's pipelined commands ran as [1 alone, 3 at the close]."""
    recorded = [
        e.t
        for e in load_transcript("in_loop/observer_cti_stalled.ami.jsonl").entries
        if e.data.startswith("Event: AGIExecStart")
    ]
    sim = await make_sim()
    client = await login(sim)
    fresh_heartbeat(sim)
    agi.pipelined, agi.close_after = True, 0.3
    call = sim.place_call(talk_s=1)
    await client.wait_event("MixMonitorStart", timeout=5)
    produced = [
        t
        for m, t in zip(client.messages, client.times, strict=True)
        if header(m, "Event") == "AGIExecStart"
    ]
    assert groups(recorded, 1.0) == [1, len(recorded) - 1]
    assert groups(produced, 0.2) == [1, len(produced) - 1]
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()


def groups(times: list[float], gap: float) -> list[int]:
    """Sizes of the runs of times closer than ``gap`` to the previous one."""
    sizes: list[int] = []
    for n, t in enumerate(times):
        if n and t - times[n - 1] < gap:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


async def test_hangup_switches_to_dead_mode(make_sim: MakeSim) -> None:
    """The channel hangs up during the AGI: HANGUP is sent, then commands that need a live
    channel answer 511 while SET VARIABLE still works, until the server closes."""
    heard: list[str] = []
    done = asyncio.Event()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\n", b""):
            pass
        heard.append((await reader.readline()).decode().rstrip("\n"))  # HANGUP
        for command in ("SET VARIABLE X 1", "CHANNEL STATUS", "HANGUP"):
            writer.write(command.encode() + b"\n")
            await writer.drain()
            heard.append((await reader.readline()).decode().rstrip("\n"))
        writer.close()
        done.set()

    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    sim = await make_sim(route_timeout_s=0.2)
    sim.config.agi_port = listener.sockets[0].getsockname()[1]
    try:
        fresh_heartbeat(sim)
        call = sim.place_call(talk_s=1, patience_s=100)
        # The caller's Dial gives up on the helper channel after 0.2 s: ;2 hangs up.
        await asyncio.wait_for(done.wait(), 5)
        assert heard == ["HANGUP", "200 result=1", RESULT_DEAD, RESULT_DEAD]
        await call.wait(5)
    finally:
        listener.close()
        await listener.wait_closed()
