"""The live view of a call's transcript: partials that firm up into finals, masked as the
stored transcript is, written by the live follower while the call goes on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recordings import models as m
from recordings.layout import leg_paths
from recordings.live import LiveFollower
from recordings.livetext import LiveText
from recordings.service import RecordingService
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.worker import JobQueue

from .test_rec_live import RATE, GrowingWav


def test_a_partial_is_replaced_by_the_next_then_by_its_final() -> None:
    leg = LiveText("citizen")
    (u,) = leg.update([], "我 家", 1.0)
    assert (u.seq, u.final, u.text, u.end) == (0, False, "我 家", 1.0)
    assert leg.update([], "我 家", 1.5) == []  # nothing new: nothing sent
    (u,) = leg.update([], "我 家 门口", 2.0)
    assert (u.seq, u.final, u.text) == (0, False, "我 家 门口")
    # The endpoint: utterance 0 is final, and utterance 1 starts as a partial.
    final, partial = leg.update([("我 家 门口 路灯 坏 了", 0.2, 2.4)], "很", 3.0)
    assert (final.seq, final.final, final.text, final.start) == (
        0,
        True,
        "我 家 门口 路灯 坏 了",
        0.2,
    )
    assert (partial.seq, partial.final, partial.text, partial.start) == (1, False, "很", 2.4)


def test_noise_clears_the_partial_it_showed() -> None:
    leg = LiveText("agent")
    leg.update([], "嗯", 0.5)
    (u,) = leg.update([("", 1.0, 1.0)], "", 1.0)
    assert (u.seq, u.final, u.text) == (0, True, "")
    (u,) = leg.update([], "您好", 2.0)
    assert u.seq == 1
    # Noise with no partial on screen sends nothing and uses no number.
    leg2 = LiveText("agent")
    assert leg2.update([("", 1.0, 1.0)], "", 1.0) == []
    assert leg2.seq == 0


def test_partials_are_masked_and_a_number_split_by_a_pause_is_masked_everywhere() -> None:
    leg = LiveText("citizen")
    (u,) = leg.update([], "我 的 身份证 号 是 三三零五零二一九八八零一零一一二三X", 3.0)
    assert u.text == "我 的 身份证 号 是 330502************"
    (u,) = leg.update([], "我 的 身份证 号 是 三三零五零二一九八八零一零一一二三X 对", 3.5)
    assert u.text == "我 的 身份证 号 是 330502************ 对"
    leg = LiveText("citizen")
    leg.update([("电话 一三八零零", 0.0, 2.0)], "", 2.0)  # too short alone: shown as said
    updates = leg.update([], "一二三四五六", 3.0)
    # The first half is sent again, masked, and the partial holding the second half too.
    assert [(u.seq, u.final) for u in updates] == [(0, True), (1, False)]
    assert "一三八零零" not in updates[0].text and "*" in updates[0].text
    assert "一二三四五六" not in updates[1].text


@pytest.mark.vosk
def test_the_follower_writes_partials_then_finals_from_a_growing_wav(
    sf: sessionmaker[Session], ko_model: str, ko_phrases: list[str], tmp_path: Path
) -> None:
    """The Korean test call written as MixMonitor writes it, followed with the real model:
    each leg's utterances arrive as partials during the call and end final, and the finals
    say what the stored transcript says."""
    from recordings.audio import read_wav, to_pcm16
    from recordings.transcribe import Transcriber

    from .conftest import write_call

    files = write_call(tmp_path / "src")
    pcm = [np.frombuffer(to_pcm16(read_wav(files[k])[0][0]), "<i2") for k in ("in", "out")]
    recs = RecordingSettings(dir=str(tmp_path / "rec"), settle_s=0)
    trans = TranscriptionSettings(max_attempts=3, lease_s=30, poll_s=0.1, live_calls=4)
    svc = RecordingService(sf, recs, transcription=trans)
    path = Path(recs.dir) / "2026/03/02/T1/c1.wav"
    started = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    common = {"call_id": "c1", "node": "n", "ticket_id": "T1", "agent_id": "a1"}
    rid = svc.register_started(**common, path=str(path), started_at=started)
    mixed = GrowingWav(path)
    received, transmitted = (GrowingWav(Path(p)) for p in leg_paths(str(path)))
    tr = Transcriber(ko_model, RATE, ko_phrases)
    queue = JobQueue(sf, lease_s=trans.lease_s, max_attempts=trans.max_attempts)
    follower = LiveFollower(queue, sf, recs, trans, tr, "w1")
    step = RATE // 4
    rows_during_call = 0
    for i in range(0, pcm[0].size, step):
        received.write_samples(pcm[0][i : i + step])
        transmitted.write_samples(pcm[1][i : i + step])
        mixed.write_samples(pcm[0][i : i + step])
        follower.step()
        with sf() as s:
            rows_during_call = len(s.scalars(select(m.LiveSegment.id)).all())
    assert rows_during_call > 0  # the desktops had words before the hangup
    for w in (mixed, received, transmitted):
        w.close()
    svc.register_stopped(
        **common,
        path=str(path),
        started_at=started,
        ended_at=datetime(2026, 3, 2, 8, 1, tzinfo=UTC),
    )
    follower.step()
    with sf() as s:
        rows = list(s.scalars(select(m.LiveSegment).order_by(m.LiveSegment.id)))
        stored = list(
            s.scalars(
                select(m.TranscriptSegment)
                .where(m.TranscriptSegment.recording_id == rid)
                .order_by(m.TranscriptSegment.seq)
            )
        )
    assert {r.call_id for r in rows} == {"c1"} and {r.recording_id for r in rows} == {rid}
    for speaker in ("citizen", "agent"):
        mine = [r for r in rows if r.speaker == speaker]
        partials = [r for r in mine if not r.final]
        finals: dict[int, str] = {}
        for r in mine:
            if r.final:
                finals[r.seq] = r.text
        assert partials, speaker  # words shown before the recogniser closed the utterance
        # Every partial's utterance ends final, after it.
        for p in partials:
            assert p.seq in finals, (speaker, p.seq)
            last_final = max(r.id for r in mine if r.final and r.seq == p.seq)
            assert p.id < last_final
        said = " ".join(finals[k] for k in sorted(finals) if finals[k])
        assert said == " ".join(g.text for g in stored if g.speaker == speaker), speaker
