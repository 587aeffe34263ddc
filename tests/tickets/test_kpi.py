"""KPIs on a hand-built month (October 2026, Shanghai time). Every expected number is worked
out by hand in the comments next to it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tickets import kpi
from tickets.kpi import (
    ActionRecord,
    CallRecord,
    DispatchRecord,
    IntakeRecord,
    KpiInputs,
    SurveyRecord,
)
from tickets.reports import parse_period
from tickets.settings import ServiceIndexWeights

SH = ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-10")
AS_OF = datetime(2026, 11, 5, 12, 0, tzinfo=SH)
W = ServiceIndexWeights()


def t(month: int, day: int, hour: int = 9, minute: int = 0, second: float = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, int(second), tzinfo=SH)


CALLS = [
    CallRecord(t(10, 1, 0, 30), True, 5),  # in: the period starts at 00:00 Shanghai
    CallRecord(t(10, 2), True, 15),  # exactly 15 s counts
    CallRecord(t(10, 3), True, 16),
    CallRecord(t(10, 4), True, 40),
    CallRecord(t(10, 5), False, 60),
    CallRecord(t(10, 6), False, 3),
    CallRecord(t(10, 7), True, 0),
    CallRecord(t(10, 31, 23, 59), True, 14.9),
    CallRecord(t(9, 30, 23, 59), True, 1),  # out
    CallRecord(datetime(2026, 11, 1, 0, 0, tzinfo=SH), False, 1),  # out: the end is exclusive
]

INTAKES = [
    IntakeRecord("a1", t(10, 2), "answered"),
    IntakeRecord("a2", t(10, 3), "answered"),
    IntakeRecord("a3", t(10, 4), "answered"),
    IntakeRecord("q1", t(10, 5), "queued"),
    IntakeRecord("d1", t(10, 8), "dispatched"),
    IntakeRecord("d2", t(10, 9), "dispatched"),
    IntakeRecord("d3", t(10, 20), "dispatched"),
    IntakeRecord("d5", t(10, 12), "dispatched"),
    IntakeRecord("n1", t(10, 6), "not_accepted"),
    IntakeRecord("m1", t(10, 6), "merged"),
    IntakeRecord("p1", t(10, 6), "police"),
    IntakeRecord("old", t(9, 29), "answered"),
]

DISPATCHES = [
    # zjj: d1 all in time
    DispatchRecord("d1", "zjj", t(10, 8, 9), t(10, 8, 9, 30), t(10, 8, 9, 10), t(10, 8, 9, 20),
                   t(10, 15, 18), t(10, 15, 18), t(10, 14), t(10, 14)),
    # zjj: d2 contacted late; first reply in time, final reply late
    DispatchRecord("d2", "zjj", t(10, 9, 9), t(10, 9, 9, 30), t(10, 9, 9, 20), t(10, 9, 9, 40),
                   t(10, 16, 18), t(10, 16, 18), t(10, 16, 12), t(10, 17, 10)),
    # zjj: d3 never signed; due in November (not counted for completion / feedback)
    DispatchRecord("d3", "zjj", t(10, 20, 9), t(10, 20, 9, 30), None, None,
                   t(11, 3, 18), t(11, 3, 18), None, None),
    # zjj: d4 dispatched in September, extended to 10 Oct, replied in time
    DispatchRecord("d4", "zjj", t(9, 25, 9), t(9, 25, 9, 30), t(9, 25, 9, 5), t(9, 25, 9, 6),
                   t(10, 10, 18), t(9, 30, 18), t(10, 10, 12), t(10, 10, 12)),
    # zjj: d5 returned and the return granted: only counts as "dispatched" for 回退率
    DispatchRecord("d5", "zjj", t(10, 12, 8), t(10, 12, 8, 30), None, None,
                   t(10, 19, 18), t(10, 19, 18), None, None, "returned"),
    # cgj: e1 (d5 re-dispatched) replied exactly at the deadline
    DispatchRecord("d5", "cgj", t(10, 12, 9), t(10, 12, 10), t(10, 12, 9, 30), t(10, 12, 9, 50),
                   t(10, 19, 18), t(10, 19, 18), t(10, 19, 18), t(10, 19, 18)),
    # cgj: e2 responded in time, no reply by its due date
    DispatchRecord("e2", "cgj", t(10, 25, 9), t(10, 25, 9, 30), t(10, 25, 9, 1), t(10, 25, 9, 2),
                   t(10, 30, 18), t(10, 30, 18), None, None),
]  # fmt: skip

SURVEYS = [
    SurveyRecord("d1", "zjj", t(10, 20), "satisfied"),
    SurveyRecord("x1", "zjj", t(10, 21), "basically_satisfied"),
    SurveyRecord("x2", "zjj", t(10, 22), "unsatisfied"),
    SurveyRecord("x3", "zjj", t(10, 23), "unreachable"),  # not "successfully surveyed"
    SurveyRecord("d5", "cgj", t(10, 22), "satisfied"),
    SurveyRecord("x4", "cgj", t(10, 23), "unsatisfied"),
    SurveyRecord("x5", "scj", t(10, 24), "satisfied"),
    SurveyRecord("x6", "zjj", t(9, 30), "unsatisfied"),  # out
]

ACTIONS = [
    ActionRecord("d5", "zjj", t(10, 12), "return"),
    ActionRecord("d3", "zjj", t(10, 21), "return"),
    ActionRecord("x2", "zjj", t(10, 18), "rehandle"),
    ActionRecord("d1", "zjj", t(10, 20), "close"),
    ActionRecord("x1", "zjj", t(10, 22), "close"),
    ActionRecord("x9", "zjj", t(10, 25), "close"),
    ActionRecord("d5", "cgj", t(10, 28), "close"),
    ActionRecord("x2", "zjj", t(11, 2), "rehandle"),  # out
]

INPUTS = KpiInputs(CALLS, INTAKES, DISPATCHES, SURVEYS, ACTIONS)
DEPTS = [("cgj", "城管局"), ("scj", "市场监管局"), ("zjj", "住建局"), ("gaj", "公安局")]


def test_call_kpis() -> None:
    # offered 8 in October, answered 6 -> 6/8
    assert kpi.connection_rate(CALLS, PERIOD) == kpi.Ratio(6, 8)
    # answered within 15 s: 5, 15, 0, 14.9 -> 4 of the 6 answered
    assert kpi.answered_15s_rate(CALLS, PERIOD) == kpi.Ratio(4, 6)


def test_direct_answer_rate() -> None:
    # accepted: 3 answered + 1 queued + 4 dispatched = 8; answered on the spot 3
    assert kpi.direct_answer_rate(INTAKES, PERIOD) == kpi.Ratio(3, 8)


def test_timely_response_rate() -> None:
    # zjj: d1 ok, d2 contacted late, d3 never signed (d4 September, d5 returned) -> 1/3
    assert kpi.timely_response_rate(DISPATCHES, PERIOD, "zjj") == kpi.Ratio(1, 3)
    # cgj: both in time
    assert kpi.timely_response_rate(DISPATCHES, PERIOD, "cgj") == kpi.Ratio(2, 2)
    # all: d1, d2, d3, e1, e2 -> d1, e1, e2 ok
    assert kpi.timely_response_rate(DISPATCHES, PERIOD) == kpi.Ratio(3, 5)


def test_on_time_completion_rate() -> None:
    # zjj due in October: d1 (ok), d2 (late), d4 (extended, ok) -> 2/3
    assert kpi.on_time_completion_rate(DISPATCHES, PERIOD, "zjj", AS_OF) == kpi.Ratio(2, 3)
    # cgj: e1 replied at the deadline (ok), e2 not replied -> 1/2
    assert kpi.on_time_completion_rate(DISPATCHES, PERIOD, "cgj", AS_OF) == kpi.Ratio(1, 2)
    # Before e2's deadline has passed it is not yet counted.
    early = t(10, 28)
    assert kpi.on_time_completion_rate(DISPATCHES, PERIOD, "cgj", early) == kpi.Ratio(1, 1)


def test_timely_feedback_rate() -> None:
    # zjj feedback deadlines in October: d1 (first reply 14th, ok), d2 (first reply 16th 12:00,
    # ok although the final reply was late); d4's original deadline was in September -> 2/2
    assert kpi.timely_feedback_rate(DISPATCHES, PERIOD, "zjj", AS_OF) == kpi.Ratio(2, 2)
    assert kpi.timely_feedback_rate(DISPATCHES, PERIOD, "cgj", AS_OF) == kpi.Ratio(1, 2)


def test_satisfaction_rate_with_and_without_basic() -> None:
    # zjj reached: satisfied, basically, unsatisfied (unreachable does not count)
    assert kpi.satisfaction_rate(SURVEYS, PERIOD, "zjj", counts_basic=True) == kpi.Ratio(2, 3)
    assert kpi.satisfaction_rate(SURVEYS, PERIOD, "zjj", counts_basic=False) == kpi.Ratio(1, 3)
    # all: zjj 2/3 + cgj 1/2 + scj 1/1 -> 4/6
    assert kpi.satisfaction_rate(SURVEYS, PERIOD) == kpi.Ratio(4, 6)


def test_return_and_rehandling_rates() -> None:
    # zjj: 2 returns / dispatched in October d1, d2, d3, d5 -> 2/4
    assert kpi.return_rate(ACTIONS, DISPATCHES, PERIOD, "zjj") == kpi.Ratio(2, 4)
    # zjj: 1 re-handling / 3 closed
    assert kpi.rehandling_rate(ACTIONS, PERIOD, "zjj") == kpi.Ratio(1, 3)
    # all: 2 returns / 6 dispatches; 1 re-handling / 4 closed
    assert kpi.return_rate(ACTIONS, DISPATCHES, PERIOD) == kpi.Ratio(2, 6)
    assert kpi.rehandling_rate(ACTIONS, PERIOD) == kpi.Ratio(1, 4)


def test_service_index() -> None:
    # 100 x (0.15 x 1/3 + 0.15 x 2/3 + 0.10 x 1 + 0.60 x 2/3) = 100 x 0.65 = 65.0
    assert kpi.service_index(1 / 3, 2 / 3, 1.0, 2 / 3, W) == pytest.approx(65.0)
    # Only satisfaction known: its weight is scaled to 1
    assert kpi.service_index(None, None, None, 0.5, W) == pytest.approx(50.0)
    assert kpi.service_index(None, None, None, None, W) is None
    custom = ServiceIndexWeights(
        timely_response=0.25, on_time_completion=0.25, timely_feedback=0.25, satisfaction=0.25
    )
    assert kpi.service_index(1.0, 0.0, 1.0, 0.0, custom) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        ServiceIndexWeights(satisfaction=0.7)


def test_compute_per_department_and_bottom_three() -> None:
    rows = kpi.compute(INPUTS, PERIOD, DEPTS, weights=W, counts_basic=True, as_of=AS_OF)
    by_id = {r.department_id: r for r in rows}
    assert [r.department_id for r in rows] == ["all", "cgj", "scj", "zjj", "gaj"]
    all_ = by_id["all"].rates
    assert all_["connection_rate"] == pytest.approx(0.75)
    assert all_["answered_15s_rate"] == pytest.approx(4 / 6)
    assert all_["direct_answer_rate"] == pytest.approx(0.375)
    # TR 3/5, OT 3/5 (d1, d4, e1 of d1, d2, d4, e1, e2), TF 3/4, SAT 4/6
    assert all_["on_time_completion_rate"] == pytest.approx(0.6)
    assert all_["timely_feedback_rate"] == pytest.approx(0.75)
    # 100 x (0.15 x 0.6 + 0.15 x 0.6 + 0.10 x 0.75 + 0.60 x 4/6) = 65.5
    assert all_["service_index"] == pytest.approx(65.5)
    zjj = by_id["zjj"].rates
    assert zjj["connection_rate"] is None and zjj["direct_answer_rate"] is None
    assert zjj["service_index"] == pytest.approx(65.0)
    assert zjj["return_rate"] == pytest.approx(0.5)
    assert zjj["rehandling_rate"] == pytest.approx(1 / 3)
    # cgj: 100 x (0.15 x 1 + 0.15 x 0.5 + 0.10 x 0.5 + 0.60 x 0.5) = 57.5
    assert by_id["cgj"].rates["service_index"] == pytest.approx(57.5)
    assert by_id["cgj"].rates["return_rate"] == 0.0
    assert by_id["cgj"].rates["rehandling_rate"] == 0.0  # 0 re-handlings / 1 closed
    # scj: only a satisfied survey -> 100
    assert by_id["scj"].rates["service_index"] == pytest.approx(100.0)
    assert by_id["gaj"].rates["service_index"] is None
    bottom = kpi.bottom_three(rows)
    assert [r.department_id for r in bottom] == ["cgj", "zjj", "scj"]
    # 基本满意 not counted: zjj satisfaction 1/3 -> 100 x (0.05 + 0.1 + 0.1 + 0.2) = 45.0
    strict = kpi.compute(INPUTS, PERIOD, DEPTS, weights=W, counts_basic=False, as_of=AS_OF)
    assert {r.department_id: r for r in strict}["zjj"].rates["service_index"] == pytest.approx(45.0)


def test_json_keys_are_english_snake_case() -> None:
    rows = kpi.compute(INPUTS, PERIOD, DEPTS, weights=W, as_of=AS_OF)
    data = rows[3].to_dict(PERIOD)
    for name in (
        "connection_rate",
        "answered_15s_rate",
        "direct_answer_rate",
        "timely_response_rate",
        "on_time_completion_rate",
        "timely_feedback_rate",
        "satisfaction_rate",
        "service_index",
        "return_rate",
        "rehandling_rate",
    ):
        assert name in data
    assert data["department_id"] == "zjj" and data["period"] == "2026-10"
    assert data["counts"]["timely_response_rate"] == {"numerator": 1, "denominator": 3}


def test_periods() -> None:
    q4 = parse_period("2026-Q4")
    assert (q4.start, q4.end) == (t(10, 1, 0), datetime(2027, 1, 1, tzinfo=SH))
    dec = parse_period("2026-12")
    assert dec.end == datetime(2027, 1, 1, tzinfo=SH)
    week = parse_period("2026-w41")
    assert week.label == "2026-W41" and week.start == t(10, 5, 0)
    assert parse_period("2026").end == datetime(2027, 1, 1, tzinfo=SH)
    for bad in ("2026-13", "Oct 2026", "2026-Q5"):
        with pytest.raises(ValueError):
            parse_period(bad)
