"""The Alembic migrations build the whole schema, and it matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cti.db import create_schema, load_models, make_engine
from cti.migrate import FOREIGN_TABLES, current


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
