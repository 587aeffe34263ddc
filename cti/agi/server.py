"""The asyncio FastAGI server: serves ``agi_scripts`` by script name (``agi://host/route``).

What it guards against (panoramisk's handler spins at 100% CPU on an early close):
- the ``agi_*`` block is gathered by the connection's protocol under a timeout and a size
  limit, so a port scanner, a TCP health check or a slowloris never holds a task or the loop;
  the session starts in the turn of the loop that reads its last bytes;
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
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cti.ami.actions import UnsafeValue
from cti.errors import HotlineError
from cti.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_HEADER = 16 * 1024
_RESULT = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_KV = re.compile(r"result=(-?\S*)(?:\s+\((.*)\))?(?:\s+(.*))?")
_UNSAFE = re.compile(r"[\r\n\x00]")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_()]{0,63}")


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


def set_variable_lines(pairs: list[tuple[str, str]]) -> list[str]:
    """``SET VARIABLE`` commands; a name that is not a dialplan variable's is refused."""
    lines = []
    for name, value in pairs:
        if not _VARIABLE.fullmatch(name):
            raise UnsafeValue(f"bad variable name {name!r}")
        lines.append(f"SET VARIABLE {name} {quote(value)}")
    return lines


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
        # An immediate script's work left for after its answer is written (``after_answer``).
        self._after_answer: list[Callable[[], object]] = []
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
        self.write(line, last=last)
        return await self.reply()

    def write(self, line: str, *, last: bool = False) -> None:
        """Write one command (``command`` without reading its answer: ``reply`` does)."""
        if _UNSAFE.search(line):
            raise UnsafeValue("CR, LF or NUL not allowed in an AGI command")
        if self.hung_up:
            raise AgiHangup(511, "channel already hung up")
        self._writer.write(line.encode("utf-8") + b"\n")
        if self.first_sent is None:
            self.first_sent = time.perf_counter()
        if last and self._writer.can_write_eof():
            self._writer.write_eof()

    async def reply(self) -> AgiResponse:
        """The answer to the command just written."""
        await self._writer.drain()
        return await self._response()

    def close(self) -> None:
        self._writer.close()

    def after_answer(self, fn: Callable[[], object]) -> None:
        """For an immediate script: ``fn`` runs once its first command is written, in the
        same turn of the loop (whatever the write's outcome)."""
        self._after_answer.append(fn)

    def _answered(self) -> None:
        work, self._after_answer = self._after_answer, []
        for fn in work:
            try:
                fn()
            except Exception:
                log.exception("FastAGI %s: after the answer", self.script)

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
        await self.commands(set_variable_lines(pairs), last=last)

    async def get_variable(self, name: str) -> str | None:
        if not _VARIABLE.fullmatch(name):
            raise UnsafeValue(f"bad variable name {name!r}")
        return (await self.command(f"GET VARIABLE {name}")).value

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command(f"VERBOSE {quote(message)} {int(level)}")


Script = Callable[[AgiSession], Awaitable[None]]
# A script whose answer needs no waiting: the commands that end the session (None: closed
# unanswered). See ``FastAgiServer``.
Immediate = Callable[[AgiSession], "list[str] | None"]


class _Connection(asyncio.StreamReaderProtocol):
    """One FastAGI connection. The ``agi_*`` block is gathered here as its bytes arrive, and
    the session begins in the same turn of the loop as its last bytes; what follows (the
    answers to the commands) goes through a ``StreamReader`` as usual."""

    def __init__(self, server: FastAgiServer) -> None:
        self._server = server
        self.reader = asyncio.StreamReader(limit=MAX_HEADER)
        super().__init__(self.reader)
        self._head: bytearray | None = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._server._opened(self):
            self._head = None
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._server.header_timeout, self._header_timeout)

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is None:
            super().data_received(data)
            return
        start = max(0, len(head) - 1)  # the blank line may straddle two reads
        head += data
        end = head.find(b"\n\n", start)
        if end < 0:
            if len(head) > MAX_HEADER:
                self._bad_header(f"an agi_* block over {MAX_HEADER} bytes")
            return
        if end + 2 > MAX_HEADER:
            self._bad_header(f"an agi_* block over {MAX_HEADER} bytes")
            return
        self._head = None
        if self._timer is not None:
            self._timer.cancel()
        if end + 2 < len(head):
            super().data_received(bytes(head[end + 2 :]))
        self._server._begin(self, bytes(head[: end + 1]))

    def eof_received(self) -> bool:
        if self._head is not None:
            self._head = None
            if self._timer is not None:
                self._timer.cancel()
            self._server._ended("early_close")
            log.debug("FastAGI: client closed before the agi_* block ended")
            return False
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._head is not None:  # reset before the block ended
            self._head = None
            self._server._ended("early_close")
        self._server._closed(self)
        super().connection_lost(exc)

    def _header_timeout(self) -> None:
        if self._head is not None:
            self._bad_header(f"no agi_* block in {self._server.header_timeout:.1f} s")

    def _bad_header(self, why: str) -> None:
        self._head = None
        if self._timer is not None:
            self._timer.cancel()
        self._server._ended("bad_header")
        log.warning("FastAGI: no valid agi_* block (%s)", why)
        if self.transport is not None:
            self.transport.abort()


