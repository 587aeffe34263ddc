"""Interface text: one JSON catalogue per language (``console/i18n/<lang>.json``).

Keys are dotted names (``agent.ready``); ``{name}`` placeholders are filled from keyword
arguments. A key missing from the chosen language falls back to zh-CN, then to the key
itself, so a missing translation shows up on screen instead of breaking the page. The pages
get the whole catalogue and the JavaScript ``t(key)`` reads the same file.

With ``HOTLINE_I18N_MARK_MISSING=1`` in the environment (the browser tests set it), nothing
falls back: a key missing from the chosen language is shown as ``⟦missing:key⟧``, on the
server and in the pages' JavaScript alike, so that a test reading the screen cannot miss it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

DIR = Path(__file__).with_name("i18n")
DEFAULT = "zh-CN"
MARK_ENV = "HOTLINE_I18N_MARK_MISSING"
MISSING = "⟦missing:{key}⟧"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def languages() -> list[str]:
    """The languages that have a catalogue."""
    return sorted(p.stem for p in DIR.glob("*.json"))


def own_catalogue(language: str) -> dict[str, str]:
    """One language's file as written, without the zh-CN fallback."""
    data: dict[str, str] = json.loads((DIR / f"{language}.json").read_text("utf-8"))
    return data


@functools.cache
def catalogue(language: str = DEFAULT, fallback: bool = True) -> dict[str, str]:
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", language):
        language = DEFAULT
    path = DIR / f"{language}.json"
    if not path.is_file():
        language = DEFAULT
    if not fallback or language == DEFAULT:
        return own_catalogue(language)
    return {**own_catalogue(DEFAULT), **own_catalogue(language)}


def marking_missing() -> bool:
    return os.environ.get(MARK_ENV, "") not in ("", "0")


class Translator:
    def __init__(self, language: str = DEFAULT, *, mark_missing: bool | None = None) -> None:
        self.language = language if (DIR / f"{language}.json").is_file() else DEFAULT
        self.mark_missing = marking_missing() if mark_missing is None else mark_missing
        self.messages = catalogue(self.language, not self.mark_missing)

    def has(self, key: str) -> bool:
        return key in self.messages

    def __call__(self, key: str, **params: Any) -> str:
        text = self.messages.get(key)
        if text is None:
            return MISSING.format(key=key) if self.mark_missing else key
        if params:
            text = _PLACEHOLDER.sub(lambda m: str(params.get(m[1], m[0])), text)
        return text
