"""Fixtures of the ticket tests: a database (SQLite file, or PostgreSQL when
HOTLINE_TEST_PG_URL is set), a controllable clock and a service wired to a recording bus."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import tickets.models  # noqa: F401  (registers the tables)
from console.security import User
from cti.bus import Bus
from cti.db import Base, make_engine, session_factory
from cti.events import Event
from tickets.notify import NullNotifier
from tickets.service import TicketService
from tickets.settings import DeadlineRule, DepartmentSettings, TicketSettings

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


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


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # Tuesday 2026-09-15 10:00 in Shanghai
    return Clock(datetime(2026, 9, 15, 2, 0, tzinfo=UTC))


class RecordingBus(Bus):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.subscribe_all(self.events.append)


DEPARTMENTS = [
    DepartmentSettings(id="zjj", name="住建局", contact_name="王工", contact_phone="13900000001"),
    DepartmentSettings(id="cgj", name="城管局", contact_name="李工", contact_phone="13900000002"),
    DepartmentSettings(id="scj", name="市场监管局", contact_phone="13900000003"),
    DepartmentSettings(id="gaj", name="公安局", co_handling=False),
]

SETTINGS = TicketSettings(
    rules=[
        DeadlineRule(category="咨询", limit="1wd", anchor="dispatch"),
        DeadlineRule(category="复杂咨询", limit="3wd", anchor="dispatch"),
        DeadlineRule(category="投诉", limit="7wd", anchor="dispatch", response_limit="10min"),
        DeadlineRule(category="签收计时", limit="2wd", anchor="sign_off"),
    ],
    default_rule=DeadlineRule(limit="5wd", response_limit="30min"),
)


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


def user(*roles: str, name: str = "", department: str | None = None) -> User:
    tags = set(roles)
    if department:
        tags.add(f"department:{department}")
    return User(1, name or "-".join(sorted(tags)), name or "user", frozenset(tags))


AGENT = user("agent", name="a1001")
LEADER = user("leader", name="leader1")
SUPERVISOR = user("supervisor", name="sup1")
WINDOW = user("window", name="win1")
ADMIN = user("admin", name="root")
ZJJ = user(name="zjj-clerk", department="zjj")
CGJ = user(name="cgj-clerk", department="cgj")
