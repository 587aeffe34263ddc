"""Fixtures of the ticket tests: a database (SQLite file, or PostgreSQL when
HOTLINE_TEST_PG_URL is set), a controllable clock and a service wired to a recording bus."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import tickets.models  # noqa: F401  (registers the tables)
from cti.db import Base, make_engine, session_factory
from tests.tickets.support import DEPARTMENTS, SETTINGS, Clock, RecordingBus
from tickets.notify import NullNotifier
from tickets.service import TicketService

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "")
# The suite runs once per database (scripts/test.sh): SQLite, then PostgreSQL when set.
BACKENDS = ["postgres"] if PG_URL else ["sqlite"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a throwaway schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
        return
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def clock() -> Clock:
    # Tuesday 2026-09-15 10:00 in Shanghai
    return Clock(datetime(2026, 9, 15, 2, 0, tzinfo=UTC))


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def notifier() -> NullNotifier:
    return NullNotifier()


@pytest.fixture
def service(
    sessions: sessionmaker[Session], bus: RecordingBus, notifier: NullNotifier, clock: Clock
) -> TicketService:
    return TicketService(sessions, bus, SETTINGS, DEPARTMENTS, notifier, None, clock)
