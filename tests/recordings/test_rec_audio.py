from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from recordings.audio import peaks, read_wav, resample, wav_info, write_wav

from .conftest import AUDIO, shared_recordings_dir


def test_reads_the_fixture_like_mixmonitor_writes_it() -> None:
    info = wav_info(AUDIO / "citizen_ko.wav")
    assert (info.sample_rate, info.channels, info.sample_width) == (8000, 1, 2)
    samples, rate = read_wav(AUDIO / "citizen_ko.wav")
    assert rate == 8000 and samples.shape == (1, info.frames)
    assert 0.1 < float(np.abs(samples).max()) <= 1.0


def test_reads_the_real_asterisk_recordings() -> None:
    d = shared_recordings_dir()
    if d is None:
        pytest.skip("no shared Asterisk recordings")
    for name in ("direct_to_seat.wav", "three_way_window.wav"):
        info = wav_info(d / name)
        assert (info.sample_rate, info.channels) == (8000, 1)
        assert info.duration_s > 5


def test_unfinalised_header_uses_the_file_length(tmp_path: Path) -> None:
    f = tmp_path / "open.wav"
    write_wav(f, np.linspace(-0.5, 0.5, 8000, dtype=np.float32), 8000)
    raw = bytearray(f.read_bytes())
    raw[40:44] = struct.pack("<I", 0)  # data size not written yet
    f.write_bytes(bytes(raw))
    assert wav_info(f).frames == 8000
    assert wav_info(f).duration_s == pytest.approx(1.0)


def test_not_a_wav(tmp_path: Path) -> None:
    f = tmp_path / "x.wav"
    f.write_bytes(b"not audio at all")
    with pytest.raises(ValueError):
        wav_info(f)


def test_resample_keeps_length_and_a_tone() -> None:
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, rate, 8000)
    assert out.size == 8000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins over one second
    # content above the new Nyquist frequency is filtered rather than folded back
    high = (0.5 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    assert float(np.abs(resample(high, rate, 8000)[50:-50]).max()) < 0.05


def test_stereo_and_peaks(tmp_path: Path) -> None:
    f = tmp_path / "s.wav"
    left = np.full(800, 0.5, np.float32)
    right = np.full(800, -0.25, np.float32)
    write_wav(f, np.stack([left, right]), 8000)
    samples, rate = read_wav(f)
    assert samples.shape == (2, 800)
    assert samples[0, 0] == pytest.approx(0.5, abs=1e-3)
    assert samples[1, 0] == pytest.approx(-0.25, abs=1e-3)
    p = peaks(f, 10)
    assert p["channels"] == 2 and p["duration_s"] == 0.1
    assert len(p["peaks"]) == 10  # type: ignore[arg-type]
