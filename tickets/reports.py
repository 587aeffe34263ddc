"""The periodic report: KPIs per department, the bottom three, repeat callers, hotspots and
the agents' occupancy (``tickets.occupancy``).

``build_report`` reads the database once; ``format_text``, ``to_json`` and ``write_csv``
render it. Periods: ``2026-10`` (month), ``2026-Q4`` (quarter: the service index is
published quarterly), ``2026-W41`` (ISO week) or ``2026`` (year), in the hotline's time zone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from console.validation import MAX_YEAR, MIN_YEAR
from tickets import hotspots, kpi
from tickets.kpi import KPI_NAMES, DepartmentKpis, Period
from tickets.models import Ticket
from tickets.occupancy import FloorOccupancy, floor_occupancy, period_occupancy
from tickets.settings import TicketSettings

KPI_LABELS = {
    "connection_rate": "接通率",
    "answered_15s_rate": "15秒接通率",
    "direct_answer_rate": "直接答复率",
    "timely_response_rate": "即时响应率",
    "on_time_completion_rate": "按时办结率",
    "timely_feedback_rate": "及时反馈率",
    "satisfaction_rate": "满意率",
    "service_index": "服务指数",
    "return_rate": "回退率",
    "rehandling_rate": "重办率",
}


def parse_period(text: str, timezone: str = "Asia/Shanghai") -> Period:
    tz = ZoneInfo(timezone)
    text = text.strip()
    # Every form starts with the year; far from today it is a typo (and year 1 or 9999
    # would overflow when the period's bounds are moved to UTC).
    if (year_of := re.match(r"\d{4}", text)) and not MIN_YEAR <= int(year_of[0]) <= MAX_YEAR:
        raise ValueError(f"{text!r}: the year must be {MIN_YEAR} to {MAX_YEAR}")

    def at(day: date) -> datetime:
        return datetime.combine(day, time(0), tz)

    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise ValueError(f"bad month in {text!r}")
        end = date(year + (month == 12), month % 12 + 1, 1)
        return Period(text, at(date(year, month, 1)), at(end))
    if m := re.fullmatch(r"(\d{4})-[Qq]([1-4])", text):
        year, quarter = int(m.group(1)), int(m.group(2))
        first = 3 * (quarter - 1) + 1
        end = date(year + (quarter == 4), first + 3 if quarter < 4 else 1, 1)
        return Period(f"{year}-Q{quarter}", at(date(year, first, 1)), at(end))
    if m := re.fullmatch(r"(\d{4})-[Ww](\d{2})", text):
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        return Period(text.upper(), at(monday), at(monday + timedelta(days=7)))
    if re.fullmatch(r"\d{4}", text):
        year = int(text)
        return Period(text, at(date(year, 1, 1)), at(date(year + 1, 1, 1)))
    raise ValueError(f"{text!r} is not a period: write 2026-10, 2026-Q4, 2026-W41 or 2026")


def day_period(at: datetime, timezone: str = "Asia/Shanghai") -> Period:
    """The local day holding ``at``, as a period labelled ``2026-10-08``."""
    tz = ZoneInfo(timezone)
    day = at.astimezone(tz).date()
    return Period(
        day.isoformat(),
        datetime.combine(day, time(0), tz),
        datetime.combine(day + timedelta(days=1), time(0), tz),
    )


# The wallboard's occupancy: the floor over the last half hour, long enough to smooth single
# calls out, short enough to show a shift's rush as it comes.
RECENT_OCCUPANCY_S = 30 * 60


def today_counters(conn: Connection, now: datetime, timezone: str) -> dict[str, Any]:
    """Today's call counters (the local day of ``now``) for the console: the same calls and
    formulas as the period table (``kpi.call_counters``), with the counts behind each rate.
    A call still waiting is not counted until it has an outcome. ``occupancy`` is the floor's
    and each agent's over the last ``RECENT_OCCUPANCY_S``, ``occupancy_today`` since midnight."""
    period = day_period(now, timezone)
    c = kpi.call_counters(kpi.load_calls(conn, period) or [], period, ZoneInfo(timezone))
    recent = floor_occupancy(conn, now - timedelta(seconds=RECENT_OCCUPANCY_S), now)
    return {
        "day": period.label,
        "since": period.start.isoformat(),
        "until": period.end.isoformat(),
        "as_of": now.isoformat(),
        "offered": c.offered,
        "answered": c.answered,
        "answered_15s": c.answered_15s.numerator,
        "abandoned": c.abandoned,
        "connection_rate": kpi.rounded(c.connection.value),
        "service_level_15s": kpi.rounded(c.answered_15s.value),
        "counts": {
            "connection_rate": _counts(c.connection),
            "answered_15s_rate": _counts(c.answered_15s),
        },
        "asa_s": None if c.asa_s is None else round(c.asa_s, 1),
        "longest_answer_s": None if c.longest_answer_s is None else round(c.longest_answer_s, 1),
        "hours": c.hours,
        "window_s": kpi.SERVICE_LEVEL_S,
        "occupancy": {"window_s": RECENT_OCCUPANCY_S, **recent.to_dict()},
        "occupancy_today": period_occupancy(conn, period, now).floor.to_dict(),
    }


