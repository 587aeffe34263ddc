"""Text types for request bodies: bounded, trimmed, and free of control characters (a
ticket is printed, exported to CSV and sent by SMS; a stray escape or NUL breaks all three)."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

_MULTILINE_OK = frozenset("\n\t")


def _no_controls(allowed: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        value = value.replace("\r\n", "\n")
        for ch in value:
            if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
                raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
        return value

    return AfterValidator(check)


SingleLine = Annotated[str, StringConstraints(strip_whitespace=True), _no_controls(frozenset())]
MultiLine = Annotated[str, StringConstraints(strip_whitespace=True), _no_controls(_MULTILINE_OK)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")]
