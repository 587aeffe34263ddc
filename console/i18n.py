"""Interface text: one JSON catalogue per language (``console/i18n/<lang>.json``).

Keys are dotted names (``agent.ready``); ``{name}`` placeholders are filled from keyword
arguments. A key missing from the chosen language falls back to zh-CN, then to the key
itself, so a missing translation shows up on screen instead of breaking the page. The pages
get the whole catalogue and the JavaScript ``t(key)`` reads the same file.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

DIR = Path(__file__).with_name("i18n")
DEFAULT = "zh-CN"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@functools.cache
def catalogue(language: str = DEFAULT) -> dict[str, str]:
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", language):
        language = DEFAULT
    base: dict[str, str] = json.loads((DIR / f"{DEFAULT}.json").read_text("utf-8"))
    path = DIR / f"{language}.json"
    if language != DEFAULT and path.is_file():
        base = {**base, **json.loads(path.read_text("utf-8"))}
    return base


class Translator:
    def __init__(self, language: str = DEFAULT) -> None:
        self.language = language if (DIR / f"{language}.json").is_file() else DEFAULT
        self.messages = catalogue(self.language)

    def __call__(self, key: str, **params: Any) -> str:
        text = self.messages.get(key, key)
        if params:
            text = _PLACEHOLDER.sub(lambda m: str(params.get(m[1], m[0])), text)
        return text
