"""PostgreSQL's connection pool: a connection the server cut while it sat idle in the pool is
replaced on its next checkout, without an error to the code that asked for it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import cti.db
from cti.db import make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (HOTLINE_TEST_PG_URL)")


def test_a_connection_cut_while_idle_is_replaced(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cti.db, "PING_IDLE_S", 0.2)
    engine = make_engine(any_db_url)
    admin = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.begin() as conn:  # the server ends the pooled connection
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        time.sleep(0.3)
        with engine.connect() as conn:
            second = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_cut_in_use_fails_once_then_the_pool_is_renewed(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping for a connection used a moment ago: its next statement fails (the store
    retries such a write), and the pool drops every connection opened before."""
    monkeypatch.setattr(cti.db, "PING_IDLE_S", 60.0)
    engine = make_engine(any_db_url)
    admin = make_engine(PG_URL)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
    finally:
        engine.dispose()
        admin.dispose()
