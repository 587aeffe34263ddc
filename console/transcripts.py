"""Live transcripts: the rows the live followers write (``recordings.livetext``), relayed to
the desktops by the console's ``LiveHub``.

The relay polls ``live_segments`` on its primary key, and only while it has somebody to tell
and a call of this CTI is being recorded (plus a short while after the last one ended, for
the words decoded at the hangup): a quiet floor, or a console nobody has open, costs no
query. The updates go to the hub directly, not through the bus: they are a view, many per
second on a busy floor, and nothing else in the CTI wants them (the store would only write
them back).

Ids are handed out in insert order but committed in any order (two workers on PostgreSQL), so
each poll looks back ``LOOKBACK`` ids behind the highest seen and skips the ids it already
relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from recordings import models as m

log = logging.getLogger(__name__)

POLL_S = 0.25
# After the last recorded call ended: the follower decodes the last half second, stores it.
LINGER_S = 15.0
LOOKBACK = 200
BATCH = 1000
# A call's lines are kept for the snapshot of a desktop reloaded during the call.
LINES_KEPT = 400
CALL_KEPT_S = 600.0


class LiveTranscripts:
    """Owned by the ``LiveHub``: ``wake`` starts the poll, ``close`` stops it."""

    def __init__(
        self,
        sessions: Any,
        deliver: Callable[[dict[str, Any]], None],
        wanted: Callable[[], bool],
        *,
        poll_s: float = POLL_S,
    ) -> None:
        self.sessions = sessions
        self.deliver = deliver
        self.wanted = wanted  # someone to tell and a recorded call going on
        self.poll_s = poll_s
        self.polls = 0
        self._after = 0
        self._seen: set[int] = set()
        self._started = False
        self._until = 0.0
        self._task: asyncio.Task[None] | None = None
        # call id -> (last update, {(speaker, seq): line})
        self._calls: dict[str, tuple[float, dict[tuple[str, int], dict[str, Any]]]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """A recorded call started or ended, or a desktop connected: poll, if there is a
        reason to, until there is none and the linger has passed."""
        self._until = time.monotonic() + LINGER_S
        if not self.running and self.wanted():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="console-live-transcripts"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def lines(self, call_id: str) -> list[dict[str, Any]]:
        """The call's transcript so far, one line per utterance, in order of time."""
        kept = self._calls.get(call_id)
        if kept is None:
            return []
        return sorted(kept[1].values(), key=lambda x: (x["start"], x["speaker"], x["seq"]))

    async def _run(self) -> None:
        while self.wanted() or time.monotonic() < self._until:
            try:
                rows = await asyncio.to_thread(self.fetch)
            except Exception:  # the database is away for a moment: the next poll retries
                log.exception("live transcripts: poll failed")
                rows = []
            for row in rows:
                self._keep(row)
                self.deliver(row)
            await asyncio.sleep(self.poll_s)

    def fetch(self) -> list[dict[str, Any]]:
        """The rows not relayed yet, as ``LiveTranscript`` events."""
        self.polls += 1
        s = m.LiveSegment
        with self.sessions() as session:
            if not self._started:
                # Relay what the calls going on said before this console started.
                oldest = session.scalar(select(s.id).order_by(s.id).limit(1))
                self._after = (oldest or 1) - 1 + LOOKBACK
                self._started = True
            rows = session.execute(
                select(s).where(s.id > self._after - LOOKBACK).order_by(s.id).limit(BATCH)
            ).scalars()
            out = []
            for r in rows:
                if r.id in self._seen:
                    continue
                self._seen.add(r.id)
                self._after = max(self._after, r.id)
                out.append(
                    {
                        "type": "LiveTranscript",
                        "call_id": r.call_id,
                        "recording_id": r.recording_id,
                        "speaker": r.speaker,
                        "seq": r.seq,
                        "final": r.final,
                        "text": r.text,
                        "start": r.start,
                        "end": r.end,
                        "at": r.at.isoformat(),
                    }
                )
        floor = self._after - LOOKBACK
        self._seen = {i for i in self._seen if i > floor}
        return out

    def _keep(self, row: dict[str, Any]) -> None:
        now = time.monotonic()
        _, lines = self._calls.get(row["call_id"], (now, {}))
        key = (row["speaker"], row["seq"])
        if row["final"] and not row["text"]:
            lines.pop(key, None)
        else:
            lines[key] = row
        if len(lines) > LINES_KEPT:
            for old in sorted(lines, key=lambda k: lines[k]["start"])[: len(lines) - LINES_KEPT]:
                del lines[old]
        self._calls[row["call_id"]] = (now, lines)
        for call_id, (at, _) in list(self._calls.items()):
            if now - at > CALL_KEPT_S:
                del self._calls[call_id]
