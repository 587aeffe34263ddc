"""The Alembic migrations build the whole schema, and it matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from cti.db import create_schema, load_models, make_engine
from cti.migrate import FOREIGN_TABLES, current
from tests.conftest import PG_URL
from tests.tickets.support import race


def test_upgrade_head_matches_the_models(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    create_schema(engine)
    assert current(engine) is not None
    metadata = load_models()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda o, n, t, r, c: not (t == "table" and n in FOREIGN_TABLES),
            },
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []
    # idempotent: a second upgrade is a no-op
    create_schema(engine)
    engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: on SQLite one CTI holds the file")
def test_two_processes_upgrade_one_empty_database_at_once(any_db_url: str, tmp_path: Path) -> None:
    """Both CTIs of a pair, started together on a new database: both come up, at head."""
    for _ in range(3):  # each round a fresh schema: the race is lost only sometimes unlocked
        results = race(
            tmp_path, [any_db_url], [any_db_url], module="tests.cti.migrate_process", timeout=120
        )
        engine = make_engine(any_db_url)
        head = current(engine)
        assert head is not None
        assert results == [{"revision": head}, {"revision": head}]
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                conn.execute(text(f'DROP TABLE "{table}" CASCADE'))
        engine.dispose()