class FastAgiServer:
    """``scripts`` are coroutines given the session. ``immediate`` scripts compute their
    answer without waiting (the route: the decision is in memory): their commands are written
    in the turn of the loop that reads the agi_* block's last bytes, the first with no task
    started before it, and the session then ends as a ``command`` sequence would (each after
    the answer to the one before, the last with the end of this side)."""

    def __init__(
        self,
        host: str,
        port: int,
        scripts: dict[str, Script],
        *,
        immediate: dict[str, Immediate] | None = None,
        header_timeout: float = 5.0,
        command_timeout: float = 10.0,
        max_sessions: int = 2000,
    ) -> None:
        self.host = host
        self.port = port
        self.scripts = scripts
        self.immediate = immediate or {}
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        # Seconds from the agi_* block read to the answer's last command, of recent sessions.
        self.durations: collections.deque[float] = collections.deque(maxlen=4096)
        # Seconds from the agi_* block read to the first command written: the CTI's own part
        # of the route (the rest is Asterisk's reply, microseconds on a real PBX).
        self.answer_durations: collections.deque[float] = collections.deque(maxlen=4096)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("FastAGI listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await cancel_and_wait(*self._tasks)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        self._connections.clear()
        if server is not None:
            await server.wait_closed()

    # --- from the connections ---------------------------------------------------------------

    def _opened(self, conn: _Connection) -> bool:
        if len(self._connections) >= self.max_sessions:
            self.stats["busy"] += 1
            log.error("FastAGI: %d sessions open, refusing a new one", len(self._connections))
            return False
        self._connections.add(conn)
        self.stats["sessions"] += 1
        return True

    def _closed(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    def _ended(self, outcome: str) -> None:
        self.stats[outcome] += 1

    def _begin(self, conn: _Connection, block: bytes) -> None:
        env: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").split("\n"):
            key, sep, value = line.partition(":")
            if sep and key.startswith("agi_"):
                env[key] = value.strip()
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        writer = asyncio.StreamWriter(conn.transport, conn, conn.reader, loop)
        session = AgiSession(conn.reader, writer, env, command_timeout=self.command_timeout)
        name = session.script
        started = time.perf_counter()
        immediate = self.immediate.get(name)
        if immediate is not None:
            try:
                lines = immediate(session)
                if lines:
                    session.write(lines[0], last=len(lines) == 1)
            except Exception as exc:
                self._failed(session, exc)
                writer.close()
                return
            finally:
                session._answered()
            self._spawn(self._finish(session, started, lines or []))
            return
        script = self.scripts.get(name)
        if script is None:
            self.stats["unknown_script"] += 1
            log.warning("FastAGI: unknown script %r from %s", name, session.peer)
            writer.close()
            return
        self._spawn(self._run(session, started, script))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, session: AgiSession, started: float, lines: list[str]) -> None:
        """An immediate script's session: the first command was written already."""

        async def rest() -> None:
            if not lines:
                return  # closed unanswered
            await session.reply()
            for i, line in enumerate(lines[1:], start=2):
                await session.command(line, last=i == len(lines))

        await self._run(session, started, lambda _s: rest())

    async def _run(
        self,
        session: AgiSession,
        started: float,
        script: Callable[[AgiSession], Awaitable[None]],
    ) -> None:
        try:
            await script(session)
            self.durations.append(time.perf_counter() - started)
            if session.first_sent is not None:
                self.answer_durations.append(session.first_sent - started)
            self.stats["completed"] += 1
        except Exception as exc:
            self._failed(session, exc)
        finally:
            session.close()

    def _failed(self, session: AgiSession, exc: Exception) -> None:
        if isinstance(exc, AgiHangup):
            self.stats["hangups"] += 1
            log.info("FastAGI %s: channel hung up mid-script", session.script)
        elif isinstance(exc, TimeoutError | ConnectionError):
            self.stats["errors"] += 1
            log.warning("FastAGI %s: %s", session.script, type(exc).__name__)
        else:
            self.stats["errors"] += 1
            log.error("FastAGI script %s failed", session.script, exc_info=(type(exc), exc, None))
