"""Logging of every ``hotline`` command, set up once by ``cti.cli`` from ``[logging]``.

Two destinations: stderr, from WARNING (INFO with ``-v``, DEBUG with ``-vv``), and the log
file, from the configured level. ``format = "json"`` writes one JSON object a line to both, for
a collector; the object holds the time (UTC, ISO 8601), level, logger, message, the process,
the fields a caller passed with ``extra=`` and, for an exception, its type and traceback.

In text mode stderr shows an exception as its last line only: the traceback goes to the file,
and the person at the terminal reads sentences. ``record_crash`` writes an unexpected error to
the file alone; the CLI prints one sentence naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import tomllib
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cti.config import LoggingSettings

# Attributes every LogRecord has: the rest came with ``extra=`` and go into the JSON object.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "file_only"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# Loggers that say nothing a site needs at INFO: alembic announces each of its plugins there
# whenever it is imported.
QUIETER = {"alembic.runtime.plugins": logging.WARNING}


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TerminalFormatter(logging.Formatter):
    """Text for a person: an exception is its last line (type and message), no traceback."""

    def format(self, record: logging.LogRecord) -> str:
        # logging keeps the first handler's rendering of the exception on the record
        # (exc_text) and every later handler reuses it: this one renders its own and leaves
        # the record as it was, so the file still gets the traceback.
        cached = record.exc_text
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei: Any) -> str:
        lines = traceback.format_exception_only(ei[0], ei[1])
        return "  " + (lines[-1].strip() if lines else "error")

    def formatStack(self, stack_info: str) -> str:
        return ""


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


class LazyFileHandler(logging.FileHandler):
    """A log file made (with its directory) when the first record is written, not when the
    command starts: ``hotline staffing`` leaves no empty ``var/log`` behind. A file that
    cannot be made is given up silently (stderr still has the warnings)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.path = path
        self.broken = False

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        if self.stream is None:
            try:
                self.stream = self._open()
            except OSError:
                self.broken = True
                return
        super().emit(record)


class _State:
    handlers: list[logging.Handler] = []
    file: LazyFileHandler | None = None
    root_level: int | None = None  # before configure(), restored by remove()


def settings_from(path: str | os.PathLike[str] | None) -> LoggingSettings:
    """``[logging]`` of the configuration file at ``path``, read before the command runs;
    the defaults when there is none or it is broken (the command reports what is wrong)."""
    if not path:
        return LoggingSettings()
    try:
        with open(path, "rb") as fh:
            section = tomllib.load(fh).get("logging", {})
        return LoggingSettings.model_validate(section)
    except (OSError, ValueError, ValidationError, AttributeError):
        # ValueError: not TOML, or not UTF-8.
        return LoggingSettings()


def configure(settings: LoggingSettings, *, verbose: int = 0) -> Path:
    """Replace the handlers set up by an earlier call; return the log file."""
    remove()
    root = logging.getLogger()
    _State.root_level = root.level
    json_format = settings.format == "json"

    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(max(logging.DEBUG, logging.WARNING - 10 * verbose))
    terminal.setFormatter(JsonFormatter() if json_format else TerminalFormatter(TEXT_FORMAT))
    terminal.addFilter(_not_file_only)
    _State.handlers.append(terminal)

    _State.file = LazyFileHandler(Path(settings.file))
    _State.file.setLevel(LEVELS[settings.level])
    _State.file.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    _State.handlers.append(_State.file)
    for handler in _State.handlers:
        root.addHandler(handler)
    root.setLevel(min(h.level for h in _State.handlers))
    for name, level in QUIETER.items():
        logging.getLogger(name).setLevel(level)
    return _State.file.path


def remove() -> None:
    """Take away (and close) the handlers ``configure`` added; the root logger's level is
    what it was before."""
    root = logging.getLogger()
    for handler in _State.handlers:
        root.removeHandler(handler)
        handler.close()
    if _State.root_level is not None:
        root.setLevel(_State.root_level)
    _State.handlers = []
    _State.file = None
    _State.root_level = None


def log_file() -> Path | None:
    return _State.file.path if _State.file is not None else None


def record_crash(command: str, exc: BaseException) -> Path:
    """Write ``exc`` with its traceback to the log file only (not stderr); return where it
    went: the log file, or a new file in the temporary directory when that cannot be written."""
    logger = logging.getLogger("hotline")
    to_file = _State.file
    if to_file is not None and not to_file.broken:
        logger.error(
            "hotline %s: unexpected error",
            command,
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"file_only": True},
        )
        for handler in _State.handlers:
            handler.flush()
        if not to_file.broken and to_file.path.exists():
            return to_file.path
    fd, name = tempfile.mkstemp(prefix="hotline-error-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"hotline {command}: unexpected error\n")
        fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return Path(name)
