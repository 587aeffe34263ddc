"""Live transcription: the MixMonitor files followed while they are written.

The files are written here the way Asterisk writes them: a WAV header whose sizes stay 0
until the file is closed, then the audio in small writes as the call goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recordings import models as m
from recordings.audio import wav_header
from recordings.layout import leg_paths
from recordings.live import LiveFollower, UnsupportedLiveFormat, WavTail
from recordings.service import RecordingService
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.testing import FixedStreamingTranscriber
from recordings.worker import JobQueue, Worker

from .conftest import FakeClock

RATE = 8000


class GrowingWav:
    """A WAV file being written: header with zero sizes first, sizes fixed at ``close``."""

    def __init__(self, path: Path, rate: int = RATE, channels: int = 1) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "wb")  # noqa: SIM115
        self.rate, self.channels = rate, channels
        self.fh.write(wav_header(0, rate, channels))
        self.fh.flush()
        self.frames = 0

    def write(self, seconds: float, amplitude: float = 0.1) -> None:
        n = int(self.rate * seconds)
        t = np.arange(self.frames, self.frames + n) / self.rate
        x = (amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
        if self.channels > 1:
            x = np.repeat(x, self.channels)
        self.fh.write(x.tobytes())
        self.fh.flush()
        self.frames += n

    def write_samples(self, x: np.ndarray) -> None:
        self.fh.write(x.astype("<i2").tobytes())
        self.fh.flush()
        self.frames += x.size

    def close(self) -> None:
        size = self.frames * 2 * self.channels
        self.fh.seek(0)
        self.fh.write(wav_header(size, self.rate, self.channels))
        self.fh.close()


class Call:
    """One recorded call: the mixed file and both legs, growing together."""

    def __init__(self, mixed: Path, **kw: int) -> None:
        self.mixed = mixed
        received, transmitted = leg_paths(str(mixed))
        self.files = [GrowingWav(mixed, **kw), GrowingWav(Path(received), **kw)]
        self.files.append(GrowingWav(Path(transmitted), **kw))

    def talk(self, seconds: float) -> None:
        for f in self.files:
            f.write(seconds)

    def hang_up(self) -> None:
        for f in self.files:
            f.close()


@pytest.fixture
def settings(tmp_path: Path) -> tuple[RecordingSettings, TranscriptionSettings]:
    recs = RecordingSettings(dir=str(tmp_path / "rec"), settle_s=0)
    trans = TranscriptionSettings(max_attempts=3, lease_s=30, poll_s=0.1, live_calls=4)
    return recs, trans


def start_call(
    svc: RecordingService, recs: RecordingSettings, name: str = "c1", **kw: int
) -> tuple[int, Call]:
    path = Path(recs.dir) / "2026/03/02/T1" / f"{name}.wav"
    call = Call(path, **kw)
    rid = svc.register_started(
        call_id=name,
        node="n",
        ticket_id="T1",
        agent_id="a1",
        path=str(path),
        started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    return rid, call


def stop_call(svc: RecordingService, rid: int, call: Call) -> None:
    call.hang_up()
    with svc.sf() as s:
        rec = s.get(m.Recording, rid)
        assert rec is not None
        call_id, path = rec.call_id, rec.path
    svc.register_stopped(
        call_id=call_id,
        node="n",
        ticket_id="T1",
        agent_id="a1",
        path=path,
        started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        ended_at=datetime(2026, 3, 2, 8, 5, tzinfo=UTC),
    )


def job_of(sf: sessionmaker[Session], rid: int) -> m.TranscriptionJob:
    with sf() as s:
        job = s.scalar(select(m.TranscriptionJob).where(m.TranscriptionJob.recording_id == rid))
        assert job is not None
        return job


def follower(
    sf: sessionmaker[Session],
    settings: tuple[RecordingSettings, TranscriptionSettings],
    engine: FixedStreamingTranscriber,
    worker_id: str = "w1",
    clock: FakeClock | None = None,
) -> LiveFollower:
    recs, trans = settings
    q = JobQueue(
        sf,
        lease_s=trans.lease_s,
        max_attempts=trans.max_attempts,
        **({"clock": clock} if clock else {}),
    )
    return LiveFollower(q, sf, recs, trans, engine, worker_id)


def die(f: LiveFollower) -> None:
    """The follower's process is killed: its files close, nothing else happens."""
    for followed in f.followed.values():
        for leg in followed.legs:
            leg.tail.close()


