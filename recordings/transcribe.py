"""Decoding core: audio files in, speaker-labelled segments out. No database, no network.

One vosk ``Model`` per process and model path (loading the small Korean model takes seconds
and ~530 MiB). vosk releases the GIL while decoding, so the two legs of a call can be decoded
in two threads on one shared model. Recognisers are kept and reused: a small model composes
its decoding graph lazily per recogniser and keeps it, and a fresh recogniser pays for that
again (free-form, beam 7 and max-active 1000, CPU time: 0.21 per audio second with a fresh
recogniser per file, 0.148 on a recogniser's first pass over 62 s, 0.086 on its second), so
a new stream takes the idle recogniser that has decoded the most audio.

Speakers: a stereo file is (left, right) = (citizen, agent) unless told otherwise; with the
MixMonitor legs, the received leg (``-in.wav``, the caller's voice on the caller's channel) is
the citizen and the transmitted leg (``-out.wav``) the agent; a mono file alone is "mixed".
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cti.errors import ModelError
from recordings.audio import read_wav, resample, to_pcm16

log = logging.getLogger(__name__)

CITIZEN = "citizen"
AGENT = "agent"
MIXED = "mixed"
SPEAKERS = (CITIZEN, AGENT, MIXED)

# Audio fed per AcceptWaveform call; results (and so segment boundaries at endpoints) depend
# on it a little, so it is fixed rather than left to the caller.
CHUNK_S = 0.5
# A pause between two words longer than this starts a new segment.
PAUSE_S = 0.8

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def tuned_model_dir(path: str, decoder: Mapping[str, float | int]) -> str:
    """A view of the model at ``path`` whose ``conf/model.conf`` sets ``decoder`` options.

    vosk reads its search limits (``--beam``, ``--max-active``, ``--lattice-beam``) from the
    model's own ``conf/model.conf``. The model directory is left alone (it may be read-only or
    shared); the view is a directory of symbolic links to its parts with a rewritten
    ``model.conf``, made once per model and options under the system's temporary directory.
    """
    src = Path(path).resolve()
    conf = src / "conf" / "model.conf"
    if not decoder or not conf.is_file():
        return str(src)
    lines = [
        line
        for line in conf.read_text(encoding="utf-8").splitlines()
        if line.strip() and line.strip().lstrip("-").split("=", 1)[0] not in decoder
    ]
    lines += [f"--{k}={v}" for k, v in sorted(decoder.items())]
    text = "\n".join(lines) + "\n"
    digest = hashlib.sha1(f"{src}\0{text}".encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / "hotline-vosk"
    view = root / f"{src.name}-{digest}"
    if (view / "conf" / "model.conf").is_file():
        return str(view)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    for part in src.iterdir():
        if part.name != "conf":
            (work / part.name).symlink_to(part)
    (work / "conf").mkdir()
    for part in (src / "conf").iterdir():
        if part.name != "model.conf":
            (work / "conf" / part.name).symlink_to(part)
    (work / "conf" / "model.conf").write_text(text, encoding="utf-8")
    try:
        work.rename(view)
    except OSError:  # another process made the same view meanwhile
        shutil.rmtree(work, ignore_errors=True)
    return str(view)


MODEL_ADVICE = (
    "unpack a vosk model there (for Chinese vosk-model-cn-0.22, see recordings/README.md)"
    " or name the directory of one."
)


def model_problem(path: str) -> str | None:
    """Why ``path`` is no vosk model directory (a sentence), or None. A cheap look at its
    parts, made before anything is started, so that a wrong path is named at once and not
    by vosk's bare failure in every worker."""
    where = Path(path)
    if not where.is_dir():
        return f"{path} is not a directory: {MODEL_ADVICE}"
    # vosk reads the acoustic model from am/ (or, in old models, the top directory).
    if not ((where / "am" / "final.mdl").is_file() or (where / "final.mdl").is_file()):
        return f"{path} is not a vosk model (it has no am/final.mdl): {MODEL_ADVICE}"
    return None


