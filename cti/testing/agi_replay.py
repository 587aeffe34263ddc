"""Replay recorded FastAGI sessions over real TCP on loopback, from either side.

``AgiReplayClient`` plays Asterisk against a FastAGI server (ours): the recorded ``agi_*``
block, then it answers what the server sends with res_agi's read discipline (one command per
readiness of the socket, see ``StdioLineReader``), so a server that pipelines its commands
stalls here exactly as it stalls on a real Asterisk.

``AgiScriptServer`` plays the recorded CTI against an Asterisk (the simulator, or the replay
client): it writes the recorded commands at their recorded moments and closes when the
recorded CTI closed, keeping what the PBX answered and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from cti.testing.agi_client import AgiSocket
from cti.testing.agi_protocol import AgiResponder, DictChannel, parse_env_lines, split_args
from cti.testing.transcript import Entry, Transcript, load_transcript


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
    # Seconds from the end of the agi_* block to each command being run.
    times: list[float] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    recorded_commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    closed_at: float | None = None  # when the server's close was seen
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
            if entry.data:  # an empty "out" is the server closing
                current.commands.append(entry.data.rstrip("\n"))
        elif entry.data:
            current.replies.append(entry.data.rstrip("\n"))
    return sessions


class AgiReplayClient:
    """Connects to a FastAGI server as Asterisk did in a recorded session.

    It sends the recorded ``agi_*`` block, then answers every command the server sends
    generically (``GET VARIABLE`` from the channel's variables, ``SET VARIABLE`` stores...)
    until the server closes the socket, as res_agi does, one command per readiness of the
    socket. Values the recording read (``GET VARIABLE CALLERID(name)`` -> 张三) are preloaded
    so that the same questions get the recorded answers. ``timeout``: how long a silent
    server is waited for (Asterisk waits for ever).
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
        responder = AgiResponder(DictChannel(variables=_preload(env, session)))
        result = AgiReplayResult(env, args, recorded_commands=list(session.commands))
        sock = AgiSocket()
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: sock, self.host, self.port)
        started = time.monotonic()
        try:
            sock.write(("".join(session.env_lines) + "\n").encode("utf-8"))
            while True:
                try:
                    line = await asyncio.wait_for(self._next_line(sock), self.timeout)
                except TimeoutError:
                    result.error = "server stayed silent"
                    break
                if not line:
                    result.closed_by_server = True
                    break
                if sock.lines.eof and result.closed_at is None:
                    result.closed_at = time.monotonic() - started
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                reply = responder.answer(text)
                result.commands.append(text)
                result.replies.append(reply.rstrip("\n"))
                result.times.append(time.monotonic() - started)
                sock.write(reply.encode("utf-8"))
        finally:
            sock.close()
        if result.closed_by_server and result.closed_at is None:
            result.closed_at = time.monotonic() - started
        result.variables = dict(responder.variables_set)
        return result

    @staticmethod
    async def _next_line(sock: AgiSocket) -> bytes:
        """Wait for the socket to be readable, then one fgets()."""
        while True:
            await sock.wait_readable(None)
            line = sock.lines.fgets()
            if line is not None:
                return line


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


