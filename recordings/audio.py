"""WAV files as numpy arrays: reading (PCM 8/16/24/32-bit, float, WAVE_FORMAT_EXTENSIBLE),
resampling, and the peaks drawn by the replay page. No I/O beyond reading the file.

MixMonitor's files are 8 kHz 16-bit mono; a file whose header was not finalised (Asterisk
stopped while writing) has its sizes wrong, so the data length is taken from the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample of one channel
    fmt: int  # _PCM or _FLOAT
    data_offset: int
    data_size: int

    @property
    def frames(self) -> int:
        return self.data_size // (self.channels * self.sample_width)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def wav_info(path: str | Path) -> WavInfo:
    """Parse the RIFF header; raises ``ValueError`` for anything that is not a WAV file."""
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int] | None = None
        pos = 12
        while True:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                raise ValueError(f"{path}: no data chunk")
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = fh.read(min(clen, 40))
                tag, channels, rate = struct.unpack("<HHI", body[:8])
                bits = struct.unpack("<H", body[14:16])[0]
                if tag == _EXTENSIBLE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, rate, bits)
            elif cid == b"data":
                if fmt is None:
                    raise ValueError(f"{path}: data before fmt chunk")
                tag, channels, rate, bits = fmt
                if tag not in (_PCM, _FLOAT) or channels < 1 or bits % 8 or not rate:
                    raise ValueError(f"{path}: unsupported WAV format {fmt}")
                offset = pos + 8
                available = size - offset
                # An unfinalised header says 0 (or too much): trust the file's length then.
                data_size = clen if 0 < clen <= available else available
                width = bits // 8
                data_size -= data_size % (channels * width)
                return WavInfo(rate, channels, width, tag, offset, max(data_size, 0))
            pos += 8 + clen + (clen & 1)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """``(samples, rate)``: float32 in [-1, 1], shape ``(channels, frames)``."""
    info = wav_info(path)
    with open(path, "rb") as fh:
        fh.seek(info.data_offset)
        raw = fh.read(info.data_size)
    w = info.sample_width
    if info.fmt == _FLOAT:
        dtype = "<f4" if w == 4 else "<f8"
        data = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    elif w == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif w == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif w == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif w == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {w}")
    return data.reshape(-1, info.channels).T.copy(), info.sample_rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample one channel (float32) with a windowed-sinc low-pass and linear interpolation.

    Good enough for speech recognition; not a mastering-grade resampler.
    """
    if rate == target or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    x = samples.astype(np.float32, copy=False)
    if target < rate:
        cutoff = 0.45 * target / rate  # of the input sample rate; a little below Nyquist
        taps = 101
        n = np.arange(taps) - (taps - 1) / 2
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hanning(taps)
        kernel /= kernel.sum()
        x = np.convolve(x, kernel.astype(np.float32), mode="same")
    frames = int(round(x.size * target / rate))
    positions = np.arange(frames, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(x.size), x).astype(np.float32)


def to_pcm16(samples: np.ndarray) -> bytes:
    pcm: bytes = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return pcm


def wav_header(data_bytes: int, rate: int, channels: int = 1) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV file holding ``data_bytes`` of audio (0 while
    the file is still being written, as Asterisk leaves it until it closes the file)."""
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack(
        "<IHHIIHH", 16, _PCM, channels, rate, rate * channels * 2, channels * 2, 16
    )
    return header + b"data" + struct.pack("<I", data_bytes)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write 16-bit PCM; ``samples`` is ``(frames,)`` or ``(channels, frames)`` float."""
    data = np.atleast_2d(samples)
    pcm = (np.clip(data.T, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    Path(path).write_bytes(wav_header(len(pcm), rate, data.shape[0]) + pcm)


def peaks(path: str | Path, points: int = 800) -> dict[str, object]:
    """Min/max per bucket of the channels mixed down, for drawing a waveform."""
    samples, rate = read_wav(path)
    mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    points = max(1, min(points, mono.size or 1))
    if mono.size == 0:
        pairs: list[list[float]] = []
    else:
        edges = np.linspace(0, mono.size, points + 1).astype(np.int64)
        mins = np.minimum.reduceat(mono, edges[:-1])
        maxs = np.maximum.reduceat(mono, edges[:-1])
        pairs = [[round(float(a), 4), round(float(b), 4)] for a, b in zip(mins, maxs, strict=True)]
    return {
        "sample_rate": rate,
        "channels": int(samples.shape[0]),
        "duration_s": round(mono.size / rate, 3) if rate else 0.0,
        "peaks": pairs,
    }
