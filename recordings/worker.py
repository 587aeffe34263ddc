"""The durable transcription queue and the worker processes that drain it.

Claiming a job is one compare-and-set: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``
picks a row no other worker holds, on SQLite an ``UPDATE … WHERE status/lease/attempts``
that only one worker can win. A claimed job carries a lease that the worker renews while it
decodes; a worker that dies (SIGKILL, power loss) stops renewing, the lease expires and the
job is taken again. Every claim counts an attempt; after ``max_attempts`` the job is failed
with the error kept.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from cti.db import make_engine, session_factory, utcnow
from recordings import models as m
from recordings.layout import local_path
from recordings.live import LiveFollower
from recordings.masking import mask_sequence
from recordings.settings import (
    RecordingSettings,
    TranscriptionSettings,
    load_phrases,
    resolve_model_path,
)
from recordings.transcribe import Transcriber, Transcript

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DEFAULT_ENGINE = "recordings.worker:vosk_engine"
# Back-off before a failed job is tried again.
RETRY_DELAY_S = 5.0
# A job in one of these is held by a worker (under its lease).
HELD = (m.RUNNING, m.FOLLOWING)


class TranscriberLike(Protocol):
    def transcribe_file(self, path: str, *, legs: tuple[str, str] | None = None) -> Transcript: ...


def vosk_engine(recs: RecordingSettings, trans: TranscriptionSettings) -> TranscriberLike:
    """The production engine: one vosk model for this process."""
    return Transcriber(
        resolve_model_path(trans),
        trans.sample_rate,
        load_phrases(trans.phrases),
        decoder=trans.decoder(),
    )


def load_engine(spec: str) -> Callable[[RecordingSettings, TranscriptionSettings], TranscriberLike]:
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    return factory  # type: ignore[no-any-return]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Claim:
    job_id: int
    recording_id: int
    attempt: int
    worker: str


class JobQueue:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        lease_s: float = 300.0,
        max_attempts: int = 3,
        clock: Clock = utcnow,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        self.sf = session_factory
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.clock = clock
        self.retry_delay = timedelta(seconds=retry_delay_s)

    def _claimable(self, now: datetime, live: bool = False) -> Any:
        j = m.TranscriptionJob
        waiting, held = (m.LIVE, m.FOLLOWING) if live else (m.QUEUED, m.RUNNING)
        return and_(
            or_(
                and_(j.status == waiting, or_(j.lease_until.is_(None), j.lease_until <= now)),
                and_(j.status == held, j.lease_until < now),
            ),
            j.attempts < self.max_attempts,
        )

    def claim(self, worker: str, *, live: bool = False) -> Claim | None:
        """Take the oldest claimable job, or None. ``live``: a call still being recorded,
        for a live follower (the job is then ``following``)."""
        self.reap()
        now = self.clock()
        j = m.TranscriptionJob
        values = {
            "status": m.FOLLOWING if live else m.RUNNING,
            "attempts": j.attempts + 1,
            "lease_until": now + self.lease,
            "worker": worker,
            "updated_at": now,
        }
        for _ in range(20):
            with self.sf() as s:
                if s.get_bind().dialect.name == "postgresql":
                    row = s.execute(
                        select(j.id, j.recording_id, j.attempts)
                        .where(self._claimable(now, live))
                        .order_by(j.id)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    ).first()
                    if row is None:
                        return None
                    s.execute(update(j).where(j.id == row.id).values(**values))
                    s.commit()
                    return Claim(row.id, row.recording_id, row.attempts + 1, worker)
                row = s.execute(
                    select(j.id, j.recording_id, j.attempts)
                    .where(self._claimable(now, live))
                    .order_by(j.id)
                    .limit(1)
                ).first()
                s.rollback()  # end the read before writing (no lock upgrade on SQLite)
                if row is None:
                    return None
                res = s.execute(
                    update(j)
                    .where(j.id == row.id, j.attempts == row.attempts, self._claimable(now, live))
                    .values(**values)
                )
                s.commit()
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    return Claim(row.id, row.recording_id, row.attempts + 1, worker)
            # another worker won this row: look again
        return None

    def reap(self) -> int:
        """Fail running jobs whose lease expired on their last allowed attempt; give the
        queue a followed call whose follower died after the call ended."""
        now = self.clock()
        j = m.TranscriptionJob
        held = (m.RUNNING, m.FOLLOWING)
        registered = select(m.Recording.id).where(m.Recording.status == m.REGISTERED)
        with self.sf() as s:
            s.execute(
                update(j)
                .where(
                    or_(
                        and_(j.status == m.FOLLOWING, j.lease_until < now),
                        j.status == m.LIVE,  # handed back as the recording was registered
                    ),
                    j.attempts < self.max_attempts,
                    j.recording_id.in_(registered),
                )
                .values(status=m.QUEUED, lease_until=None, updated_at=now)
            )
            rows = s.execute(
                select(j.id, j.worker, j.attempts).where(
                    j.status.in_(held), j.lease_until < now, j.attempts >= self.max_attempts
                )
            ).all()
            n = 0
            for job_id, worker, attempts in rows:
                res = s.execute(
                    update(j)
                    .where(j.id == job_id, j.status.in_(held), j.lease_until < now)
                    .values(
                        status=m.FAILED,
                        lease_until=None,
                        updated_at=now,
                        error=f"worker {worker} stopped during attempt {attempts} of "
                        f"{self.max_attempts} (lease expired)",
                    )
                )
                n += res.rowcount  # type: ignore[attr-defined]
            s.commit()
        if n:
            log.error("%d transcription job(s) failed: their last worker died", n)
        return n

    def _update_own(self, claim: Claim, held: tuple[str, ...] = HELD, **values: Any) -> bool:
        """Set ``values`` on the job if ``claim``'s worker still holds it (in ``held``)."""
        j = m.TranscriptionJob
        with self.sf() as s:
            res = s.execute(
                update(j)
                .where(j.id == claim.job_id, j.worker == claim.worker, j.status.in_(held))
                .values(updated_at=self.clock(), **values)
            )
            s.commit()
            return res.rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def renew(self, claim: Claim) -> bool:
        return self._update_own(claim, lease_until=self.clock() + self.lease)

    def hand_back(self, claim: Claim) -> None:
        """A live follower stops (its worker is shutting down): the call is free for another
        follower at once, not when the lease runs out, and the attempt is not counted."""
        self._update_own(
            claim,
            (m.FOLLOWING,),
            status=m.LIVE,  # reap() queues it if the recording is registered meanwhile
            attempts=m.TranscriptionJob.attempts - 1,
            lease_until=None,
        )
        self.reap()

    def release(self, claim: Claim, error: str) -> None:
        """A live follower gives the call up (it cannot read the file as it grows, say): the
        job goes back to the queue, taken by a worker once the recording is registered."""
        self._update_own(
            claim, (m.FOLLOWING,), status=m.QUEUED, lease_until=None, error=error[:4000]
        )
        log.warning("job %s: live follow given up: %s", claim.job_id, error)

    def fail(self, claim: Claim, error: str) -> str:
        """Give the job back for a retry, or fail it for good; returns the new status."""
        final = claim.attempt >= self.max_attempts
        status = m.FAILED if final else m.QUEUED
        if not self._update_own(
            claim,
            status=status,
            lease_until=None if final else self.clock() + self.retry_delay,
            error=error[:4000],
        ):
            return "lost"
        log.warning("job %s attempt %d failed (%s): %s", claim.job_id, claim.attempt, status, error)
        return status

    def complete(self, claim: Claim, transcript: Transcript, *, mask: bool) -> bool:
        """Store the segments (masked when ``mask``) if the job is still ours."""
        now = self.clock()
        j = m.TranscriptionJob
        with self.sf() as s:
            res = s.execute(
                update(j)
                .where(j.id == claim.job_id, j.worker == claim.worker, j.status.in_(HELD))
                .values(
                    status=m.DONE, lease_until=None, error=None, rtf=transcript.rtf, updated_at=now
                )
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                s.rollback()
                log.warning("job %s was taken over by another worker: result dropped", claim.job_id)
                return False
            rec = s.get(m.Recording, claim.recording_id)
            ticket = rec.ticket_id if rec else ""
            masked = masked_texts(transcript)
            s.execute(
                delete(m.TranscriptSegment).where(
                    m.TranscriptSegment.recording_id == claim.recording_id
                )
            )
            for seq, (seg, text_masked) in enumerate(zip(transcript.segments, masked, strict=True)):
                s.add(
                    m.TranscriptSegment(
                        recording_id=claim.recording_id,
                        ticket_id=ticket,
                        seq=seq,
                        start=seg.start,
                        end=seg.end,
                        speaker=seg.speaker,
                        text=text_masked if mask else seg.text,
                        text_masked=text_masked,
                        conf=seg.conf,
                    )
                )
            if rec is not None:
                rec.transcript_text = " ".join(
                    masked if mask else [g.text for g in transcript.segments]
                )
                rec.transcribed_at = now
            s.commit()
        return True


def masked_texts(transcript: Transcript) -> list[str]:
    """Each segment's text masked, a speaker's segments taken together (a number may be
    split by a pause)."""
    out = [""] * len(transcript.segments)
    by_speaker: dict[str, list[int]] = {}
    for i, seg in enumerate(transcript.segments):
        by_speaker.setdefault(seg.speaker, []).append(i)
    for idx in by_speaker.values():
        for i, text in zip(
            idx, mask_sequence([transcript.segments[i].text for i in idx]), strict=True
        ):
            out[i] = text
    return out


class Worker:
    """Takes jobs one at a time and transcribes them with one engine (one loaded model)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        recordings: RecordingSettings,
        transcription: TranscriptionSettings,
        engine: TranscriberLike,
        *,
        worker_id: str | None = None,
        clock: Clock = utcnow,
        sweep_s: float = 10.0,
    ) -> None:
        self.sf = session_factory
        self.recordings = recordings
        self.transcription = transcription
        self.engine = engine
        self.worker_id = worker_id or default_worker_id()
        self.queue = JobQueue(
            session_factory,
            lease_s=transcription.lease_s,
            max_attempts=transcription.max_attempts,
            clock=clock,
        )
        self.sweep_s = sweep_s
        self._last_sweep = 0.0

    def run_once(self) -> bool:
        """Process one job if there is one; False when nothing was claimable."""
        claim = self.queue.claim(self.worker_id)
        if claim is None:
            return False
        log.info(
            "job %s (recording %s) attempt %d taken by %s",
            claim.job_id,
            claim.recording_id,
            claim.attempt,
            self.worker_id,
        )
        stop_renewing = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(claim, stop_renewing), name="lease", daemon=True
        )
        renewer.start()
        try:
            path, legs = self._files(claim.recording_id)
            transcript = self.engine.transcribe_file(path, legs=legs)
        except Exception as exc:  # any decoding failure is the job's, not the worker's
            stop_renewing.set()
            renewer.join()
            self.queue.fail(claim, f"{type(exc).__name__}: {exc}")
            return True
        stop_renewing.set()
        renewer.join()
        if self.queue.complete(claim, transcript, mask=self.transcription.mask_numbers):
            log.info(
                "job %s done: %d segments, rtf %.3f",
                claim.job_id,
                len(transcript.segments),
                transcript.rtf,
            )
        return True

    def _renew(self, claim: Claim, stop: threading.Event) -> None:
        interval = max(0.2, self.transcription.lease_s / 3)
        while not stop.wait(interval):
            try:
                if not self.queue.renew(claim):
                    log.warning("job %s: lease lost", claim.job_id)
                    return
            except Exception:
                log.exception("job %s: lease renewal failed", claim.job_id)

    def _files(self, recording_id: int) -> tuple[str, tuple[str, str] | None]:
        with self.sf() as s:
            rec = s.get(m.Recording, recording_id)
            if rec is None:
                raise LookupError(f"recording {recording_id} is gone")
            if rec.status != m.REGISTERED:
                raise FileNotFoundError(f"recording {recording_id} is {rec.status}")
            path = local_path(self.recordings, rec.path)
            legs = rec.legs or {}
            pair = None
            if "in" in legs and "out" in legs:
                pair = (
                    local_path(self.recordings, legs["in"]["path"]),
                    local_path(self.recordings, legs["out"]["path"]),
                )
            return path, pair

    def live_follower(self) -> LiveFollower | None:
        """The live follower of this worker, when live transcription is on and the engine
        decodes streams."""
        t = self.transcription
        if not (t.enabled and t.live and t.live_calls > 0 and hasattr(self.engine, "stream")):
            return None
        return LiveFollower(
            self.queue,
            self.sf,
            self.recordings,
            t,
            self.engine,  # type: ignore[arg-type]
            self.worker_id,
        )

    def run(self, stop: threading.Event, *, drain: bool = False) -> int:
        """Loop until ``stop`` (or, with ``drain``, until no job is claimable). Unless
        draining, a live follower runs beside the loop in a thread of its own."""
        follower = None if drain else self.live_follower()
        thread = None
        if follower is not None:
            thread = threading.Thread(target=follower.run, args=(stop,), name="live", daemon=True)
            thread.start()
        try:
            return self._run(stop, drain=drain)
        finally:
            if thread is not None:
                stop.set()
                thread.join()

    def _run(self, stop: threading.Event, *, drain: bool) -> int:
        done = 0
        while not stop.is_set():
            if self.run_once():
                done += 1
                continue
            self._sweep()
            if drain:
                break
            stop.wait(self.transcription.poll_s)
        return done

    def _sweep(self) -> None:
        if time.monotonic() - self._last_sweep < self.sweep_s:
            return
        self._last_sweep = time.monotonic()
        from recordings.service import RecordingService

        try:
            RecordingService(
                self.sf, self.recordings, transcription=self.transcription
            ).sweep_pending()
        except Exception:
            log.exception("sweeping pending recordings failed")


def run_worker(
    db_url: str,
    recordings: RecordingSettings,
    transcription: TranscriptionSettings,
    *,
    once: bool = False,
    engine: str = DEFAULT_ENGINE,
    worker_id: str | None = None,
) -> int:
    """One worker in this process: load the engine once, then take jobs. Returns jobs done."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Finish the job at hand, then stop (a SIGKILL is what the lease is for).
            signal.signal(sig, lambda *_: stop.set())
    db = make_engine(db_url)
    try:
        transcriber = load_engine(engine)(recordings, transcription)
        worker = Worker(
            session_factory(db), recordings, transcription, transcriber, worker_id=worker_id
        )
        log.info("transcription worker %s ready", worker.worker_id)
        return worker.run(stop, drain=once)
    finally:
        db.dispose()


def _child(
    db_url: str,
    recs: RecordingSettings,
    trans: TranscriptionSettings,
    once: bool,
    engine: str,
    log_level: int,
) -> None:
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(processName)s %(name)s %(levelname)s %(message)s"
    )
    run_worker(db_url, recs, trans, once=once, engine=engine)


def run_workers(
    n: int,
    db_url: str,
    recordings: RecordingSettings,
    transcription: TranscriptionSettings,
    *,
    once: bool = False,
    engine: str = DEFAULT_ENGINE,
) -> int:
    """``n`` worker processes (0 = one per core), each with its own model; 0 if all exit
    cleanly. With ``n == 1`` the worker runs in this process."""
    n = n or transcription.worker_count()
    if n == 1:
        run_worker(db_url, recordings, transcription, once=once, engine=engine)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_child,
            args=(db_url, recordings, transcription, once, engine, logging.getLogger().level),
            name=f"transcribe-{i}",
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.pid and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
    for p in procs:
        p.join()
    return 0 if all(p.exitcode == 0 for p in procs) else 1
