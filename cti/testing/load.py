"""Synthetic inbound traffic for the simulator: citizens calling at a given rate."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator, CallHandle

DEFAULT_NAMES = ("张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "市民")


@dataclass(slots=True)
class LoadStats:
    placed: int = 0
    answered: int = 0
    abandoned: int = 0
    failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    handles: list[CallHandle] = field(default_factory=list)
    duration_s: float = 0.0


async def generate_calls(
    sim: AsteriskSimulator,
    *,
    rate_per_s: float,
    count: int,
    dids: Sequence[str] = ("12345",),
    talk_s: tuple[float, float] = (30.0, 180.0),
    patience_s: tuple[float, float] | None = (20.0, 120.0),
    seed: int | None = None,
    poisson: bool = False,
    names: Sequence[str] = DEFAULT_NAMES,
    first_number: int = 13900000000,
    wait: bool = True,
) -> LoadStats:
    """Place ``count`` calls, ``rate_per_s`` per simulated second (fixed gaps, or exponential
    ones with ``poisson``); with ``wait`` return once every call has ended."""
    rng = random.Random(seed)
    stats = LoadStats()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(count):
        if n:
            gap = rng.expovariate(rate_per_s) if poisson else 1.0 / rate_per_s
            await sim.sleep(gap)
        patience = rng.uniform(*patience_s) if patience_s is not None else None
        handle = sim.place_call(
            caller=str(first_number + n),
            name=rng.choice(list(names)),
            did=rng.choice(list(dids)),
            talk_s=rng.uniform(*talk_s),
            patience_s=patience,
        )
        stats.handles.append(handle)
        stats.placed += 1
    if wait:
        await asyncio.gather(*(h.done.wait() for h in stats.handles))
        for handle in stats.handles:
            stats.outcomes[handle.outcome] += 1
        stats.answered = stats.outcomes["answered"]
        stats.abandoned = stats.outcomes["abandoned"]
        stats.failed = stats.outcomes["failed"]
    stats.duration_s = (loop.time() - started) / sim.config.scale if sim.config.scale else 0.0
    return stats
