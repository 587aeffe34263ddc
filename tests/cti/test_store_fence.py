"""The store's fence: a CTI that lost the lease writes nothing after the next leader's term
began, not even a batch that was under way when the lease changed hands (PostgreSQL, where
two CTIs share the database; on SQLite one CTI holds the file)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.db import create_schema, make_engine, session_factory
from cti.leader import Lease
from cti.models import CallRow
from cti.store import Store
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="two CTIs share a database server only")


def call(linkedid: str) -> CallRow:
    return CallRow(node="a", linkedid=linkedid, started_at=datetime.now(UTC))


def test_a_deposed_leaders_late_batch_is_refused_and_the_new_leaders_rows_stay(
    any_db_url: str,
) -> None:
    engine = make_engine(any_db_url)
    create_schema(engine)
    sessions = session_factory(engine)
    old = Lease(engine, holder="cti-old", lease_s=60)
    new = Lease(engine, holder="cti-new", lease_s=60)
    assert old.take() is not None
    store = Store(sessions, fence=lambda s: old.holds(s.connection()))
    store.start()
    try:
        store.submit(lambda s: s.add(call("before")))
        assert store.flush_sync()

        # A batch of the old leader is in the middle of its transaction (a stall) when the
        # lease passes to the other process, which writes as the new leader.
        inside, resume = threading.Event(), threading.Event()

        def stalled(session: Session) -> None:
            session.add(call("stale"))
            session.flush()
            inside.set()
            assert resume.wait(30)

        store.submit(stalled)
        store.submit_task(lambda: None)
        assert inside.wait(30)
        assert new.take(force=True) is not None
        with sessions.begin() as s:
            s.add(call("new-leader"))
        resume.set()
        assert store.flush_sync()
        store.submit(lambda s: s.add(call("after")))
        assert store.flush_sync()

        with sessions() as s:
            written = set(s.scalars(select(CallRow.linkedid)))
        assert written == {"before", "new-leader"}
        assert store.deposed
        assert store.dropped == 3  # the stalled batch, the task behind it, the later write
    finally:
        store.stop()
        engine.dispose()


def test_a_leader_writes_while_it_holds_the_lease(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    create_schema(engine)
    sessions = session_factory(engine)
    lease = Lease(engine, holder="cti-only", lease_s=60)
    assert lease.take() is not None
    ran: list[str] = []
    store = Store(sessions, fence=lambda s: lease.holds(s.connection()))
    store.start()
    try:
        store.submit(lambda s: s.add(call("row")))
        store.submit_task(lambda: ran.append("task"))
        assert store.flush_sync()
        with sessions() as s:
            assert list(s.scalars(select(CallRow.linkedid))) == ["row"]
        assert ran == ["task"] and not store.deposed and store.dropped == 0
    finally:
        store.stop()
        engine.dispose()
