"""Configuration: the settings models, the plan's cross-checks and the arrival profiles."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from routing_support import DAY, HOTLINES, agent, shift

from routing import AgentSettings, LeaderShift, RoutingPlan, RoutingSettings
from routing.profiles import available_profiles, load_profile


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError):
        RoutingSettings(fairnes="longest_idle")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RoutingSettings(fairness="random")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        AgentSettings(id="a", name="a", skills={"general": 11})
    with pytest.raises(ValidationError):
        LeaderShift(
            agent="m", seat="1", start=DAY, end=DAY - timedelta(hours=1), topics=["x"], title=""
        )
    with pytest.raises(ValidationError):  # naive datetimes are ambiguous
        LeaderShift(
            agent="m",
            seat="1",
            start=DAY.replace(tzinfo=None),
            end=DAY.replace(tzinfo=None) + timedelta(hours=1),
            topics=["x"],
        )
    with pytest.raises(ValidationError):
        RoutingSettings(overflow=[{"skill": "a", "after_s": -1, "to": ["b"]}])  # type: ignore[list-item]


def test_defaults_match_the_contract() -> None:
    s = RoutingSettings()
    assert (s.fairness, s.sticky_wait_s, s.leader_wait_s) == ("longest_idle", 20, 15)
    assert (s.default_skill, s.hold_when_busy, s.priority_aging_s) == ("general", True, 15)


@pytest.mark.parametrize(
    ("agents", "shifts", "routing", "message"),
    [
        ([agent("a"), agent("a")], [], {}, "configured twice"),
        ([agent("a")], [shift("m", 9, 10, "x")], {}, "unknown agent"),
        ([agent("m")], [shift("m", 9, 10, "x")], {}, "leader = false"),
        (
            [agent("m", leader=True)],
            [shift("m", 9, 11, "x"), shift("m", 10, 12, "y")],
            {},
            "overlap",
        ),
        ([], [], {"overflow": [{"skill": "a", "after_s": 5, "to": ["a"]}]}, "itself"),
    ],
)
def test_plan_cross_checks(
    agents: list[AgentSettings], shifts: list[LeaderShift], routing: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RoutingPlan.from_settings(RoutingSettings(**routing), HOTLINES, agents, shifts)  # type: ignore[arg-type]


def test_duplicate_did_is_refused() -> None:
    with pytest.raises(ValueError, match="DID"):
        RoutingPlan.from_settings(RoutingSettings(), HOTLINES + HOTLINES[:1], [], [])


def test_leaders_on_duty_follow_the_schedule() -> None:
    plan = RoutingPlan.from_settings(
        RoutingSettings(),
        HOTLINES,
        [agent("m", leader=True), agent("d", leader=True)],
        [shift("m", 9, 11, "social"), shift("m", 14, 15, "social"), shift("d", 10, 12, "social")],
    )
    at = (DAY + timedelta(hours=10, minutes=30)).timestamp()
    assert [s.agent_id for s in plan.leaders_on_duty("social", at)] == ["m", "d"]
    assert plan.leaders_on_duty("general", at) == []
    assert plan.duty_topics("m", (DAY + timedelta(hours=14)).timestamp()) == {"social"}
    assert plan.duty_topics("m", (DAY + timedelta(hours=15)).timestamp()) == frozenset()


# --- arrival profiles ----------------------------------------------------------------------


def test_shipped_profiles() -> None:
    assert {"haikou-peak", "bozhou-normal", "surge-5x"} <= set(available_profiles())
    haikou = load_profile("haikou-peak")
    assert haikou.calls_per_day == pytest.approx(10400)
    assert len(haikou.hourly_calls) == 24
    peak = max(range(24), key=lambda h: haikou.hourly_calls[h])
    assert 8 <= peak <= 17 and min(haikou.hourly_calls) < haikou.hourly_calls[peak] / 10
    assert sum(haikou.shares) == pytest.approx(1.0)
    assert haikou.leader_shifts and haikou.leader_shifts[0].start.utcoffset() == timedelta(hours=8)
    assert load_profile("bozhou-normal").calls_per_day == pytest.approx(4000)
    surge = load_profile("surge-5x")
    assert surge.calls_per_day == pytest.approx(20000)
    assert surge.hotlines == load_profile("bozhou-normal").hotlines


def test_profile_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no profile 'nowhere'"):
        load_profile("nowhere")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nbase = "bozhou-normal"\ncolour = "red"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="colour"):
        load_profile(str(bad))
    bad.write_text(
        'name = "bad"\nbase = "bozhou-normal"\nhourly_weights = [0, 0]\n', encoding="utf-8"
    )
    with pytest.raises(ValueError, match="hourly_weights"):
        load_profile(str(bad))


def test_distributions_have_the_stated_mean() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    for dist in (load_profile("haikou-peak").handle, load_profile("haikou-peak").patience):
        sample = dist.sample(rng, 200_000)
        assert sample.mean() == pytest.approx(dist.mean_s, rel=0.01)
        assert sample.std() / sample.mean() == pytest.approx(dist.cv, rel=0.03)
