"""The desktop's buttons on a call that arrived on node a and was answered at a seat whose
phone is registered on node b (through the inter-node trunk). The citizen's channel and the
trunk leg that stands for the seat are on a, the seat's own channel on b: each action goes
to the node where the channel it names lives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import cti.testing.ami_actions as sim_actions
from cti.app import Hotline
from cti.config import parse
from cti.events import CallAnswered, CallTransferred
from cti.testing.frames import Pairs, header, headers_all
from cti.testing.internode import link, site_of
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator, CallHandle
from tests.cti.live import Floor

SEATS = {"8001": "Seat 8001", "8002": "Seat 8002", "8009": "Supervisor 8009"}
SEATS |= {"9001": "Window 9001"}
BACKGROUND = frozenset({"login", "ping", "dbput", "logoff"})


class Pair(Floor):
    def __init__(self, a: AsteriskSimulator, b: AsteriskSimulator, hotline: Hotline) -> None:
        super().__init__(a, hotline)
        self.a, self.b = a, b
        self.received: list[tuple[str, Pairs]] = []

    def sent(self, action: str) -> list[tuple[str, Pairs]]:
        """(node, request) of each ``action`` the CTI sent."""
        return [
            (node, r)
            for node, r in self.received
            if (header(r, "Action") or "").lower() == action.lower()
        ]

    async def remote_call(self) -> CallHandle:
        """wang at 8002 (phone on b) answers a citizen calling node a."""
        await self.ready(("wang", "8002"))
        handle = self.a.place_call(caller="13800000021", name="张三", did="12345", talk_s=None)
        await self.until(lambda: bool(self.of(CallAnswered)))
        assert self.of(CallAnswered)[0].seat == "8002"
        assert handle.channel.bridge is not None
        return handle


@pytest.fixture
async def pair(any_db_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    sims = {
        name: AsteriskSimulator(
            SimConfig(
                scale=0.05, system_name=name, rec_dir=str(tmp_path / "rec"), endpoints=dict(SEATS)
            )
        )
        for name in ("a", "b")
    }
    a, b = sims["a"], sims["b"]
    link(a, "a", b, "b")
    received: list[tuple[str, Pairs]] = []
    original = sim_actions.dispatch

    async def recording(sim: AsteriskSimulator, session: Any, request: Pairs) -> None:
        if (header(request, "Action") or "").lower() not in BACKGROUND:
            received.append((sim.config.system_name, request))
        await original(sim, session, request)

    sim_actions.dispatch = recording  # type: ignore[assignment]
    data = await site_of(sims, any_db_url, str(tmp_path / "rec"))
    data["seats"].append({"id": "S01", "extension": "8009", "kind": "supervisor"})
    data["windows"][0]["hours"] = []  # open at any hour
    hotline = Hotline(parse(data), console=False)
    floor = Pair(a, b, hotline)
    floor.received = received
    try:
        await hotline.start()
        for sim in (a, b):
            sim.config.agi_port = hotline.agi.port
        a.register_phone("8001", ip="127.0.0.3")
        a.register_phone("8009", ip="127.0.0.5")
        a.register_phone("9001", ip="127.0.0.6")
        b.register_phone("8002", ip="127.0.0.4")
        assert await hotline.wait_connected(5)
        await floor.until(lambda: not a.heartbeat_stale() and not b.heartbeat_stale(), 5)
        await floor.until(lambda: hotline.seats.get("8002").node == "b")
        await floor.until(lambda: hotline.seats.get("9001").usable)
        yield floor
    finally:
        await hotline.stop()
        for sim in (a, b):
            if sim.running:
                await sim.stop()
        sim_actions.dispatch = original  # type: ignore[assignment]


def channels(sim: AsteriskSimulator, prefix: str) -> list[str]:
    return [name for name in sim.channels if name.startswith(prefix)]


async def test_blind_transfer_of_a_remote_seat_leaves_the_citizen_on_its_node(
    pair: Pair,
) -> None:
    handle = await pair.remote_call()
    trunk_leg = handle.answered_by
    assert trunk_leg.startswith("PJSIP/node-b-")

    await pair.hotline.control.blind_transfer("wang", "shebao")

    ((node, request),) = pair.sent("BlindTransfer")
    assert (node, header(request, "Channel")) == ("a", trunk_leg)
    await pair.until(lambda: bool(channels(pair.a, "PJSIP/9001-")))
    await pair.until(lambda: not channels(pair.b, "PJSIP/8002-"))
    assert handle.channel.alive
    await pair.until(lambda: bool(pair.of(CallTransferred)))
    transfer = pair.of(CallTransferred)
    assert (transfer[0].kind, transfer[0].target) == ("blind", "9001")
    await pair.until(lambda: pair.hotline.agents.get("wang").state == "ready")


async def test_three_way_with_a_remote_seat_gathers_everyone_on_the_callers_node(
    pair: Pair,
) -> None:
    handle = await pair.remote_call()
    trunk_leg = handle.answered_by

    await pair.hotline.control.three_way("wang", "shebao")

    ((node, redirect),) = pair.sent("Redirect")
    assert node == "a"
    assert header(redirect, "Channel") == handle.channel.name
    assert header(redirect, "ExtraChannel") == trunk_leg
    ((node, _originate),) = pair.sent("Originate")
    assert node == "a"
    session = pair.hotline.control.session_of("wang")
    await pair.until(lambda: pair.hotline.control.session_of("wang")["state"] == "three_way")
    # Wang's phone on b still talks: through the trunk leg, now in the conference on a.
    assert channels(pair.b, "PJSIP/8002-") and session["node"] == "a"

    await pair.hotline.control.agent_leave_three_way("wang")
    ((node, hangup),) = pair.sent("Hangup")
    assert (node, header(hangup, "Channel")) == ("a", trunk_leg)
    await pair.until(lambda: not channels(pair.b, "PJSIP/8002-"))
    assert handle.channel.alive


async def test_a_supervisor_listens_to_a_remote_seat_on_the_callers_node(pair: Pair) -> None:
    handle = await pair.remote_call()

    await pair.hotline.control.spy("S01", "wang", "listen")

    ((node, originate),) = pair.sent("Originate")
    # The supervisor's phone is on a, where the trunk leg carries wang's voice.
    assert (node, header(originate, "Channel")) == ("a", "PJSIP/8009")
    assert headers_all(originate, "Variable") == [f"SPY_TARGET={handle.answered_by}", "SPY_MODE=q"]


async def test_hangup_by_a_remote_seat_ends_the_call(pair: Pair) -> None:
    handle = await pair.remote_call()

    done = await pair.hotline.control.hangup("wang")

    ((node, _request),) = pair.sent("Hangup")
    assert node == "b" and done["hung_up"][0].startswith("PJSIP/8002-")
    assert await handle.wait(10) == "answered"
    await pair.until(lambda: pair.hotline.agents.get("wang").state == "ready")


async def test_attended_transfer_from_a_remote_seat_completes_when_the_agent_hangs_up(
    pair: Pair,
) -> None:
    handle = await pair.remote_call()

    await pair.hotline.control.attended_transfer("wang", "9001")

    ((node, atxfer),) = pair.sent("Atxfer")
    assert (node, header(atxfer, "Channel")) == ("a", handle.answered_by)
    await pair.until(lambda: any(c.state == 6 for c in pair.a.channels_of("9001")))
    await pair.hotline.control.hangup("wang")
    await pair.until(
        lambda: any(
            t.kind == "attended" and t.result == "Success" for t in pair.of(CallTransferred)
        )
    )
    await pair.until(lambda: not channels(pair.b, "PJSIP/8002-"))
    assert handle.channel.alive and channels(pair.a, "PJSIP/9001-")
