"""Row writes as plain values: what the store batches into one Core statement per kind.

A call, an agent or a seat changes several times a second at peak, and each change used to be
an ORM unit of work in the writer thread (a SELECT to find the row, attribute bookkeeping, a
flush): about half a millisecond of Python each, holding the interpreter lock the event loop
needs to answer FastAGI. A :class:`RowKind` names one statement (an upsert, an update or an
insert) and the values are a dict, so the writer sends a whole batch of them as one
``executemany`` and, where the kind has a key, keeps only the newest values per row.

Upserts use ``INSERT ... ON CONFLICT`` of SQLite and PostgreSQL, the two databases hotline
runs on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, bindparam, case, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

Mode = Literal["upsert", "update", "insert", "insert_ignore", "statement"]
Values = dict[str, Any]

_order = itertools.count()

# An update's parameters are named apart from its columns (SQLAlchemy reserves the column
# names for the SET clause it would build itself).
KEY_PREFIX = "k_"
SET_PREFIX = "v_"


@dataclass(frozen=True, eq=False)
class RowKind:
    """One statement on one table.

    - ``upsert``: insert the values, or on a conflict on ``key`` update the other columns,
      except ``insert_only`` (set once, when the row is made) and ``fill_empty`` (set only
      while the stored value is empty: the first answer stays);
    - ``update``: update the row(s) matching ``key`` (columns of the values) and ``where``;
      rows that do not exist are left alone;
    - ``insert``: append a row (a log);
    - ``insert_ignore``: insert unless a row with ``key`` exists;
    - ``statement``: ``build(dialect)`` gives the statement, the values are its parameters.

    Kinds with a key write each row once per batch (:meth:`merge`). Kinds are written in
    the order they were defined, so that a row another kind refers to (an agent before its
    state log) is written first.
    """

    name: str
    table: Table
    mode: Mode
    key: tuple[str, ...] = ()
    insert_only: tuple[str, ...] = ()
    fill_empty: tuple[str, ...] = ()
    where: ColumnElement[bool] | None = None
    build: Callable[[str], Executable] | None = None
    order: int = field(default_factory=lambda: next(_order))
    _statements: dict[str, Executable] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        columns = set(self.table.c.keys())
        unknown = {*self.key, *self.insert_only, *self.fill_empty} - columns
        if unknown:
            raise ValueError(f"{self.name}: no such columns in {self.table.name}: {unknown}")
        if self.mode in ("upsert", "update", "insert_ignore") and not self.key:
            raise ValueError(f"{self.name}: a {self.mode} needs a key")
        if (self.mode == "statement") != (self.build is not None):
            raise ValueError(f"{self.name}: build goes with mode 'statement', and only there")

    def coalesce_key(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        if not self.key or self.mode == "insert":
            return None
        return tuple(values[c] for c in self.key)

    def merge(self, older: Values, newer: Values) -> Values:
        """Two writes of one row in a batch: the newer values over the older, except for an
        ``insert_ignore``, where the first one written stays."""
        if self.mode == "insert_ignore":
            return older
        return {**older, **newer}

    def params(self, values: Values) -> Values:
        """The statement's parameters for one row."""
        if self.mode != "update":
            return values
        return {(KEY_PREFIX if k in self.key else SET_PREFIX) + k: v for k, v in values.items()}

    def statement(self, dialect: str, columns: tuple[str, ...]) -> Executable:
        """The statement for rows with these value columns (built once per shape)."""
        cache_key = f"{dialect}:{','.join(columns)}"
        stmt = self._statements.get(cache_key)
        if stmt is None:
            stmt = self._build(dialect, columns)
            self._statements[cache_key] = stmt
        return stmt

    def _build(self, dialect: str, columns: tuple[str, ...]) -> Executable:
        t = self.table
        if self.build is not None:
            return self.build(dialect)
        if self.mode == "insert":
            return insert(t)
        if self.mode == "update":
            where = [t.c[k] == bindparam(KEY_PREFIX + k, type_=t.c[k].type) for k in self.key]
            if self.where is not None:
                where.append(self.where)
            sets = {
                c: bindparam(SET_PREFIX + c, type_=t.c[c].type)
                for c in columns
                if c not in self.key
            }
            return update(t).where(*where).values(sets)
        ins = dialect_insert(t, dialect)
        if self.mode == "insert_ignore":
            return ins.on_conflict_do_nothing(index_elements=list(self.key))  # type: ignore[no-any-return]
        excluded = ins.excluded
        upserted: dict[str, Any] = {}
        for c in columns:
            if c in self.key or c in self.insert_only:
                continue
            if c in self.fill_empty:
                upserted[c] = case((t.c[c] == "", excluded[c]), else_=t.c[c])
            else:
                upserted[c] = excluded[c]
        return ins.on_conflict_do_update(index_elements=list(self.key), set_=upserted)  # type: ignore[no-any-return]


def dialect_insert(table: Table | type[Any], dialect: str) -> Any:
    """The INSERT (into a table or a mapped class) of SQLite or PostgreSQL, the databases
    hotline runs on, with their ``ON CONFLICT`` clauses."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"hotline writes to SQLite or PostgreSQL, not {dialect}")
