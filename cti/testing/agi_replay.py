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
from cti.testing.transcript import Transcript, load_transcript


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
    """A FastAGI server that plays the CTI's side of one recorded session.

    After the ``agi_*`` block it writes each recorded command at its recorded time after the
    block (times multiplied by ``speed``; commands recorded together go in one write), then
    closes when the recorded CTI closed. ``half_close`` shuts only its write side and keeps
    reading, to see what the PBX still answers; otherwise the socket is closed outright, as
    the recorded CTI did. ``received`` holds the PBX's lines with their times.
    """

    def __init__(
        self,
        transcript: Transcript | str | Path,
        *,
        speed: float = 1.0,
        half_close: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        if not isinstance(transcript, Transcript):
            transcript = load_transcript(transcript)
        self.transcript = transcript
        self.speed = speed
        self.half_close = half_close
        self.host = host
        self.port = 0
        self.env: dict[str, str] = {}
        self.received: list[tuple[float, str]] = []
        self.closed_at: float | None = None
        self.done = asyncio.Event()
        self._script = _cti_script(transcript)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
            collector = asyncio.ensure_future(self._collect(reader, started))
            for at, data in self._script:
                delay = started + at * self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:
                    break
                writer.write(data.encode("utf-8"))
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

    async def _collect(self, reader: asyncio.StreamReader, started: float) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                self.received.append((time.monotonic() - started, text))


def _cti_script(transcript: Transcript) -> list[tuple[float, str | None]]:
    """(seconds after the agi_* block, what the CTI wrote; None = it closed), commands
    written within a millisecond of each other merged into one write."""
    script: list[tuple[float, str | None]] = []
    env_end: float | None = None
    for entry in transcript.entries:
        if env_end is None:
            if entry.dir == "in" and entry.data == "\n":
                env_end = entry.t
            continue
        if entry.dir != "out":
            continue
        at = entry.t - env_end
        if not entry.data:
            script.append((at, None))
            break
        if script and script[-1][1] is not None and at - script[-1][0] < 0.001:
            script[-1] = (script[-1][0], f"{script[-1][1]}{entry.data}")
        else:
            script.append((at, entry.data))
    return script
