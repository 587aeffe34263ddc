"""Schema migrations with Alembic, run from code (``hotline serve`` upgrades at start).

SQLite needs batch mode to alter tables, and the migration connection runs with
``foreign_keys=OFF``: with it on, a batch migration (copy, drop, rename) silently deleted the
``ON DELETE CASCADE`` children of the copied table.

Two CTIs started at once on an empty PostgreSQL database would both find no
``alembic_version`` and both create the tables: the loser fails on a duplicate table. The
upgrade runs under a PostgreSQL advisory lock, so the second waits and then finds the schema
current. On SQLite the file lock of ``cti.single`` already keeps a second CTI out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Tables other libraries own (APScheduler creates its job store table itself): not ours to
# migrate, and autogenerate must not drop them.
FOREIGN_TABLES = frozenset({"ticket_timers", "apscheduler_jobs"})
# The advisory lock's key: one per database, whatever the schema ("hotline" in ASCII).
MIGRATION_LOCK = 0x686F746C696E65


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolates "%": URL-encoded options (search_path%3D...) need doubling.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _migration_lock(engine):
        if not any((MIGRATIONS / "versions").glob("*.py")):
            # No migration written yet (a development tree): create the tables directly.
            from cti.db import load_models

            load_models().create_all(engine)
            return
        command.upgrade(alembic_config(engine), revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, hold a session advisory lock on a connection of its own while the
    migrations run on another; released when that connection's session ends, even if the
    process dies mid-upgrade."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
            conn.commit()


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
