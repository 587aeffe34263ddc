"""[cti-route] with two CTIs: CTI_AGI refused (that CTI is down, or on standby and not
listening) returns at once with AGISTATUS=FAILURE and CTI_AGI_2 is asked; a CTI that answers
first is the only one asked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from cti.testing.clients import FastAgiStub
from cti.testing.frames import header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.reliability.helpers import free_port
from tests.testing.conftest import SCALE, fresh_heartbeat, login
from tests.testing.test_local_route import of

TWO = "Local/12345@cti-route-00000001;2"
MakeSim = Callable[..., Awaitable[AsteriskSimulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    sims: list[AsteriskSimulator] = []

    async def make(**fields: Any) -> AsteriskSimulator:
        sim = AsteriskSimulator(SimConfig(scale=SCALE, **fields))
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.stop()


async def test_refused_first_cti_then_the_second_answers(
    make_sim: MakeSim, agi: FastAgiStub
) -> None:
    # The stub is CTI_AGI_2; nothing listens on CTI_AGI.
    sim = await make_sim(agi_port=free_port(), agi_port_2=agi.port, route_timeout_s=5)
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call("13800000001", "张三", "12345", talk_s=1)
    assert await call.wait(5) == "answered"
    apps = [(header(m, "Application"), header(m, "AppData")) for m in of(client, "Newexten", TWO)]
    assert [a for a, _ in apps][:4] == ["AGI", "GotoIf", "AGI", "GotoIf"]
    assert apps[1][1] == "0?asked"
    assert f":{agi.port}/route," in (apps[2][1] or "")
    status = [m for m in of(client, "VarSet", TWO) if header(m, "Variable") == "AGISTATUS"]
    assert [header(m, "Value") for m in status] == ["FAILURE", "SUCCESS"]
    assert call.channel.variables["ROUTE_TARGET"] == "PJSIP/8001"
    await client.close()


async def test_both_refused_the_fallback_queue(make_sim: MakeSim) -> None:
    sim = await make_sim(agi_port=free_port(), agi_port_2=free_port(), route_timeout_s=5)
    client = await login(sim)
    fresh_heartbeat(sim)
    call = sim.place_call(talk_s=1, patience_s=50)
    await client.wait_event("QueueCallerJoin", timeout=2)
    status = [m for m in of(client, "VarSet", TWO) if header(m, "Variable") == "AGISTATUS"]
    assert [header(m, "Value") for m in status] == ["FAILURE", "FAILURE"]
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()
