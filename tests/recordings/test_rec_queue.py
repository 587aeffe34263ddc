"""The job queue: claim (compare-and-set / SKIP LOCKED), lease expiry, bounded attempts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recordings import models as m
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.testing import FixedTranscriber
from recordings.worker import JobQueue, Worker

from .conftest import FakeClock, write_call


def _jobs(sf: sessionmaker[Session], n: int, directory: Path | None = None) -> list[int]:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    ids = []
    with sf() as s:
        for i in range(n):
            path = str(directory / "1772.42.wav") if directory else f"/nowhere/{i}.wav"
            rec = m.Recording(
                call_id=f"c{i}",
                node="n",
                ticket_id=f"T{i}",
                agent_id="a1",
                path=path,
                started_at=now,
                ended_at=now,
                status=m.REGISTERED,
            )
            s.add(rec)
            s.flush()
            s.add(m.TranscriptionJob(recording_id=rec.id, created_at=now, updated_at=now))
            ids.append(rec.id)
        s.commit()
    return ids


def _job(sf: sessionmaker[Session], rid: int) -> m.TranscriptionJob:
    with sf() as s:
        job = s.scalar(select(m.TranscriptionJob).where(m.TranscriptionJob.recording_id == rid))
        assert job is not None
        return job


def test_concurrent_claims_never_share_a_job(sf: sessionmaker[Session]) -> None:
    _jobs(sf, 12)
    q = JobQueue(sf, lease_s=60, max_attempts=3)
    got: list[int] = []
    lock = threading.Lock()

    def take(worker: str) -> None:
        while (c := q.claim(worker)) is not None:
            with lock:
                got.append(c.job_id)

    threads = [threading.Thread(target=take, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 12


def test_expired_lease_is_taken_again_and_attempts_are_bounded(
    sf: sessionmaker[Session], clock: FakeClock
) -> None:
    (rid,) = _jobs(sf, 1)
    q = JobQueue(sf, lease_s=10, max_attempts=2, clock=clock)
    first = q.claim("w1")
    assert first is not None and first.attempt == 1
    assert q.claim("w2") is None  # held under w1's lease
    clock.advance(5)
    assert q.renew(first)
    clock.advance(9)
    assert q.claim("w2") is None  # the renewal moved the lease on
    clock.advance(2)
    second = q.claim("w2")
    assert second is not None and (second.job_id, second.attempt) == (first.job_id, 2)
    assert not q.renew(first)  # w1 lost it
    clock.advance(11)  # w2 dies too: that was the last attempt
    assert q.claim("w3") is None
    job = _job(sf, rid)
    assert (job.status, job.attempts) == (m.FAILED, 2)
    assert "w2" in (job.error or "") and "lease expired" in (job.error or "")


def test_errors_are_retried_then_kept(
    sf: sessionmaker[Session], tmp_path: Path, clock: FakeClock
) -> None:
    (rid,) = _jobs(sf, 1)  # its file does not exist: every attempt fails
    trans = TranscriptionSettings(max_attempts=3, lease_s=30)
    recs = RecordingSettings(dir=str(tmp_path))
    worker = Worker(sf, recs, trans, FixedTranscriber(), worker_id="w1", clock=clock)
    for attempt in (1, 2, 3):
        assert worker.run_once() is True
        job = _job(sf, rid)
        assert job.attempts == attempt and "FileNotFoundError" in (job.error or "")
        assert job.status == (m.FAILED if attempt == 3 else m.QUEUED)
        assert worker.run_once() is False  # back-off before the retry
        clock.advance(10)
    assert worker.run_once() is False


def test_a_late_result_from_a_lost_lease_is_dropped(
    sf: sessionmaker[Session], tmp_path: Path, clock: FakeClock
) -> None:
    write_call(tmp_path)
    (rid,) = _jobs(sf, 1, tmp_path)
    q = JobQueue(sf, lease_s=10, max_attempts=3, clock=clock)
    slow = q.claim("slow")
    clock.advance(11)
    fast = q.claim("fast")
    assert slow is not None and fast is not None
    t = FixedTranscriber("x").transcribe_file(str(tmp_path / "1772.42.wav"))
    assert q.complete(fast, t, mask=True)
    assert not q.complete(slow, t, mask=True)
    with sf() as s:
        assert len(list(s.scalars(select(m.TranscriptSegment)))) == 1
    assert _job(sf, rid).status == m.DONE
