"""One SQLAlchemy metadata for every slice, the portable column types, and engine creation.

Each slice declares its tables on ``Base`` in its own ``models`` module; ``load_models()``
imports them all so that ``Base.metadata`` (and Alembic) sees the whole schema.
"""

from __future__ import annotations

import json
import select
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.exc import DisconnectionError
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
    engine = create_engine(url, echo=echo, json_serializer=_json_dumps, pool_size=10)
    event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """The pool's check of a connection it hands out, without a round trip: an idle
    PostgreSQL connection has nothing to read unless the server ended it (its FATAL message,
    then EOF, after a restart or ``pg_terminate_backend``) or the connection was reset.
    Such a connection is dropped and another one checked out, and its user sees no error.
    (``pool_pre_ping`` asked the server instead: a round trip at each checkout, a tenth of
    the store's time on PostgreSQL under load, where its writer checks out a connection a
    few times a second per call.)"""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        raise DisconnectionError("connection closed")
    try:
        readable, _, failed = select.select([pgconn.socket], [], [pgconn.socket], 0)
    except (OSError, ValueError) as exc:  # no socket any more
        raise DisconnectionError(f"connection unusable: {exc}") from None
    if readable or failed:
        raise DisconnectionError("the server closed the connection while it was idle")


# How long a check waits for a database server that does not answer.
CONNECT_TIMEOUT_S = 5
URL_FORMS = "sqlite:///path/hotline.db or postgresql+psycopg://user:password@host/database"
SERVER_ADVICE = "start the database server or correct the URL's host, port, user, password and name"


def parse_url(url: str, key: str = "database.url") -> URL:
    """``url`` parsed, or ``DatabaseError`` naming ``key`` (the setting or option it came
    from) and the URL with its password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from cti.config import mask_url
    from cti.errors import DatabaseError

    try:
        parsed = make_url(normalise_url(url))
        parsed.port  # noqa: B018 (a port that is no number fails here, not at connect)
    except (ArgumentError, ValueError):
        if "://" not in url and ("/" in url or url.endswith((".db", ".sqlite", ".sqlite3"))):
            raise DatabaseError(
                f"{key}: {url!r} is a file name, not a database URL: write sqlite:///{url}."
            ) from None
        raise DatabaseError(
            f"{key}: {mask_url(url)!r} is not a database URL: write {URL_FORMS}."
        ) from None
    return parsed


def open_database(
    url: str,
    *,
    key: str = "database.url",
    create: bool = True,
    needs: str = "",
    missing: str = "",
) -> Engine:
    """An engine on ``url`` that has answered ``SELECT 1``, or ``DatabaseError`` with one
    sentence: what is wrong, the URL with its password masked, and what to do.

    ``create``: a SQLite file that does not exist is made (else it is an error, ``missing``
    the advice, and no empty file is left behind). ``needs``: a table that must be there."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from cti.config import mask_url
    from cti.errors import DatabaseError

    parsed = parse_url(url, key)
    shown = mask_url(url)  # as the user wrote it, without its password
    advice = SERVER_ADVICE
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            if not create and not path.is_file():
                what = "is a directory" if path.is_dir() else "does not exist"
                raise DatabaseError(f"{key}: the database {path} {what}: {missing or 'create it'}.")
        advice = "point the URL at a SQLite database file"
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    try:
        engine = make_engine(parsed.render_as_string(hide_password=False))
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(
            f"{key}: cannot use {parsed.drivername} ({first_line(exc)}): install its driver "
            "or correct the URL's scheme."
        ) from None
    except OSError as exc:  # the SQLite file's directory cannot be made
        raise DatabaseError(
            f"{key}: cannot create the directory of {shown} ({first_line(exc)}): "
            "choose a directory this user may write."
        ) from None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            empty = bool(needs) and not inspect(conn).has_table(needs)
    except SQLAlchemyError as exc:
        engine.dispose()
        cause = getattr(exc, "orig", None) or exc
        raise DatabaseError(
            f"{key}: cannot open {shown} ({first_line(cause)}): {advice}."
        ) from None
    if empty:
        engine.dispose()
        raise DatabaseError(
            f"{key}: {shown} has no hotline tables yet: {missing or 'run hotline db upgrade'}."
        )
    return engine


def first_line(exc: BaseException) -> str:
    """The first line of an error, without Python's decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


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
