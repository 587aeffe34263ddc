"""On SQLite the sole CTI leads for its life: a database busy with the store's writes for
longer than a lease does not make it step down."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from cti.db import create_schema, make_engine
from cti.leader import Leadership, Lease


async def test_a_busy_sqlite_file_does_not_stop_the_sole_cti(tmp_path: Path) -> None:
    path = tmp_path / "hotline.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    lost: list[str] = []
    leader = Leadership(
        Lease(engine, holder="a", lease_s=1.0),
        renew_s=0.1,
        poll_s=0.05,
        margin_s=0.2,
        force=True,
        on_lost=lost.append,
    )
    writer = sqlite3.connect(path, timeout=0)
    try:
        assert await leader.acquire()
        # another connection holds the file's write lock for longer than the lease
        writer.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(1.5)
        writer.rollback()
        assert leader.leading and lost == []
    finally:
        writer.close()
        await leader.stop()
        engine.dispose()
