"""The FastAGI server: early closes, slow clients, hangups mid-command, unsafe values."""

from __future__ import annotations

import asyncio
import time

import pytest

from agi_scripts.route import RouteAnswer, RouteRequest, answer_now, serve, split_route
from cti.agi.server import AgiHangup, AgiSession, FastAgiServer, quote
from cti.ami.actions import UnsafeValue
from cti.testing import AgiReplayClient, fixture_path
from tests.cti.routes import answer

ENV = (
    "agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1:4573/route\n"
    "agi_channel: PJSIP/trunk-00000019\nagi_uniqueid: 1795317420.29\n"
    "agi_callerid: 13800000001\nagi_calleridname: 张三\nagi_dnid: 12345\n"
    "agi_extension: 12345\nagi_arg_1: 12345\n\n"
)


async def start(scripts, **kw) -> FastAgiServer:  # noqa: ANN001
    server = FastAgiServer("127.0.0.1", 0, scripts, **kw)
    await server.start()
    return server


async def test_route_sets_variables_like_the_recorded_session() -> None:
    seen: list[RouteRequest] = []

    async def decide(req: RouteRequest) -> RouteAnswer:
        seen.append(req)
        return answer()

    server = await start({"route": lambda s: serve(s, decide)})
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    result = await client.run()
    assert split_route(result.variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    assert split_route(result.variables["HOTLINE_ROUTE"])["HOTLINE_REC"] == "/rec/1.wav"
    assert split_route(result.variables["HOTLINE_ROUTE"])["HOTLINE_TICKET"] == "T1"
    assert seen[0].caller == "13800000001" and seen[0].caller_name == "张三"
    assert seen[0].did == "12345"
    await server.stop()


async def test_early_close_does_not_spin() -> None:
    """panoramisk's handler loops on read() forever when a client closes before the blank
    line: here each such session ends at once and the server keeps serving."""
    server = await start({"route": lambda s: serve(s, lambda r: _async(answer()))})
    cpu0 = time.process_time()
    for _ in range(50):
        _r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\n")
        await w.drain()
        w.close()
        await w.wait_closed()
    await asyncio.sleep(0.2)
    assert server.stats["early_close"] == 50
    assert time.process_time() - cpu0 < 2.0
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    assert (
        split_route((await client.run()).variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    )
    await server.stop()


async def _async(value):  # noqa: ANN001, ANN202
    return value


async def test_slowloris_times_out_and_others_are_served() -> None:
    server = await start(
        {"route": lambda s: serve(s, lambda r: _async(answer()))}, header_timeout=0.3
    )
    slow = []
    for _ in range(20):
        _r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"agi_network: yes\nagi_netw")
        await w.drain()
        slow.append(w)
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    t0 = time.monotonic()
    assert (
        split_route((await client.run()).variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    )
    assert time.monotonic() - t0 < 0.3
    await asyncio.sleep(0.5)
    assert server.stats["bad_header"] == 20
    for w in slow:
        w.close()
    await server.stop()


async def test_oversized_header_is_refused() -> None:
    server = await start({})
    _r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"agi_x: " + b"y" * 100_000 + b"\n\n")
    await w.drain()
    await asyncio.sleep(0.2)
    assert server.stats["bad_header"] == 1
    w.close()
    await server.stop()


async def test_hangup_mid_command_ends_only_that_session() -> None:
    async def script(session: AgiSession) -> None:
        await session.set_variable("A", "1")
        await session.set_variable("B", "2")

    server = await start({"route": script})
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(ENV.encode())
    await w.drain()
    line = await r.readline()
    assert line.startswith(b"SET VARIABLE A")
    w.write(b"HANGUP\n200 result=1\n")
    await w.drain()
    line = await r.readline()
    w.close()
    await asyncio.sleep(0.1)
    assert server.stats["hangups"] == 1
    # and a client that just closes mid-command
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(ENV.encode())
    await w.drain()
    await r.readline()
    w.close()
    await asyncio.sleep(0.1)
    assert server.stats["hangups"] == 2
    await server.stop()


async def test_dead_channel_511_is_a_hangup() -> None:
    got: list[BaseException] = []

    async def script(session: AgiSession) -> None:
        try:
            await session.verbose("x")
        except AgiHangup as exc:
            got.append(exc)
            raise

    server = await start({"route": script})
    r, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(ENV.encode())
    await w.drain()
    await r.readline()
    w.write(b"511 Command Not Permitted on a dead channel or intercepted channel\n")
    await w.drain()
    await asyncio.sleep(0.1)
    assert got and "511" in str(got[0])
    w.close()
    await server.stop()


def test_unsafe_values_never_reach_agi() -> None:
    with pytest.raises(UnsafeValue):
        quote("PJSIP/8001\nEXEC Hangup")
    assert quote('say "hi" \\') == '"say \\"hi\\" \\\\"'


async def test_unknown_script_is_closed() -> None:
    server = await start({})
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    result = await client.run()
    assert "HOTLINE_ROUTE" not in result.variables
    assert server.stats["unknown_script"] == 1
    await server.stop()


@pytest.mark.parametrize("form", ["script", "immediate"])
@pytest.mark.parametrize(
    ("age", "answered"),
    [(0.05, True), (1.5, True), (1.8, False), (30.0, False)],
)
async def test_a_question_read_after_the_dialplan_stopped_waiting_is_not_answered(
    age: float, answered: bool, form: str
) -> None:
    """[cti-route] passes the moment it asks (ms, Asterisk's clock) as the 4th argument;
    the dialplan waits 2 s. A question the CTI reads (after a stall) too late to answer
    before the caller's Dial gives up is closed unanswered: no seat reserved for nobody."""
    decided: list[RouteRequest] = []

    async def decide(req: RouteRequest) -> RouteAnswer:
        decided.append(req)
        return answer()

    def decide_now(req: RouteRequest) -> RouteAnswer:
        decided.append(req)
        return answer()

    pbx_now = 1796589200.0  # Asterisk's clock, whatever ours says
    if form == "immediate":
        server = await start(
            {},
            immediate={
                "route": lambda s: answer_now(
                    s, decide_now, give_up_s=2.0, pbx_time=lambda: pbx_now
                )
            },
        )
    else:
        server = await start(
            {"route": lambda s: serve(s, decide, give_up_s=2.0, pbx_time=lambda: pbx_now)}
        )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        (
            "agi_network: yes\nagi_network_script: route\n"
            "agi_channel: Local/12345@cti-route-00000001;2\n"
            f"agi_uniqueid: {int(pbx_now - age)}.31\nagi_callerid: 13800000001\n"
            "agi_arg_1: 12345\nagi_arg_2: 1796589100.30\nagi_arg_3: PJSIP/trunk-00000011\n"
            f"agi_arg_4: {pbx_now - age:.3f}\n\n"
        ).encode()
    )
    commands = []
    while line := await asyncio.wait_for(reader.readline(), 5):
        commands.append(line.decode().strip())
        writer.write(b"200 result=1\n")
    writer.close()
    await server.stop()
    assert bool(commands) is answered and bool(decided) is answered
    if answered:
        assert decided[0].uniqueid == "1796589100.30"


