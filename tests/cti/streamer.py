"""Stream a recorded AMI transcript to a real client over loopback TCP.

Unlike ``cti.testing.AmiReplayServer`` (which checks the client's actions against the
recorded ones), this plays what Asterisk sent: the banner, the answer to the client's Login
(with its ActionID), then every recorded message in order. It lets the CTI's own client
(which sends its own resync and heartbeat actions) ingest the real event stream; actions
the transcript cannot answer get a generic ``Response: Success``, and list actions what
Asterisk answers when it has nothing to list (``cti.testing.list_actions``: an empty list, or
for some an error such as "No Contacts found").
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

from cti.testing import load_transcript
from cti.testing.list_actions import LIST_ACTIONS, empty_answer

_ACTION = re.compile(r"^Action: *(.+?)\r$", re.MULTILINE | re.IGNORECASE)
_ACTION_ID = re.compile(r"^ActionID: *(.+?)\r$", re.MULTILINE | re.IGNORECASE)


class TranscriptStreamer:
    def __init__(
        self,
        path: str | Path,
        *,
        split: int = 0,
        hold_until_login: bool = True,
        close_at_end: bool = False,
        pause_s: float = 0.0,
    ) -> None:
        self.transcript = load_transcript(path)
        self.split = split  # write each message in pieces of this many bytes (0: whole)
        self.close_at_end = close_at_end
        self.pause_s = pause_s
        self.hold_until_login = hold_until_login
        self.port = 0
        self.connections = 0
        self.actions: list[str] = []
        self.done = asyncio.Event()
        self.error: Exception | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            await self._server.wait_closed()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.split <= 0:
            writer.write(data)
        else:
            for i in range(0, len(data), self.split):
                writer.write(data[i : i + self.split])
                await writer.drain()
        await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        entries = [e for e in self.transcript.entries if e.dir == "in"]
        if self.connections > 1:
            # The recording was played once; a reconnecting client finds a quiet PBX.
            entries = entries[:2]
        try:
            await self._write(writer, entries[0].data.encode())
            login_id = await self._read_login(reader)
            responder = asyncio.create_task(self._answer_actions(reader, writer))
            self._tasks.add(responder)
            first = True
            for entry in entries[1:]:
                if entry.closes:
                    break
                data = entry.data
                if first:
                    data = _ACTION_ID.sub(f"ActionID: {login_id}\r", data, count=1)
                    first = False
                elif "ActionID:" in data:
                    # Answers to the recorded client's actions: keep them (they exercise the
                    # "response to an unknown action" path) but they match nothing of ours.
                    pass
                await self._write(writer, data.encode())
                if self.pause_s:
                    await asyncio.sleep(self.pause_s)
            self.done.set()
            if self.close_at_end or any(e.closes for e in entries[1:]):
                # Let the client read everything and answer its pending actions first: closing
                # a socket with unread input sends a RST, and the peer then drops whatever it
                # had received but not yet read.
                await asyncio.sleep(0.5)
                responder.cancel()
                writer.close()
                return
            await responder
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:
            self.error = exc
            raise
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read_login(self, reader: asyncio.StreamReader) -> str:
        raw = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.actions.append(raw)
        m = _ACTION_ID.search(raw)
        return m.group(1) if m else ""

    async def _answer_actions(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await self._answer_loop(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    async def _answer_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            raw = (await reader.readuntil(b"\r\n\r\n")).decode()
            self.actions.append(raw)
            action = (_ACTION.search(raw) or [None, ""])[1].lower()
            aid = (_ACTION_ID.search(raw) or [None, ""])[1]
            if action in LIST_ACTIONS:
                out = b"".join(empty_answer(action, aid or None))
            else:
                out = f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode()
            writer.write(out)
            await writer.drain()
