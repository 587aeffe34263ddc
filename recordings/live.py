"""Live transcription: calls decoded while MixMonitor writes them.

Decoding a recording after the hangup makes the citizen's words reach the ticket a real-time
factor times the call's length later (tens of seconds for a five-minute call). A live follower
instead reads each leg file as it grows and feeds a recogniser as the call goes on; when the
recording is registered (MixMonitor stopped, the file closed) only the last fraction of a
second is left to decode, so the transcript is stored moments after the hangup whatever the
length of the call.

The follower is a thread of a transcription worker process and shares its model. It takes
``live`` jobs from the same durable queue (under a lease it renews, as the batch path does);
a follower that dies leaves the job to another follower, or to the batch path once the call
has ended. Anything it cannot follow (a file format other than 16-bit mono at the model's
rate) it gives back to the queue.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from sqlalchemy import select

from cti.db import utcnow
from recordings import models as m
from recordings.layout import leg_paths, local_path
from recordings.livetext import LiveText, LiveUpdate, prune, write_updates
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.transcribe import AGENT, CITIZEN, MIXED, Segment, Transcript

log = logging.getLogger(__name__)


class UnsupportedLiveFormat(Exception):
    """The file cannot be decoded as it grows (left to the batch path)."""


class WavTail:
    """Reads a WAV file that is still being written: the header first (its sizes are not
    final until the writer closes the file), then whatever audio was added since."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rate = 0
        self._fh: BinaryIO | None = None
        self._data_at = 0
        self._pos = 0

    def read_new(self, max_bytes: int = 1 << 22) -> bytes:
        """The whole 16-bit samples written since the last call (b"" if none yet)."""
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 (kept open while following)
            except FileNotFoundError:
                return b""
        if not self._data_at:
            try:
                if not self._header():
                    return b""
            except UnsupportedLiveFormat:
                self.close()
                raise
        self._fh.seek(self._pos)
        data = self._fh.read(max_bytes)
        data = data[: len(data) - len(data) % 2]
        self._pos += len(data)
        return data

    def _header(self) -> bool:
        assert self._fh is not None
        self._fh.seek(0)
        head = self._fh.read(4096)
        if len(head) < 12:
            return False
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise UnsupportedLiveFormat(f"{self.path}: not a RIFF/WAVE file")
        at = 12
        fmt_seen = False
        while at + 8 <= len(head):
            cid, size = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
            body = at + 8
            if cid == b"fmt ":
                if body + 16 > len(head):
                    return False
                tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, body)
                if tag not in (1, 0xFFFE) or channels != 1 or bits != 16:
                    raise UnsupportedLiveFormat(
                        f"{self.path}: format {tag}, {channels} channel(s), {bits} bits"
                    )
                self.rate = rate
                fmt_seen = True
            elif cid == b"data":
                if not fmt_seen:
                    raise UnsupportedLiveFormat(f"{self.path}: data before fmt")
                self._data_at = self._pos = body
                return True
            at = body + size + (size & 1)
        return False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class StreamLike(Protocol):
    speaker: str
    busy_s: float

    @property
    def audio_s(self) -> float: ...

    def feed(self, pcm: bytes) -> None: ...

    def finish(self) -> list[Segment]: ...


class StreamingEngine(Protocol):
    sample_rate: int

    def stream(self, speaker: str = MIXED) -> StreamLike: ...


@dataclass(slots=True)
class _Leg:
    tail: WavTail
    stream: StreamLike
    text: LiveText


@dataclass(slots=True)
class _Followed:
    claim: object  # recordings.worker.Claim
    recording_id: int
    local: str
    call_id: str = ""
    legs: list[_Leg] = field(default_factory=list)
    renewed: float = field(default_factory=time.monotonic)


