from __future__ import annotations

import hashlib
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.events import TranscriptReady
from recordings import models as m
from recordings.service import RecordingService
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.testing import FixedTranscriber
from recordings.worker import Worker

from .conftest import FakeClock, write_call

AST = "/var/spool/asterisk/monitor/hotline"


def _register(svc: RecordingService, clock: FakeClock, rel: str, **kw: object) -> int:
    args: dict[str, object] = dict(
        call_id="1772.42",
        node="pbx1",
        ticket_id="T1",
        agent_id="a1",
        path=f"{AST}/{rel}",
        started_at=clock() - timedelta(seconds=20),
        ended_at=clock(),
    )
    args.update(kw)
    return svc.register_stopped(**args)  # type: ignore[arg-type]


def test_register_computes_size_duration_checksum_and_legs(
    sf: sessionmaker[Session], rec_settings: RecordingSettings, clock: FakeClock
) -> None:
    files = write_call(Path(rec_settings.dir) / "2026/03/02/T1")
    svc = RecordingService(sf, rec_settings, Bus(), clock)
    rid = _register(svc, clock, "2026/03/02/T1/1772.42.wav")
    assert _register(svc, clock, "2026/03/02/T1/1772.42.wav") == rid  # idempotent
    rec = svc.get(rid)
    data = files["mixed"].read_bytes()
    assert rec.status == m.REGISTERED
    assert rec.size == len(data) and rec.sha256 == hashlib.sha256(data).hexdigest()
    assert rec.duration_s == pytest.approx(13.54, abs=0.01)
    assert set(rec.legs or {}) == {"in", "out"}
    assert (
        rec.legs
        and rec.legs["in"]["sha256"] == hashlib.sha256(files["in"].read_bytes()).hexdigest()
    )
    with sf() as s:
        jobs = list(s.scalars(select(m.TranscriptionJob)))
    assert [(j.recording_id, j.status, j.attempts) for j in jobs] == [(rid, m.QUEUED, 0)]


def test_missing_file_is_left_pending_and_swept(
    sf: sessionmaker[Session], rec_settings: RecordingSettings, clock: FakeClock
) -> None:
    svc = RecordingService(sf, rec_settings, None, clock)
    started = time.monotonic()
    rid = _register(svc, clock, "2026/03/02/T2/9.1.wav", call_id="9.1", ticket_id="T2")
    assert time.monotonic() - started < 1  # never waits on the file in the store thread
    assert svc.get(rid).status == m.PENDING
    write_call(Path(rec_settings.dir) / "2026/03/02/T2", "9.1")
    assert svc.sweep_pending() == {m.REGISTERED: 1}
    assert svc.get(rid).status == m.REGISTERED and svc.get(rid).size
    # a file that never comes is given up after the grace period
    lost = _register(svc, clock, "2026/03/02/T3/9.2.wav", call_id="9.2")
    clock.advance(rec_settings.missing_grace_s + 1)
    assert svc.sweep_pending() == {m.LOST: 1}
    assert "not found" in (svc.get(lost).error or "")


def test_file_still_being_written_waits(
    sf: sessionmaker[Session], tmp_path: Path, clock: FakeClock
) -> None:
    settings = RecordingSettings(dir=str(tmp_path), settle_s=30)
    write_call(tmp_path / "x", "5.5")
    svc = RecordingService(sf, settings, None, clock)
    rid = svc.register_stopped(
        call_id="5.5",
        node="n",
        ticket_id="T",
        agent_id=None,
        path=str(tmp_path / "x/5.5.wav"),
        started_at=clock(),
        ended_at=clock(),
    )
    assert svc.get(rid).status == m.PENDING
    old = time.time() - 60
    os.utime(tmp_path / "x/5.5.wav", (old, old))
    assert svc.sweep_pending() == {m.REGISTERED: 1}


