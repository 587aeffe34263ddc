"""A sole CTI on PostgreSQL (``[ha] standby = false``, the default) keeps leading through a
database outage longer than its lease: nobody stands by to take over, so stepping down would
only stop the routes and drop the write buffer. Skipped without HOTLINE_TEST_PG_URL and
HOTLINE_TEST_PG_CTL, as the outage test it borrows the server control from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cti.live import close_floor
from tests.reliability.helpers import open_site, site_data, until
from tests.reliability.test_db_outage import PG_CTL, PG_URL, PgControl

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not (PG_URL and PG_CTL), reason="needs HOTLINE_TEST_PG_URL and HOTLINE_TEST_PG_CTL"
    ),
]


async def test_a_sole_cti_keeps_leading_through_a_database_outage(
    any_db_url: str, tmp_path: Path
) -> None:
    pg = PgControl(PG_CTL)
    assert pg.running()
    floor = await open_site(site_data(2, skills=1), any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    leadership = hotline.leadership
    try:
        assert leadership.leading and not leadership.fence
        term = leadership.info()["term"]
        pg.stop()
        try:
            # Longer than the lease: a fencing leader would have stepped down by now.
            await asyncio.sleep(hotline.settings.ha.lease_s + 1.0)
            assert leadership.leading and not hotline.lost.is_set()
            handle = sim.place_call(caller="13500000001", did="12300", talk_s=2)
            assert await handle.wait(10) == "answered"
        finally:
            if not pg.running():
                pg.start()
        renewed = leadership.current.expires_at if leadership.current else 0.0
        await until(
            lambda: leadership.current is not None and leadership.current.expires_at > renewed,
            15,
        )
        assert leadership.info()["term"] == term  # the same lead, renewed
    finally:
        await close_floor(floor)
