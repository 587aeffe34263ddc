"""The fallback queue's members always match who the CTI says is logged in and ready, across a
CTI restart (Asterisk keeps the old process's members: "Already there") and an Asterisk
restart (the queue comes back empty: "Interface not found")."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cti.app import Hotline
from cti.config import parse
from cti.testing.pbx import AsteriskSimulator
from tests.reliability.helpers import open_site, site_data, until


def members(sim: AsteriskSimulator) -> dict[str, bool]:
    """Interface -> paused, as the simulated app_queue holds them."""
    return {iface: m.paused for iface, m in sim.queue.members.items()}


async def converged(sim: AsteriskSimulator, hotline: Hotline, timeout: float) -> None:
    with contextlib.suppress(AssertionError):
        await until(lambda: members(sim) == wanted(hotline), timeout)
    assert members(sim) == wanted(hotline), [
        (a.id, a.state, a.reason, a.seat) for a in hotline.agents.all()
    ]


def wanted(hotline: Hotline) -> dict[str, bool]:
    return {
        f"PJSIP/{a.seat}": a.state != "ready"
        for a in hotline.agents.all()
        if a.state != "logged_out" and a.seat
    }


async def test_agents_and_queue_members_survive_a_cti_restart(
    any_db_url: str, tmp_path: Path
) -> None:
    data = site_data(3)
    floor = await open_site(data, any_db_url, tmp_path)
    sim, first = floor.sim, floor.hotline
    try:
        first.agents.set_not_ready("a00001", "lunch")
        first.agents.logout("a00002")
        await converged(sim, first, 5)
        assert members(sim) == {"PJSIP/8001": False, "PJSIP/8002": True}
        assert await first.store.flush(10)
        await first.stop()

        # While no CTI runs, somebody else's member appears (a stale one from an old site).
        sim.queue.add_member("PJSIP/8003", "旧成员", "PJSIP/8003", paused=False, reason="")

        second = Hotline(parse(data), console=False)
        await second.start()
        try:
            assert await second.wait_connected(15)
            li, wang, zhao = (second.agents.get(a) for a in ("a00000", "a00001", "a00002"))
            assert (li.state, li.seat) == ("ready", "8001")
            assert (wang.state, wang.reason, wang.seat) == ("not_ready", "lunch", "8002")
            assert zhao.state == "logged_out"
            # Members left by the first process stay as they are; the stale one is removed.
            await converged(sim, second, 5)
            assert members(sim) == {"PJSIP/8001": False, "PJSIP/8002": True}
        finally:
            await second.stop()
    finally:
        await sim.stop()


async def test_queue_members_come_back_after_an_asterisk_restart(
    any_db_url: str, tmp_path: Path
) -> None:
    data = site_data(3)
    floor = await open_site(data, any_db_url, tmp_path)
    sim, hotline = floor.sim, floor.hotline
    try:
        hotline.agents.set_not_ready("a00002", "break")
        await converged(sim, hotline, 5)
        resyncs = hotline.resync_seconds.copy()
        await sim.restart()
        assert members(sim) == {}
        await until(lambda: hotline.resync_seconds != resyncs, 15)
        # Every phone is unusable until Asterisk qualifies it again after the boot: the CTI
        # takes the agents out, then back in as each phone returns; the one who chose a
        # break stays on it.
        await converged(sim, hotline, 5)
        await until(lambda: hotline.agents.get("a00000").state == "ready", 10)
        await until(lambda: hotline.agents.get("a00001").state == "ready", 10)
        await converged(sim, hotline, 5)
        assert members(sim) == {"PJSIP/8001": False, "PJSIP/8002": False, "PJSIP/8003": True}
        assert hotline.agents.get("a00002").reason == "break"
    finally:
        await hotline.stop()
        await sim.stop()


async def test_a_flip_within_one_turn_and_a_repeat_cost_asterisk_no_action(
    any_db_url: str, tmp_path: Path
) -> None:
    """A wrap-up of 0 s pauses and unpauses in one turn of the loop; a second 'ready' for a
    member that is unpaused already. Neither sends Asterisk anything; a real pause does."""
    data = site_data(3)
    floor = await open_site(data, any_db_url, tmp_path)
    sim, hotline = floor.sim, floor.hotline
    try:
        await converged(sim, hotline, 5)
        qm = hotline.acd.members
        node = next(iter(hotline.nodes.values()))
        await until(lambda: qm.converging == 0, 5)
        before = qm.stats["actions"]
        qm.want(node, "8001", ("li", True, "wrap_up"))
        last = qm.want(node, "8001", ("li", False, ""))
        assert await last
        assert await qm.want(node, "8001", ("li", False, ""))
        assert qm.stats["actions"] == before
        assert await qm.want(node, "8001", ("li", True, "lunch"))
        assert qm.stats["actions"] == before + 1 and members(sim)["PJSIP/8001"] is True
    finally:
        await hotline.stop()
        await sim.stop()
