"""The simulator's manager interface: TCP sessions, Login, event filtering, dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING

from cti.tasks import cancel_and_wait
from cti.testing.frames import AmiFrameParser, Pairs, format_message, header, parse_message

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EVENT_CLASSES = frozenset(
    {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message"}
)  # fmt: skip


def event_mask(value: str | None) -> frozenset[str] | None:
    """Login's ``Events:`` header -> the classes to deliver (None = everything).

    Like manager.c's strings_to_mask: on/yes/all/true = everything, off/no/false/empty =
    nothing, otherwise a comma list of classes.
    """
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("on", "yes", "all", "true", "1"):
        return None
    if lowered in ("off", "no", "false", "0", ""):
        return frozenset()
    classes = frozenset(part.strip() for part in lowered.split(",") if part.strip())
    return None if "all" in classes else classes & EVENT_CLASSES


class AmiSession:
    def __init__(
        self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username = ""
        self.mask: frozenset[str] | None = None
        self.session_id = f"0x{secrets.token_hex(6)}"
        self.started = time.time()
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/{local[0]}/{local[1]}"
        self.closing = False

    def accepts(self, privilege: str | None) -> bool:
        if not self.authenticated or privilege is None:
            return False
        if self.mask is None:
            return True
        return any(cls in self.mask for cls in privilege.split(",") if cls != "all")

    def send(self, pairs: Pairs) -> None:
        if self.closing or self.writer.is_closing():
            return
        self.writer.write(format_message(pairs))

    def respond(self, request: Pairs, response: str, *fields: tuple[str, str]) -> None:
        head: Pairs = [("Response", response)]
        action_id = header(request, "ActionID")
        if action_id:  # manager.c echoes a non-empty ActionID only
            head.append(("ActionID", action_id))
        self.send(head + list(fields))

    def error(self, request: Pairs, message: str) -> None:
        self.respond(request, "Error", ("Message", message))

    def success(self, request: Pairs, message: str | None = None) -> None:
        if message is None:
            self.respond(request, "Success")
        else:
            self.respond(request, "Success", ("Message", message))

    def close(self) -> None:
        self.closing = True
        self.writer.close()


class AmiServer:
    def __init__(self, sim: AsteriskSimulator) -> None:
        self.sim = sim
        self.port = 0
        self.sessions: set[AmiSession] = set()
        # Actions received, by name as sent (a CTI retrying in a loop shows here).
        self.action_counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close_listener_and_sessions(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # A restart closes the sockets with no Shutdown event reaching the clients.
        for session in list(self.sessions):
            session.close()
        await self._cancel_handlers()

    async def stop(self) -> None:
        await self.close_listener_and_sessions()

    async def _cancel_handlers(self) -> None:
        current = asyncio.current_task()
        await cancel_and_wait(*(t for t in self._handlers if t is not current))

    def broadcast(self, name: str, privilege: str | None, pairs: Pairs) -> None:
        for session in list(self.sessions):
            if session.accepts(privilege):
                session.send(pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from cti.testing.ami_actions import dispatch

        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        parser = AmiFrameParser()
        try:
            writer.write(BANNER)
            while not session.closing:
                data = await reader.read(65536)
                if not data:
                    break
                for raw in parser.feed(data):
                    request = parse_message(raw)
                    self.action_counts[header(request, "Action") or ""] += 1
                    await dispatch(self.sim, session, request)
                    if session.closing:
                        break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Cancelled by stop(): end the session quietly. Left to propagate, asyncio's stream
            # callback logs the cancelled handler as an error at every shutdown.
            pass
        finally:
            self.sessions.discard(session)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
