"""A CTI that takes over offers no seat a second call. It restores the agents that were on a
call as ready (the database cannot know which calls are still up) and learns which seats
are busy from each node's channel list; the calls waiting in the old CTI's line, found in
the same list, must not be offered before the whole list has been read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import cti.testing.ami_actions as sim_actions
from cti.app import Hotline
from cti.config import default_data, parse
from cti.events import AmiResynced, CallAnswered, CallQueued, CallRinging, CallRouted
from cti.models import CallbackTaskRow, CallRow
from cti.testing.frames import Pairs, header
from cti.testing.internode import link
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator, CallHandle
from tests.cti.live import Floor
from tests.reliability.helpers import open_site, site_data, until


async def test_a_held_call_is_not_offered_to_a_seat_on_a_call_at_the_takeover(
    any_db_url: str, tmp_path: Path
) -> None:
    data = site_data(2, skills=1)
    floor = await open_site(data, any_db_url, tmp_path, ready=False)
    sim, first = floor.sim, floor.hotline
    second: Hotline | None = None
    try:
        # a00000 at 8001 talks with the first caller; nobody else is ready, so the second
        # caller waits on hold in the CTI's line.
        first.agents.set_ready("a00000")
        talking = sim.place_call("13800000031", "张三", "12300", talk_s=None)
        await until(lambda: bool(floor.of(CallAnswered)))
        held = sim.place_call("13800000032", "李四", "12300", talk_s=None)
        await until(lambda: bool(floor.of(CallQueued)))
        assert await first.store.flush(10)
        await first.stop()

        second = Hotline(parse(data), console=False)
        after = Floor(sim, second)
        await second.start()
        assert await second.wait_connected(15)
        await until(lambda: bool(after.of(AmiResynced)))
        await until(lambda: second.agents.get("a00000").state == "on_call")
        # The held caller goes to the first seat that frees: a00001 at 8002, once ready.
        second.agents.set_ready("a00001")
        await until(lambda: held.answered_by.startswith("PJSIP/8002-"))
        assert [e.seat for e in after.of(CallRinging)] == ["8002"]
        assert len([n for n in sim.channels if n.startswith("PJSIP/8001-")]) == 1
        assert talking.channel.alive
    finally:
        if second is not None:
            await second.stop()
        await sim.stop()


async def ring_8001_without_a_cti(
    sim: AsteriskSimulator, first: Hotline, caller: str, name: str
) -> CallHandle:
    """a00000 ready at 8001 (a member of the fallback queue), then the CTI stops: the next
    caller goes to the fallback queue, which rings 8001, set to let it ring."""
    first.agents.set_ready("a00000")
    await until(lambda: sim.queue.members.get("PJSIP/8001") is not None)
    await until(lambda: not sim.queue.members["PJSIP/8001"].paused)
    assert await first.store.flush(10)
    await first.stop()
    sim.set_phone_behaviour("8001", answer="ignore")
    sim.astdb.pop(("cti", "heartbeat"), None)
    citizen = sim.place_call(caller, name, "12300", talk_s=None)
    await until(lambda: any(n.startswith("PJSIP/8001-") for n in sim.channels))
    return citizen


async def test_a_seat_the_fallback_queue_rings_at_the_takeover_gets_no_route(
    any_db_url: str, tmp_path: Path
) -> None:
    # Slow enough that the queue still rings the seat when the new CTI routes (its timeout
    # is 15 simulated seconds).
    data = site_data(2, skills=1)
    floor = await open_site(data, any_db_url, tmp_path, ready=False, sim_config={"scale": 4})
    sim, first = floor.sim, floor.hotline
    second: Hotline | None = None
    try:
        await ring_8001_without_a_cti(sim, first, "13800000033", "王五")

        second = Hotline(parse(data), console=False)
        after = Floor(sim, second)
        await second.start()
        sim.config.agi_port = second.agi.port
        assert await second.wait_connected(15)
        await until(lambda: bool(after.of(AmiResynced)))
        assert second.agents.get("a00000").state == "ringing"
        await until(lambda: not sim.heartbeat_stale())
        sim.place_call("13800000034", "赵六", "12300", talk_s=None)
        await until(lambda: bool(after.of(CallRouted)))
        # Nobody free: the new caller waits in the line instead of ringing 8001 a second time,
        # and so does the queue's caller, whom the new CTI found waiting.
        assert after.of(CallRouted)[0].target == ""
        assert len([n for n in sim.channels if n.startswith("PJSIP/8001-")]) == 1
    finally:
        if second is not None:
            await second.stop()
        await sim.stop()


async def test_a_seat_that_answers_while_the_new_cti_reads_its_lists_is_on_the_call(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback queue rings 8001 while no CTI leads. The new CTI reads the channel list
    (8001 ringing), and the agent picks up before it has the phones' list: the answer's
    events follow the channel list on the wire, and count. The call is answered by a00000,
    on the board and in its row."""
    data = site_data(2, skills=1)
    floor = await open_site(data, any_db_url, tmp_path, ready=False, sim_config={"scale": 4})
    sim, first = floor.sim, floor.hotline
    second: Hotline | None = None
    original = sim_actions.dispatch

    async def slow_contacts(sim_: AsteriskSimulator, session: Any, request: Pairs) -> None:
        if header(request, "Action") == "PJSIPShowContacts" and sim.pick_up("8001"):
            await asyncio.sleep(0.3)  # the answer's events go out before the list
        await original(sim_, session, request)

    try:
        citizen = await ring_8001_without_a_cti(sim, first, "13800000036", "钱七")

        monkeypatch.setattr(sim_actions, "dispatch", slow_contacts)
        second = Hotline(parse(data), console=False)
        after = Floor(sim, second)
        await second.start()
        assert await second.wait_connected(15)
        await until(lambda: bool(after.of(AmiResynced)))
        assert citizen.answered_by.startswith("PJSIP/8001-")
        assert second.agents.get("a00000").state == "on_call"
        call = second.tracker.calls[("pbx1", citizen.uniqueid)]
        assert (call.seat, call.agent_id) == ("8001", "a00000")

        sim.hangup(citizen.channel)
        await until(lambda: ("pbx1", citizen.uniqueid) not in second.tracker.calls)
        assert await second.store.flush(10)
        with second.sessions() as s:
            row = s.scalar(select(CallRow).where(CallRow.linkedid == citizen.uniqueid))
        assert row is not None and row.ended_at is not None
        assert (row.answered, row.agent_id, row.seat) == (True, "a00000", "8001")
    finally:
        monkeypatch.setattr(sim_actions, "dispatch", original)
        if second is not None:
            await second.stop()
        await sim.stop()