def test_privacy_pauses_are_kept_as_spans(
    sf: sessionmaker[Session], rec_settings: RecordingSettings, clock: FakeClock
) -> None:
    svc = RecordingService(sf, rec_settings, None, clock)
    start = clock()
    svc.mark_muted("1772.42", True, start + timedelta(seconds=5))
    svc.mark_muted("1772.42", True, start + timedelta(seconds=6))  # repeated: ignored
    svc.mark_muted("1772.42", False, start + timedelta(seconds=12.5))
    svc.mark_muted("1772.42", True, start + timedelta(seconds=15))
    write_call(Path(rec_settings.dir) / "2026/03/02/T1")
    rid = _register(
        svc,
        clock,
        "2026/03/02/T1/1772.42.wav",
        started_at=start,
        ended_at=start + timedelta(seconds=20),
    )
    assert svc.get(rid).muted_spans == [[5.0, 12.5], [15.0, None]]
    svc.mark_muted("1772.42", False, start + timedelta(seconds=18))
    assert svc.get(rid).muted_spans == [[5.0, 12.5], [15.0, 18.0]]


@pytest.mark.parametrize("action", ["delete", "move"])
def test_retention(
    action: str,
    sf: sessionmaker[Session],
    rec_settings: RecordingSettings,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = rec_settings.model_copy(update={"retention_action": action})
    svc = RecordingService(sf, settings, None, clock)
    old_files = write_call(Path(settings.dir) / "2026/01/02/T9", "1.1")
    new_files = write_call(Path(settings.dir) / "2026/03/02/T1")
    old = _register(
        svc,
        clock,
        "2026/01/02/T9/1.1.wav",
        call_id="1.1",
        started_at=clock() - timedelta(days=59),
        ended_at=clock() - timedelta(days=59),
    )
    new = _register(svc, clock, "2026/03/02/T1/1772.42.wav")
    with caplog.at_level(logging.INFO, "recordings.service"):
        report = svc.apply_retention(clock() + timedelta(days=1))
    assert (report.examined, report.errors) == (1, [])
    assert "retention" in caplog.text and "1.1.wav" in caplog.text
    assert not old_files["mixed"].exists() and not old_files["in"].exists()
    assert new_files["mixed"].exists()
    assert svc.get(new).status == m.REGISTERED
    rec = svc.get(old)
    if action == "delete":
        assert report.deleted == 1 and rec.status == m.DELETED and rec.deleted_at
        assert svc.audio_path(rec) is None
    else:
        assert report.moved == 1 and rec.status == m.ARCHIVED
        moved = Path(settings.archive_dir or "") / "2026/01/02/T9/1.1.wav"
        assert rec.archive_path == str(moved) and moved.exists()
        assert (moved.parent / "1.1-in.wav").exists()
        assert svc.audio_path(rec) == str(moved)
    assert report.freed_bytes > 0
    with sf() as s:
        job = s.scalar(select(m.TranscriptionJob).where(m.TranscriptionJob.recording_id == old))
    assert job is not None and job.status == m.FAILED  # no point transcribing it any more
    assert svc.apply_retention(clock() + timedelta(days=1)).examined == 0


def test_transcript_for_ticket_and_ready_events(
    sf: sessionmaker[Session],
    rec_settings: RecordingSettings,
    trans_settings: TranscriptionSettings,
    clock: FakeClock,
) -> None:
    bus = Bus()
    seen: list[TranscriptReady] = []
    bus.subscribe(TranscriptReady, seen.append)
    svc = RecordingService(sf, rec_settings, bus, clock, transcription=trans_settings)
    write_call(Path(rec_settings.dir) / "2026/03/02/T1")
    rid = _register(svc, clock, "2026/03/02/T1/1772.42.wav")
    assert svc.transcript_for_ticket("T1").pending == (rid,)
    fake = FixedTranscriber("我的电话是一三八零零零零零零零一")
    worker = Worker(sf, rec_settings, trans_settings, fake, worker_id="w1", clock=clock)
    assert worker.run_once() is True
    assert worker.run_once() is False
    tt = svc.transcript_for_ticket("T1")
    assert tt.pending == () and tt.recordings == (rid,)
    assert [s.text for s in tt.segments] == ["我的电话是138****0001"]  # stored masked
    assert "一三八零零零零零零零一" not in tt.text
    assert svc.deliver_transcript_events() == 1
    assert svc.deliver_transcript_events() == 0
    assert [(e.recording_id, e.ticket_id) for e in seen] == [(rid, "T1")]
