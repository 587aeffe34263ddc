"""The network inputs under fuzzing (extending tests/cti/test_ami_parser.py and
test_agi_server.py): memory stays bounded under floods of oversized AMI frames and FastAGI
headers; whole FastAGI sessions of random bytes and lines end cleanly and the server goes on
serving; a client that stops answering mid-session holds no one else up."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agi_scripts.route import RouteAnswer, answer_now, serve, split_route
from cti.agi.server import FastAgiServer
from cti.ami.parser import MAX_FRAME, AmiParser
from tests.cti.routes import answer

ENV = (
    "agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
    "agi_channel: PJSIP/trunk-00000019\nagi_uniqueid: 1795317420.29\n"
    "agi_callerid: 13800000001\nagi_calleridname: 张三\nagi_arg_1: 12345\n\n"
).encode()
NEWCHANNEL = b"Event: Newchannel\r\nUniqueid: 1.1\r\nChannel: PJSIP/trunk-1\r\n\r\n"


async def decide(_req: object) -> RouteAnswer:
    return answer()


def route_server(form: str = "script", **kw: float) -> FastAgiServer:
    """The route as a coroutine script, or as the CTI serves it (``immediate``)."""
    if form == "immediate":
        return FastAgiServer(
            "127.0.0.1",
            0,
            {},
            immediate={"route": lambda s: answer_now(s, lambda r: answer())},
            **kw,
        )
    return FastAgiServer("127.0.0.1", 0, {"route": lambda s: serve(s, decide)}, **kw)


FORMS = pytest.mark.parametrize("form", ["script", "immediate"])


async def good_session(port: int) -> dict[str, str]:
    """Asterisk's side of a normal route: the block, then 200 to every command."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENV)
    variables: dict[str, str] = {}
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 2)
            if not line:
                return variables
            parts = line.decode().rstrip("\n").split(" ", 3)
            if parts[:2] == ["SET", "VARIABLE"]:
                variables[parts[2]] = parts[3].strip('"')
                if parts[2] == "HOTLINE_ROUTE":
                    variables.update(split_route(variables[parts[2]]))
            writer.write(b"200 result=1\n")
            await writer.drain()
    finally:
        writer.close()


def test_ami_parser_memory_stays_bounded_under_a_flood_of_oversized_frames() -> None:
    """64 MiB in 64 KiB reads of frames that never end, and of frames that end far past the
    limit: the parser holds at most the limit plus one read, never hands out a bigger
    message, counts the garbage, and parses what follows."""
    parser = AmiParser(drop=frozenset())
    chunk = b"Event: Flood\r\nData: " + b"x" * (64 * 1024 - 20)
    bound = MAX_FRAME + len(chunk)
    biggest = 0
    tracemalloc.start()
    try:
        for i in range(1024):
            parser.feed(chunk)
            if i % 64 == 63:
                parser.feed(b"\r\n\r\n")  # an end, after far more than MAX_FRAME
            for msg in parser.take():  # as the protocol does after every read
                biggest = max(biggest, sum(len(k) + len(v) for k, v in msg.items()))
            assert len(parser._buf) <= bound
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert biggest <= bound
    assert peak < 8 * bound, peak
    assert parser.errors >= 16
    parser.feed(b"\r\n\r\n" + NEWCHANNEL)
    assert [m["Event"] for m in parser.take()] == ["Newchannel"]


@FORMS
async def test_fastagi_memory_stays_bounded_under_oversized_headers(form: str) -> None:
    server = route_server(form, header_timeout=2.0)
    await server.start()
    tracemalloc.start()
    try:
        for _ in range(10):
            writers = []
            for _ in range(20):
                _r, w = await asyncio.open_connection("127.0.0.1", server.port)
                w.write(b"agi_x: " + b"y" * 200_000)  # no end of block, 12x the limit
                writers.append(w)
            for w in writers:
                try:
                    await w.drain()
                except ConnectionError:
                    pass
            for w in writers:
                w.close()
            while (
                server.stats["sessions"] > server.stats["bad_header"] + server.stats["early_close"]
            ):
                await asyncio.sleep(0.01)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert server.stats["bad_header"] + server.stats["early_close"] == 200
    # 20 sessions at a time, each bounded by the 16 KiB header limit (plus stream buffers)
    assert peak < 20 * 1024 * 1024, peak
    assert (await good_session(server.port))["ROUTE_TARGET"] == "PJSIP/8001"
    await server.stop()


LINES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"200 result=1\n",
            b"200 result=0\n",
            b"HANGUP\n",
            b"511 Command Not Permitted on a dead channel\n",
            b"510 Invalid or unknown command\n",
            b"520-Invalid command syntax.\n",
            b"520 End of proper usage.\n",
            b"\n",
            b"\xff\xfe\x00\n",
            b"200 result=1 (" + b"v" * 20_000 + b")\n",
        ]
    ),
)
HEADERS = st.one_of(
    st.just(ENV),
    st.binary(max_size=400),
    st.builds(lambda cut: ENV[:cut], st.integers(0, len(ENV))),
    st.builds(lambda junk: ENV[:-1] + junk + b"\n\n", st.binary(max_size=300)),
)


@FORMS
@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(header=HEADERS, replies=st.lists(LINES, max_size=6), read_first=st.booleans())
def test_fastagi_whole_sessions_of_random_input(
    form: str, header: bytes, replies: list[bytes], read_first: bool
) -> None:
    """Any header, any answers to the route's commands, any early close: the session ends
    within the server's timeouts, counted, and a normal call is routed right after."""

    async def scenario() -> None:
        server = route_server(form, header_timeout=0.2, command_timeout=0.2)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header)
            for reply in replies:
                if read_first:
                    try:
                        await asyncio.wait_for(reader.readline(), 0.3)
                    except (TimeoutError, ValueError, ConnectionError):
                        pass
                writer.write(reply)
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()
            stats = server.stats

            def ended() -> int:
                return sum(v for k, v in stats.items() if k not in ("sessions", "busy"))

            deadline = time.monotonic() + 2
            while ended() < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            # ended within the server's timeouts, in exactly one outcome
            assert stats["sessions"] == ended() == 1, stats
            assert (await good_session(server.port))["ROUTE_TARGET"] == "PJSIP/8001"
        finally:
            await server.stop()

    asyncio.run(scenario())


@FORMS
async def test_client_silent_mid_session_does_not_hold_others(form: str) -> None:
    """Ten callers' sessions stop answering after the header (a stalled Asterisk thread);
    the others are routed at once meanwhile, and the silent ones end at the command
    timeout."""
    server = route_server(form, header_timeout=1.0, command_timeout=1.0)
    await server.start()
    silent = []
    for _ in range(10):
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(ENV)
        silent.append((r, w))
    started = time.monotonic()
    for _ in range(20):
        assert (await good_session(server.port))["ROUTE_TARGET"] == "PJSIP/8001"
    assert time.monotonic() - started < 1.0
    for r, _w in silent:
        assert (await asyncio.wait_for(r.readline(), 1)).startswith(b"SET VARIABLE")
    t0 = time.monotonic()
    while server.stats["errors"] < 10 and time.monotonic() - t0 < 5:
        await asyncio.sleep(0.02)
    assert server.stats["errors"] == 10 and server.stats["completed"] == 20
    for _r, w in silent:
        w.close()
    await server.stop()