def _counts(ratio: kpi.Ratio) -> dict[str, int]:
    return {"numerator": ratio.numerator, "denominator": ratio.denominator}


@dataclass(frozen=True, slots=True)
class RepeatCaller:
    caller: str
    category: str
    count: int


def repeat_callers(
    conn: Connection, as_of: datetime, threshold: int, window_days: int = 365
) -> list[RepeatCaller]:
    """Callers who raised the same category at least ``threshold`` times in the window."""
    since = as_of - timedelta(days=window_days)
    n = func.count().label("n")
    rows = conn.execute(
        select(Ticket.caller, Ticket.category, n)
        .where(
            Ticket.opened_at >= since,
            Ticket.opened_at < as_of,
            Ticket.caller != "",
            Ticket.state != "merged",
        )
        .group_by(Ticket.caller, Ticket.category)
        .having(func.count() >= threshold)
        .order_by(n.desc(), Ticket.caller)
    )
    return [RepeatCaller(caller, category, int(count)) for caller, category, count in rows]


@dataclass(slots=True)
class Report:
    period: Period
    rows: list[DepartmentKpis]
    bottom_three: list[DepartmentKpis]
    repeat_callers: list[RepeatCaller] = field(default_factory=list)
    hotspots: list[hotspots.WeekHotspots] = field(default_factory=list)
    occupancy: FloorOccupancy | None = None


def build_report(
    conn: Connection,
    period: Period,
    settings: TicketSettings,
    *,
    as_of: datetime | None = None,
    with_hotspots: bool = True,
) -> Report:
    inputs = kpi.load_inputs(conn, period)
    rows = kpi.compute(
        inputs,
        period,
        kpi.load_departments(conn),
        weights=settings.service_index,
        counts_basic=settings.satisfaction_counts_basic,
        as_of=as_of,
    )
    repeat = repeat_callers(
        conn,
        min(period.end, as_of) if as_of else period.end,
        settings.repeat_caller_threshold,
        settings.repeat_caller_window_days,
    )
    weeks = (
        hotspots.weekly_hotspots(hotspots.load_records(conn, period), settings.timezone)
        if with_hotspots
        else []
    )
    occupancy = period_occupancy(conn, period, as_of)
    return Report(period, rows, kpi.bottom_three(rows), repeat, weeks, occupancy)


