"""Recorded Asterisk sessions (``NAME.ami.jsonl`` / ``NAME.agi.jsonl``) as plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cti.testing.frames import Pairs, event_name, parse_message

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

SCENARIOS = (
    "asterisk_restart",
    "attended_transfer",
    "blind_transfer",
    "callback_originate",
    "direct_to_seat",
    "peak_load",
    "queue_abandoned",
    "queue_answered",
    "seat_status",
    "three_way_window",
)

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Entry:
    t: float
    dir: Direction
    data: str

    @property
    def closes(self) -> bool:
        """An empty ``in`` entry records that Asterisk closed the socket."""
        return self.dir == "in" and self.data == ""

    def pairs(self) -> Pairs:
        return parse_message(self.data)


@dataclass(frozen=True, slots=True)
class Transcript:
    header: dict[str, Any]
    entries: tuple[Entry, ...]
    path: Path | None = field(default=None, compare=False)

    @property
    def scenario(self) -> str:
        return str(self.header.get("scenario", ""))

    def events(self) -> list[Pairs]:
        """Every ``Event:`` message Asterisk sent, parsed, in order."""
        out: list[Pairs] = []
        for entry in self.entries:
            if entry.dir != "in" or not entry.data:
                continue
            pairs = entry.pairs()
            if event_name(pairs) is not None:
                out.append(pairs)
        return out

    def actions(self) -> list[Pairs]:
        return [entry.pairs() for entry in self.entries if entry.dir == "out"]


def fixture_path(name: str) -> Path:
    """Path of a fixture shipped under ``tests/fixtures``.

    ``fixture_path("direct_to_seat.ami.jsonl")`` finds the transcript,
    ``fixture_path("direct_to_seat.wav")`` the recording; a path with a folder
    (``"recordings/x.wav"``) is taken as is.
    """
    if "/" in name:
        return FIXTURES / name
    folder = "transcripts" if name.endswith(".jsonl") else "recordings"
    return FIXTURES / folder / name


def load_transcript(path: str | Path) -> Transcript:
    """Read a transcript; a bare scenario file name is looked up in the fixtures."""
    p = Path(path)
    if not p.exists() and not p.is_absolute():
        p = fixture_path(str(path))
    header: dict[str, Any] = {}
    entries: list[Entry] = []
    with p.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "header" in record:
                header = dict(record["header"])
                continue
            direction = record["dir"]
            if direction not in ("in", "out"):
                raise ValueError(f"{p}:{number}: bad dir {direction!r}")
            entries.append(Entry(float(record["t"]), direction, str(record["data"])))
    return Transcript(header, tuple(entries), p)
