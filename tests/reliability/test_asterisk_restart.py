"""Asterisk goes away under load and comes back: ``core restart now`` (the AMI socket just
closes, every call is gone) and a network blip (the socket closes, the calls go on). The CTI
reconnects with backoff, rebuilds its state from the list actions, closes the calls that
ended and adopts the ones that survived or started meanwhile; no ticket is lost or doubled."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from cti.events import AmiResynced
from cti.testing.pbx import AsteriskSimulator, CallHandle
from tests.cti.live import Floor, close_floor
from tests.reliability.helpers import ledger, open_site, site_data, until

log = logging.getLogger(__name__)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def live_citizens(sim: AsteriskSimulator) -> set[str]:
    return {c.uniqueid for c in sim.channels.values() if c.role == "citizen" and not c.hungup}


def tracked(floor: Floor) -> set[str]:
    return {c.uniqueid for c in floor.hotline.tracker.active_calls() if c.direction == "inbound"}


class Load:
    """Citizens calling at ``rate`` per real second while ``running``; paused while Asterisk
    restarts (a restarting PBX takes no calls: the carrier retries elsewhere)."""

    def __init__(self, sim: AsteriskSimulator, rate: float, seed: int = 7) -> None:
        self.sim = sim
        self.rate = rate
        self.rng = random.Random(seed)
        self.handles: list[CallHandle] = []
        self.paused = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(1 / self.rate)
            if self.paused:
                continue
            n += 1
            self.handles.append(
                self.sim.place_call(
                    caller=str(13700000000 + n),
                    name=self.rng.choice(["张三", "李四", "王五"]),
                    did=self.rng.choice(["12300", "12301"]),
                    talk_s=self.rng.uniform(10, 30),
                    patience_s=self.rng.uniform(20, 60),
                )
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(h.done.wait() for h in self.handles))


async def settle_and_check(floor: Floor, handles: list[CallHandle]) -> dict[str, Any]:
    """Every call the CTI saw is closed in the database; answered ones have exactly one
    ticket, unanswered ones a callback task."""
    hotline = floor.hotline
    await until(lambda: not tracked(floor), 15)
    assert await hotline.store.flush(20)
    book = ledger(hotline.sessions)
    rows, ticket_calls = book["rows"], book["ticket_calls"]
    missing = [h.uniqueid for h in handles if h.uniqueid not in rows]
    assert not missing, f"calls never recorded: {missing}"
    assert all(r.ended_at is not None for r in rows.values())
    answered = [r for r in rows.values() if r.answered]
    for h in handles:
        row = rows[h.uniqueid]
        if h.outcome == "answered":
            assert row.answered, h.uniqueid
    for row in answered:
        assert ticket_calls.get(row.linkedid) == [row.ticket_id], row.linkedid
    for row in rows.values():
        if not row.answered:
            assert row.caller in book["callbacks"], row.linkedid
    assert book["tickets"] == len(answered)
    assert hotline.store.stats()["dead"] == 0
    return {"calls": len(rows), "answered": len(answered), "tickets": book["tickets"]}


async def test_core_restart_under_load(any_db_url: str, tmp_path: Path) -> None:
    data = site_data(16, skills=2)
    data["asterisk"][0].update(backoff_max_s=1.0, ping_interval_s=1.0)
    floor = await open_site(
        data, any_db_url, tmp_path, sim_config={"scale": 0.1, "restart_delay_s": 1.5}
    )
    sim, hotline = floor.sim, floor.hotline
    resynced: list[float] = []
    hotline.bus.subscribe(AmiResynced, lambda ev: resynced.append(time.monotonic()))
    load = Load(sim, rate=8)
    try:
        load.start()
        await until(lambda: len(load.handles) >= 20 and len(live_citizens(sim)) >= 8, 15)
        cut = live_citizens(sim)
        load.paused = True
        await sim.restart()  # returns once the manager listens again
        back = time.monotonic()
        await until(lambda: any(t > back for t in resynced), 10, step=0.005)
        resync_done = min(t for t in resynced if t > back)
        await until(lambda: tracked(floor) == live_citizens(sim), 10, step=0.005)
        consistent = time.monotonic()
        # The calls the restart cut are closed; the CTI takes new calls again. (Calls that
        # arrive before the resync wait on hold: test_call_held_while_blind_is_adopted.)
        assert not cut & tracked(floor)
        load.paused = False
        await until(lambda: len(load.handles) >= 50, 15)
    finally:
        await load.stop()
    try:
        counts = await settle_and_check(floor, load.handles)
        figure = {
            "ami_back_to_resynced_s": round(resync_done - back, 3),
            "ami_back_to_consistent_s": round(consistent - back, 3),
            "resync_s": round(hotline.resync_seconds["pbx1"], 4),
            "cut_by_restart": len(cut),
            **counts,
        }
        log.info("asterisk restart: %s", figure)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "asterisk_restart.json").write_text(json.dumps(figure, indent=2))
        # the goal is 2 s; the bound here leaves room for a loaded CI machine
        assert figure["ami_back_to_consistent_s"] < 5.0, figure
        assert counts["answered"] > 0 and len(cut) >= 8
    finally:
        await close_floor(floor)


async def test_ami_blip_calls_survive_and_are_adopted(any_db_url: str, tmp_path: Path) -> None:
    """The socket closes but the calls go on: one ends, one starts and is answered while the
    CTI is blind; after the reconnect the survivor is kept, the ended one closed, the new one
    adopted with its ticket."""
    data = site_data(4, skills=2)
    data["asterisk"][0].update(backoff_max_s=1.0)
    floor = await open_site(data, any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    try:
        survivor = sim.place_call(caller="13700000001", did="12300", talk_s=None)
        ending = sim.place_call(caller="13700000002", did="12300", talk_s=None)
        await until(lambda: survivor.connected.is_set() and ending.connected.is_set())
        await until(lambda: sum(1 for c in hotline.tracker.active_calls() if c.answered) == 2)
        port = sim.ami.port
        await sim.ami.close_listener_and_sessions()
        await until(lambda: not hotline.nodes["pbx1"].connected, 5)
        sim.hangup(ending.channel)
        assert await ending.wait(5) == "answered"
        newcomer = sim.place_call(caller="13700000003", did="12301", talk_s=None)
        await asyncio.wait_for(newcomer.connected.wait(), 5)
        await sim.ami.start(sim.config.host, port)
        await until(lambda: tracked(floor) == live_citizens(sim), 10)
        adopted = hotline.tracker.find_call(newcomer.uniqueid, "pbx1")
        assert adopted is not None and adopted.answered and adopted.seat
        kept = hotline.tracker.find_call(survivor.uniqueid, "pbx1")
        assert kept is not None and kept.ticket_id
        for handle in (survivor, newcomer):
            sim.hangup(handle.channel)
        for handle in (survivor, newcomer):
            await handle.wait(5)
        counts = await settle_and_check(floor, [survivor, ending, newcomer])
        assert counts == {"calls": 3, "answered": 3, "tickets": 3}
    finally:
        await close_floor(floor)


async def test_call_held_while_blind_is_adopted(any_db_url: str, tmp_path: Path) -> None:
    """A call arrives while the AMI connection is down and every agent is busy: the FastAGI
    route (still up) puts it on hold. After the reconnect the CTI must know the call and give
    it to the first agent who becomes free."""
    data = site_data(1, skills=1)
    data["asterisk"][0].update(backoff_max_s=1.0)
    floor = await open_site(data, any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    try:
        busy = sim.place_call(caller="13700000011", did="12300", talk_s=None)
        await asyncio.wait_for(busy.connected.wait(), 5)
        port = sim.ami.port
        await sim.ami.close_listener_and_sessions()
        await until(lambda: not hotline.nodes["pbx1"].connected, 5)
        held = sim.place_call(caller="13700000012", did="12300", talk_s=5)
        await until(lambda: held.channel.context == "cti-hold", 5)
        await sim.ami.start(sim.config.host, port)
        assert await hotline.wait_connected(5)
        sim.hangup(busy.channel)
        assert await held.wait(4) == "answered"
        await busy.wait(5)
        counts = await settle_and_check(floor, [busy, held])
        assert counts == {"calls": 2, "answered": 2, "tickets": 2}
    finally:
        await close_floor(floor)


async def test_call_entirely_inside_an_ami_outage_is_recorded(
    any_db_url: str, tmp_path: Path
) -> None:
    """The FastAGI route still works while AMI is down, so a call can be routed, answered and
    finished without one AMI event reaching the CTI. Asterisk's CDR has it."""
    data = site_data(2, skills=1)
    data["asterisk"][0].update(backoff_max_s=1.0)
    floor = await open_site(
        data, any_db_url, tmp_path, sim_config={"scale": 0.1}, cdr_path=str(tmp_path / "cdr.csv")
    )
    sim, hotline = floor.sim, floor.hotline
    try:
        port = sim.ami.port
        await sim.ami.close_listener_and_sessions()
        await until(lambda: not hotline.nodes["pbx1"].connected, 5)
        unseen = sim.place_call(caller="13700000021", did="12300", talk_s=3)
        assert await unseen.wait(5) == "answered"
        await sim.ami.start(sim.config.host, port)
        assert await hotline.wait_connected(5)
        await until(lambda: unseen.uniqueid in ledger(hotline.sessions)["ticket_calls"], 3)
    finally:
        await close_floor(floor)
