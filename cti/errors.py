"""Typed errors: API errors carry an HTTP status, a stable id and details; Asterisk errors
keep the raw message Asterisk sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class HotlineError(Exception):
    """Base of the project's own errors."""


class ApiError(HotlineError):
    """An error the REST API reports as ``{"error": id, "message": ..., "details": ...}``."""

    def __init__(
        self, status: int, error_id: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error_id, "message": self.message, "details": self.details}


class NotFound(ApiError):
    def __init__(self, error_id: str, message: str, **details: Any) -> None:
        super().__init__(404, error_id, message, details)


class Conflict(ApiError):
    def __init__(self, error_id: str, message: str, **details: Any) -> None:
        super().__init__(409, error_id, message, details)


class Invalid(ApiError):
    def __init__(self, error_id: str, message: str, **details: Any) -> None:
        super().__init__(422, error_id, message, details)


class Forbidden(ApiError):
    def __init__(
        self, error_id: str = "forbidden", message: str = "not allowed", **details: Any
    ) -> None:
        super().__init__(403, error_id, message, details)


class ConfigError(HotlineError):
    """The configuration is invalid; ``str()`` names every bad key path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid configuration{where}:\n  " + "\n  ".join(problems))


class CommandError(HotlineError):
    """An expected failure of a ``hotline`` command: ``str()`` is the one sentence the user
    reads (what is wrong and what to do); the command exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class DatabaseError(CommandError):
    """The database cannot be used: a malformed URL (shown with its password masked), a
    server that does not answer, a file that does not exist, tables that are missing."""


class OutputError(CommandError):
    """A file or directory a command was told to write cannot be written."""

    def __init__(self, option: str, path: object, reason: str) -> None:
        super().__init__(
            f"{option} {path}: {reason}: choose a directory that exists and that you may write."
        )
        self.option = option
        self.path = path

    @classmethod
    def check(cls, option: str, path: Path, *, directory: bool = False) -> Path:
        """``path`` as given, once this process can write it: the directory (``path``
        itself, or the file's) exists, made if need be, and takes files; a file there is not
        a directory and is writable. Raise otherwise. Called before the command's work, so
        that nothing is computed for nowhere."""
        folder = path if directory else (path.parent if str(path.parent) else Path("."))
        if directory and path.exists() and not path.is_dir():
            raise cls(option, path, "not a directory")
        if not directory and path.is_dir():
            raise cls(option, path, "a directory, not a file")
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise cls(option, path, f"{existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise cls(option, path, f"the directory {existing} is not writable")
        if not directory and path.exists() and not os.access(path, os.W_OK):
            raise cls(option, path, "not writable")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise cls(option, path, f"{folder} cannot be created ({reason})") from None
        return path


class ModelError(CommandError):
    """The vosk model cannot be loaded from the directory the command was given."""
