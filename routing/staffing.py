"""Agents needed per interval and skill group for a service target (``hotline staffing``).

Each hour and skill group is sized on its own as a stationary queue (Erlang A by default,
Erlang C on request) with the profile's mean handle time and patience. Overflow between groups
and the leaders' seats only add capacity on top, so the plan errs on the safe side there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from routing.erlang import QueueMetrics, erlang_a_metrics, erlang_c_metrics
from routing.profiles import Profile

Model = Literal["erlang_a", "erlang_c"]


@dataclass(frozen=True, slots=True)
class Targets:
    service_level: float = 0.80  # answered within threshold_s / answered
    threshold_s: float = 15.0
    answer_rate: float = 0.985  # answered / offered (Erlang A only: C answers everyone)
    model: Model = "erlang_a"
    min_agents: int = 1  # per skill group and hour: the line is staffed 7x24

    def __post_init__(self) -> None:
        if not 0 <= self.service_level < 1 or not 0 <= self.answer_rate < 1:
            raise ValueError("targets are shares below 1")
        if self.min_agents < 0 or self.threshold_s < 0:
            raise ValueError("min_agents and threshold_s must not be negative")


@dataclass(frozen=True, slots=True)
class IntervalStaffing:
    hour: int
    calls: float
    agents: int
    by_skill: dict[str, int]
    answer_rate: float
    service_level_15s: float
    asa_s: float
    occupancy: float


@dataclass(frozen=True, slots=True)
class StaffingPlan:
    profile: str
    targets: Targets
    hours: tuple[IntervalStaffing, ...]

    @property
    def agents(self) -> list[int]:
        return [h.agents for h in self.hours]

    def by_skill(self) -> list[dict[str, int]]:
        return [dict(h.by_skill) for h in self.hours]

    def to_dict(self) -> dict[str, Any]:
        calls = sum(h.calls for h in self.hours)
        answered = sum(h.calls * h.answer_rate for h in self.hours)
        return {
            "profile": self.profile,
            "model": self.targets.model,
            "interval_s": 3600,
            "targets": asdict(self.targets),
            "agents": self.agents,
            "calls": round(calls, 1),
            "answer_rate": answered / calls if calls else 1.0,
            "service_level_15s": (
                sum(h.calls * h.answer_rate * h.service_level_15s for h in self.hours) / answered
                if answered
                else 1.0
            ),
            "asa_s": (
                sum(h.calls * h.answer_rate * h.asa_s for h in self.hours) / answered
                if answered
                else 0.0
            ),
            "agent_hours": sum(self.agents),
            "hours": [asdict(h) for h in self.hours],
        }


def required_agents(
    rate_per_s: float, aht_s: float, patience_s: float, targets: Targets
) -> QueueMetrics:
    """The smallest staffing meeting the targets, with its predicted metrics."""

    def metrics(n: int) -> QueueMetrics:
        if targets.model == "erlang_c":
            return erlang_c_metrics(rate_per_s, aht_s, n, targets.threshold_s)
        return erlang_a_metrics(rate_per_s, aht_s, patience_s, n, targets.threshold_s)

    # No staffing below answer_rate x load can answer that share: start the search there.
    load = rate_per_s * aht_s
    n = max(targets.min_agents, math.floor(load * targets.answer_rate))
    if targets.model == "erlang_c":
        n = max(n, math.floor(load) + 1)
    while True:
        m = metrics(n)
        if m.service_level >= targets.service_level and m.answer_rate >= targets.answer_rate:
            return m
        n += 1


def plan_staffing(profile: Profile, targets: Targets | None = None) -> StaffingPlan:
    targets = targets or Targets()
    shares = profile.skill_shares()
    aht, patience = profile.handle.mean_s, profile.patience.mean_s
    hours = []
    for hour, calls in enumerate(profile.hourly_calls):
        by_skill: dict[str, int] = {}
        weighted = {"answer": 0.0, "sl": 0.0, "asa": 0.0, "busy": 0.0}
        for skill, share in shares.items():
            lam = calls * share / 3600.0
            m = required_agents(lam, aht, patience, targets)
            by_skill[skill] = m.agents
            weighted["answer"] += lam * m.answer_rate
            weighted["sl"] += lam * m.answer_rate * m.service_level
            weighted["asa"] += lam * m.answer_rate * m.asa_s
            weighted["busy"] += m.occupancy * m.agents
        total_rate = calls / 3600.0
        answered = weighted["answer"]
        agents = sum(by_skill.values())
        hours.append(
            IntervalStaffing(
                hour=hour,
                calls=calls,
                agents=agents,
                by_skill=by_skill,
                answer_rate=answered / total_rate if total_rate else 1.0,
                service_level_15s=weighted["sl"] / answered if answered else 1.0,
                asa_s=weighted["asa"] / answered if answered else 0.0,
                occupancy=weighted["busy"] / agents if agents else 0.0,
            )
        )
    return StaffingPlan(profile=profile.name, targets=targets, hours=tuple(hours))


def staffing_from_dict(data: dict[str, Any], profile: Profile) -> list[dict[str, int]]:
    """Agents per hour and skill from ``staffing --json`` output; a plan that gives totals
    only is split over the skill groups in proportion to their share of calls."""
    hours = data.get("hours")
    if isinstance(hours, list) and all(isinstance(h, dict) and "by_skill" in h for h in hours):
        return [{str(k): int(v) for k, v in h["by_skill"].items()} for h in hours]
    totals = data.get("agents")
    if not isinstance(totals, list) or not all(isinstance(n, int) and n >= 0 for n in totals):
        raise ValueError("staffing file needs 'agents': a list of agent counts per hour")
    return [split_agents(n, profile.skill_shares()) for n in totals]


def split_agents(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``total`` agents by share."""
    exact = {skill: total * share for skill, share in shares.items()}
    split = {skill: math.floor(x) for skill, x in exact.items()}
    rest = total - sum(split.values())
    for skill in sorted(exact, key=lambda s: split[s] - exact[s])[:rest]:
        split[skill] += 1
    return split
