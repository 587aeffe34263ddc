"""A real worker process killed with SIGKILL in the middle of a job: the job is taken again
once the lease expires, and completes; attempts stay bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.db import utcnow
from recordings import models as m
from recordings.service import RecordingService
from recordings.settings import RecordingSettings

from .conftest import ROOT, write_call

pytestmark = pytest.mark.slow

LEASE_S = 2.0


@pytest.fixture
def spawn(db_url: str) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(engine: str, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "recordings", "transcribe-worker", "--db", db_url,
            "--workers", "1", "--lease-s", str(LEASE_S), "--engine", engine, *extra,
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HOTLINE_FAKE_DELAY_S": "120",
            "HOTLINE_FAKE_TEXT": "修路灯",
        }
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def _job(sf: sessionmaker[Session]) -> m.TranscriptionJob:
    with sf() as s:
        job = s.scalar(select(m.TranscriptionJob))
        assert job is not None
        return job


def _wait(pred: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _kill_mid_job(sf: sessionmaker[Session], proc: subprocess.Popen[bytes], attempt: int) -> None:
    _wait(lambda: _job(sf).status == m.RUNNING and _job(sf).attempts == attempt)
    job = _job(sf)
    pid = int((job.worker or "").rsplit(":", 1)[1])
    assert pid == proc.pid  # the process holding the job is the one we kill
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert _job(sf).status == m.RUNNING  # nobody told the database
    lease = job.lease_until
    assert lease is not None
    _wait(lambda: utcnow() > lease + timedelta(seconds=0.2), timeout=LEASE_S * 3)


def _recording(sf: sessionmaker[Session], tmp_path: Path) -> int:
    settings = RecordingSettings(dir=str(tmp_path), settle_s=0)
    write_call(tmp_path / "2026/03/02/T1")
    now = utcnow()
    return RecordingService(sf, settings).register_stopped(
        call_id="1772.42", node="pbx1", ticket_id="T1", agent_id="a1",
        path=str(tmp_path / "2026/03/02/T1/1772.42.wav"), started_at=now, ended_at=now,
    )  # fmt: skip


def test_killed_worker_job_is_retaken_and_completes(
    sf: sessionmaker[Session], tmp_path: Path, spawn: object
) -> None:
    rid = _recording(sf, tmp_path)
    victim = spawn("recordings.testing:slow")  # type: ignore[operator]
    _kill_mid_job(sf, victim, attempt=1)
    rescuer = spawn("recordings.testing:instant", "--once")  # type: ignore[operator]
    assert rescuer.wait(timeout=60) == 0, rescuer.stderr.read() if rescuer.stderr else ""
    job = _job(sf)
    assert (job.status, job.attempts, job.error) == (m.DONE, 2, None)
    with sf() as s:
        segs = list(s.scalars(select(m.TranscriptSegment)))
    assert [(g.recording_id, g.text) for g in segs] == [(rid, "修路灯")]


def test_attempts_are_bounded_when_every_worker_dies(
    sf: sessionmaker[Session], tmp_path: Path, spawn: object
) -> None:
    _recording(sf, tmp_path)
    for attempt in (1, 2):
        victim = spawn("recordings.testing:slow", "--max-attempts", "2")  # type: ignore[operator]
        _kill_mid_job(sf, victim, attempt=attempt)
    last = spawn("recordings.testing:instant", "--max-attempts", "2", "--once")  # type: ignore[operator]
    assert last.wait(timeout=60) == 0
    job = _job(sf)
    assert (job.status, job.attempts) == (m.FAILED, 2)
    assert "lease expired" in (job.error or "")