class LiveFollower:
    """Follows up to ``transcription.live_calls`` calls at once for one worker process."""

    def __init__(
        self,
        queue: object,  # recordings.worker.JobQueue
        sessions: Callable[[], object],
        recordings: RecordingSettings,
        transcription: TranscriptionSettings,
        engine: StreamingEngine,
        worker_id: str,
    ) -> None:
        self.queue = queue
        self.sf = sessions
        self.recordings = recordings
        self.transcription = transcription
        self.engine = engine
        self.worker_id = worker_id
        self.followed: dict[int, _Followed] = {}
        self.completed = 0
        self.last_round_s = 0.0

    # --- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        log.info("live follower of %s: up to %d calls", self.worker_id, self.capacity)
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("live follower step failed")
            stop.wait(self.transcription.live_poll_s)
        for f in list(self.followed.values()):
            self._close(f)
            try:
                self.queue.hand_back(f.claim)  # type: ignore[attr-defined]
            except Exception:  # the lease runs out: another follower or the queue takes it
                log.exception("recording %s: not handed back", f.recording_id)

    @property
    def capacity(self) -> int:
        return self.transcription.live_calls

    def step(self) -> None:
        """One round: take new calls, decode what was written, finish the calls that ended.

        A follower whose last round took most of the poll interval is at its core's limit:
        it takes no more calls (another worker's follower will, or the batch path)."""
        if self.last_round_s < self.transcription.live_poll_s * 0.8 or not self.followed:
            self._take()
        if not self.followed:
            return
        started = time.monotonic()
        statuses = self._statuses()
        for rid, f in list(self.followed.items()):
            status = statuses.get(rid, m.LOST)
            try:
                self._pump(f)
                self._publish(f)
                if status == m.REGISTERED:
                    self._finish(f)
                elif status != m.RECORDING and status != m.PENDING:
                    self._drop(f, f"recording is {status}")
            except UnsupportedLiveFormat as exc:
                self._close(f)
                self.queue.release(f.claim, str(exc))  # type: ignore[attr-defined]
            except Exception as exc:
                self._close(f)
                self.queue.fail(f.claim, f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
        self._renew()
        self.last_round_s = time.monotonic() - started

    def _take(self) -> None:
        while len(self.followed) < self.capacity:
            claim = self.queue.claim(self.worker_id, live=True)  # type: ignore[attr-defined]
            if claim is None:
                return
            with self.sf() as s:  # type: ignore[attr-defined]
                rec = s.get(m.Recording, claim.recording_id)
                path = rec.path if rec is not None else ""
                call_id = rec.call_id if rec is not None else ""
            self.followed[claim.recording_id] = _Followed(
                claim, claim.recording_id, local_path(self.recordings, path), call_id
            )
            log.info("recording %s followed live by %s", claim.recording_id, self.worker_id)

    def _statuses(self) -> dict[int, str]:
        with self.sf() as s:  # type: ignore[attr-defined]
            rows = s.execute(
                select(m.Recording.id, m.Recording.status).where(
                    m.Recording.id.in_(list(self.followed))
                )
            ).all()
        return {rid: status for rid, status in rows}

    def _renew(self) -> None:
        interval = self.transcription.lease_s / 3
        now = time.monotonic()
        for f in list(self.followed.values()):
            if now - f.renewed < interval:
                continue
            f.renewed = now
            if not self.queue.renew(f.claim):  # type: ignore[attr-defined]
                log.warning("recording %s: live lease lost", f.recording_id)
                self._close(f)

    # --- one call ----------------------------------------------------------------------

    def _open_legs(self, f: _Followed) -> bool:
        """Start decoding once the files are there: both legs (citizen, agent), or the mixed
        file alone when Asterisk writes no legs."""
        if f.legs:
            return True
        if self.recordings.legs:
            received, transmitted = leg_paths(f.local)
            files = [(CITIZEN, received), (AGENT, transmitted)]
        else:
            files = [(MIXED, f.local)]
        tails = [(spk, WavTail(p)) for spk, p in files]
        # The header is read on the first read; a leg not there yet is looked for next round.
        first = [t.read_new() for _, t in tails]
        if any(not t.rate for _, t in tails):
            for _, t in tails:
                t.close()
            return False
        for _, t in tails:
            if t.rate != self.engine.sample_rate:
                for _, other in tails:
                    other.close()
                raise UnsupportedLiveFormat(
                    f"{t.path}: {t.rate} Hz, the model takes {self.engine.sample_rate} Hz"
                )
        f.legs = [_Leg(t, self.engine.stream(spk), LiveText(spk)) for spk, t in tails]
        for leg, pcm in zip(f.legs, first, strict=True):
            if pcm:
                leg.stream.feed(pcm)
        return True

    def _pump(self, f: _Followed) -> None:
        if not self._open_legs(f):
            return
        for leg in f.legs:
            while pcm := leg.tail.read_new():
                leg.stream.feed(pcm)

    def _publish(self, f: _Followed) -> None:
        """Write what changed in the call's live view (``recordings.livetext``) for the
        desktops: partial results as the recogniser goes, finals at its endpoints."""
        updates: list[LiveUpdate] = []
        for leg in f.legs:
            progress = getattr(leg.stream, "progress", None)
            if progress is not None:  # an engine that cannot tell partials shows nothing
                closed, partial = progress()
                updates += leg.text.update(closed, partial, leg.stream.audio_s)
        if not updates:
            return
        with self.sf() as s:  # type: ignore[attr-defined]
            write_updates(s, f.recording_id, f.call_id, updates, utcnow())
            s.commit()

    def _finish(self, f: _Followed) -> None:
        """The recording is registered: the files are closed. Decode the rest and store."""
        if not f.legs:  # never saw the files while the call went on
            self._close(f)
            self.queue.release(f.claim, "files not seen during the call")  # type: ignore[attr-defined]
            return
        self._pump(f)
        segments: list[Segment] = []
        late: list[LiveUpdate] = []
        busy = audio = duration = 0.0
        for leg in f.legs:
            segments += leg.stream.finish()
            if hasattr(leg.stream, "progress"):
                # The last words, decoded at the hangup, reach the desktops as finals too.
                closed, _ = leg.stream.progress()  # type: ignore[attr-defined]
                for u in leg.text.update(closed, "", leg.stream.audio_s):
                    late.append(u)
            busy += leg.stream.busy_s
            audio += leg.stream.audio_s
            duration = max(duration, leg.stream.audio_s)
            leg.tail.close()
        segments.sort(key=lambda s: (s.start, s.end, s.speaker))
        transcript = Transcript(
            text=" ".join(s.text for s in segments),
            segments=tuple(segments),
            duration_s=duration,
            audio_s=audio,
            elapsed_s=busy,
            speakers=tuple(leg.stream.speaker for leg in f.legs),
        )
        del self.followed[f.recording_id]
        with self.sf() as s:  # type: ignore[attr-defined]
            write_updates(s, f.recording_id, f.call_id, late, utcnow())
            prune(s, utcnow())
            s.commit()
        if self.queue.complete(  # type: ignore[attr-defined]
            f.claim, transcript, mask=self.transcription.mask_numbers
        ):
            self.completed += 1
            log.info(
                "recording %s transcribed live: %d segments, rtf %.3f",
                f.recording_id,
                len(segments),
                transcript.rtf,
            )

    def _drop(self, f: _Followed, why: str) -> None:
        self._close(f)
        self.queue.fail(f.claim, why)  # type: ignore[attr-defined]

    def _close(self, f: _Followed) -> None:
        self.followed.pop(f.recording_id, None)
        for leg in f.legs:
            leg.tail.close()
            try:
                leg.stream.finish()  # gives the recogniser back to the pool
            except Exception:
                log.debug("stream of recording %s not finished cleanly", f.recording_id)
        f.legs = []