def to_json(report: Report) -> list[dict[str, Any]]:
    """One object per department (the hotline as a whole first, ``department_id == "all"``,
    which also carries the floor's occupancy: agents belong to the hotline, not a unit)."""
    bottom = {r.department_id for r in report.bottom_three}
    result = []
    for row in report.rows:
        data = row.to_dict(report.period)
        data["bottom_three"] = row.department_id in bottom
        if row.department_id == "all" and report.occupancy is not None:
            data["occupancy"] = report.occupancy.floor.to_dict()["occupancy"]
        result.append(data)
    return result


def _pct(value: float | None, index: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if index else f"{100 * value:.1f}%"


def format_text(report: Report) -> str:
    lines = [f"12345 热线 KPI {report.period.label}", ""]
    header = ["department", *(KPI_LABELS[k] for k in KPI_NAMES)]
    table = [header]
    for row in report.rows:
        table.append(
            [
                f"{row.department_name} ({row.department_id})",
                *(_pct(row.rates.get(k), k == "service_index") for k in KPI_NAMES),
            ]
        )
    widths = [max(_width(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append("  ".join(_pad(cell, w) for cell, w in zip(r, widths, strict=True)))
    lines.append("")
    if report.bottom_three:
        names = ", ".join(
            f"{r.department_name} {_pct(r.rates['service_index'], True)}"
            for r in report.bottom_three
        )
        lines.append(f"后三位 bottom three (service index): {names}")
    else:
        lines.append("后三位 bottom three: no department has data")
    if report.occupancy is not None:
        occ = report.occupancy
        agents = ", ".join(f"{a} {_pct(o.value)}" for a, o in occ.agents.items())
        lines.append(
            f"坐席占用率 occupancy: {_pct(occ.floor.value)}" + (f" ({agents})" if agents else "")
        )
    lines.append(f"重复来电 repeat callers: {len(report.repeat_callers)}")
    for rc in report.repeat_callers[:20]:
        lines.append(f"  {rc.caller}  {rc.category}  {rc.count}")
    for week in report.hotspots:
        cats = ", ".join(f"{n} {c}" for n, c in week.categories[:5])
        places = ", ".join(f"{n} {c}" for n, c in week.places[:5])
        words = ", ".join(w for w, _ in week.keywords[:8])
        lines.append(f"{week.week} ({week.total}): {cats} | {places} | {words}")
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def write_csv(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    label = report.period.label
    kpi_path = directory / f"kpi-{label}.csv"
    bottom = {r.department_id for r in report.bottom_three}
    with kpi_path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["period", "department_id", "department_name", *KPI_NAMES, "bottom_three"])
        for row in report.rows:
            writer.writerow(
                [
                    label,
                    row.department_id,
                    row.department_name,
                    *("" if row.rates.get(k) is None else f"{row.rates[k]:.6f}" for k in KPI_NAMES),
                    int(row.department_id in bottom),
                ]
            )
    repeat_path = directory / f"repeat-callers-{label}.csv"
    with repeat_path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["caller", "category", "count"])
        for rc in report.repeat_callers:
            writer.writerow([rc.caller, rc.category, rc.count])
    hot_path = directory / f"hotspots-{label}.csv"
    with hot_path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["week", "kind", "rank", "name", "value"])
        for week in report.hotspots:
            for kind, items in (
                ("category", week.categories),
                ("place", week.places),
                ("keyword", week.keywords),
            ):
                for rank, (name, value) in enumerate(items, 1):
                    writer.writerow([week.week, kind, rank, name, value])
    occupancy_path = directory / f"occupancy-{label}.csv"
    with occupancy_path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["period", "agent_id", "occupancy", "handling_s", "available_s"])
        occ = report.occupancy
        for agent_id, o in [("all", occ.floor), *occ.agents.items()] if occ else []:
            ratio = o.value
            writer.writerow(
                [
                    label,
                    agent_id,
                    "" if ratio is None else f"{ratio:.6f}",
                    f"{o.handling_s:.1f}",
                    f"{o.available_s:.1f}",
                ]
            )
    return [kpi_path, repeat_path, hot_path, occupancy_path]
