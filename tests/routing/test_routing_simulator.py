"""The simulator: against Erlang A on M/M/N+M, and the staffing it is given on haikou-peak."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from routing.erlang import erlang_a_metrics
from routing.profiles import CHINA, Distribution, Profile, load_profile
from routing.settings import HotlineNumber, RoutingSettings
from routing.simulator import Simulation, simulate
from routing.staffing import plan_staffing


def mmnm_profile(calls_per_hour: float, aht_s: float, patience_s: float, hours: int) -> Profile:
    """One skill, Poisson arrivals at a constant rate, exponential handle time and patience,
    no priorities: the M/M/N+M queue of Erlang A."""
    return Profile(
        name="mmnm",
        description="",
        start=datetime(2024, 1, 1, tzinfo=CHINA),
        hourly_calls=(calls_per_hour,) * hours,
        hotlines=(HotlineNumber(did="12345", name="x", topic="general", skill="general"),),
        shares=(1.0,),
        handle=Distribution("exponential", aht_s),
        patience=Distribution("exponential", patience_s),
        open_ticket=0.0,
        enterprise=0.0,
        flagged=0.0,
        routing=RoutingSettings(priority_aging_s=0),
    )


# One seed is the everyday check; the others show the agreement is no accident of a seed.
SEEDS = [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]


@pytest.mark.parametrize("seed", SEEDS)
def test_simulator_agrees_with_erlang_a_within_two_percent(seed: int) -> None:
    agents, calls_per_hour, aht, patience = 40, 720.0, 180.0, 120.0
    profile = mmnm_profile(calls_per_hour, aht, patience, hours=72)
    report = simulate(profile, [{"general": agents}] * 72, seed=seed)
    # The first hour starts from an empty floor: leave it out, as a warm-up.
    hours = report.hours[1:]
    offered = sum(h.offered for h in hours)
    answered = sum(h.answered for h in hours)
    within = sum(h.answered_15s for h in hours)
    expected = erlang_a_metrics(calls_per_hour / 3600, aht, patience, agents, 15.0)
    assert offered > 50000
    assert answered / offered == pytest.approx(expected.answer_rate, rel=0.02)
    assert within / answered == pytest.approx(expected.service_level, rel=0.02)
    busy = sum(h.busy_s for h in hours) / sum(h.staffed_s for h in hours)
    assert busy == pytest.approx(expected.occupancy, rel=0.02)


@pytest.mark.parametrize("seed", SEEDS)
def test_recommended_staffing_reaches_the_answer_target_on_haikou_peak(seed: int) -> None:
    profile = load_profile("haikou-peak")
    plan = plan_staffing(profile)
    result = simulate(profile, plan.by_skill(), seed=seed).to_dict()
    assert result["offered"] > 9500
    assert result["answer_rate"] >= 0.985
    assert result["service_level_15s"] >= 0.80
    # Every rule was exercised by the day's traffic.
    assert {"skill", "overflow", "sticky", "leader"} <= set(result["reasons"])
    assert result["leader_calls"] == result["reasons"]["leader"]


def test_every_call_is_answered_or_abandoned_once() -> None:
    profile = load_profile("bozhou-normal")
    report = simulate(profile, plan_staffing(profile).by_skill(), seed=5, answer_delay_s=4.0)
    for h in report.hours:
        assert h.offered == h.answered + h.abandoned
        assert h.answered_15s <= h.answered
        assert 0 <= h.busy_s <= h.staffed_s
    # Ringing takes time: nobody is answered faster than the seat answers.
    day = report.to_dict()
    assert day["asa_s"] >= 4.0
    # Some callers hang up while their seat rings: offered, never answered.
    assert day["answered"] < sum(day["reasons"].values()) <= day["offered"]


def test_understaffing_shows() -> None:
    profile = load_profile("bozhou-normal")
    plan = plan_staffing(profile).by_skill()
    half = [{skill: max(1, n // 2) for skill, n in hour.items()} for hour in plan]
    full = simulate(profile, plan, seed=2).to_dict()
    short = simulate(profile, half, seed=2).to_dict()
    assert short["answer_rate"] < full["answer_rate"] - 0.05
    assert short["occupancy"] > full["occupancy"]
    assert short["avg_abandon_s"] > 0


def test_same_seed_same_day() -> None:
    profile = replace(load_profile("bozhou-normal"), hourly_calls=(300.0,) * 3)
    staffing = [{"general": 20, "consumer": 3, "social": 3, "enterprise": 2}] * 3
    assert simulate(profile, staffing, seed=9) == simulate(profile, staffing, seed=9)


def test_staffing_must_cover_every_hour() -> None:
    profile = load_profile("bozhou-normal")
    with pytest.raises(ValueError, match="intervals"):
        Simulation(profile, [{"general": 3}])
