"""``config/example.toml`` is what users copy: it must load, and document every key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

from cti.config import Settings, parse

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        for t in inner:
            if isinstance(t, type) and issubclass(t, BaseModel):
                keys += _keys(t, f"{prefix}{name}.")
    return keys


def test_example_loads() -> None:
    with EXAMPLE.open("rb") as fh:
        settings = parse(tomllib.load(fh))
    assert settings.transcription.live and settings.transcription.decoder()


def test_example_names_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    # a key is documented when it is set, or shown commented out, on a line or inline table
    documented = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", text))
    missing = [k for k in _keys(Settings) if k.rsplit(".", 1)[-1] not in documented]
    # sections and lists of tables are headers, not keys
    missing = [k for k in missing if f"[{k}]" not in text and f"[[{k}]]" not in text]
    assert missing == []
