"""Staffing: the smallest number of agents meeting the targets, per hour and skill group."""

from __future__ import annotations

import json

import pytest

from routing.erlang import erlang_a_metrics, erlang_c_metrics
from routing.profiles import load_profile
from routing.staffing import (
    Targets,
    plan_staffing,
    required_agents,
    split_agents,
    staffing_from_dict,
)


@pytest.mark.parametrize("calls_per_hour", [5.0, 120.0, 1000.0])
def test_required_agents_is_the_smallest_meeting_both_targets(calls_per_hour: float) -> None:
    targets = Targets()
    lam = calls_per_hour / 3600
    m = required_agents(lam, 240, 120, targets)
    assert m.answer_rate >= 0.985 and m.service_level >= 0.80
    if m.agents > targets.min_agents:
        fewer = erlang_a_metrics(lam, 240, 120, m.agents - 1)
        assert fewer.answer_rate < 0.985 or fewer.service_level < 0.80


def test_erlang_c_overstaffs_a_service_level_target_compared_with_erlang_a() -> None:
    """Callers who give up shorten the wait of the others, which Erlang C ignores; but only
    Erlang A can hold an answer-rate target, and that one may need more agents."""
    lam = 800 / 3600
    sl_only = Targets(answer_rate=0.0)
    a = required_agents(lam, 240, 120, sl_only)
    c = required_agents(lam, 240, 120, Targets(answer_rate=0.0, model="erlang_c"))
    assert c.agents > a.agents
    assert c.service_level >= 0.8
    assert erlang_c_metrics(lam, 240, c.agents - 1).service_level < 0.8
    assert required_agents(lam, 240, 120, Targets()).agents > a.agents


def test_plan_for_a_profile_has_every_hour_and_skill() -> None:
    profile = load_profile("haikou-peak")
    plan = plan_staffing(profile)
    data = plan.to_dict()
    assert len(data["agents"]) == 24 == len(data["hours"])
    assert data["calls"] == pytest.approx(10400)
    for hour in data["hours"]:
        assert set(hour["by_skill"]) == set(profile.skill_shares())
        assert sum(hour["by_skill"].values()) == hour["agents"]
        assert hour["answer_rate"] >= 0.985 and hour["service_level_15s"] >= 0.80
    busiest = max(data["hours"], key=lambda h: h["calls"])
    assert busiest["agents"] == max(data["agents"])
    assert data["answer_rate"] >= 0.985
    # What simulate reads back is what staffing wrote.
    assert staffing_from_dict(json.loads(json.dumps(data)), profile) == plan.by_skill()


def test_totals_only_are_split_by_share() -> None:
    profile = load_profile("bozhou-normal")
    split = staffing_from_dict({"agents": [10] * 24}, profile)
    assert all(sum(h.values()) == 10 for h in split)
    assert split[0]["general"] == 7  # 72 % of 10
    assert split_agents(7, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 4, "b": 2, "c": 1}
    with pytest.raises(ValueError, match="agents"):
        staffing_from_dict({"agents": "many"}, profile)


def test_targets_are_checked() -> None:
    with pytest.raises(ValueError):
        Targets(service_level=1.5)
    with pytest.raises(ValueError):
        Targets(min_agents=-1)
