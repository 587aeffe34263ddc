"""The KPIs of shared/docs/domain.md §4, as pure functions over plain records, and the SQL
loaders that build those records.

Definitions (a rate is ``None`` when its denominator is 0; periods are half-open
``[start, end)``):

- 接通率 ``connection_rate``: calls answered by a human / calls offered. A call is offered
  when a citizen called the hotline (direction ``inbound``: not an agent's callback, not a
  call between seats) and the call has an outcome (answered, or ended unanswered); a call
  still waiting has none yet. ``is_offered`` says it, for the period table and for today's
  counters alike (``call_counters``).
- 15秒接通率 ``answered_15s_rate``: offered calls answered with ``wait_s <= 15`` / offered
  calls answered.
- 直接答复率 ``direct_answer_rate``: tickets answered on the spot (S1) / tickets accepted
  (intake ended as answered, queued for dispatch or dispatched; accepted in the period).
- 即时响应率 ``timely_response_rate``: lead dispatches of the period that were signed for and
  whose citizen was called by the response deadline / lead dispatches of the period.
- 按时办结率 ``on_time_completion_rate``: lead dispatches whose (extended) due date falls in the
  period and has passed, with the last reply filed by it / those dispatches.
- 及时反馈率 ``timely_feedback_rate``: lead dispatches whose feedback deadline (the original due
  date unless configured) falls in the period and has passed, with a first reply filed by
  it / those dispatches.
- 满意率 ``satisfaction_rate``: surveys rated satisfied (and basically satisfied when
  configured) / surveys that reached the citizen (not "unreachable"), in the period.
- 服务指数 ``service_index``: 100 x the weighted sum of the four rates above; a rate with no
  data is left out and the other weights are scaled up to sum to 1.
- 回退率 ``return_rate``: returns filed in the period / lead dispatches of the period.
- 重办率 ``rehandling_rate``: re-handlings ordered in the period / tickets closed in the period.

A dispatch ended by a granted return or a merge does not count for completion, feedback or
response: the unit was not the one responsible. Call KPIs and the direct-answer rate belong to
the hotline, not to a department: department rows have them as ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import MetaData, Table, and_, inspect, or_, select
from sqlalchemy.engine import Connection

from tickets.models import Assignment, Department, Survey, Ticket, TicketEvent
from tickets.settings import ServiceIndexWeights

ALL = "all"
EXCLUDED_END = ("returned", "merged")
KPI_NAMES = (
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
)


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: datetime
    end: datetime

    def __contains__(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class CallRecord:
    started_at: datetime
    answered: bool
    wait_s: float
    direction: str = "inbound"  # inbound | callback | internal (cti.calls.model.Call)
    ended: bool = True
    abandoned: bool = False


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    ticket_id: str
    accepted_at: datetime
    outcome: str  # answered | queued | dispatched (| not_accepted | merged | police)


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    ticket_id: str
    department_id: str
    assigned_at: datetime
    response_due_at: datetime | None = None
    signed_at: datetime | None = None
    contacted_at: datetime | None = None
    due_at: datetime | None = None
    feedback_due_at: datetime | None = None
    first_replied_at: datetime | None = None
    replied_at: datetime | None = None
    end_reason: str = ""


@dataclass(frozen=True, slots=True)
class SurveyRecord:
    ticket_id: str
    department_id: str | None
    at: datetime
    rating: str


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An audited action: ``return``, ``rehandle`` (survey unsatisfied) or ``close``."""

    ticket_id: str
    department_id: str | None
    at: datetime
    action: str


@dataclass(slots=True)
class KpiInputs:
    calls: list[CallRecord] = field(default_factory=list)
    intakes: list[IntakeRecord] = field(default_factory=list)
    dispatches: list[DispatchRecord] = field(default_factory=list)
    surveys: list[SurveyRecord] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    calls_available: bool = True


