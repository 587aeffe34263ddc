"""Typed errors: API errors carry an HTTP status, a stable id and details; Asterisk errors
keep the raw message Asterisk sent."""

from __future__ import annotations

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
