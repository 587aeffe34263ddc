"""Routing decision latency on a large floor: 2,000 seats, 40 skills, ~500 waiting calls.

The floor is filled first (every agent on a call, 500 calls in line), then held in that
steady state: a random agent finishes and becomes ready (and takes the best waiting call),
a new call arrives (and joins the line), now and then a tick fires the timers. Each of these
router calls is timed on its own. Callers are a realistic mix: open tickets with a sticky
agent, enterprise and flagged callers; skills overflow after 30 s; two leaders are on duty.

Prints one JSON object; the goal is p99 <= 1 ms for new_call and agent_ready.
Run: python bench/bench_routing.py [--iterations N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routing import (  # noqa: E402
    AgentSettings,
    CallerInfo,
    HotlineNumber,
    LeaderShift,
    Offer,
    OverflowRule,
    Router,
    RoutingPlan,
    RoutingSettings,
)

SEATS, SKILLS, WAITING = 2000, 40, 500
CST = timezone(timedelta(hours=8))
START = datetime(2024, 7, 15, 9, 0, tzinfo=CST)


def build(rng: random.Random) -> Router:
    skills = [f"s{i:02d}" for i in range(SKILLS)]
    hotlines = [
        HotlineNumber(did=f"{12300 + i}", name=s, topic=s, skill=s) for i, s in enumerate(skills)
    ]
    agents = []
    for i in range(SEATS):
        own = skills[i % SKILLS]
        others = rng.sample([s for s in skills if s != own], 2)
        levels = {own: rng.randint(6, 10), **{s: rng.randint(1, 5) for s in others}}
        agents.append(AgentSettings(id=f"a{i:04d}", name=f"agent {i}", skills=levels))
    leaders = [AgentSettings(id=f"leader{i}", name="局长", leader=True) for i in range(2)]
    shifts = [
        LeaderShift(
            agent=f"leader{i}",
            seat=f"88{i:02d}",
            start=START,
            end=START + timedelta(hours=2),
            topics=[skills[i]],
            title="局长",
        )
        for i in range(2)
    ]
    overflow = [
        OverflowRule(skill=s, after_s=30, to=[skills[(i + 1) % SKILLS], skills[(i + 7) % SKILLS]])
        for i, s in enumerate(skills)
    ]
    settings = RoutingSettings(overflow=overflow, sticky_wait_s=20, leader_wait_s=15)
    return Router(RoutingPlan.from_settings(settings, hotlines, agents + leaders, shifts))


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)
    return {
        "n": n,
        "p50_us": round(ordered[n // 2] / 1000, 2),
        "p99_us": round(ordered[min(n - 1, int(n * 0.99))] / 1000, 2),
        "max_us": round(ordered[-1] / 1000, 2),
        "mean_us": round(statistics.fmean(ordered) / 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    router = build(rng)
    now = START.timestamp()
    busy: list[str] = []
    next_call = 0

    def take(offers: list[Offer]) -> None:
        for offer in offers:
            router.confirm(offer.call_id, offer.agent_id, now)
            busy.append(offer.agent_id)

    def caller() -> CallerInfo:
        r = rng.random()
        return CallerInfo(
            caller=f"138{rng.randrange(10**8):08d}",
            open_ticket=r < 0.1,
            last_agent_id=rng.choice(busy) if r < 0.1 and busy else None,
            enterprise=0.1 <= r < 0.14,
            flagged=0.14 <= r < 0.15,
        )

    def new_call() -> tuple[int, bool]:
        """Time one new call; say whether it joined the line."""
        nonlocal next_call
        call_id = f"c{next_call}"
        next_call += 1
        did = f"{12300 + rng.randrange(SKILLS)}"
        info = caller()
        t0 = time.perf_counter_ns()
        decision = router.new_call(call_id, did, info, now)
        elapsed = time.perf_counter_ns() - t0
        if decision.agent_id is not None:
            take([Offer(call_id, decision.agent_id, decision.seat or "", decision.reason, False)])
        return elapsed, decision.agent_id is None

    for i in range(SEATS):
        router.agent_login(f"a{i:04d}", f"{10000 + i}", now)
        take(router.agent_ready(f"a{i:04d}", now))
    for i in range(2):
        router.agent_login(f"leader{i}", f"88{i:02d}", now)
        take(router.agent_ready(f"leader{i}", now))
    # Fill the floor: every agent on a call, then 500 calls in line.
    waiting = 0
    while waiting < WAITING:
        now += 0.01
        waiting += new_call()[1]

    timings: dict[str, list[int]] = {"new_call": [], "agent_ready": [], "tick": []}
    line: list[int] = []
    for i in range(args.iterations):
        now += 0.05
        agent_id = busy.pop(rng.randrange(len(busy)))
        t0 = time.perf_counter_ns()
        offers = router.agent_ready(agent_id, now)
        timings["agent_ready"].append(time.perf_counter_ns() - t0)
        take(offers)
        timings["new_call"].append(new_call()[0])
        if i % 20 == 0:
            t0 = time.perf_counter_ns()
            offers = router.tick(now)
            timings["tick"].append(time.perf_counter_ns() - t0)
            take(offers)
        if i % 1000 == 0:
            line.append(len(router.snapshot()["waiting"]))

    result = {
        "bench": "routing",
        "seats": SEATS,
        "skills": SKILLS,
        "waiting_calls": {
            "min": min(line),
            "max": max(line),
            "end": len(router.snapshot()["waiting"]),
        },
        "iterations": args.iterations,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "goal_p99_us": 1000,
        **{name: percentiles(samples) for name, samples in timings.items()},
    }
    result["goal_met"] = all(result[k]["p99_us"] <= 1000 for k in ("new_call", "agent_ready"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
