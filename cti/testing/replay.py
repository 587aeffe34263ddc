"""Replay recorded Asterisk sessions over real TCP on loopback.

``AmiReplayServer`` plays Asterisk's side of an AMI transcript to one client: it writes what
Asterisk wrote and checks that the client sends what the recorded CTI sent. The FastAGI side
is in ``cti.testing.agi_replay`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from pathlib import Path

from cti.testing.agi_replay import (
    AgiReplayClient,
    AgiReplayResult,
    AgiScriptServer,
    AgiSession,
    agi_sessions,
)
from cti.testing.frames import AmiFrameParser, Pairs, format_message, header, parse_message
from cti.testing.list_actions import LIST_ACTIONS, empty_answer
from cti.testing.transcript import Entry, Transcript, fixture_path, load_transcript

__all__ = [
    "AgiReplayClient",
    "AgiReplayResult",
    "AgiScriptServer",
    "AgiSession",
    "agi_sessions",
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
    time). An empty recorded ``in`` closes the socket, as Asterisk did on ``core restart now``;
    if the script goes on with more of Asterisk's output, the next connection continues it.

    Strict mode: at each recorded action the server waits up to ``action_timeout`` for the
    client's next action, which must be the recorded one; its ActionID replaces the recorded
    one in everything Asterisk sent afterwards.

    Lenient mode (``strict=False``), for a client that legitimately acts differently from the
    recorded one (a fixed client): each action the client sends takes the first recorded
    action of the same name not yet taken (preferring one with the same headers) and gets
    that action's recorded answers, at their place in the script, with the client's ActionID.
    An action the recording lacks gets what Asterisk answers it when there is nothing to
    report (``cti.testing.list_actions``; a recorded answer to an action of the same name;
    else ``Response: Success``). The events without an ActionID play in their recorded order;
    at each recorded action the script waits up to ``action_timeout`` for the client to
    send it, so events recorded after an answer do not overtake it. What went differently is
    listed in ``errors``; actions after the end of the script go to ``extra``.
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
        self.extra: list[Pairs] = []
        # Both directions in order: ("asterisk", first line written) / ("client", Action).
        self.timeline: list[tuple[str, str]] = []
        self._rng = random.Random(seed)
        self._ids: dict[str, str | None] = {}
        self._cursor = 0
        self._plan = _Plan(transcript)
        # Lenient mode: recorded action number -> the ActionID of the client action that
        # took it; answers written; actions whose place the script has passed.
        self._claims: dict[int, str | None] = {}
        self._claim_events: dict[int, asyncio.Event] = {}
        self._written: set[int] = set()
        self._passed: set[int] = set()
        self._write_lock = asyncio.Lock()
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
            if not self.strict:
                await self._handle_lenient(reader, writer, parser)
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
            what = f"Action: {want}" if entry.data else "the client to close"
            self._error(f"timed out waiting for {what} (entry {self._cursor})")
            return not self.strict
        if raw is None:
            if not entry.data:  # the recorded client closed here too
                return False
            self._error(f"client closed the connection; expected Action: {want}")
            return False
        if not entry.data:
            self._error(f"expected the client to close, got {_show(parse_message(raw))}")
            return not self.strict
        received = parse_message(raw)
        self.received.append(received)
        self.timeline.append(("client", header(received, "Action") or ""))
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
        first = data.split(b"\r\n", 1)[0].decode("utf-8", errors="replace")
        self.timeline.append(("asterisk", first))
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

    # -- lenient mode ---------------------------------------------------------------------

    async def _handle_lenient(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: AmiFrameParser
    ) -> None:
        actions = asyncio.ensure_future(self._read_actions(reader, writer, parser))
        try:
            await self._play_lenient(writer)
            if not writer.is_closing():
                await actions  # keep answering until the client leaves
        finally:
            actions.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await actions

    async def _play_lenient(self, writer: asyncio.StreamWriter) -> None:
        entries = self.transcript.entries
        previous_t: float | None = None
        while self._cursor < len(entries):
            index, entry = self._cursor, entries[self._cursor]
            if self.speed > 0 and previous_t is not None and entry.t > previous_t:
                await asyncio.sleep((entry.t - previous_t) * self.speed)
            previous_t = entry.t
            if entry.closes:
                self._cursor += 1
                writer.close()
                if not self._more_output():
                    self._done.set()
                return
            number = self._plan.action_at.get(index)
            if number is not None:
                if number not in self._claims:
                    try:
                        await asyncio.wait_for(
                            self._claim_event(number).wait(), self.action_timeout
                        )
                    except TimeoutError:
                        want = header(self._plan.actions[number][1], "Action")
                        self._error(f"timed out waiting for Action: {want} (entry {index})")
                self._passed.add(number)
            elif entry.dir == "in":
                owner = self._plan.owner.get(index)
                if owner is None:
                    await self._write_locked(writer, entry.data.encode("utf-8"))
                elif owner in self._claims and index not in self._written:
                    self._written.add(index)
                    await self._write_locked(writer, self._owned(entry.data, owner))
            self._cursor += 1
        self._done.set()

    async def _read_actions(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: AmiFrameParser
    ) -> None:
        while data := await reader.read(65536):
            for raw in parser.feed(data):
                received = parse_message(raw)
                self.received.append(received)
                self.timeline.append(("client", header(received, "Action") or ""))
                await self._claim(received, writer)

    async def _claim(self, received: Pairs, writer: asyncio.StreamWriter) -> None:
        """Give a client action the recorded action it stands for, or an answer of its own."""
        name = (header(received, "Action") or "").lower()
        segment = self._plan.segment_of(self._cursor)
        candidates = [
            n
            for n, (index, recorded) in enumerate(self._plan.actions)
            if n not in self._claims
            and self._plan.segments[index] == segment
            and (header(recorded, "Action") or "").lower() == name
        ]
        if not candidates:
            if self._done.is_set():
                self.extra.append(received)
            else:
                self._error(f"unrecorded action: {_show(received)}")
            for frame in self._fallback(received):
                await self._write_locked(writer, frame)
            return
        # The next ones in the script first; else the last one it went past (a late client).
        ahead = [n for n in candidates if self._plan.actions[n][0] >= self._cursor]
        ordered = ahead + [n for n in reversed(candidates) if n not in ahead]
        exact = [n for n in ordered[:3] if same_action(self._plan.actions[n][1], received)]
        number = exact[0] if exact else ordered[0]
        if not exact:
            self._error(f"expected {_show(self._plan.actions[number][1])}, got {_show(received)}")
        self._claims[number] = header(received, "ActionID")
        if number in self._passed:
            # Its place in the script went by while the client was late: answer now.
            for index in sorted(self._plan.owned(number)):
                if index < self._cursor and index not in self._written:
                    self._written.add(index)
                    data = self.transcript.entries[index].data
                    await self._write_locked(writer, self._owned(data, number))
        self._claim_event(number).set()

    def _claim_event(self, number: int) -> asyncio.Event:
        return self._claim_events.setdefault(number, asyncio.Event())

    def _owned(self, data: str, number: int) -> bytes:
        """A recorded answer to action ``number`` with the client's ActionID in it."""
        recorded = header(self._plan.actions[number][1], "ActionID")
        client = self._claims[number]

        def swap(match: re.Match[str]) -> str:
            if match.group(1) != recorded:
                return match.group(0)
            return "" if client is None else f"ActionID: {client}\r\n"

        return _ACTION_ID_LINE.sub(swap, data).encode("utf-8")

    def _fallback(self, received: Pairs) -> list[bytes]:
        """The answer to an action the recording lacks."""
        name = header(received, "Action") or ""
        client = header(received, "ActionID")
        channel = header(received, "Channel") or ""
        regex_hangup = name.lower() == "hangup" and len(channel) > 2 and channel[0] == "/"
        if name.lower() in LIST_ACTIONS and (name.lower() != "hangup" or regex_hangup):
            return empty_answer(name, client)
        for number, (_, recorded) in enumerate(self._plan.actions):
            if (header(recorded, "Action") or "").lower() != name.lower():
                continue
            for index in sorted(self._plan.owned(number)):
                data = self.transcript.entries[index].data
                if data.startswith("Response:"):
                    ids = "" if client is None else f"ActionID: {client}\r\n"
                    return [_ACTION_ID_LINE.sub(ids, data, count=1).encode("utf-8")]
        ids_pairs: Pairs = [] if client is None else [("ActionID", client)]
        return [format_message([("Response", "Success"), *ids_pairs])]

    async def _write_locked(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            return
        async with self._write_lock:
            await self._write(writer, data)

    def _error(self, message: str) -> None:
        log.warning("replay %s: %s", self.transcript.scenario, message)
        self.errors.append(message)


def _show(pairs: Pairs) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"


class _Plan:
    """Where the recorded actions are, which recorded answers belong to which action, and
    which connection (segment between closes) each entry belongs to."""

    def __init__(self, transcript: Transcript) -> None:
        self.actions: list[tuple[int, Pairs]] = []
        self.action_at: dict[int, int] = {}
        self.owner: dict[int, int] = {}
        self.segments: list[int] = []
        latest: dict[str, int] = {}
        segment = 0
        for index, entry in enumerate(transcript.entries):
            self.segments.append(segment)
            if entry.closes:
                segment += 1
                latest.clear()
            elif entry.dir == "out" and entry.data:
                pairs = entry.pairs()
                self.action_at[index] = len(self.actions)
                recorded = header(pairs, "ActionID")
                if recorded:
                    latest[recorded] = len(self.actions)
                self.actions.append((index, pairs))
            elif entry.dir == "in":
                match = _ACTION_ID_LINE.search(entry.data)
                if match and match.group(1) in latest:
                    self.owner[index] = latest[match.group(1)]

    def owned(self, number: int) -> list[int]:
        return [index for index, owner in self.owner.items() if owner == number]

    def segment_of(self, index: int) -> int:
        if not self.segments:
            return 0
        return self.segments[min(index, len(self.segments) - 1)]
