"""The asyncio FastAGI server: serves ``agi_scripts`` by script name (``agi://host/route``).

What it guards against (panoramisk's handler spins at 100% CPU on an early close):
- the ``agi_*`` block is read with ``readuntil(b"\\n\\n")`` under a timeout and a size limit,
  so a port scanner, a TCP health check or a slowloris never holds a task or the loop;
- a session that hangs up mid-command (``HANGUP``, 511, or EOF) ends that session only;
- sessions are bounded; a script that raises is logged and its socket closed (Asterisk then
  continues the dialplan: the defaults set before ``AGI()`` take over).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cti.ami.actions import UnsafeValue
from cti.errors import HotlineError
from cti.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_HEADER = 16 * 1024
_RESULT = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_KV = re.compile(r"result=(-?\S*)(?:\s+\((.*)\))?(?:\s+(.*))?")
_UNSAFE = re.compile(r"[\r\n\x00]")


class AgiError(HotlineError):
    """Asterisk answered an AGI command with an error; ``raw`` is its line(s)."""

    def __init__(self, code: int, raw: str) -> None:
        super().__init__(f"AGI {code}: {raw}")
        self.code = code
        self.raw = raw


class AgiHangup(AgiError):
    """The channel hung up (``HANGUP`` line, 511 dead channel, or the socket closed)."""


class AgiInvalidCommand(AgiError):  # 510
    pass


class AgiUsageError(AgiError):  # 520
    pass


@dataclass(frozen=True, slots=True)
class AgiResponse:
    code: int
    result: str
    data: str
    raw: str

    @property
    def value(self) -> str | None:
        """GET VARIABLE: ``result=1 (value)``; ``result=0`` means the variable is unset."""
        return self.data if self.result == "1" else None


def parse_response(line: str) -> AgiResponse:
    m = _RESULT.match(line)
    if not m:
        raise AgiError(0, line)
    code = int(m.group(1))
    rest = m.group(2) or ""
    if code == 200:
        kv = _KV.match(rest)
        if kv is None:
            return AgiResponse(code, "", "", line)
        return AgiResponse(code, kv.group(1), kv.group(2) or "", line)
    if code == 511:
        raise AgiHangup(code, line)
    if code == 510:
        raise AgiInvalidCommand(code, line)
    if code == 520:
        raise AgiUsageError(code, line)
    raise AgiError(code, line)


def quote(value: str) -> str:
    """An AGI argument in double quotes; CR/LF/NUL would end the command line: refused."""
    if _UNSAFE.search(value):
        raise UnsafeValue("CR, LF or NUL not allowed in an AGI argument")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiSession:
    """One FastAGI session: the ``agi_*`` environment and the command channel."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: dict[str, str],
        *,
        command_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.env = env
        self.command_timeout = command_timeout
        self.hung_up = False
        self.started = time.monotonic()
        # When the first command was written (perf_counter): the moment Asterisk has the
        # answer, whatever its reply then takes to come back.
        self.first_sent: float | None = None
        peer = writer.get_extra_info("peername")
        self.peer: str = peer[0] if peer else ""

    @property
    def script(self) -> str:
        return self.env.get("agi_network_script", "").strip("/").split("?")[0]

    @property
    def args(self) -> list[str]:
        out = []
        i = 1
        while f"agi_arg_{i}" in self.env:
            out.append(self.env[f"agi_arg_{i}"])
            i += 1
        return out

    async def command(self, line: str, *, last: bool = False) -> AgiResponse:
        """Send one command and read its answer.

        Asterisk reads a FastAGI socket through a buffered stdio stream: it waits until the
        socket is readable, reads one line, runs it and answers. Lines that arrived with it
        sit in the stdio buffer, unseen, until the socket is readable again (more bytes, or
        the close). Commands written back to back therefore stall after the first answer
        until the server closes the socket. So: one command, its answer, then the next.

        ``last``: no command follows. The write side is shut down with it, so Asterisk finds
        the end of the session as soon as it has run the command, without waiting for this
        side to read the answer and close (0.5-1 ms less per call on a real PBX)."""
        if _UNSAFE.search(line):
            raise UnsafeValue("CR, LF or NUL not allowed in an AGI command")
        if self.hung_up:
            raise AgiHangup(511, "channel already hung up")
        self._writer.write(line.encode("utf-8") + b"\n")
        if self.first_sent is None:
            self.first_sent = time.perf_counter()
        if last and self._writer.can_write_eof():
            self._writer.write_eof()
        await self._writer.drain()
        return await self._response()

    async def commands(self, lines: list[str], *, last: bool = False) -> list[AgiResponse]:
        """Several commands, each sent after the answer to the one before (see ``command``);
        ``last``: they end the session."""
        return [
            await self.command(line, last=last and i == len(lines) - 1)
            for i, line in enumerate(lines)
        ]

    async def _response(self) -> AgiResponse:
        while True:
            raw = await asyncio.wait_for(self._reader.readline(), self.command_timeout)
            if not raw:
                self.hung_up = True
                raise AgiHangup(0, "connection closed")
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text == "HANGUP":
                # Sent asynchronously when the caller hangs up; the answer follows.
                self.hung_up = True
                continue
            if text.startswith("520-"):
                lines = [text]
                while True:
                    more = await asyncio.wait_for(self._reader.readline(), self.command_timeout)
                    if not more:
                        break
                    s = more.decode("utf-8", "replace").rstrip("\r\n")
                    lines.append(s)
                    if s.startswith("520 "):
                        break
                raise AgiUsageError(520, "\n".join(lines))
            return parse_response(text)

    async def set_variable(self, name: str, value: str) -> None:
        await self.set_variables([(name, value)])

    async def set_variables(self, pairs: list[tuple[str, str]], *, last: bool = False) -> None:
        lines = []
        for name, value in pairs:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_()]{0,63}", name):
                raise UnsafeValue(f"bad variable name {name!r}")
            lines.append(f"SET VARIABLE {name} {quote(value)}")
        await self.commands(lines, last=last)

    async def get_variable(self, name: str) -> str | None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_()]{0,63}", name):
            raise UnsafeValue(f"bad variable name {name!r}")
        return (await self.command(f"GET VARIABLE {name}")).value

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote(message)} {int(level)}")


