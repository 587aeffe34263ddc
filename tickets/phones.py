"""Mainland China phone numbers: mobile (11 digits, 1[3-9]...) and landline (area code).

``normalise_phone`` strips spaces, dashes and the +86 / 0086 prefix of mobiles and returns a
canonical form (``"13912345678"``, ``"0558-1234567"``); anything else raises ``Invalid`` with a
message the agent can act on.
"""

from __future__ import annotations

import re

from cti.errors import Invalid

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Area codes: 010 and 02x have 3 digits (8-digit numbers); the others 4 (7 or 8 digits).
_LANDLINE = re.compile(r"^(0(?:10|2\d)|0[3-9]\d{2})-?(\d{7,8})(?:-(\d{1,6}))?$")
_SERVICE = re.compile(r"^(?:400|800)\d{7}$")


def normalise_phone(raw: str, *, field: str = "contact_phone") -> str:
    text = re.sub(r"[\s()（）]", "", raw.strip())
    if not text:
        return ""
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip("-")
            break
    if text.startswith("86") and len(text) == 13 and _MOBILE.match(text[2:]):
        text = text[2:]
    if _MOBILE.match(text):
        return text
    digits_only = text.replace("-", "")
    if _MOBILE.match(digits_only):
        return digits_only
    if _SERVICE.match(digits_only):
        return digits_only
    match = _LANDLINE.match(text)
    if match:
        area, number, ext = match.groups()
        if area.startswith(("010", "02")) and len(number) != 8:
            raise Invalid(
                "invalid-phone",
                f"{raw!r}: numbers under area code {area} have 8 digits",
                field=field,
                value=raw,
            )
        return f"{area}-{number}" + (f"-{ext}" if ext else "")
    if text.isdigit() and 7 <= len(text) <= 8:
        message = f"{raw!r} has no area code: write it as 0XXX-{text}"
    elif text.isdigit() and text.startswith("1"):
        message = f"{raw!r} is not a mobile number: mobiles have 11 digits starting 13-19"
    else:
        message = (
            f"{raw!r} is neither a mainland mobile (1XXXXXXXXXX) nor a landline (0XXX-XXXXXXX)"
        )
    raise Invalid("invalid-phone", message, field=field, value=raw)


def is_mobile(number: str) -> bool:
    return bool(_MOBILE.match(number))
