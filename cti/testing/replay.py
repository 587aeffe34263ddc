"""Replay recorded Asterisk sessions over real TCP on loopback.

``AmiReplayServer`` plays Asterisk's side of an AMI transcript to one client: it writes what
Asterisk wrote and checks that the client sends what the recorded CTI sent. ``AgiReplayClient``
plays Asterisk's side of a FastAGI session against our FastAGI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from cti.testing.agi_protocol import AgiResponder, DictChannel, parse_env_lines, split_args
from cti.testing.frames import AmiFrameParser, Pairs, header, parse_message
from cti.testing.transcript import Entry, Transcript, fixture_path, load_transcript

__all__ = [
    "AgiReplayClient",
    "AgiReplayResult",
    "AmiReplayServer",
    "ReplayError",
    "fixture_path",
    "load_transcript",
    "same_action",
]

log = logging.getLogger(__name__)

_ACTION_ID_LINE = re.compile(r"^ActionID: (.*)\r\n", re.MULTILINE)


class ReplayError(AssertionError):
    """The client did not behave like the recorded one (strict mode)."""


def _comparable(pairs: Pairs) -> tuple[str, list[tuple[str, str]]]:
    action = (header(pairs, "Action") or "").lower()
    rest = sorted(
        (key.lower(), value) for key, value in pairs if key.lower() not in ("action", "actionid")
    )
    return action, rest


def same_action(recorded: Pairs, received: Pairs) -> bool:
    """Same Action (any case) and same other headers, ignoring ActionID and header order."""
    return _comparable(recorded) == _comparable(received)


def _split_points(data: bytes, rng: random.Random) -> list[int]:
    """Offsets to cut a message at; one falls inside a multi-byte UTF-8 character if any."""
    if len(data) < 2:
        return []
    points = {rng.randrange(1, len(data)) for _ in range(rng.randint(1, 3))}
    for i, byte in enumerate(data):
        if byte >= 0xC0:  # lead byte of a multi-byte sequence: cut right after it
            points.add(i + 1)
            break
    return sorted(p for p in points if 0 < p < len(data))


class AmiReplayServer:
    """Plays one AMI transcript to the client that connects.

    ``speed`` scales the recorded gaps between Asterisk's messages (0 = no sleeping, 1 = real
    time). At each recorded action the server waits up to ``action_timeout`` for the client's
    action; its ActionID replaces the recorded one in everything Asterisk sent afterwards.
    An empty recorded ``in`` closes the socket, as Asterisk did on ``core restart now``; if the
    script goes on with more of Asterisk's output, the next connection continues it.
    """

    def __init__(
        self,
        transcript: Transcript | str | Path,
        *,
        strict: bool = True,
        speed: float = 0.0,
        chunk_split: bool = False,
        chunk_delay: float = 0.0005,
        seed: int = 0,
        action_timeout: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not isinstance(transcript, Transcript):
            transcript = load_transcript(transcript)
        self.transcript = transcript
        self.strict = strict
        self.speed = speed
        self.chunk_split = chunk_split
        self.chunk_delay = chunk_delay
        self.action_timeout = action_timeout
        self.host = host
        self.port = port
        self.errors: list[str] = []
        self.received: list[Pairs] = []
        self._rng = random.Random(seed)
        self._ids: dict[str, str | None] = {}
        self._cursor = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._done = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def finished(self, timeout: float | None = 10.0) -> list[str]:
        """Wait for the end of the script; in strict mode raise if anything went wrong."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            self._error(f"script not finished: stopped at entry {self._cursor}")
            self._done.set()
        if self.strict and self.errors:
            raise ReplayError("; ".join(self.errors))
        return list(self.errors)

    # -- one connection -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        parser = AmiFrameParser()
        pending: list[bytes] = []
        try:
            if self._done.is_set():
                self._error("unexpected connection after the end of the script")
                return
            await self._play(reader, writer, parser, pending)
            if self._done.is_set() and not writer.is_closing():
                await self._drain_extra(reader, parser, pending)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._error(f"connection lost at entry {self._cursor}: {exc!r}")
            self._done.set()
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _play(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: AmiFrameParser,
        pending: list[bytes],
    ) -> None:
        entries = self.transcript.entries
        previous_t: float | None = None
        while self._cursor < len(entries):
            entry = entries[self._cursor]
            if self.speed > 0 and previous_t is not None and entry.t > previous_t:
                await asyncio.sleep((entry.t - previous_t) * self.speed)
            previous_t = entry.t
            if entry.closes:
                self._cursor += 1
                writer.close()
                if not self._more_output():
                    self._done.set()
                return
            if entry.dir == "in":
                await self._write(writer, self._substitute(entry.data).encode("utf-8"))
            elif not await self._expect(entry, reader, parser, pending):
                writer.close()
                self._done.set()
                return
            self._cursor += 1
        self._done.set()

    def _more_output(self) -> bool:
        rest = self.transcript.entries[self._cursor :]
        return any(e.dir == "in" and e.data for e in rest)

    async def _expect(
        self,
        entry: Entry,
        reader: asyncio.StreamReader,
        parser: AmiFrameParser,
        pending: list[bytes],
    ) -> bool:
        recorded = entry.pairs()
        want = header(recorded, "Action")
        try:
            raw = await asyncio.wait_for(
                self._next_message(reader, parser, pending), self.action_timeout
            )
        except TimeoutError:
            self._error(f"timed out waiting for Action: {want} (entry {self._cursor})")
            return not self.strict
        if raw is None:
            self._error(f"client closed the connection; expected Action: {want}")
            return False
        received = parse_message(raw)
        self.received.append(received)
        recorded_id = header(recorded, "ActionID")
        if recorded_id is not None:
            self._ids[recorded_id] = header(received, "ActionID")
        if not same_action(recorded, received):
            self._error(f"expected {_show(recorded)}, got {_show(received)}")
            return not self.strict
        return True

    async def _next_message(
        self, reader: asyncio.StreamReader, parser: AmiFrameParser, pending: list[bytes]
    ) -> bytes | None:
        while not pending:
            data = await reader.read(65536)
            if not data:
                return None
            pending.extend(parser.feed(data))
        return pending.pop(0)

    async def _drain_extra(
        self, reader: asyncio.StreamReader, parser: AmiFrameParser, pending: list[bytes]
    ) -> None:
        """After the script, anything the client still sends is unexpected."""
        while True:
            raw = await self._next_message(reader, parser, pending)
            if raw is None:
                return
            self._error(
                f"unexpected action after the end of the script: {_show(parse_message(raw))}"
            )

    def _substitute(self, data: str) -> str:
        if not self._ids or "ActionID: " not in data:
            return data

        def swap(match: re.Match[str]) -> str:
            recorded = match.group(1)
            if recorded not in self._ids:
                return match.group(0)
            client_id = self._ids[recorded]
            # A client that sent no ActionID gets none back, as from Asterisk.
            return "" if client_id is None else f"ActionID: {client_id}\r\n"

        return _ACTION_ID_LINE.sub(swap, data)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if not self.chunk_split:
            writer.write(data)
            await writer.drain()
            return
        start = 0
        for point in [*_split_points(data, self._rng), len(data)]:
            writer.write(data[start:point])
            await writer.drain()
            start = point
            if point < len(data):
                # A pause between pieces makes the client's read() see them separately.
                await asyncio.sleep(self.chunk_delay)

    def _error(self, message: str) -> None:
        log.warning("replay %s: %s", self.transcript.scenario, message)
        self.errors.append(message)


