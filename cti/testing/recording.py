"""MixMonitor output: 8 kHz 16-bit mono WAV files, mixed plus the two legs (r/t options).

The audio comes from the utterances recorded in the rig (citizen on the read leg, agent on
the write leg); a short tone stands in when the fixtures are missing.
"""

from __future__ import annotations

import math
import wave
from array import array
from functools import lru_cache
from pathlib import Path

from cti.testing.transcript import fixture_path

RATE = 8000


@lru_cache(maxsize=4)
def _source(name: str, freq: float) -> array[int]:
    path = fixture_path(name)
    if path.exists():
        with wave.open(str(path), "rb") as wav:
            if wav.getframerate() == RATE and wav.getsampwidth() == 2 and wav.getnchannels() == 1:
                samples = array("h")
                samples.frombytes(wav.readframes(wav.getnframes()))
                return samples
    return array("h", (int(6000 * math.sin(2 * math.pi * freq * n / RATE)) for n in range(RATE)))


def _fit(samples: array[int], frames: int) -> array[int]:
    out = array("h")
    while len(out) < frames:
        out.extend(samples[: frames - len(out)])
    return out


def _write(path: Path, samples: array[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())


def write_recordings(files: dict[str, str], duration_s: float, max_s: float) -> list[Path]:
    """Write ``files["mixed"]``, ``files["in"]``, ``files["out"]`` (those present)."""
    frames = max(1, int(min(max(duration_s, 0.1), max_s) * RATE))
    leg_in = _fit(_source("citizen_utterance_cmn.wav", 440.0), frames)
    leg_out = _fit(_source("agent_utterance_cmn.wav", 660.0), frames)
    written: list[Path] = []
    for kind, samples in (("in", leg_in), ("out", leg_out)):
        if files.get(kind):
            _write(Path(files[kind]), samples)
            written.append(Path(files[kind]))
    if files.get("mixed"):
        mixed = array(
            "h", (max(-32768, min(32767, a + b)) for a, b in zip(leg_in, leg_out, strict=True))
        )
        _write(Path(files["mixed"]), mixed)
        written.append(Path(files["mixed"]))
    return written
