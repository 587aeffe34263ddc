"""The simulator and its peers for tests/testing: a FastAGI stub and raw AMI clients."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.frames import header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator

SCALE = 0.01

MakeSim = Callable[..., Awaitable[AsteriskSimulator]]


@pytest.fixture
async def agi() -> AsyncIterator[FastAgiStub]:
    stub = FastAgiStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def make_sim(agi: FastAgiStub) -> AsyncIterator[MakeSim]:
    """``await make_sim(**SimConfig fields)``: a running simulator asking ``agi``."""
    sims: list[AsteriskSimulator] = []

    async def make(**fields: Any) -> AsteriskSimulator:
        fields.setdefault("scale", SCALE)
        sim = AsteriskSimulator(SimConfig(agi_port=agi.port, **fields))
        await sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.stop()


async def login(sim: AsteriskSimulator, **extra: str) -> RawAmiClient:
    client = RawAmiClient("127.0.0.1", sim.ami_port)
    response = await client.login(**extra)
    assert header(response, "Response") == "Success"
    return client


def fresh_heartbeat(sim: AsteriskSimulator) -> None:
    sim.astdb[("cti", "heartbeat")] = str(int(time.time()))