Script = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer:
    def __init__(
        self,
        host: str,
        port: int,
        scripts: dict[str, Script],
        *,
        header_timeout: float = 5.0,
        command_timeout: float = 10.0,
        max_sessions: int = 2000,
    ) -> None:
        self.host = host
        self.port = port
        self.scripts = scripts
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self._slots = asyncio.Semaphore(max_sessions)
        # Seconds from the agi_* block read to the answer's last command, of recent sessions.
        self.durations: collections.deque[float] = collections.deque(maxlen=4096)
        # Seconds from the agi_* block read to the first command written: the CTI's own part
        # of the route (the rest is Asterisk's reply, microseconds on a real PBX).
        self.answer_durations: collections.deque[float] = collections.deque(maxlen=4096)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {
            "sessions": 0,
            "completed": 0,
            "early_close": 0,
            "bad_header": 0,
            "unknown_script": 0,
            "hangups": 0,
            "errors": 0,
            "busy": 0,
        }

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=MAX_HEADER
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("FastAGI listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await cancel_and_wait(*self._tasks)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self._slots.locked():
                self.stats["busy"] += 1
                log.error("FastAGI: %d sessions open, refusing a new one", len(self._tasks))
                return
            async with self._slots:
                await self._session(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["sessions"] += 1
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
        except asyncio.IncompleteReadError:
            self.stats["early_close"] += 1
            log.debug("FastAGI: client closed before the agi_* block ended")
            return
        except (TimeoutError, asyncio.LimitOverrunError, ValueError) as exc:
            self.stats["bad_header"] += 1
            log.warning("FastAGI: no valid agi_* block (%s)", type(exc).__name__)
            return
        env: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").split("\n"):
            key, sep, value = line.partition(":")
            if sep and key.startswith("agi_"):
                env[key] = value.strip()
        session = AgiSession(reader, writer, env, command_timeout=self.command_timeout)
        script = self.scripts.get(session.script)
        if script is None:
            self.stats["unknown_script"] += 1
            log.warning("FastAGI: unknown script %r from %s", session.script, session.peer)
            return
        try:
            started = time.perf_counter()
            await script(session)
            self.durations.append(time.perf_counter() - started)
            if session.first_sent is not None:
                self.answer_durations.append(session.first_sent - started)
            self.stats["completed"] += 1
        except AgiHangup:
            self.stats["hangups"] += 1
            log.info("FastAGI %s: channel hung up mid-script", session.script)
        except (TimeoutError, ConnectionError) as exc:
            self.stats["errors"] += 1
            log.warning("FastAGI %s: %s", session.script, type(exc).__name__)
        except Exception:
            self.stats["errors"] += 1
            log.exception("FastAGI script %s failed", session.script)
