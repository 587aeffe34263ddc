"""AMI peers for the client's tests, on real loopback sockets: a scriptable Asterisk, a port
that accepts and says nothing, one that closes at once, and a port nobody listens on."""

from __future__ import annotations

import asyncio
import contextlib
import socket

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class FakeAsterisk:
    """A scriptable AMI peer: answers Login, then does what the test says."""

    def __init__(self, *, secret: str = "cti-secret", answer: bool = True) -> None:
        self.secret = secret
        self.answer = answer
        self.actions: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.logins = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.extra: dict[str, bytes] = {}

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(BANNER)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                raw = (await reader.readuntil(b"\r\n\r\n")).decode()
                self.actions.append(raw)
                headers = dict(
                    line.split(": ", 1) for line in raw.strip().split("\r\n") if ": " in line
                )
                lower = {k.lower(): v for k, v in headers.items()}
                aid = lower.get("actionid", "")
                action = lower.get("action", "").lower()
                if action == "login":
                    if lower.get("secret") != self.secret:
                        writer.write(
                            f"Response: Error\r\nActionID: {aid}\r\n"
                            "Message: Authentication failed\r\n\r\n".encode()
                        )
                        await writer.drain()
                        writer.close()
                        return
                    self.logins += 1
                    writer.write(
                        f"Response: Success\r\nActionID: {aid}\r\n"
                        "Message: Authentication accepted\r\n\r\n".encode()
                    )
                elif not self.answer:
                    continue  # a dead peer: TCP up, nobody home
                elif action in self.extra:
                    writer.write(self.extra[action].replace(b"{aid}", aid.encode()))
                elif action == "nonsense":
                    writer.write(
                        f"Response: Error\r\nActionID: {aid}\r\nMessage: Invalid/unknown "
                        "command: Nonsense. Use Action: ListCommands to show available "
                        "commands.\r\n\r\n".encode()
                    )
                else:
                    writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
                await writer.drain()


def unused_port() -> int:
    """A loopback port nobody listens on (bound, then released): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class SilentPeer:
    """Accepts and never sends a byte (no banner): a hung Asterisk, or another service.
    With ``banner``, it says that line first and then nothing more."""

    def __init__(self, banner: bytes = b"") -> None:
        self.banner = banner
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        if self.banner:
            writer.write(self.banner)
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        await self.server.wait_closed()


class ClosingPeer:
    """Says Asterisk's banner and closes the socket at once, before any login."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.write(BANNER)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


class FullBacklog:
    """A listening port whose accept queue is full (backlog 0, one connection never
    accepted): the kernel drops further SYNs, so a connect hangs as it does towards a host
    behind a firewall that drops packets."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def start(self) -> int:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        port: int = self.listener.getsockname()[1]
        self.filler.connect(("127.0.0.1", port))
        return port

    def stop(self) -> None:
        self.filler.close()
        self.listener.close()
