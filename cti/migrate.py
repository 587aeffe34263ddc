"""Schema migrations with Alembic, run from code (``hotline serve`` upgrades at start).

SQLite needs batch mode to alter tables, and the migration connection runs with
``foreign_keys=OFF``: with it on, a batch migration (copy, drop, rename) silently deleted the
``ON DELETE CASCADE`` children of the copied table.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Tables other libraries own (APScheduler creates its job store table itself): not ours to
# migrate, and autogenerate must not drop them.
FOREIGN_TABLES = frozenset({"ticket_timers", "apscheduler_jobs"})


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolates "%": URL-encoded options (search_path%3D...) need doubling.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    if not any((MIGRATIONS / "versions").glob("*.py")):
        # No migration written yet (a development tree): create the tables directly.
        from cti.db import load_models

        load_models().create_all(engine)
        return
    command.upgrade(alembic_config(engine), revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
