"""What a ticket's text fields may hold: the rules of the console's ``SingleLine`` and
``MultiLine`` request types (``console.validation``), applied again where the service stores
them, so that no caller (the API, the CTI, the demo, a script) can put a NUL, an escape or a
line break where a CSV export, an SMS or a report would break on it."""

from __future__ import annotations

from typing import Any

from console.validation import control_character
from cti.errors import Invalid

_MULTILINE_OK = frozenset("\n\t")


def clean_text(field: str, value: Any, limit: int, *, multiline: bool = False) -> str:
    """``value`` trimmed (CRLF as LF in multi-line text), or ``Invalid`` naming ``field``: not
    text, longer than ``limit`` characters, or holding a control character (line breaks and
    tabs only in multi-line text)."""
    if not isinstance(value, str):
        raise Invalid("invalid-field", f"{field} must be text", field=field)
    text = value.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise Invalid(
            "field-too-long", f"{field} is longer than {limit} characters", field=field, limit=limit
        )
    bad = control_character(text, _MULTILINE_OK if multiline else frozenset())
    if bad is not None:
        raise Invalid(
            "control-character",
            f"{field}: control character {bad} is not allowed",
            field=field,
            character=bad,
        )
    return text
