"""Two Asterisk nodes, one floor: two simulators joined by the inter-node trunk, one CTI.

Both nodes know every seat's endpoint (the same pjsip_seats.conf on each); a phone registers
on one of them. Seat 8001's phone is on node a, 8002's on node b; the citizens call node a.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cti.app import Hotline
from cti.config import parse
from cti.events import (
    AgentStateChanged,
    AmiResynced,
    CallAnswered,
    CallQueued,
    CallRinging,
    CallRouted,
)
from cti.testing.internode import link, set_qualify, site_of
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.cti.live import Floor

SEATS = {f"800{i}": f"Seat 800{i}" for i in range(1, 5)} | {"9001": "Window 9001"}


class TwoNodes(Floor):
    def __init__(self, a: AsteriskSimulator, b: AsteriskSimulator, hotline: Hotline) -> None:
        super().__init__(a, hotline)
        self.a, self.b = a, b

    def not_ready(self, agent: str) -> list[AgentStateChanged]:
        return [
            e
            for e in self.of(AgentStateChanged)
            if e.agent_id == agent and e.new == "not_ready" and e.reason != "login"
        ]


@pytest.fixture
async def nodes(any_db_url: str, tmp_path: Path) -> AsyncIterator[TwoNodes]:
    sims = {}
    for name in ("a", "b"):
        sims[name] = AsteriskSimulator(
            SimConfig(
                scale=0.05,
                system_name=name,
                rec_dir=str(tmp_path / "rec"),
                endpoints=dict(SEATS),
            )
        )
    a, b = sims["a"], sims["b"]
    link(a, "a", b, "b")
    data = await site_of(sims, any_db_url, str(tmp_path / "rec"))
    hotline = Hotline(parse(data), console=False)
    floor = TwoNodes(a, b, hotline)
    await hotline.start()
    for sim in (a, b):
        sim.config.agi_port = hotline.agi.port
    a.register_phone("8001", ip="127.0.0.3")
    b.register_phone("8002", ip="127.0.0.4")
    assert await hotline.wait_connected(5)
    await floor.until(lambda: not a.heartbeat_stale() and not b.heartbeat_stale(), 5)
    await floor.until(lambda: hotline.seats.get("8002").node == "b")
    yield floor
    await hotline.stop()
    for sim in (a, b):
        if sim.running:
            await sim.stop()


async def test_a_call_on_node_a_is_answered_at_a_seat_on_node_b(nodes: TwoNodes) -> None:
    hotline = nodes.hotline
    # Nobody ready: the call waits on hold on node a ...
    held = nodes.a.place_call(caller="13800000011", name="张三", did="12345", talk_s=2)
    await nodes.until(lambda: bool(nodes.of(CallRouted)))
    assert nodes.of(CallRouted)[0].target == ""
    # ... until wang is ready at 8002, whose phone is on node b: moved through the trunk.
    await nodes.ready(("wang", "8002"))
    assert await held.wait(10) == "answered"
    assert held.answered_by.startswith("PJSIP/node-b-")
    (first,) = nodes.of(CallAnswered)
    assert (first.node, first.seat, first.agent_id) == ("a", "8002", "wang")
    assert hotline.acd.stats["remote_moves"] == 1
    # The seat rang on node b (its phone's node), for the call that came in over the trunk.
    states = [e.new for e in nodes.of(AgentStateChanged) if e.agent_id == "wang"]
    assert states[:3] == ["ready", "ringing", "on_call"]
    (ringing,) = nodes.of(CallRinging)
    assert (ringing.node, ringing.call_id, ringing.seat) == ("a", first.call_id, "8002")
    await nodes.until(lambda: hotline.agents.get("wang").state == "ready")

    # The link to node a drops and comes back: its resync lists no contact for 8002 and its
    # endpoint 8002 UNAVAILABLE. That is not wang's phone, which is on node b.
    for session in list(nodes.a.ami.sessions):
        session.close()
    await nodes.until(lambda: sum(e.node == "a" for e in nodes.of(AmiResynced)) == 2)
    assert hotline.seats.get("8002").usable

    # A new call finds wang ready: the route itself sends it through the trunk.
    direct = nodes.a.place_call(caller="13800000012", name="李四", did="12345", talk_s=2)
    assert await direct.wait(10) == "answered"
    assert nodes.of(CallRouted)[1].target == "PJSIP/8002@node-b"
    assert [e.seat for e in nodes.of(CallAnswered)] == ["8002", "8002"]
    await nodes.until(lambda: hotline.agents.get("wang").state == "ready")
    # Node a says its endpoint 8002 is UNAVAILABLE all along: that is not wang's phone.
    assert hotline.seats.get("8002").usable
    assert nodes.not_ready("wang") == []


async def test_a_seat_on_the_callers_node_comes_first(nodes: TwoNodes) -> None:
    # wang (node b) has been ready longer than li (node a): the call on a still goes to li.
    await nodes.ready(("wang", "8002"))
    await nodes.ready(("li", "8001"))
    handle = nodes.a.place_call(caller="13800000013", name="王五", did="12345", talk_s=1)
    assert await handle.wait(10) == "answered"
    assert nodes.of(CallAnswered)[0].seat == "8001"
    assert nodes.of(CallRouted)[0].target == "PJSIP/8001"


async def test_losing_node_b_leaves_node_a_working(nodes: TwoNodes) -> None:
    hotline = nodes.hotline
    await nodes.ready(("wang", "8002"), ("li", "8001"))
    await nodes.b.stop()
    await nodes.until(lambda: not hotline.seats.get("8002").usable)
    assert hotline.seats.get("8002").node_down
    assert hotline.health()["asterisk"]["b"]["connected"] is False
    for caller in ("13800000014", "13800000015"):
        handle = nodes.a.place_call(caller=caller, name="赵六", did="12345", talk_s=1)
        assert await handle.wait(10) == "answered"
        await nodes.until(lambda: hotline.agents.get("li").state == "ready")
    assert [e.seat for e in nodes.of(CallAnswered)] == ["8001", "8001"]
    assert hotline.acd.stats["remote_moves"] == 0
    assert nodes.not_ready("li") == []


async def test_a_seat_on_node_b_that_is_busy_is_judged_like_one_on_node_a(
    nodes: TwoNodes,
) -> None:
    nodes.b.set_phone_behaviour("8002", answer="busy")
    await nodes.ready(("wang", "8002"))
    handle = nodes.a.place_call(caller="13800000016", name="钱七", did="12345", talk_s=1)
    # Node b's 486 ends node a's Dial BUSY: the seat was offered and refused the call.
    await nodes.until(lambda: bool(nodes.not_ready("wang")))
    assert nodes.not_ready("wang")[0].reason == "no-answer"
    await nodes.ready(("li", "8001"))
    assert await handle.wait(10) == "answered"
    assert [e.seat for e in nodes.of(CallAnswered)] == ["8001"]


async def test_a_phone_of_a_lost_node_that_registers_on_the_other_takes_calls_there(
    nodes: TwoNodes,
) -> None:
    hotline = nodes.hotline
    await nodes.ready(("wang", "8002"))
    await nodes.b.stop()
    await nodes.until(lambda: hotline.agents.get("wang").reason == "phone-unreachable")
    # The phone's backup registrar is node a.
    nodes.a.register_phone("8002", ip="127.0.0.4")
    await nodes.until(lambda: hotline.agents.get("wang").state == "ready")
    assert hotline.seats.get("8002").node == "a"
    await nodes.until(lambda: hotline.acd.members.wanted("a", "8002") is not None)
    handle = nodes.a.place_call(caller="13800000017", name="孙八", did="12345", talk_s=1)
    assert await handle.wait(10) == "answered"
    assert nodes.of(CallRouted)[0].target == "PJSIP/8002"
    assert handle.answered_by.startswith("PJSIP/8002-")


async def test_a_trunk_that_does_not_qualify_leaves_the_agent_ready(nodes: TwoNodes) -> None:
    hotline = nodes.hotline
    # Node b stops answering node a's OPTIONS (a firewall between the two): chan_pjsip on a
    # makes no channel through the trunk, while the CTI still sees both nodes.
    set_qualify(nodes.a, "node-b", False)
    await nodes.ready(("wang", "8002"))
    handle = nodes.a.place_call(caller="13800000018", name="周九", did="12345", talk_s=1)
    await nodes.until(lambda: bool(nodes.of(CallRouted)))
    assert nodes.of(CallRouted)[0].target == "PJSIP/8002@node-b"
    # Back on hold without a Dial: the call waits for another seat, wang stays ready, and
    # his seat is out of the router's reach for a while.
    await nodes.until(lambda: bool(nodes.of(CallQueued)))
    await nodes.until(lambda: bool(hotline.acd.snapshot()["waiting"]))
    (agent,) = [a for a in hotline.acd.snapshot()["agents"] if a["agent_id"] == "wang"]
    assert (agent["state"], agent["reachable"]) == ("ready", False)
    await nodes.ready(("li", "8001"))
    assert await handle.wait(10) == "answered"
    assert [e.seat for e in nodes.of(CallAnswered)] == ["8001"]
    assert nodes.not_ready("wang") == []
    assert hotline.agents.get("wang").state == "ready"