def test_wav_tail_reads_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    tail = WavTail(str(path))
    assert tail.read_new() == b""  # not there yet
    path.write_bytes(b"RIFF\0\0")  # a header half written
    assert tail.read_new() == b"" and tail.rate == 0
    w = GrowingWav(path)
    assert tail.read_new() == b"" and tail.rate == RATE
    w.write(0.5)
    w.fh.write(b"\x01")  # half a sample: left for the next read
    w.fh.flush()
    got = tail.read_new()
    assert len(got) == RATE // 2 * 2
    w.fh.write(b"\x02")
    w.write(0.25)
    assert len(tail.read_new()) == 2 + RATE // 4 * 2
    w.close()
    assert tail.read_new() == b""  # the header rewrite at close is not audio
    tail.close()


def test_wav_tail_refuses_what_it_cannot_follow(tmp_path: Path) -> None:
    GrowingWav(tmp_path / "stereo.wav", channels=2).close()
    with pytest.raises(UnsupportedLiveFormat, match="2 channel"):
        WavTail(str(tmp_path / "stereo.wav")).read_new()
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(UnsupportedLiveFormat, match="RIFF"):
        WavTail(str(tmp_path / "junk.wav")).read_new()


def test_a_call_followed_live_is_done_at_registration(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    rid, call = start_call(svc, recs)
    assert svc.status(rid) == m.RECORDING
    assert job_of(sf, rid).status == m.LIVE
    engine = FixedStreamingTranscriber("市民来电")
    f = follower(sf, settings, engine)
    f.step()
    assert job_of(sf, rid).status == m.FOLLOWING
    for _ in range(6):  # the call goes on: each round decodes what was written since
        call.talk(0.5)
        f.step()
    fed = sorted(s.audio_s for s in engine.streams)
    assert fed == pytest.approx([3.0, 3.0])  # both legs, all of it, before the hangup
    call.talk(0.25)
    stop_call(svc, rid, call)
    assert svc.status(rid) == m.REGISTERED
    assert job_of(sf, rid).status == m.FOLLOWING  # not handed to the batch queue
    f.step()
    job = job_of(sf, rid)
    assert job.status == m.DONE and job.attempts == 1
    with sf() as s:
        segs = list(
            s.scalars(
                select(m.TranscriptSegment)
                .where(m.TranscriptSegment.recording_id == rid)
                .order_by(m.TranscriptSegment.seq)
            )
        )
    assert {g.speaker for g in segs} == {"citizen", "agent"}
    assert all(g.ticket_id == "T1" and g.text == "市民来电" for g in segs)
    assert max(g.end for g in segs) == pytest.approx(3.25)
    assert f.followed == {} and f.completed == 1


def test_without_a_follower_the_stopped_call_goes_to_the_queue(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    rid, call = start_call(svc, recs)
    call.talk(1.0)
    stop_call(svc, rid, call)
    assert job_of(sf, rid).status == m.QUEUED
    worker = Worker(sf, recs, trans, FixedStreamingTranscriber("批处理"), worker_id="b1")
    assert worker.run_once()
    assert job_of(sf, rid).status == m.DONE


def test_live_transcription_off_keeps_the_batch_path(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    recs, trans = settings
    trans = trans.model_copy(update={"live": False})
    svc = RecordingService(sf, recs, transcription=trans)
    rid, call = start_call(svc, recs)
    with sf() as s:
        assert s.scalar(select(m.TranscriptionJob)) is None
    stop_call(svc, rid, call)
    assert job_of(sf, rid).status == m.QUEUED
    worker = Worker(sf, recs, trans, FixedStreamingTranscriber(), worker_id="b1")
    assert worker.live_follower() is None


def test_a_dead_followers_call_is_taken_over(
    sf: sessionmaker[Session],
    settings: tuple[RecordingSettings, TranscriptionSettings],
    clock: FakeClock,
) -> None:
    """A follower killed during the call: its lease runs out, another follower takes the call
    and reads the files from the start; killed after the hangup: the batch queue takes it."""
    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    rid, call = start_call(svc, recs)
    first = follower(sf, settings, FixedStreamingTranscriber(), "w1", clock)
    first.step()
    call.talk(1.0)
    first.step()
    die(first)  # no more steps, no renewals
    second_engine = FixedStreamingTranscriber()
    second = follower(sf, settings, second_engine, "w2", clock)
    second.step()
    assert second.followed == {}  # w1's lease still holds
    clock.advance(trans.lease_s + 1)
    call.talk(1.0)
    second.step()
    assert job_of(sf, rid).worker == "w2" and job_of(sf, rid).attempts == 2
    assert sorted(s.audio_s for s in second_engine.streams) == pytest.approx([2.0, 2.0])
    # w2 dies too, and the call ends: after the lease the batch path finishes it
    die(second)
    stop_call(svc, rid, call)
    clock.advance(trans.lease_s + 1)
    q = JobQueue(sf, lease_s=trans.lease_s, max_attempts=trans.max_attempts, clock=clock)
    claim = q.claim("batch")
    assert claim is not None and claim.recording_id == rid and claim.attempt == 3
    assert job_of(sf, rid).status == m.RUNNING


def test_a_file_it_cannot_follow_is_left_to_the_batch_path(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    rid, call = start_call(svc, recs, rate=16000)  # not the model's 8 kHz
    f = follower(sf, settings, FixedStreamingTranscriber())
    call.talk(0.5)
    f.step()
    job = job_of(sf, rid)
    assert job.status == m.QUEUED and "16000 Hz" in (job.error or "")
    assert f.followed == {}
    f.step()
    assert f.followed == {}  # not taken again by a follower
    stop_call(svc, rid, call)
    assert job_of(sf, rid).status == m.QUEUED
    worker = Worker(sf, recs, trans, FixedStreamingTranscriber(), worker_id="b1")
    assert worker.run_once() and job_of(sf, rid).status == m.DONE


def test_follower_capacity_is_bounded(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    calls = [start_call(svc, recs, f"c{i}") for i in range(6)]
    f = follower(sf, settings, FixedStreamingTranscriber())
    f.step()
    assert len(f.followed) == trans.live_calls == 4
    statuses = sorted(job_of(sf, rid).status for rid, _ in calls)
    assert statuses == [m.FOLLOWING] * 4 + [m.LIVE] * 2
    for rid, call in calls:
        stop_call(svc, rid, call)
    f.step()
    assert f.completed == 4
    assert sorted(job_of(sf, rid).status for rid, _ in calls) == [m.DONE] * 4 + [m.QUEUED] * 2


def test_a_recording_whose_stop_was_never_seen_is_closed_by_the_sweep(
    sf: sessionmaker[Session],
    settings: tuple[RecordingSettings, TranscriptionSettings],
    clock: FakeClock,
) -> None:
    recs, trans = settings
    recs = recs.model_copy(update={"stale_recording_s": 60.0})
    svc = RecordingService(sf, recs, clock=clock, transcription=trans)
    rid, call = start_call(svc, recs)
    call.talk(1.0)
    call.hang_up()  # the CTI was down: no MixMonitorStop reached it
    clock.advance(30)
    svc.sweep_pending()
    assert svc.status(rid) == m.RECORDING  # too early to tell
    clock.advance(60)
    import os

    old = datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()
    for f in call.files:
        os.utime(f.fh.name, (old, old))
    svc.sweep_pending()
    assert svc.status(rid) == m.REGISTERED
    assert job_of(sf, rid).status == m.QUEUED


@pytest.mark.vosk
def test_live_and_batch_decoding_give_the_same_words(
    sf: sessionmaker[Session],
    settings: tuple[RecordingSettings, TranscriptionSettings],
    ko_model: str,
    ko_phrases: list[str],
    tmp_path: Path,
) -> None:
    """The Korean test call written as Asterisk would, followed live with the real model:
    the same words as decoding the finished files, and little left to do at the hangup."""
    from recordings.audio import read_wav, to_pcm16
    from recordings.transcribe import Transcriber

    from .conftest import write_call

    files = write_call(tmp_path / "src")
    legs = [read_wav(files[k])[0][0] for k in ("in", "out")]
    pcm = [np.frombuffer(to_pcm16(x), "<i2") for x in legs]
    tr = Transcriber(ko_model, RATE, ko_phrases)
    batch = tr.transcribe_file(files["mixed"], legs=(str(files["in"]), str(files["out"])))

    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    path = Path(recs.dir) / "2026/03/02/T1/c1.wav"
    rid = svc.register_started(
        call_id="c1",
        node="n",
        ticket_id="T1",
        agent_id="a1",
        path=str(path),
        started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    )
    mixed = GrowingWav(path)
    received, transmitted = (GrowingWav(Path(p)) for p in leg_paths(str(path)))
    q = JobQueue(sf, lease_s=trans.lease_s, max_attempts=trans.max_attempts)
    f = LiveFollower(q, sf, recs, trans, tr, "w1")  # type: ignore[arg-type]
    step = RATE // 2
    for i in range(0, pcm[0].size, step):
        received.write_samples(pcm[0][i : i + step])
        transmitted.write_samples(pcm[1][i : i + step])
        mixed.write_samples(pcm[0][i : i + step])
        f.step()
    # At the hangup every second of both legs has already been through the recogniser.
    (followed,) = f.followed.values()
    assert [leg.stream.audio_s for leg in followed.legs] == [x.size / RATE for x in pcm]
    for w in (mixed, received, transmitted):
        w.close()
    svc.register_stopped(
        call_id="c1",
        node="n",
        ticket_id="T1",
        agent_id="a1",
        path=str(path),
        started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        ended_at=datetime(2026, 3, 2, 8, 1, tzinfo=UTC),
    )
    f.step()
    assert job_of(sf, rid).status == m.DONE
    with sf() as s:
        rec = s.get(m.Recording, rid)
        assert rec is not None
        live_text = rec.transcript_text
    assert live_text == batch.text


def test_a_stopping_follower_hands_its_calls_back_at_once(
    sf: sessionmaker[Session], settings: tuple[RecordingSettings, TranscriptionSettings]
) -> None:
    import threading

    recs, trans = settings
    svc = RecordingService(sf, recs, transcription=trans)
    (rid1, call1), (rid2, call2) = start_call(svc, recs, "c1"), start_call(svc, recs, "c2")
    f = follower(sf, settings, FixedStreamingTranscriber())
    f.step()
    assert {job_of(sf, r).status for r in (rid1, rid2)} == {m.FOLLOWING}
    call2.talk(0.5)
    stop_call(svc, rid2, call2)  # ends while followed, before the follower's next round
    stop = threading.Event()
    stop.set()
    f.run(stop)  # a worker shutting down: no round, the calls are handed back
    one, two = job_of(sf, rid1), job_of(sf, rid2)
    assert (one.status, one.attempts, one.lease_until) == (m.LIVE, 0, None)
    assert (two.status, two.attempts) == (m.QUEUED, 0)  # the call ended: the batch path's
    call1.hang_up()
