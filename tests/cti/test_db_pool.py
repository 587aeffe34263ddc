"""PostgreSQL's connection pool checks a connection it hands out without asking the server:
one the server ended while it sat idle in the pool (a restart, ``pg_terminate_backend``, a
cut link) is replaced, and the code that asked for it sees no error."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from cti.db import make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (HOTLINE_TEST_PG_URL)")


def backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_the_server_ended_is_replaced_at_checkout(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    admin = make_engine(PG_URL)
    try:
        first = backend_pid(engine)
        with admin.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
        # the server's FATAL message and EOF reach the pooled connection's socket
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with admin.connect() as conn:
                gone = not conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": first},
                ).scalar()
            if gone:
                break
            time.sleep(0.02)
        second = backend_pid(engine)  # no error: the dead one was dropped at checkout
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_live_connection_is_reused_without_a_ping(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(any_db_url)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    try:
        first = backend_pid(engine)
        assert backend_pid(engine) == first
        assert pings == []  # no round trip before the statement
    finally:
        engine.dispose()