async def test_the_route_ends_its_side_with_its_only_command() -> None:
    """The route's one command comes with the end of the CTI's side (a half-close): Asterisk
    runs it and finds the session over at once, instead of waiting for the CTI to read the
    answer and close. The answer is still read (a refusal would be logged)."""
    server = await start({"route": lambda s: serve(s, lambda r: _async(answer()))})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"agi_network: yes\nagi_network_script: route\nagi_uniqueid: 1796589130.29\n"
        b"agi_callerid: 13800000001\nagi_arg_1: 12345\n\n"
    )
    command = await asyncio.wait_for(reader.readline(), 5)
    assert command.startswith(b"SET VARIABLE HOTLINE_ROUTE ")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF before any answer
    writer.write(b"200 result=1\n")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.05)
    assert server.stats["completed"] == 1
    await server.stop()


async def test_an_immediate_route_is_answered_in_the_turn_that_reads_the_question() -> None:
    """The CTI's route: the decision and its command are made in the protocol's callback
    that reads the agi_* block's last bytes (no task, so no turn of the loop, before it);
    the session then ends as the coroutine script's does."""
    seen: list[tuple[RouteRequest, object]] = []

    def decide(req: RouteRequest) -> RouteAnswer:
        seen.append((req, asyncio.current_task()))
        return answer()

    server = await start({}, immediate={"route": lambda s: answer_now(s, decide)})
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    result = await client.run()
    assert split_route(result.variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    [(req, task)] = seen
    assert task is None
    assert req.caller == "13800000001" and req.caller_name == "张三"
    await asyncio.sleep(0.05)
    assert server.stats["completed"] == server.stats["sessions"] == 1
    assert len(server.answer_durations) == 1
    await server.stop()


async def test_an_immediate_route_that_fails_or_declines_closes_the_session() -> None:
    """A decision that raises is an error (logged; Asterisk's defaults take over), one that
    declines (the CTI does not lead, the question came too late) closes unanswered."""
    outcomes = iter([RuntimeError("bug"), None])

    def immediate(_session: AgiSession) -> list[str] | None:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    server = await start({}, immediate={"route": immediate})
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(ENV.encode())
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no command
        writer.close()
    await asyncio.sleep(0.05)
    assert server.stats["errors"] == 1 and server.stats["completed"] == 1
    assert server.stats["sessions"] == 2
    await server.stop()


async def test_a_block_split_anywhere_across_reads_is_one_question() -> None:
    seen: list[RouteRequest] = []

    def decide(req: RouteRequest) -> RouteAnswer:
        seen.append(req)
        return answer()

    server = await start({}, immediate={"route": lambda s: answer_now(s, decide)})
    data = ENV.encode()
    for cut in (1, len(data) - 2, len(data) - 1):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data[:cut])
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(data[cut:])
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"SET VARIABLE HOTLINE_ROUTE ")
        writer.write(b"200 result=1\n")
        await writer.drain()
        writer.close()
    await asyncio.sleep(0.05)
    assert len(seen) == 3 and {r.uniqueid for r in seen} == {"1795317420.29"}
    assert server.stats["completed"] == 3
    await server.stop()


async def test_work_after_the_answer_runs_once_it_is_written_in_the_same_turn() -> None:
    """The CTI's record of a routed call (and its events) comes after the answer is on its
    way, in the same callback: nothing can be read about the call in between. A failure
    there is logged; the session goes on."""
    ran: list[tuple[bool, object]] = []

    def immediate(session: AgiSession) -> list[str] | None:
        session.after_answer(
            lambda: ran.append((session.first_sent is not None, asyncio.current_task()))
        )
        session.after_answer(lambda: 1 / 0)
        return answer_now(session, lambda r: answer())

    server = await start({}, immediate={"route": immediate})
    client = AgiReplayClient(fixture_path("direct_to_seat.agi.jsonl"), "127.0.0.1", server.port)
    result = await client.run()
    assert split_route(result.variables["HOTLINE_ROUTE"])["ROUTE_TARGET"] == "PJSIP/8001"
    assert ran == [(True, None)]
    await asyncio.sleep(0.05)
    assert server.stats["completed"] == 1
    await server.stop()