def _show(pairs: Pairs) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"


# -- FastAGI ------------------------------------------------------------------------------


@dataclass(slots=True)
class AgiSession:
    """One recorded FastAGI session: the environment block and the recorded dialogue."""

    env_lines: list[str]
    commands: list[str]
    replies: list[str]


@dataclass(slots=True)
class AgiReplayResult:
    env: dict[str, str]
    args: list[str]
    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    recorded_commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    error: str | None = None


def agi_sessions(transcript: Transcript) -> list[AgiSession]:
    """Split an agi transcript into sessions: each starts at ``agi_network:``."""
    sessions: list[AgiSession] = []
    in_env = False
    for entry in transcript.entries:
        if entry.dir == "in" and entry.data.startswith("agi_network:"):
            sessions.append(AgiSession([], [], []))
            in_env = True
        if not sessions:
            continue
        current = sessions[-1]
        if in_env:
            if entry.data == "\n":
                in_env = False
            else:
                current.env_lines.append(entry.data)
        elif entry.dir == "out":
            current.commands.append(entry.data.rstrip("\n"))
        else:
            current.replies.append(entry.data.rstrip("\n"))
    return sessions


class AgiReplayClient:
    """Connects to a FastAGI server as Asterisk did in a recorded session.

    It sends the recorded ``agi_*`` block, then answers every command the server sends
    generically (``GET VARIABLE`` from the channel's variables, ``SET VARIABLE`` stores...)
    until the server closes the socket, as res_agi does. Values the recording read
    (``GET VARIABLE CALLERID(name)`` -> 张三) are preloaded so that the same questions get
    the recorded answers.
    """

    def __init__(
        self,
        transcript: Transcript | str | Path,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(transcript, Transcript):
            transcript = load_transcript(transcript)
        self.transcript = transcript
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sessions = agi_sessions(transcript)

    async def run(self, index: int = 0) -> AgiReplayResult:
        return await self._run_session(self.sessions[index])

    async def run_all(self) -> list[AgiReplayResult]:
        return [await self._run_session(s) for s in self.sessions]

    async def _run_session(self, session: AgiSession) -> AgiReplayResult:
        env, args = parse_env_lines(session.env_lines)
        channel = DictChannel(variables=_preload(env, session))
        responder = AgiResponder(channel)
        result = AgiReplayResult(env, args, recorded_commands=list(session.commands))
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(("".join(session.env_lines) + "\n").encode("utf-8"))
            await writer.drain()
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.timeout)
                except TimeoutError:
                    result.error = "server stayed silent"
                    break
                if not line:
                    result.closed_by_server = True
                    break
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text:
                    continue
                reply = responder.answer(text)
                result.commands.append(text)
                result.replies.append(reply.rstrip("\n"))
                writer.write(reply.encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        result.variables = dict(responder.variables_set)
        return result


def _preload(env: dict[str, str], session: AgiSession) -> dict[str, str]:
    variables = {
        "CALLERID(name)": env.get("agi_calleridname", ""),
        "CALLERID(num)": env.get("agi_callerid", ""),
        "CHANNEL": env.get("agi_channel", ""),
        "UNIQUEID": env.get("agi_uniqueid", ""),
        "EXTEN": env.get("agi_extension", ""),
        "CONTEXT": env.get("agi_context", ""),
    }
    for command, reply in zip(session.commands, session.replies, strict=False):
        args = split_args(command)
        if [a.upper() for a in args[:2]] == ["GET", "VARIABLE"] and len(args) > 2:
            match = re.match(r"200 result=1 \((.*)\)$", reply)
            if match:
                variables[args[2]] = match.group(1)
    return variables