@dataclass(frozen=True, slots=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def rounded(value: float | None) -> float | None:
    """A rate as the APIs give it (the period table and today's counters alike)."""
    return None if value is None else round(value, 6)


# --- the formulas ------------------------------------------------------------------------


SERVICE_LEVEL_S = 15.0  # GB/T 33358: answer within 15 s


def is_offered(call: CallRecord) -> bool:
    """A citizen's call to the hotline that has an outcome: the denominator of 接通率."""
    return call.direction == "inbound" and (call.answered or call.ended)


def offered_calls(calls: Iterable[CallRecord], period: Period) -> list[CallRecord]:
    return [c for c in calls if c.started_at in period and is_offered(c)]


def connection_rate(calls: Iterable[CallRecord], period: Period) -> Ratio:
    offered = offered_calls(calls, period)
    return Ratio(sum(c.answered for c in offered), len(offered))


def answered_15s_rate(
    calls: Iterable[CallRecord], period: Period, threshold_s: float = SERVICE_LEVEL_S
) -> Ratio:
    answered = [c for c in offered_calls(calls, period) if c.answered]
    return Ratio(sum(c.wait_s <= threshold_s for c in answered), len(answered))


@dataclass(frozen=True, slots=True)
class CallCounters:
    """The call KPIs of one period with the counts behind them (today's counters on the
    reports page and the wallboard), from the same formulas as the period table."""

    period: Period
    connection: Ratio
    answered_15s: Ratio
    abandoned: int
    asa_s: float | None
    longest_answer_s: float | None
    hours: list[dict[str, int]]

    @property
    def offered(self) -> int:
        return self.connection.denominator

    @property
    def answered(self) -> int:
        return self.connection.numerator


def call_counters(calls: Iterable[CallRecord], period: Period, tz: tzinfo) -> CallCounters:
    """Offered, answered, answered within 15 s, abandoned, the mean and longest wait of the
    answered calls, and offered / answered per local hour of the period's start day."""
    records = list(calls)
    offered = offered_calls(records, period)
    waits = [c.wait_s for c in offered if c.answered]
    hours = [{"hour": h, "offered": 0, "answered": 0} for h in range(24)]
    for c in offered:
        slot = hours[c.started_at.astimezone(tz).hour]
        slot["offered"] += 1
        slot["answered"] += int(c.answered)
    return CallCounters(
        period,
        connection_rate(records, period),
        answered_15s_rate(records, period),
        sum(c.abandoned and not c.answered for c in offered),
        sum(waits) / len(waits) if waits else None,
        max(waits) if waits else None,
        hours,
    )


def direct_answer_rate(intakes: Iterable[IntakeRecord], period: Period) -> Ratio:
    accepted = [
        i
        for i in intakes
        if i.accepted_at in period and i.outcome in ("answered", "queued", "dispatched")
    ]
    return Ratio(sum(i.outcome == "answered" for i in accepted), len(accepted))


def _of(records: Iterable[Any], department: str | None) -> list[Any]:
    return [r for r in records if department in (None, ALL) or r.department_id == department]


def _by(at: datetime | None, deadline: datetime | None) -> bool:
    return at is not None and deadline is not None and at <= deadline


def timely_response_rate(
    dispatches: Iterable[DispatchRecord], period: Period, department: str | None = None
) -> Ratio:
    rows = [
        d
        for d in _of(dispatches, department)
        if d.assigned_at in period and d.end_reason not in EXCLUDED_END
    ]
    ok = sum(
        _by(d.signed_at, d.response_due_at) and _by(d.contacted_at, d.response_due_at) for d in rows
    )
    return Ratio(ok, len(rows))


def on_time_completion_rate(
    dispatches: Iterable[DispatchRecord],
    period: Period,
    department: str | None = None,
    as_of: datetime | None = None,
) -> Ratio:
    """按时办结率: completed by the (extended) due date / dispatches due in the period."""
    return _done_by_deadline(
        dispatches, period, department, as_of, lambda d: d.due_at, lambda d: d.replied_at
    )


def timely_feedback_rate(
    dispatches: Iterable[DispatchRecord],
    period: Period,
    department: str | None = None,
    as_of: datetime | None = None,
) -> Ratio:
    """及时反馈率: first reply filed by the feedback deadline / dispatches requiring one."""
    return _done_by_deadline(
        dispatches,
        period,
        department,
        as_of,
        lambda d: d.feedback_due_at,
        lambda d: d.first_replied_at,
    )


def _done_by_deadline(
    dispatches: Iterable[DispatchRecord],
    period: Period,
    department: str | None,
    as_of: datetime | None,
    due: Callable[[DispatchRecord], datetime | None],
    done: Callable[[DispatchRecord], datetime | None],
) -> Ratio:
    """Dispatches whose deadline fell in the period (and is already past at ``as_of``),
    and how many of them were done by it."""
    cutoff = min(period.end, as_of) if as_of else period.end
    rows = []
    for d in _of(dispatches, department):
        deadline = due(d)
        if (
            deadline is not None
            and deadline in period
            and deadline <= cutoff
            and d.end_reason not in EXCLUDED_END
        ):
            rows.append((done(d), deadline))
    return Ratio(sum(_by(finished, deadline) for finished, deadline in rows), len(rows))


def satisfaction_rate(
    surveys: Iterable[SurveyRecord],
    period: Period,
    department: str | None = None,
    counts_basic: bool = True,
) -> Ratio:
    good = {"satisfied", "basically_satisfied"} if counts_basic else {"satisfied"}
    reached = [
        s
        for s in _of(surveys, department)
        if s.at in period and s.rating in ("satisfied", "basically_satisfied", "unsatisfied")
    ]
    return Ratio(sum(s.rating in good for s in reached), len(reached))


def service_index(
    timely_response: float | None,
    on_time_completion: float | None,
    timely_feedback: float | None,
    satisfaction: float | None,
    weights: ServiceIndexWeights,
) -> float | None:
    parts = [
        (timely_response, weights.timely_response),
        (on_time_completion, weights.on_time_completion),
        (timely_feedback, weights.timely_feedback),
        (satisfaction, weights.satisfaction),
    ]
    present = [(rate, weight) for rate, weight in parts if rate is not None]
    total_weight = sum(weight for _, weight in present)
    if not present or total_weight == 0:
        return None
    return 100.0 * sum(rate * weight for rate, weight in present) / total_weight


def return_rate(
    actions: Iterable[ActionRecord],
    dispatches: Iterable[DispatchRecord],
    period: Period,
    department: str | None = None,
) -> Ratio:
    returns = [a for a in _of(actions, department) if a.action == "return" and a.at in period]
    dispatched = [d for d in _of(dispatches, department) if d.assigned_at in period]
    return Ratio(len(returns), len(dispatched))


def rehandling_rate(
    actions: Iterable[ActionRecord], period: Period, department: str | None = None
) -> Ratio:
    rows = [a for a in _of(actions, department) if a.at in period]
    return Ratio(sum(a.action == "rehandle" for a in rows), sum(a.action == "close" for a in rows))


@dataclass(frozen=True, slots=True)
class DepartmentKpis:
    department_id: str
    department_name: str
    rates: dict[str, float | None]
    counts: dict[str, tuple[int, int]]

    def to_dict(self, period: Period) -> dict[str, Any]:
        data: dict[str, Any] = {
            "period": period.label,
            "department_id": self.department_id,
            "department_name": self.department_name,
        }
        for name in KPI_NAMES:
            data[name] = rounded(self.rates.get(name))
        data["counts"] = {
            k: {"numerator": n, "denominator": d} for k, (n, d) in self.counts.items()
        }
        return data


def compute(
    inputs: KpiInputs,
    period: Period,
    departments: Sequence[tuple[str, str]],
    *,
    weights: ServiceIndexWeights,
    counts_basic: bool = True,
    as_of: datetime | None = None,
) -> list[DepartmentKpis]:
    """The hotline as a whole (``department_id == "all"``) first, then each department."""
    result = []
    for dept_id, name in [(ALL, "全部"), *departments]:
        dept = None if dept_id == ALL else dept_id
        ratios: dict[str, Ratio | None] = {
            "connection_rate": None,
            "answered_15s_rate": None,
            "direct_answer_rate": None,
        }
        if dept is None:
            if inputs.calls_available:
                ratios["connection_rate"] = connection_rate(inputs.calls, period)
                ratios["answered_15s_rate"] = answered_15s_rate(inputs.calls, period)
            ratios["direct_answer_rate"] = direct_answer_rate(inputs.intakes, period)
        ratios["timely_response_rate"] = timely_response_rate(inputs.dispatches, period, dept)
        ratios["on_time_completion_rate"] = on_time_completion_rate(
            inputs.dispatches, period, dept, as_of
        )
        ratios["timely_feedback_rate"] = timely_feedback_rate(
            inputs.dispatches, period, dept, as_of
        )
        ratios["satisfaction_rate"] = satisfaction_rate(inputs.surveys, period, dept, counts_basic)
        ratios["return_rate"] = return_rate(inputs.actions, inputs.dispatches, period, dept)
        ratios["rehandling_rate"] = rehandling_rate(inputs.actions, period, dept)
        rates = {k: (r.value if r is not None else None) for k, r in ratios.items()}
        rates["service_index"] = service_index(
            rates["timely_response_rate"],
            rates["on_time_completion_rate"],
            rates["timely_feedback_rate"],
            rates["satisfaction_rate"],
            weights,
        )
        counts = {k: (r.numerator, r.denominator) for k, r in ratios.items() if r is not None}
        result.append(DepartmentKpis(dept_id, name, rates, counts))
    return result


def bottom_three(
    rows: Sequence[DepartmentKpis], key: str = "service_index"
) -> list[DepartmentKpis]:
    """The three departments with the lowest ``key`` (Huzhou warns them); no data, no rank."""
    ranked = [r for r in rows if r.department_id != ALL and r.rates.get(key) is not None]
    ranked.sort(key=lambda r: (r.rates[key], r.department_id))
    return ranked[:3]


# --- loaders -----------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_calls(conn: Connection, period: Period) -> list[CallRecord] | None:
    """Calls from the CTI's ``calls`` table (read by reflection: that slice owns it);
    None when the table does not exist."""
    if not inspect(conn).has_table("calls"):
        return None
    calls = Table("calls", MetaData(), autoload_with=conn)
    # The reflected column has a plain DATETIME type: bind UTC (the CTI stores UTC), since
    # SQLite would drop a +08:00 offset and compare the local wall-clock time.
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    rows = conn.execute(
        select(
            calls.c.started_at,
            calls.c.answered,
            calls.c.wait_s,
            calls.c.direction,
            calls.c.ended_at,
            calls.c.abandoned,
        ).where(calls.c.started_at >= start, calls.c.started_at < end)
    )
    result = []
    for started_at, answered, wait_s, direction, ended_at, abandoned in rows:
        at = _utc(started_at)
        if at is not None:
            result.append(
                CallRecord(
                    at,
                    bool(answered),
                    float(wait_s or 0.0),
                    direction or "inbound",
                    ended_at is not None,
                    bool(abandoned),
                )
            )
    return result


def load_inputs(conn: Connection, period: Period) -> KpiInputs:
    start, end = period.start, period.end
    calls = load_calls(conn, period)
    intakes = [
        IntakeRecord(tid, at, outcome)
        for tid, at, outcome in conn.execute(
            select(Ticket.id, Ticket.accepted_at, Ticket.intake_outcome).where(
                Ticket.accepted_at >= start, Ticket.accepted_at < end
            )
        )
        if at is not None
    ]
    a = Assignment
    in_period = [
        and_(col >= start, col < end) for col in (a.assigned_at, a.due_at, a.feedback_due_at)
    ]
    dispatches = [
        DispatchRecord(
            row.ticket_id,
            row.department_id,
            row.assigned_at,
            row.response_due_at,
            row.signed_at,
            row.contacted_at,
            row.due_at,
            row.feedback_due_at,
            row.first_replied_at,
            row.replied_at,
            row.end_reason or "",
        )
        for row in conn.execute(select(a.__table__).where(a.role == "lead", or_(*in_period)))
    ]
    surveys = [
        SurveyRecord(tid, dept, at, rating)
        for tid, dept, at, rating in conn.execute(
            select(Survey.ticket_id, Survey.department_id, Survey.at, Survey.rating).where(
                Survey.at >= start, Survey.at < end
            )
        )
    ]
    names = {
        "return": "return",
        "survey_unsatisfied": "rehandle",
        "survey_satisfied": "close",
        "close": "close",
    }
    actions = [
        ActionRecord(tid, dept, at, names[action])
        for tid, dept, at, action in conn.execute(
            select(
                TicketEvent.ticket_id, TicketEvent.department_id, TicketEvent.at, TicketEvent.action
            ).where(
                TicketEvent.at >= start, TicketEvent.at < end, TicketEvent.action.in_(list(names))
            )
        )
    ]
    return KpiInputs(calls or [], intakes, dispatches, surveys, actions, calls is not None)


def load_departments(conn: Connection) -> list[tuple[str, str]]:
    return [
        (d_id, name)
        for d_id, name in conn.execute(
            select(Department.id, Department.name).order_by(Department.id)
        )
    ]
