"""Minimal peers for driving the simulator in tests: a raw AMI client and a FastAGI stub."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cti.testing.frames import AmiFrameParser, Pairs, format_message, header, parse_message


class RawAmiClient:
    """Reads every message into ``messages``; ``action()`` waits for the matching response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.messages: list[Pairs] = []
        self.times: list[float] = []  # when each message arrived (loop time)
        self.banner = b""
        self.closed = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._changed = asyncio.Event()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        parser = AmiFrameParser(expect_banner=True)
        try:
            while data := await self._reader.read(65536):
                for raw in parser.feed(data):
                    if raw.startswith(b"Asterisk Call Manager/"):
                        self.banner = raw
                        continue
                    self.messages.append(parse_message(raw))
                    self.times.append(asyncio.get_running_loop().time())
                    self._changed.set()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    def send(self, **headers: str) -> str:
        self._seq += 1
        action_id = headers.pop("ActionID", f"t-{self._seq}")
        pairs = [("Action", headers.pop("Action")), *headers.items(), ("ActionID", action_id)]
        assert self._writer is not None
        self._writer.write(format_message(pairs))
        return action_id

    async def action(self, **headers: str) -> Pairs:
        timeout = float(headers.pop("timeout", "5"))
        action_id = self.send(**headers)
        return await self.wait_for(
            lambda m: header(m, "Response") is not None and header(m, "ActionID") == action_id,
            timeout,
        )

    async def login(self, username: str = "cti", secret: str = "cti-secret", **extra: str) -> Pairs:
        await self.connect()
        return await self.action(Action="Login", Username=username, Secret=secret, **extra)

    async def wait_for(
        self, predicate: Callable[[Pairs], bool], timeout: float = 5.0, start: int = 0
    ) -> Pairs:
        async def scan() -> Pairs:
            index = start
            while True:
                while index < len(self.messages):
                    message = self.messages[index]
                    index += 1
                    if predicate(message):
                        return message
                if self.closed.is_set():
                    raise ConnectionError("AMI connection closed")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_event(self, name: str, timeout: float = 5.0, **fields: str) -> Pairs:
        def match(m: Pairs) -> bool:
            return header(m, "Event") == name and all(header(m, k) == v for k, v in fields.items())

        return await self.wait_for(match, timeout)

    def events(self, name: str | None = None) -> list[Pairs]:
        out = [m for m in self.messages if header(m, "Event") is not None]
        return out if name is None else [m for m in out if header(m, "Event") == name]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class FastAgiStub:
    """A FastAGI ``route`` server that answers like the CTI does: reads the caller's name and
    number, sets HOTLINE_ROUTE (ticket|hold|target|recording), then closes. With
    ``ticket=False`` it sets nothing: the dialplan then leaves the citizen's defaults.

    ``route(env) -> target`` picks the seat; ``silent=True`` accepts and never answers (a
    stalled CTI); ``pipelined=True`` writes all its commands at once and closes
    ``close_after`` seconds later, as the CTI did before it learnt that Asterisk runs one
    command per read of the socket."""

    route: Callable[[dict[str, str]], str] = lambda env: ""
    hold: bool = False
    rec_dir: str = "/var/spool/asterisk/rig/rec"
    silent: bool = False
    pipelined: bool = False
    close_after: float = 3.0
    ticket: bool = True
    sessions: list[dict[str, str]] = field(default_factory=list)
    replies: list[list[str]] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # what a silent stub was told (HANGUP)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
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

    def commands(self, env: dict[str, str]) -> list[str]:
        uid = env.get("agi_arg_2") or env.get("agi_uniqueid", "x")
        target = self.route(env)
        commands = ["GET VARIABLE CALLERID(name)", "GET VARIABLE CALLERID(num)"]
        if self.ticket:
            route = f"T-{len(self.sessions)}|{int(self.hold)}|{target}|{self.rec_dir}/{uid}.wav"
            commands.append(f'SET VARIABLE HOTLINE_ROUTE "{route}"')
        commands.append('VERBOSE "routed by capture rig" 1')
        return commands

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            env: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\n", b""):
                key, _, value = line.decode().rstrip("\n").partition(": ")
                env[key] = value
            self.sessions.append(env)
            if self.silent:
                # Until the PBX gives up (it never does); it may say HANGUP meanwhile.
                while line := await reader.readline():
                    self.heard.append(line.decode().rstrip("\n"))
                return
            commands = self.commands(env)
            replies: list[str] = []
            self.replies.append(replies)
            if self.pipelined:
                writer.write("".join(c + "\n" for c in commands).encode())
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    while len(replies) < len(commands):
                        line = await asyncio.wait_for(reader.readline(), self.close_after)
                        replies.append(line.decode().rstrip("\n"))
                return
            for command in commands:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                replies.append((await reader.readline()).decode().rstrip("\n"))
        except ConnectionError:
            pass  # the PBX went away (hung up the helper channel, or stopped)
        finally:
            self._handlers.discard(task)
            writer.close()
