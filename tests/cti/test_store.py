"""The write-behind store: order, batching, own-transaction tasks, outages, bad writes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from cti.db import load_models, make_engine, session_factory
from cti.models import CallRow
from cti.store import Store


def _store(url: str) -> tuple[Store, object]:
    engine = make_engine(url)
    load_models().create_all(engine)
    return Store(session_factory(engine), backoff_max_s=0.05), engine


def _add(i: int):  # noqa: ANN202
    def write(session) -> None:  # noqa: ANN001
        session.add(CallRow(node="n", linkedid=str(i), started_at=datetime.now(UTC)))

    return write


def test_writes_and_tasks_keep_their_order(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    seen: list[int] = []
    store.start()
    sessions = session_factory(engine)
    for i in range(50):
        store.submit(_add(i))
        if i % 10 == 0:

            def task(i=i) -> None:  # noqa: ANN001
                with sessions() as s:
                    seen.append(len(list(s.scalars(select(CallRow.id)))))

            store.submit_task(task)
    assert store.flush_sync(10)
    store.stop()
    # each task saw exactly the writes submitted before it
    assert seen == [1, 11, 21, 31, 41]
    with engine.connect() as c:
        assert c.execute(text("select count(*) from calls")).scalar() == 50
    engine.dispose()


def test_outage_buffers_and_nothing_is_lost(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    failures = {"left": 3}

    def flaky(session) -> None:  # noqa: ANN001
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        session.add(CallRow(node="n", linkedid="flaky", started_at=datetime.now(UTC)))

    store.start()
    store.submit(flaky)
    for i in range(20):
        store.submit(_add(i))
    assert store.flush_sync(10)
    assert store.retries == 3 and store.healthy
    store.stop()
    with engine.connect() as c:
        assert c.execute(text("select count(*) from calls")).scalar() == 21
    engine.dispose()


def test_a_bad_write_is_set_aside_and_the_rest_goes_on(any_db_url: str) -> None:
    store, engine = _store(any_db_url)

    def bad(session) -> None:  # noqa: ANN001
        raise ValueError("bug")

    store.start()
    store.submit(_add(1))
    store.submit(bad, "bad")
    store.submit(_add(2))
    assert store.flush_sync(10)
    store.stop()
    assert [label for label, _ in store.dead] == ["bad"]
    with engine.connect() as c:
        assert c.execute(text("select count(*) from calls")).scalar() == 2
    engine.dispose()


def test_tasks_ask_the_task_fence_and_batches_the_fence(any_db_url: str) -> None:
    """A task is checked against the lease as the process knows it (no transaction of its
    own); a batch, in its own transaction. A task refused deposes the store: nothing after it
    is written."""
    engine = make_engine(any_db_url)
    load_models().create_all(engine)
    asked: list[str] = []
    leads = [True]

    def fence(session) -> bool:  # noqa: ANN001
        asked.append("batch")
        return True

    def task_fence() -> bool:
        asked.append("task")
        return leads[0]

    store = Store(session_factory(engine), fence=fence, task_fence=task_fence, linger_s=0)
    store.start()
    ran: list[int] = []
    store.submit(_add(1))
    assert store.flush_sync(10)
    store.submit_task(lambda: ran.append(1))
    assert store.flush_sync(10)
    assert asked == ["batch", "task"] and ran == [1]
    leads[0] = False
    store.submit_task(lambda: ran.append(2))
    store.submit(_add(2))
    assert store.flush_sync(10)
    store.stop()
    assert ran == [1] and store.deposed
    with engine.connect() as c:
        assert c.execute(text("select count(*) from calls")).scalar() == 1
    engine.dispose()
