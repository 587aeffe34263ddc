"""PostgreSQL stopped for a few seconds under calls: the CTI keeps taking calls, the store
buffers what it must write, and everything is written when the server is back. Against the
real server of scripts/test.sh (``pg_ctl stop -m fast`` kills this test's connections too:
that is the point); skipped without HOTLINE_TEST_PG_URL and HOTLINE_TEST_PG_CTL."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.cti.live import close_floor
from tests.reliability.helpers import ledger, open_site, site_data, until

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "")
PG_CTL = os.environ.get("HOTLINE_TEST_PG_CTL", "")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not (PG_URL and PG_CTL), reason="needs HOTLINE_TEST_PG_URL and HOTLINE_TEST_PG_CTL"
    ),
]


class PgControl:
    """``pg_ctl`` as scripts/test.sh gives it (``[runuser -u postgres --] pg_ctl -D DIR``).
    ``start`` uses the options the server was started with, read from ``pg_ctl status``."""

    def __init__(self, command: str) -> None:
        self.base = shlex.split(command)
        self.datadir = self.base[self.base.index("-D") + 1]
        self.options = ""

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0 and args[0] != "status":
            raise RuntimeError(f"pg_ctl {args[0]}: {done.stdout}{done.stderr}")
        return done.stdout

    def running(self) -> bool:
        return "server is running" in self.run("status")

    def stop(self) -> None:
        # e.g. /usr/lib/postgresql/15/bin/postgres "-D" "/tmp/x" "-p" "5433" "-k" "/tmp/x" ...
        argv = shlex.split(self.run("status").splitlines()[1])[1:]
        i = argv.index("-D")
        del argv[i : i + 2]
        self.options = shlex.join(argv)
        self.run("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self.run("start", "-w", "-l", str(Path(self.datadir) / "log"), "-o", self.options)


async def test_database_outage_buffers_and_loses_nothing(any_db_url: str, tmp_path: Path) -> None:
    pg = PgControl(PG_CTL)
    assert pg.running()
    floor = await open_site(site_data(4, skills=1), any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    handles = []
    try:
        for i in range(2):
            handles.append(sim.place_call(caller=f"1350000000{i}", did="12300", talk_s=5))
        for h in handles:
            assert await h.wait(10) == "answered"
        assert await hotline.store.flush(10)
        written_before = hotline.store.written

        pg.stop()
        try:
            during = [
                sim.place_call(caller=f"1350000010{i}", did="12300", talk_s=5) for i in range(4)
            ]
            await asyncio.sleep(0.2)
            hotline.agents.set_not_ready("a00003", "lunch")  # an agent state change too
            during.append(sim.place_call(caller="13500000200", did="12300", patience_s=2))
            for h in during[:4]:
                assert await h.wait(10) == "answered"
            assert await during[4].wait(10) == "abandoned"
            handles += during
            await until(lambda: not hotline.store.stats()["healthy"], 10)
            stats = hotline.store.stats()
            assert stats["pending"] > 0 and stats["retries"] > 0 and stats["overflow"] == 0
            health = await asyncio.to_thread(hotline.health)
            assert health["database"]["ok"] is False and health["status"] == "degraded"
        finally:
            if not pg.running():
                pg.start()

        assert await hotline.store.flush(30)
        stats = hotline.store.stats()
        assert stats["healthy"] and stats["dead"] == 0 and stats["written"] > written_before
        await until(lambda: hotline.health()["database"]["ok"], 10)
        book = ledger(hotline.sessions)
        rows, ticket_calls = book["rows"], book["ticket_calls"]
        assert {h.uniqueid for h in handles} <= set(rows)
        for h in handles:
            row = rows[h.uniqueid]
            assert row.ended_at is not None
            if h.outcome == "answered":
                assert ticket_calls.get(h.uniqueid) == [row.ticket_id]
            else:
                assert book["callbacks"][row.caller].status == "open"
        assert book["tickets"] == 6
    finally:
        if not pg.running():
            pg.start()
        await close_floor(floor)