async def test_a_seat_talking_through_the_trunk_is_busy_for_the_new_leader(
    any_db_url: str, tmp_path: Path
) -> None:
    """wang's phone is on node b; he talks with a caller of node a through the trunk. The new
    leader finds the call on a (citizen and trunk leg) and wang's seat on b (with the leg
    that came in over the trunk): wang is on a call, and the caller held on a waits for li."""
    seats = {"8001": "Seat 8001", "8002": "Seat 8002"}
    a, b = (
        AsteriskSimulator(SimConfig(scale=0.05, system_name=n, endpoints=dict(seats)))
        for n in ("a", "b")
    )
    link(a, "a", b, "b")
    data: dict[str, Any] = default_data()
    template = data["asterisk"][0]
    data["asterisk"] = [
        {**template, "name": "a", "port": await a.start(), "backoff_max_s": 0.5},
        {**template, "name": "b", "port": await b.start(), "backoff_max_s": 0.5},
    ]
    data["database"] = {"url": any_db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data["control"] = {"wrapup_s": 0}
    first = Hotline(parse(data), console=False)
    second: Hotline | None = None
    try:
        await first.start()
        before = Floor(a, first)
        for sim in (a, b):
            sim.config.agi_port = first.agi.port
        a.register_phone("8001", ip="127.0.0.3")
        b.register_phone("8002", ip="127.0.0.4")
        assert await first.wait_connected(5)
        await until(lambda: not a.heartbeat_stale(), 5)
        await until(lambda: first.seats.get("8002").node == "b")
        await before.ready(("wang", "8002"))
        first.agents.login("li", "A01")
        talking = a.place_call("13800000035", "周九", "12345", talk_s=None)
        await until(lambda: bool(before.of(CallAnswered)))
        assert talking.answered_by.startswith("PJSIP/node-b-")
        held = a.place_call("13800000036", "吴十", "12345", talk_s=None)
        await until(lambda: bool(before.of(CallQueued)))
        assert await first.store.flush(10)
        await first.stop()

        second = Hotline(parse(data), console=False)
        after = Floor(a, second)
        await second.start()
        for sim in (a, b):
            sim.config.agi_port = second.agi.port
        assert await second.wait_connected(15)
        await until(lambda: len(after.of(AmiResynced)) == 2)
        assert second.agents.get("wang").state == "on_call"
        second.agents.set_ready("li")
        await until(lambda: held.answered_by.startswith("PJSIP/8001-"))
        assert [e.seat for e in after.of(CallRinging)] == ["8001"]
        assert len([n for n in b.channels if n.startswith("PJSIP/8002-")]) == 1
        assert talking.channel.alive
        # The call wang talks in is the new leader's as a call answered at his seat: when
        # it ends it is recorded as answered, and the citizen gets no callback task.
        (call,) = [c for c in second.tracker.active_calls() if c.caller == "13800000035"]
        assert (call.state, call.seat) == ("talking", "8002")
        a.hangup(talking.channel)
        await until(lambda: second.agents.get("wang").state == "ready")
        assert await second.store.flush(10)
        with second.sessions() as s:
            row = s.scalars(select(CallRow).where(CallRow.caller == "13800000035")).one()
            assert (row.answered, row.seat) == (True, "8002")
            assert s.scalars(select(CallbackTaskRow)).all() == []
    finally:
        await (second or first).stop()
        for sim in (a, b):
            await sim.stop()
