"""Occupancy from the CTI's agent state log: handling time (talk and wrap-up) over the time
agents were logged in and available, in the period report, its CSV and today's counters."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cti.db import Base
from cti.models import AgentRow, AgentStateLogRow
from tickets.reports import build_report, format_text, parse_period, today_counters, write_csv
from tickets.settings import TicketSettings

OCT = parse_period("2026-10")  # from 2026-09-30 16:00 UTC (midnight in Shanghai)
START = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)


def _log(engine: Engine, rows: list[tuple[str, str, str, datetime]]) -> None:
    Base.metadata.create_all(engine)  # the CTI's tables beside the tickets'
    with engine.begin() as conn:
        for agent_id in sorted({r[0] for r in rows}):
            conn.execute(AgentRow.__table__.insert().values(id=agent_id, name=agent_id))
        conn.execute(
            AgentStateLogRow.__table__.insert(),
            [{"agent_id": a, "seat": "8001", "old": o, "new": n, "at": at} for a, o, n, at in rows],
        )


def _floor(engine: Engine) -> None:
    m = timedelta(minutes=1)
    wang = datetime(2026, 10, 2, 2, 0, tzinfo=UTC)
    _log(
        engine,
        [
            # li was ready before the month began: her idle minutes count from its start
            ("li", "logged_out", "ready", START - 60 * m),
            ("li", "ready", "ringing", START + 10 * m - timedelta(seconds=5)),
            ("li", "ringing", "on_call", START + 10 * m),
            ("li", "on_call", "wrap_up", START + 20 * m),
            ("li", "wrap_up", "not_ready", START + 25 * m),  # a break: in neither
            ("li", "not_ready", "ready", START + 55 * m),
            ("li", "ready", "logged_out", START + 60 * m),
            ("wang", "logged_out", "ready", wang),
            ("wang", "ready", "on_call", wang + timedelta(seconds=30)),
            ("wang", "on_call", "ready", wang + timedelta(seconds=630)),
            ("wang", "ready", "logged_out", wang + timedelta(seconds=720)),
            ("wang", "logged_out", "ready", datetime(2026, 11, 2, tzinfo=UTC)),  # November
        ],
    )


def test_occupancy_in_the_period_report_and_its_csv(engine: Engine, tmp_path: Path) -> None:
    _floor(engine)
    with engine.connect() as conn:
        report = build_report(conn, OCT, TicketSettings(), as_of=datetime(2026, 11, 5, tzinfo=UTC))
    occ = report.occupancy
    assert occ is not None
    # li: on_call 600 s + wrap_up 300 s over ready 600 + ringing... 1800 s available
    assert (occ.agents["li"].handling_s, occ.agents["li"].available_s) == (900, 1800)
    assert (occ.agents["wang"].handling_s, occ.agents["wang"].available_s) == (600, 720)
    assert occ.floor.value == pytest.approx(1500 / 2520)
    assert "坐席占用率 occupancy: 59.5% (li 50.0%, wang 83.3%)" in format_text(report)
    written = write_csv(report, tmp_path)
    with (tmp_path / "occupancy-2026-10.csv").open(encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert tmp_path / "occupancy-2026-10.csv" in written
    assert [(r["agent_id"], r["occupancy"][:6]) for r in table] == [
        ("all", "0.5952"),
        ("li", "0.5000"),
        ("wang", "0.8333"),
    ]


def test_a_state_still_going_on_counts_up_to_now(engine: Engine) -> None:
    _floor(engine)
    now = START + timedelta(minutes=15)  # li on her call for five minutes
    with engine.connect() as conn:
        report = build_report(conn, OCT, TicketSettings(), as_of=now)
        today = today_counters(conn, now, "Asia/Shanghai")
    li = report.occupancy.agents["li"] if report.occupancy else None
    assert li is not None and (li.handling_s, li.available_s) == (300, 900)
    # the wallboard's half hour: from 15:45 UTC, li ready (15 min before the month) then the call
    recent = today["occupancy"]
    assert recent["window_s"] == 1800
    assert (recent["handling_s"], recent["available_s"]) == (300.0, 1800.0)
    assert recent["agents"] == [
        {"agent_id": "li", "occupancy": pytest.approx(300 / 1800, abs=1e-4),
         "handling_s": 300.0, "available_s": 1800.0},
    ]  # fmt: skip
    assert today["occupancy_today"]["available_s"] == 900.0


def test_no_log_no_occupancy(engine: Engine) -> None:
    with engine.connect() as conn:
        report = build_report(conn, OCT, TicketSettings(), as_of=START + timedelta(days=3))
    assert report.occupancy is not None and report.occupancy.floor.value is None
    assert "坐席占用率 occupancy: -" in format_text(report)
