"""The CTI against the live simulator: fixtures shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cti.app import Hotline
from cti.config import default_data, parse
from cti.events import Event
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator


class Floor:
    """A simulator, a CTI wired to it, the events it published."""

    def __init__(self, sim: AsteriskSimulator, hotline: Hotline) -> None:
        self.sim = sim
        self.hotline = hotline
        self.events: list[Event] = []
        hotline.bus.subscribe_all(self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not cond():
            if loop.time() > end:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    async def ready(self, *pairs: tuple[str, str]) -> None:
        for agent, seat in pairs:
            await self.until(lambda s=seat: self.hotline.seats.get(s).usable)
            self.hotline.agents.login(agent, seat, ready=True)


async def open_floor(
    db_url: str,
    tmp: Path,
    *,
    phones: tuple[str, ...] = ("8001", "8002", "8003"),
    scale: float = 0.05,
    **overrides: Any,
) -> Floor:
    sim = AsteriskSimulator(
        SimConfig(
            scale=scale,
            write_recordings=True,
            rec_dir=str(tmp / "rec"),
            endpoints={
                "8001": "Seat 8001",
                "8002": "Seat 8002",
                "8003": "Seat 8003",
                "8004": "Seat 8004",
                "9001": "Window 9001",
            },
        )
    )
    port = await sim.start()
    data = default_data()
    data["asterisk"][0].update(port=port, backoff_max_s=0.5)
    data["database"] = {"url": db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp / "rec")}
    data["control"] = {"wrapup_s": 0}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    hotline = Hotline(parse(data), console=False)
    floor = Floor(sim, hotline)
    await hotline.start()
    sim.config.agi_port = hotline.agi.port
    for i, ext in enumerate(phones):
        sim.register_phone(ext, ip=f"127.0.0.{3 + i}", answer_delay=0.05)
    assert await hotline.wait_connected(5)
    await floor.until(lambda: not sim.heartbeat_stale(), 5)
    return floor


async def close_floor(floor: Floor) -> None:
    await floor.hotline.stop()
    await floor.sim.stop()
