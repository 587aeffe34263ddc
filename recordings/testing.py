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


def instant(recs: RecordingSettings, trans: TranscriptionSettings) -> FixedTranscriber:
    return FixedTranscriber(os.environ.get("HOTLINE_FAKE_TEXT", "测试"))


def slow(recs: RecordingSettings, trans: TranscriptionSettings) -> FixedTranscriber:
    """Sleeps ``HOTLINE_FAKE_DELAY_S`` (default 60 s) per job: a worker to kill mid-job."""
    return FixedTranscriber(
        os.environ.get("HOTLINE_FAKE_TEXT", "测试"),
        float(os.environ.get("HOTLINE_FAKE_DELAY_S", "60")),
    )
