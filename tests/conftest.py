"""Shared fixtures. The database: a SQLite file by default; with HOTLINE_TEST_PG_URL set
(``.ci/run`` starts a real PostgreSQL), a throwaway schema on PostgreSQL per test."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "")


@pytest.fixture
def any_db_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
        return
    from cti.db import make_engine

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(autouse=True)
def _collect_garbage_per_test() -> Iterator[None]:
    """Leaked connections and sockets are reported against the test that leaked them.

    What survives the collection is frozen (moved out of the collector's view): the heap holds
    large long-lived tables (the segmenter's dictionary, the models), and scanning them again
    after every test cost more than a second a test."""
    yield
    gc.collect()
    gc.freeze()


def _dump_tasks(signum: int, frame: object) -> None:
    """``kill -USR1 <pytest pid>``: print every asyncio task's stack (where a test hangs)."""
    import asyncio
    import sys

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    for task in asyncio.all_tasks(loop) if loop else ():
        task.print_stack(file=sys.stderr)


if hasattr(__import__("signal"), "SIGUSR1"):
    import signal as _signal

    _signal.signal(_signal.SIGUSR1, _dump_tasks)
