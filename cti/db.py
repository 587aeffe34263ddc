"""One SQLAlchemy metadata for every slice, the portable column types, and engine creation.

Each slice declares its tables on ``Base`` in its own ``models`` module; ``load_models()``
imports them all so that ``Base.metadata`` (and Alembic) sees the whole schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    SQLite drops the offset of ``DateTime(timezone=True)`` and PostgreSQL silently accepts
    naive values, so naive datetimes are refused here instead of being stored ambiguously.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON columns whose in-place edits are tracked (a plain JSON column loses them).
JSONDict = MutableDict.as_mutable(JSON)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def normalise_url(url: str) -> str:
    """``postgresql://`` would pick psycopg2 under SQLAlchemy 2.0: we ship psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            json_serializer=_json_dumps,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, echo=echo, json_serializer=_json_dumps, pool_pre_ping=True, pool_size=10
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def load_models() -> MetaData:
    """Import every slice's models so that ``Base.metadata`` holds the whole schema."""
    import importlib

    for module in (
        "cti.models",
        "tickets.models",
        "recordings.models",
        "console.models",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A slice that is not installed has no tables; a broken import inside one is a bug.
            if exc.name is None or not module.startswith(exc.name):
                raise
    return Base.metadata


def create_schema(engine: Engine) -> None:
    """Bring the database to the current schema (Alembic ``upgrade head``)."""
    from cti.migrate import upgrade

    upgrade(engine)