class AgiScriptServer:
    """A FastAGI server that plays the CTI's side of one recorded session (the first).

    After the ``agi_*`` block it writes each recorded command at its recorded time after the
    block (times multiplied by ``speed``; commands recorded together go in one write), and
    closes when the recorded CTI closed (or after its last answer). Like the recorded CTI, it
    writes a step only once the PBX has sent as many lines as it had by then in the
    recording (waiting at most ``reply_timeout``), so a fast replay keeps the recorded
    causality. ``half_close`` shuts only its write side and keeps reading, to see what the
    PBX still answers; otherwise the socket is closed outright, as the recorded CTI did.
    ``received`` holds the PBX's lines as (step, line): the number of steps written before
    the line came, minus one.
    """

    def __init__(
        self,
        transcript: Transcript | str | Path,
        *,
        speed: float = 1.0,
        half_close: bool = False,
        reply_timeout: float = 2.0,
        host: str = "127.0.0.1",
    ) -> None:
        if not isinstance(transcript, Transcript):
            transcript = load_transcript(transcript)
        self.transcript = transcript
        self.speed = speed
        self.half_close = half_close
        self.reply_timeout = reply_timeout
        self.host = host
        self.port = 0
        self.env: dict[str, str] = {}
        self.received: list[tuple[int, str]] = []
        self.closed_at: float | None = None
        self.done = asyncio.Event()
        self.script = cti_script(transcript)
        self._written = 0
        self._arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def recorded(self) -> list[tuple[int, str]]:
        """What the recorded PBX sent, as (step, line) like ``received``."""
        return recorded_replies(self.transcript)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            lines = []
            while (line := await reader.readline()) not in (b"\n", b""):
                lines.append(line.decode("utf-8"))
            self.env, _ = parse_env_lines(lines)
            started = time.monotonic()
            collector = asyncio.ensure_future(self._collect(reader))
            for step in self.script:
                delay = started + step.at * self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._replies(step.replies_before)
                if step.data is None:
                    break
                writer.write(step.data.encode("utf-8"))
                self._written += 1
                await writer.drain()
            self.closed_at = time.monotonic() - started
            if self.half_close:
                writer.write_eof()
                await collector
            else:
                collector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collector
        except ConnectionError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            self.done.set()

    async def _replies(self, count: int) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.reply_timeout):
                while len(self.received) < count:
                    self._arrived.clear()
                    await self._arrived.wait()

    async def _collect(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                self.received.append((self._written - 1, text))
                self._arrived.set()


@dataclass(frozen=True, slots=True)
class ScriptStep:
    at: float  # seconds after the agi_* block
    data: str | None  # what the CTI wrote; None: it closed
    replies_before: int  # lines the PBX had sent (after the block) when the CTI did this


def _first_session(transcript: Transcript) -> list[Entry]:
    """The first session's entries from the end of its agi_* block (its time origin, kept
    first) up to the next session."""
    out: list[Entry] = []
    state = "before"
    for entry in transcript.entries:
        starts = entry.dir == "in" and entry.data.startswith("agi_network:")
        if state == "before":
            state = "env" if starts else state
        elif state == "env":
            if entry.dir == "in" and entry.data == "\n":
                state = "body"
                out.append(entry)
        elif starts:
            break
        else:
            out.append(entry)
    return out


def cti_script(transcript: Transcript) -> list[ScriptStep]:
    """The recorded CTI's steps; commands written within a millisecond of each other with
    no answer between them are one write; a final close after the last answer if the
    recording shows none."""
    entries = _first_session(transcript)
    if not entries:
        return []
    origin = entries[0].t
    steps: list[ScriptStep] = []
    replies = 0
    for entry in entries[1:]:
        if entry.dir == "in":
            replies += bool(entry.data)
            continue
        at = entry.t - origin
        if not entry.data:
            steps.append(ScriptStep(at, None, replies))
            return steps
        last = steps[-1] if steps else None
        together = last is not None and last.replies_before == replies and at - last.at < 0.001
        if last is not None and last.data is not None and together:
            steps[-1] = ScriptStep(last.at, last.data + entry.data, last.replies_before)
        else:
            steps.append(ScriptStep(at, entry.data, replies))
    end = entries[-1].t - origin
    steps.append(ScriptStep(end, None, replies))
    return steps


def recorded_replies(transcript: Transcript) -> list[tuple[int, str]]:
    """The recorded PBX's lines after the agi_* block, as (step, line) (see AgiScriptServer)."""
    entries = _first_session(transcript)
    out: list[tuple[int, str]] = []
    written = 0
    step_at: float | None = None
    answered = False  # a line came since the step began: the next command is a new step
    for entry in entries[1:]:
        if entry.dir == "out":
            if not entry.data:
                break
            if step_at is None or answered or entry.t - step_at >= 0.001:
                written += 1
                step_at, answered = entry.t, False
        elif entry.data:
            out.append((written - 1, entry.data.rstrip("\n")))
            answered = True
    return out
