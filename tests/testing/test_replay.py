"""Transcript replay: every recorded pair is played over TCP to a raw client."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest

from cti.testing import (
    SCENARIOS,
    AgiReplayClient,
    AmiFrameParser,
    AmiReplayServer,
    ReplayError,
    load_transcript,
    parse_message,
)
from cti.testing.frames import header
from cti.testing.replay import agi_sessions, same_action

ACTION_ID = re.compile(r"^ActionID: (.*)\r\n", re.MULTILINE)


def _with_id(data: str, new_id: str) -> str:
    return ACTION_ID.sub(f"ActionID: {new_id}\r\n", data)


def _expected_stream(entries, ids: dict[str, str]) -> tuple[list[bytes], list[int]]:
    """Bytes Asterisk sent per connection (ids substituted); marks where each action goes."""
    chunks: list[bytes] = []
    marks: list[int] = []
    total = 0
    for entry in entries:
        if entry.dir == "in":
            if entry.closes:
                break
            data = ACTION_ID.sub(
                lambda m: f"ActionID: {ids.get(m.group(1), m.group(1))}\r\n", entry.data
            )
            raw = data.encode("utf-8")
            chunks.append(raw)
            total += len(raw)
        else:
            marks.append(total)
    return chunks, marks


async def _read_until(reader: asyncio.StreamReader, buf: bytearray, size: int) -> None:
    while len(buf) < size:
        data = await reader.read(65536)
        if not data:
            return
        buf += data


async def _drive(transcript, *, chunk_split: bool = False) -> tuple[bytes, bytes, bool]:
    """Send the recorded actions with new ActionIDs; return (got, expected, eof_seen)."""
    actions = [e for e in transcript.entries if e.dir == "out"]
    ids = {}
    for n, entry in enumerate(actions):
        recorded = header(entry.pairs(), "ActionID")
        if recorded:
            ids[recorded] = f"client-{n}-{recorded}"
    chunks, marks = _expected_stream(transcript.entries, ids)
    expected = b"".join(chunks)
    server = AmiReplayServer(transcript, chunk_split=chunk_split, seed=7)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = bytearray()
        closed_at = len(expected)
        for entry, mark in zip(actions, marks, strict=False):
            await asyncio.wait_for(_read_until(reader, got, mark), 10)
            if len(got) >= closed_at and reader.at_eof():
                break
            recorded = header(entry.pairs(), "ActionID") or ""
            writer.write(_with_id(entry.data, ids.get(recorded, recorded)).encode("utf-8"))
            await writer.drain()
        await asyncio.wait_for(_read_until(reader, got, len(expected) + 1), 10)
        eof = reader.at_eof()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await server.finished()
    finally:
        await server.stop()
    return bytes(got), expected, eof


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_ami_replay_every_transcript(scenario: str) -> None:
    transcript = load_transcript(f"{scenario}.ami.jsonl")
    got, expected, eof = await _drive(transcript)
    assert got == expected
    # Every transcript ends with Asterisk closing: after Logoff, or on core restart.
    assert eof


async def test_restart_closes_socket_without_shutdown_event() -> None:
    transcript = load_transcript("asterisk_restart.ami.jsonl")
    got, _, eof = await _drive(transcript)
    assert eof
    assert b"Event: Shutdown" not in got
    assert got.startswith(b"Asterisk Call Manager/11.0.0\r\n")


async def test_chunked_replay_splits_utf8_and_parser_reassembles() -> None:
    transcript = load_transcript("direct_to_seat.ami.jsonl")
    got, expected, _ = await _drive(transcript, chunk_split=True)
    assert got == expected
    parser = AmiFrameParser(expect_banner=True)
    names = []
    # Feed byte by byte: every multi-byte character is cut somewhere.
    for i in range(len(got)):
        for message in parser.feed(got[i : i + 1]):
            pairs = parse_message(message)
            if header(pairs, "CallerIDName") == "张三":
                names.append(header(pairs, "Event"))
    assert "Newchannel" in names


async def test_chunked_writes_really_fragment() -> None:
    transcript = load_transcript("direct_to_seat.ami.jsonl")
    server = AmiReplayServer(transcript, chunk_split=True, seed=3, chunk_delay=0.002)
    port = await server.start()
    reads: list[bytes] = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner_and_more = await reader.read(65536)
        reads.append(banner_and_more)
        writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: cti-secret\r\nActionID: a\r\n\r\n")
        await writer.drain()
        for _ in range(40):
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                break
            reads.append(data)
        writer.close()
    finally:
        await server.stop()
    cut_inside = False
    for data in reads:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            cut_inside = True
    assert cut_inside, "no read ended inside a multi-byte character"


async def test_mismatching_action_is_an_error_in_strict_mode() -> None:
    transcript = load_transcript("queue_answered.ami.jsonl")
    server = AmiReplayServer(transcript, action_timeout=1)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: wrong\r\nActionID: 1\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)  # the server hangs up
        with pytest.raises(ReplayError, match="Secret: wrong"):
            await server.finished()
        writer.close()
    finally:
        await server.stop()


async def test_lenient_mode_records_and_goes_on() -> None:
    transcript = load_transcript("seat_status.ami.jsonl")
    server = AmiReplayServer(transcript, strict=False, action_timeout=0.2)
    port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"Action: login\r\nusername: cti\r\nsecret: cti-secret\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        assert b"Message: Authentication accepted\r\n" in data
        # No ActionID sent: the responses carry none.
        assert b"ActionID: cap-1\r\n" not in data
        errors = await server.finished()
        assert errors and all("timed out" in e for e in errors)
        writer.close()
    finally:
        await server.stop()


def test_same_action_ignores_order_case_and_actionid() -> None:
    a = parse_message(
        "Action: QueueAdd\r\nQueue: hotline\r\nInterface: PJSIP/8002\r\nActionID: 1\r\n"
    )
    b = parse_message(
        "action: queueadd\r\nInterface: PJSIP/8002\r\nQueue: hotline\r\nActionID: 9\r\n"
    )
    c = parse_message("Action: QueueAdd\r\nQueue: hotline\r\nInterface: PJSIP/8003\r\n")
    assert same_action(a, b)
    assert not same_action(a, c)


async def _agi_stub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A FastAGI server like the recorded one, but with its own recording path."""
    env = {}
    while (line := await reader.readline()) not in (b"\n", b""):
        key, _, value = line.decode().rstrip("\n").partition(": ")
        env[key] = value
    replies = []
    target = "PJSIP/8001" if env.get("agi_calleridname") != "市民" else ""
    for command in (
        "GET VARIABLE CALLERID(name)",
        "GET VARIABLE CALLERID(num)",
        f'SET VARIABLE HOTLINE_REC "/tmp/rec/{env["agi_uniqueid"]}.wav"',
        f'SET VARIABLE ROUTE_TARGET "{target}"',
        'VERBOSE "routed by stub" 1',
    ):
        writer.write(command.encode() + b"\n")
        await writer.drain()
        replies.append((await reader.readline()).decode())
    writer.close()


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_agi_replay_every_transcript(scenario: str) -> None:
    transcript = load_transcript(f"{scenario}.agi.jsonl")
    sessions = agi_sessions(transcript)
    if not sessions:
        pytest.skip("no AGI in this scenario")
    server = await asyncio.start_server(_agi_stub, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = AgiReplayClient(transcript, "127.0.0.1", port)
        results = await client.run_all()
    finally:
        server.close()
        await server.wait_closed()
    assert len(results) == len(sessions)
    for result, session in zip(results, sessions, strict=True):
        assert result.closed_by_server
        assert result.env["agi_network_script"] == "route"
        assert result.commands[0] == "GET VARIABLE CALLERID(name)"
        # The recorded answers come back for the recorded questions (UTF-8 names included).
        assert result.replies[:2] == session.replies[:2]
        assert result.replies[2:] == ["200 result=1"] * 3
        assert result.variables["HOTLINE_REC"].startswith("/tmp/rec/")
    if scenario == "direct_to_seat":
        assert results[0].variables["ROUTE_TARGET"] == "PJSIP/8001"
        assert results[0].replies[0] == "200 result=1 (张三)"
