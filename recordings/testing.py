"""Stand-in transcription engines for tests and dry runs of the queue (``--engine``).

They read the file like the real engine does (so a missing file still fails the job) but
decode nothing.
"""

from __future__ import annotations

import os
import time

from recordings.audio import wav_info
from recordings.settings import RecordingSettings, TranscriptionSettings
from recordings.transcribe import MIXED, Segment, Transcript


class FixedTranscriber:
    """Returns one "mixed" segment spanning the file, after sleeping ``delay_s``."""

    def __init__(self, text: str = "测试", delay_s: float = 0.0) -> None:
        self.text = text
        self.delay_s = delay_s

    def transcribe_file(self, path: str, *, legs: tuple[str, str] | None = None) -> Transcript:
        duration = wav_info(path).duration_s
        started = time.monotonic()
        time.sleep(self.delay_s)
        seg = Segment(0.0, duration, MIXED, self.text, 1.0)
        return Transcript(self.text, (seg,), duration, duration, time.monotonic() - started)


class FixedStream:
    """A stream that decodes nothing: one segment spanning what was fed."""

    def __init__(self, text: str, speaker: str, sample_rate: int) -> None:
        self.text, self.speaker, self.rate = text, speaker, sample_rate
        self.samples = 0
        self.busy_s = 0.0

    @property
    def audio_s(self) -> float:
        return self.samples / self.rate

    def feed(self, pcm: bytes) -> None:
        self.samples += len(pcm) // 2

    def finish(self) -> list[Segment]:
        return [Segment(0.0, self.audio_s, self.speaker, self.text, 1.0)] if self.samples else []


class FixedStreamingTranscriber(FixedTranscriber):
    """Also follows calls live (``stream``), as the vosk engine does."""

    sample_rate = 8000

    def __init__(self, text: str = "测试", delay_s: float = 0.0) -> None:
        super().__init__(text, delay_s)
        self.streams: list[FixedStream] = []

    def stream(self, speaker: str = MIXED) -> FixedStream:
        s = FixedStream(self.text, speaker, self.sample_rate)
        self.streams.append(s)
        return s


def instant(recs: RecordingSettings, trans: TranscriptionSettings) -> FixedTranscriber:
    return FixedTranscriber(os.environ.get("HOTLINE_FAKE_TEXT", "测试"))


def slow(recs: RecordingSettings, trans: TranscriptionSettings) -> FixedTranscriber:
    """Sleeps ``HOTLINE_FAKE_DELAY_S`` (default 60 s) per job: a worker to kill mid-job."""
    return FixedTranscriber(
        os.environ.get("HOTLINE_FAKE_TEXT", "测试"),
        float(os.environ.get("HOTLINE_FAKE_DELAY_S", "60")),
    )