def load_model(path: str, decoder: Mapping[str, float | int] | None = None) -> Any:
    """The process-wide vosk ``Model`` for ``path`` (loaded once, shared by all threads),
    with ``decoder`` options over the model's own (see :func:`tuned_model_dir`)."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"no vosk model at {path}")
    problem = model_problem(path)
    if problem:
        raise ModelError(problem)
    key = tuned_model_dir(path, decoder or {})
    with _models_lock:
        model = _models.get(key)
        if model is None:
            import vosk

            vosk.SetLogLevel(-1)
            started = time.monotonic()
            try:
                model = vosk.Model(key)
            except Exception as exc:  # vosk says only "Failed to create a model"
                raise ModelError(
                    f"vosk could not load the model in {path} ({exc}): {MODEL_ADVICE}"
                ) from None
            log.info("loaded vosk model %s in %.1f s", key, time.monotonic() - started)
            _models[key] = model
        return model


def supports_phrases(model_path: str) -> bool:
    """Only models with a runtime graph (graph/HCLr.fst + Gr.fst) take a phrase list.

    The big models (vosk-model-cn-0.22) have a static HCLG.fst and decode free-form.
    """
    graph = Path(model_path) / "graph"
    return (graph / "HCLr.fst").exists() and (graph / "Gr.fst").exists()


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float
    end: float
    conf: float


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    speaker: str
    text: str
    conf: float
    words: tuple[Word, ...] = ()

    def to_dict(self, *, words: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "speaker": self.speaker,
            "text": self.text,
            "conf": round(self.conf, 3),
        }
        if words:
            d["words"] = [asdict(w) for w in self.words]
        return d


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    duration_s: float  # length of the call
    audio_s: float  # seconds of audio decoded (both legs count)
    elapsed_s: float
    speakers: tuple[str, ...] = field(default=())

    @property
    def rtf(self) -> float:
        """Real-time factor: decoding time per second of decoded audio."""
        return self.elapsed_s / self.audio_s if self.audio_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
            "duration_s": round(self.duration_s, 3),
            "rtf": round(self.rtf, 4),
        }


@dataclass(slots=True)
class _Pooled:
    rec: Any
    fed: int = 0  # samples decoded by this recogniser so far


class Transcriber:
    """Decode 8 kHz (or any rate, resampled) WAV files with one shared vosk model."""

    def __init__(
        self,
        model_path: str,
        sample_rate: int = 8000,
        phrases: Sequence[str] | None = None,
        *,
        pause_s: float = PAUSE_S,
        decoder: Mapping[str, float | int] | None = None,
    ) -> None:
        self.model_path = model_path
        self.sample_rate = sample_rate
        self.pause_s = pause_s
        self.model = load_model(model_path, decoder)
        self.grammar: str | None = None
        self._idle: list[_Pooled] = []
        self._idle_lock = threading.Lock()
        if phrases:
            if supports_phrases(model_path):
                self.grammar = json.dumps(list(phrases), ensure_ascii=False)
            else:
                log.warning("model %s has a static graph: the phrase list is ignored", model_path)

    # --- files -------------------------------------------------------------------------

    def transcribe_file(
        self,
        path: str | Path,
        *,
        legs: tuple[str | Path, str | Path] | None = None,
        stereo_speakers: tuple[str, str] = (CITIZEN, AGENT),
        parallel: bool = False,
    ) -> Transcript:
        """Transcribe a recording.

        ``legs`` = (received, transmitted) files: decoded instead of ``path`` as citizen and
        agent. Otherwise a two-channel ``path`` is split by ``stereo_speakers`` and a mono
        one is "mixed". ``parallel`` decodes the channels in threads (one core each).
        """
        started = time.monotonic()
        if legs is not None:
            tracks = [(CITIZEN, *self._load(legs[0])), (AGENT, *self._load(legs[1]))]
        else:
            channels, rate = read_wav(path)
            if channels.shape[0] == 1:
                tracks = [(MIXED, channels[0], rate)]
            elif channels.shape[0] == 2:
                tracks = [(stereo_speakers[i], channels[i], rate) for i in range(2)]
            else:
                tracks = [(MIXED, channels.mean(axis=0), rate)]
        prepared = [(spk, self._pcm(x, rate), x.size / rate) for spk, x, rate in tracks]
        if parallel and len(prepared) > 1:
            with ThreadPoolExecutor(len(prepared)) as pool:
                decoded = list(pool.map(lambda t: self.decode_pcm(t[1], t[0]), prepared))
        else:
            decoded = [self.decode_pcm(pcm, spk) for spk, pcm, _ in prepared]
        segments = sorted(
            (s for segs in decoded for s in segs), key=lambda s: (s.start, s.end, s.speaker)
        )
        duration = max((d for _, _, d in prepared), default=0.0)
        audio_s = sum(d for _, _, d in prepared)
        return Transcript(
            text=" ".join(s.text for s in segments),
            segments=tuple(segments),
            duration_s=duration,
            audio_s=audio_s,
            elapsed_s=time.monotonic() - started,
            speakers=tuple(spk for spk, _, _ in prepared),
        )

    @staticmethod
    def _load(path: str | Path) -> tuple[np.ndarray, int]:
        channels, rate = read_wav(path)
        mono = channels[0] if channels.shape[0] == 1 else channels.mean(axis=0)
        return mono, rate

    def _pcm(self, samples: np.ndarray, rate: int) -> bytes:
        return to_pcm16(resample(samples, rate, self.sample_rate))

    # --- decoding ----------------------------------------------------------------------

    def recognizer(self) -> Any:
        import vosk

        if self.grammar is not None:
            rec = vosk.KaldiRecognizer(self.model, self.sample_rate, self.grammar)
        else:
            rec = vosk.KaldiRecognizer(self.model, self.sample_rate)
        rec.SetWords(True)
        return rec

    def decode_pcm(self, pcm: bytes, speaker: str = MIXED) -> list[Segment]:
        """Segments of 16-bit mono PCM at ``self.sample_rate``."""
        stream = self.stream(speaker)
        stream.feed(pcm)
        return stream.finish()

    def stream(self, speaker: str = MIXED) -> LegStream:
        """Incremental decoding of one leg: feed PCM as it arrives, then ``finish``."""
        with self._idle_lock:
            if self._idle:
                # The recogniser that decoded the most: it has composed the most of its graph
                # (a fresh one decodes at about twice the cost until it has seen a few
                # minutes of speech: bench/bench_decode_costs.py).
                warmest = max(range(len(self._idle)), key=lambda i: self._idle[i].fed)
                pooled = self._idle.pop(warmest)
            else:
                pooled = _Pooled(self.recognizer())
        return LegStream(self, pooled, speaker)

    def _release(self, pooled: _Pooled) -> None:
        with self._idle_lock:
            self._idle.append(pooled)

    def _segments(self, results: list[dict[str, Any]], base: float, speaker: str) -> list[Segment]:
        segments: list[Segment] = []
        for result in results:
            words = [
                Word(
                    str(w["word"]),
                    max(0.0, round(float(w["start"]) - base, 3)),
                    max(0.0, round(float(w["end"]) - base, 3)),
                    float(w.get("conf", 1.0)),
                )
                for w in result.get("result", [])
                if w.get("word") and w["word"] != "[unk]"
            ]
            segments.extend(self._split(words, speaker))
        return segments

    def _split(self, words: list[Word], speaker: str) -> list[Segment]:
        """One vosk result becomes one or more segments, split where the speaker paused."""
        groups: list[list[Word]] = []
        for w in words:
            if groups and w.start - groups[-1][-1].end <= self.pause_s:
                groups[-1].append(w)
            else:
                groups.append([w])
        return [
            Segment(
                start=g[0].start,
                end=g[-1].end,
                speaker=speaker,
                text=" ".join(w.word for w in g),
                conf=float(np.mean([w.conf for w in g])),
                words=tuple(g),
            )
            for g in groups
        ]


class LegStream:
    """One leg decoded as its audio arrives (the live path), or all at once.

    The audio is cut into the same fixed chunks whichever way it is fed, so a call followed
    live and the same file decoded afterwards give the same words.
    """

    def __init__(self, transcriber: Transcriber, pooled: _Pooled, speaker: str) -> None:
        self._tr = transcriber
        self._pooled: _Pooled | None = pooled
        self.speaker = speaker
        # A reused recogniser counts time on from everything it decoded before.
        self._base = pooled.fed / transcriber.sample_rate
        self._step = int(transcriber.sample_rate * CHUNK_S) * 2
        self._pending = bytearray()
        self._results: list[dict[str, Any]] = []
        self._shown = 0  # results already given out by ``progress``
        self.samples = 0
        self.busy_s = 0.0  # time spent decoding

    @property
    def audio_s(self) -> float:
        return self.samples / self._tr.sample_rate

    @property
    def recogniser_audio_s(self) -> float:
        """Seconds of audio the recogniser had decoded before this stream took it."""
        return self._base

    def feed(self, pcm: bytes) -> None:
        if self._pooled is None:
            raise RuntimeError("stream already finished")
        self._pending += pcm
        self.samples += len(pcm) // 2
        if len(self._pending) < self._step:
            return
        started = time.monotonic()
        rec = self._pooled.rec
        whole = len(self._pending) - len(self._pending) % self._step
        view = memoryview(self._pending)
        for i in range(0, whole, self._step):
            if rec.AcceptWaveform(bytes(view[i : i + self._step])):
                self._results.append(json.loads(rec.Result()))
        view.release()
        del self._pending[:whole]
        self.busy_s += time.monotonic() - started

    def progress(self) -> tuple[list[tuple[str, float, float]], str]:
        """What a live view needs since the last call: the utterances the recogniser closed
        at an endpoint, as (text, start, end) in seconds of this leg ("" for one that held
        only noise), and the words of the utterance it is in (its partial result)."""
        closed: list[tuple[str, float, float]] = []
        for result in self._results[self._shown :]:
            words = [w for w in result.get("result", []) if w.get("word") and w["word"] != "[unk]"]
            if words:
                start = max(0.0, float(words[0]["start"]) - self._base)
                end = max(0.0, float(words[-1]["end"]) - self._base)
                closed.append((" ".join(str(w["word"]) for w in words), start, end))
            else:
                closed.append(("", self.audio_s, self.audio_s))
        self._shown = len(self._results)
        if self._pooled is None:
            return closed, ""
        partial = json.loads(self._pooled.rec.PartialResult()).get("partial", "")
        return closed, " ".join(w for w in str(partial).split() if w != "[unk]")

    def finish(self) -> list[Segment]:
        """Decode what is left and give the recogniser back; the leg's segments."""
        pooled = self._pooled
        if pooled is None:
            raise RuntimeError("stream already finished")
        started = time.monotonic()
        rec = pooled.rec
        if self._pending:
            if rec.AcceptWaveform(bytes(self._pending)):
                self._results.append(json.loads(rec.Result()))
            self._pending.clear()
        self._results.append(json.loads(rec.FinalResult()))
        pooled.fed += self.samples
        self._pooled = None
        self._tr._release(pooled)
        self.busy_s += time.monotonic() - started
        return self._tr._segments(self._results, self._base, self.speaker)


def legs_for(path: str | Path) -> tuple[str, str] | None:
    """The MixMonitor leg files beside ``path``, when both exist."""
    from recordings.layout import leg_paths

    p = str(path)
    if not p.endswith(".wav"):
        return None
    legs = leg_paths(p)
    return legs if all(Path(x).is_file() for x in legs) else None
