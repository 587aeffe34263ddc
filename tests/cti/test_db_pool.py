"""PostgreSQL's connection pool: a connection the server cut while it sat idle in the pool is
replaced on its next checkout, without an error to the code that asked for it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

import cti.db
from cti.db import make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (HOTLINE_TEST_PG_URL)")


@pytest.fixture
def engine(any_db_url: str) -> Iterator[Engine]:
    engine = make_engine(any_db_url)
    yield engine
    engine.dispose()


def cut_its_connection(engine: Engine) -> int:
    """The server ends the connection the pool holds (as a restart or an idle timeout does);
    returns its backend's pid."""
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    return pid


def test_a_connection_cut_while_idle_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cti.db, "PING_IDLE_S", 0.2)
    first = cut_its_connection(engine)
    time.sleep(0.3)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first


def test_a_connection_cut_in_use_fails_once_then_the_pool_is_renewed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping for a connection used a moment ago: its next statement fails (the store
    retries such a write), and the pool drops every connection opened before."""
    monkeypatch.setattr(cti.db, "PING_IDLE_S", 60.0)
    first = cut_its_connection(engine)
    with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert failed.value.connection_invalidated
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
