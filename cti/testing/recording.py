"""MixMonitor output: 8 kHz 16-bit mono WAV files, mixed plus the two legs (r/t options).

The audio comes from the utterances recorded in the rig (citizen on the read leg, agent on
the write leg); a short tone stands in when the fixtures are missing.

As on Asterisk, the files are there from MixMonitor's start: a WAV header whose sizes stay 0
until the file is closed, then the audio appended as the call goes on (``MonitorWriter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import wave
from array import array
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cti.testing.transcript import fixture_path
from recordings.audio import wav_header

if TYPE_CHECKING:
    from cti.testing.model import Channel
    from cti.testing.pbx import AsteriskSimulator

log = logging.getLogger(__name__)

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


@lru_cache(maxsize=8)
def _track(kind: str, frames: int) -> bytes:
    """The first ``frames`` samples of a leg (``in``, ``out``) or of their mix, as the file
    holds them: computed once, so that a floor of writers only copies slices."""
    leg_in = _fit(_source("citizen_utterance_cmn.wav", 440.0), frames)
    leg_out = _fit(_source("agent_utterance_cmn.wav", 660.0), frames)
    if kind == "in":
        return leg_in.tobytes()
    if kind == "out":
        return leg_out.tobytes()
    mixed = array(
        "h", (max(-32768, min(32767, a + b)) for a, b in zip(leg_in, leg_out, strict=True))
    )
    return mixed.tobytes()


def _write(path: Path, samples: array[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())


def write_recordings(files: dict[str, str], duration_s: float, max_s: float) -> list[Path]:
    """Write ``files["mixed"]``, ``files["in"]``, ``files["out"]`` (those present)."""
    max_frames = max(1, int(max_s * RATE))
    frames = max(1, int(min(max(duration_s, 0.1), max_s) * RATE))
    written: list[Path] = []
    for kind in ("in", "out", "mixed"):
        if files.get(kind):
            samples = array("h")
            samples.frombytes(_track(kind, max_frames)[: frames * 2])
            _write(Path(files[kind]), samples)
            written.append(Path(files[kind]))
    return written


class MonitorWriter:
    """One MixMonitor: the files of ``files`` written as the call goes on.

    ``advance(elapsed_s)`` appends the audio up to ``elapsed_s`` from the start (at most
    ``max_s``); ``close(elapsed_s)`` appends the rest and writes the final sizes. The samples
    are those ``write_recordings`` writes at once for the same duration.
    """

    def __init__(self, files: dict[str, str], max_s: float) -> None:
        self.max_frames = max(1, int(max_s * RATE))
        self.frames = 0
        # advance() runs on the writing thread, close() on the loop: one at a time.
        self._lock = threading.Lock()
        # Each file is opened for each write, not held open for the call: a surge has ten
        # thousand calls up, past the open files this process may have (Asterisk holds them
        # open, with its own maxfiles raised to match). What the CTI sees is the same: the
        # file there from the start, growing, its header's sizes written at the end.
        self._files: list[tuple[str, Path]] = []
        for kind in ("mixed", "in", "out"):
            if files.get(kind):
                path = Path(files[kind])
                try:  # the day's directory is there but for the day's first call
                    path.write_bytes(wav_header(0, RATE))
                except FileNotFoundError:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(wav_header(0, RATE))
                self._files.append((kind, path))

    def advance(self, elapsed_s: float) -> None:
        with self._lock:
            self._advance(elapsed_s)

    def _advance(self, elapsed_s: float) -> None:
        due = min(self.max_frames, int(max(elapsed_s, 0.0) * RATE))
        if due <= self.frames or not self._files:
            return
        for kind, path in self._files:
            with open(path, "ab") as fh:
                fh.write(memoryview(_track(kind, self.max_frames))[self.frames * 2 : due * 2])
        self.frames = due

    def close(self, elapsed_s: float) -> None:
        with self._lock:
            self._advance(max(elapsed_s, 0.1))
            for _, path in self._files:
                with open(path, "r+b") as fh:
                    fh.write(wav_header(self.frames * 2, RATE))
            self._files = []


def _advance_all(due: list[tuple[str, MonitorWriter, float]], now: float) -> list[str]:
    """Grow the files of ``due`` to ``now``; returns the calls whose files failed."""
    failed = []
    for uid, writer, started in due:
        try:
            writer.advance(now - started)
        except OSError as exc:
            log.warning("cannot write the recording of %s: %s", uid, exc)
            failed.append(uid)
    return failed


def _log_close(name: str, done: Future[None]) -> None:
    exc = done.exception()
    if isinstance(exc, OSError):
        log.warning("cannot close the recording of %s: %s", name, exc)
    elif exc is not None:
        log.error("closing the recording of %s failed: %r", name, exc)


class Recorders:
    """The simulator's MixMonitors writing their files while their calls go on."""

    def __init__(self, sim: AsteriskSimulator) -> None:
        self.sim = sim
        # uniqueid -> (writer, simulated start)
        self.active: dict[str, tuple[MonitorWriter, float]] = {}
        self._task: asyncio.Task[Any] | None = None
        # Asterisk writes from its own threads, so the dialplan never waits on a file: the
        # files grow on a thread here too, off the simulator's loop.
        self._pool: ThreadPoolExecutor | None = None
        self.failed: set[str] = set()  # calls whose files could not be made

    def start(self, channel: Channel) -> None:
        sim = self.sim
        if not sim.config.write_recordings or channel.mixmonitor is None:
            return
        try:
            writer = MonitorWriter(channel.mixmonitor, sim.config.max_recording_s)
        except OSError as exc:  # as MixMonitor: the call goes on without its recording
            log.warning("cannot open the recording of %s: %s", channel.name, exc)
            self.failed.add(channel.uniqueid)
            return
        self.active[channel.uniqueid] = (writer, sim.now())
        if self._task is None or self._task.done():
            self._task = sim.spawn(self._write(), "mixmonitor")

    # Writers advanced per tick of 0.1 s: up to this many calls, every file grows every
    # tick; beyond, in turns (a floor of a thousand calls grows each file every 4 s).
    PER_TICK = 25

    async def _write(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sim-mixmonitor")
        loop = asyncio.get_running_loop()
        turn: list[str] = []
        while self.active:
            await asyncio.sleep(0.1)
            if not turn:
                turn = list(self.active)
            now = self.sim.now()
            due = [(uid, *self.active[uid]) for uid in turn[: self.PER_TICK] if uid in self.active]
            del turn[: self.PER_TICK]
            # (one stopped meanwhile was closed by stop() or finish(): advancing it is a no-op)
            for uid in await loop.run_in_executor(self._pool, _advance_all, due, now):
                self.active.pop(uid, None)

    def stop(self, channel: Channel) -> None:
        entry = self.active.pop(channel.uniqueid, None)
        if entry is not None:
            self._close(channel.name, entry[0], self.sim.now() - entry[1])

    def _close(self, name: str, writer: MonitorWriter, elapsed_s: float) -> None:
        """The rest of the audio and the final header, on the writing thread when there is one
        (after what it has queued for this writer): as MixMonitor's own thread, the dialplan
        does not wait for it."""
        if self._pool is None:
            try:
                writer.close(elapsed_s)
            except OSError:
                log.exception("cannot close the recording of %s", name)
            return
        done = self._pool.submit(writer.close, elapsed_s)
        done.add_done_callback(lambda f: _log_close(name, f))

    def finish(self, channel: Channel) -> None:
        """The channel hung up: its files are closed (written at once if not yet started)."""
        sim = self.sim
        if channel.mixmonitor is None or not sim.config.write_recordings:
            return
        duration = sim.now() - channel.mixmonitor_started
        entry = self.active.pop(channel.uniqueid, None)
        if channel.uniqueid in self.failed:
            self.failed.discard(channel.uniqueid)
            return
        if entry is not None:
            self._close(channel.name, entry[0], duration)
            return
        try:
            write_recordings(channel.mixmonitor, duration, sim.config.max_recording_s)
        except OSError:
            log.exception("cannot write recording for %s", channel.name)

    def close_all(self) -> None:
        now = self.sim.now()
        for writer, started in self.active.values():
            with contextlib.suppress(OSError):
                writer.close(max(0.0, now - started))
        self.active.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # the closes it has queued: headers final
            self._pool = None
