"""The CTI is killed (-9) under load and started again, as a real ``hotline serve`` process
against the simulator in this process.

While it is down the dialplan's heartbeat guard sends callers to the fallback queue, whose
members the CTI added while it was up; Asterisk writes a CDR line for every call. After the
restart: the calls still up are rebuilt from Asterisk (CoreShowChannels), the tickets of
calls answered before the kill are all there, and the calls answered or abandoned during the
outage are recorded from the CDR file: a ticket each, a callback task for the one who gave up.
No call is missing, none has two tickets.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from console import passwords
from console.users import Users
from cti.app import Hotline
from cti.config import parse
from cti.db import create_schema, make_engine, session_factory
from cti.testing.pbx import CallHandle
from tests.cti.live import close_floor
from tests.reliability.cti_process import CtiProcess, desktop_login
from tests.reliability.helpers import (
    free_port,
    ledger,
    open_site,
    sim_for,
    site_data,
    until,
)


async def healthz(base: str) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        return (await client.get("/healthz")).json()  # type: ignore[no-any-return]


@pytest.mark.slow
async def test_cti_killed_under_load_loses_no_call(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "N", 2**10)  # the hash records its cost: cheap logins
    cdr = tmp_path / "cdr.csv"
    data = site_data(3, skills=1)
    # `hotline serve` refuses the demo's AMI secret: a random one, on both sides.
    ami_secret = data["asterisk"][0]["secret"] = secrets.token_urlsafe(16)
    console_port, agi_port = free_port(), free_port()
    sim = sim_for(
        parse(data),
        tmp_path,
        secret=ami_secret,
        scale=0.1,
        cdr_path=str(cdr),
        heartbeat_stale_s=2.0,
        agi_port=agi_port,
    )
    await sim.start()
    data["asterisk"][0].update(port=sim.ami_port, backoff_max_s=1.0, ping_interval_s=1.0)
    data["database"] = {"url": any_db_url}
    data["agi"] = {"port": agi_port}
    data["console"].update(port=console_port)
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data["control"] = {"wrapup_s": 0}
    engine = make_engine(any_db_url)
    create_schema(engine)
    sessions = session_factory(engine)
    users = Users(sessions)
    seats = {f"a{i:05d}": str(8001 + i) for i in range(3)}
    for agent in seats:
        users.create(agent, f"pw-{agent}", ["agent"], agent_id=agent, display_name=agent)
    for ext in seats.values():
        sim.register_phone(ext, ip=f"127.0.0.{int(ext) - 7990}", answer_delay=0.02)
    cti = CtiProcess(data, tmp_path, cdr_path=str(cdr))
    base = f"http://127.0.0.1:{console_port}"
    calls: dict[str, CallHandle] = {}
    n = 0

    def call(tag: str, **kw: float | None) -> CallHandle:
        nonlocal n
        n += 1
        calls[tag] = sim.place_call(caller=str(13600000000 + n), name="市民", did="12300", **kw)
        return calls[tag]

    async def agents_ready() -> None:
        await until(lambda: not sim.heartbeat_stale(), 10)
        for agent, ext in seats.items():
            await desktop_login(base, agent, f"pw-{agent}", ext)

    try:
        # --- the CTI up: calls answered through the CTI's route ---------------------------
        await cti.start()
        await agents_ready()
        long_one = call("long", talk_s=None)
        await asyncio.wait_for(long_one.connected.wait(), 5)
        for i in range(5):
            call(f"short{i}", talk_s=5)
            await asyncio.sleep(0.3)
        for i in range(5):
            assert await calls[f"short{i}"].wait(10) == "answered"
        before_kill = ["long", *(f"short{i}" for i in range(5))]
        await until(
            lambda: all(calls[t].uniqueid in ledger(sessions)["ticket_calls"] for t in before_kill),
            10,
        )
        talking = call("talking", talk_s=40)  # ends during the outage
        other = call("other", talk_s=60)  # ends during the outage
        for handle in (talking, other):
            await asyncio.wait_for(handle.connected.wait(), 5)
        held = call("held", talk_s=20)  # every seat busy: on hold in the CTI's line
        await until(lambda: held.channel.context == "cti-hold", 5)

        # --- kill -9 under load -------------------------------------------------------------
        cti.kill()
        gave_up = call("gave_up", patience_s=2)  # refused AGI, queue, nobody free
        assert await gave_up.wait(5) == "abandoned"
        for tag in ("outage1", "outage2"):
            call(tag, talk_s=10)
        still_up = call("still_up", talk_s=None)  # answered during the outage, up at restart
        await until(sim.heartbeat_stale, 5)
        for tag in ("talking", "other", "held", "outage1", "outage2"):
            assert await calls[tag].wait(20) == "answered", tag
        await asyncio.wait_for(still_up.connected.wait(), 10)

        # --- restart: state from Asterisk, the outage from the CDR --------------------------
        await cti.start()
        await until(lambda: cti.log.read_text().count("CDR import:") == 1, 5)
        health: dict = {}  # type: ignore[type-arg]

        async def two_calls_up() -> bool:
            health.update(await healthz(base))
            return health.get("calls") == 2

        for _ in range(100):
            if await two_calls_up():
                break
            await asyncio.sleep(0.1)
        assert health.get("calls") == 2, health
        await agents_ready()
        after = call("after", talk_s=5)
        assert await after.wait(10) == "answered"
        for handle in (long_one, still_up):
            sim.hangup(handle.channel)
            assert await handle.wait(5) == "answered"

        def settled() -> bool:
            rows = ledger(sessions)["rows"]
            return all(
                h.uniqueid in rows and rows[h.uniqueid].ended_at is not None for h in calls.values()
            )

        await until(settled, 15)
        book = ledger(sessions)
        rows, ticket_calls = book["rows"], book["ticket_calls"]
        for tag, handle in calls.items():
            row = rows[handle.uniqueid]
            if tag == "gave_up":
                assert not row.answered and row.abandoned
                assert book["callbacks"][row.caller].status == "open"
            else:
                assert row.answered, tag
                assert len(ticket_calls.get(handle.uniqueid, [])) == 1, tag
                if tag != "long":  # see test_adopted_call_row_names_its_ticket
                    assert ticket_calls[handle.uniqueid] == [row.ticket_id], tag
        assert book["tickets"] == len(calls) - 1
        for tag in ("outage1", "outage2", "gave_up"):
            assert rows[calls[tag].uniqueid].routed_by == "fallback", tag
        assert rows[held.uniqueid].routed_by == "cti"
    finally:
        cti.stop()
        await sim.stop()
        engine.dispose()


async def test_adopted_call_row_names_its_ticket(any_db_url: str, tmp_path: Path) -> None:
    """A CTI restarted while a call is up adopts it from CoreShowChannels; the call already
    has its ticket, and its row must name that ticket (not a number nobody holds)."""
    floor = await open_site(site_data(1, skills=1), any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim = floor.sim
    handle = sim.place_call(caller="13600000101", did="12300", talk_s=None)
    await asyncio.wait_for(handle.connected.wait(), 5)
    await until(lambda: handle.uniqueid in ledger(floor.hotline.sessions)["ticket_calls"])
    await floor.hotline.stop()
    again = Hotline(floor.hotline.settings, console=False)
    floor.hotline = again
    try:
        await again.start()
        assert await again.wait_connected(5)
        await until(lambda: bool(again.tracker.active_calls()))
        sim.hangup(handle.channel)
        await until(lambda: not again.tracker.active_calls())
        assert await again.store.flush(10)
        book = ledger(again.sessions)
        (ticket,) = book["ticket_calls"][handle.uniqueid]
        assert book["rows"][handle.uniqueid].ticket_id == ticket
    finally:
        await close_floor(floor)
