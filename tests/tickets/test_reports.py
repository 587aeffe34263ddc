"""The report from a real database: the loaders, the ``hotline report`` command (text, JSON,
CSV, chart), the calls table read by reflection, repeat callers and hotspots."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from cti.db import make_engine
from tests.tickets.support import AGENT, CGJ, SUPERVISOR, ZJJ, Clock
from tickets import cli, kpi
from tickets.hotspots import HotspotRecord, keywords, place_key, weekly_hotspots, write_chart
from tickets.reports import build_report, parse_period, repeat_callers
from tickets.service import TicketService
from tickets.settings import TicketSettings

OCT = parse_period("2026-10")
AS_OF = datetime(2026, 11, 5, tzinfo=UTC)


def month_of_work(service: TicketService, clock: Clock) -> dict[str, str]:
    clock.now = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)  # Thursday 09:00 Shanghai
    ids = {}
    t1 = service.open_for_call("20261008000001", call_id="k1", caller="13811110001", topic="咨询")
    service.update_fields(t1.id, AGENT, location="谯城区花戏楼社区", description="医保报销咨询")
    service.transition(t1.id, "answer", AGENT, text="按政策答复")
    t2 = service.open_for_call("20261008000002", call_id="k2", caller="13811110002", topic="咨询")
    service.update_fields(t2.id, AGENT, location="谯城区薛阁街道", description="路灯不亮 路灯损坏")
    service.transition(t2.id, "dispatch", AGENT, department="zjj")
    clock.advance(minutes=5)
    service.transition(t2.id, "sign_off", ZJJ)
    clock.advance(minutes=5)
    service.transition(t2.id, "contact_citizen", ZJJ)
    clock.advance(hours=2)
    service.transition(t2.id, "reply", ZJJ, text="已修复")
    service.transition(t2.id, "approve_reply", SUPERVISOR)
    service.transition(t2.id, "survey", AGENT, rating="satisfied")
    t3 = service.open_for_call("20261008000003", call_id="k3", caller="13811110003", topic="投诉")
    service.update_fields(t3.id, AGENT, location="谯城区薛阁街道", description="夜间施工噪音扰民")
    service.transition(t3.id, "dispatch", AGENT, department="zjj")
    clock.advance(hours=1)
    service.transition(t3.id, "return", ZJJ, "属城管职责", legal_basis="城管执法权责清单")
    service.transition(t3.id, "grant_return", SUPERVISOR, department="cgj")
    clock.advance(minutes=3)
    service.transition(t3.id, "sign_off", CGJ)
    service.transition(t3.id, "contact_citizen", CGJ)
    service.transition(t3.id, "reply", CGJ, text="已责令停工")
    service.transition(t3.id, "approve_reply", SUPERVISOR)
    service.transition(t3.id, "survey", AGENT, rating="unsatisfied")
    t4 = service.open_for_call("20261008000004", call_id="k4", caller="13811110001", topic="咨询")
    service.transition(t4.id, "queue_dispatch", AGENT)
    ids.update(t1=t1.id, t2=t2.id, t3=t3.id, t4=t4.id)
    return ids


def test_report_from_the_database(service: TicketService, clock: Clock, engine: Engine) -> None:
    month_of_work(service, clock)
    with engine.connect() as conn:
        report = build_report(conn, OCT, TicketSettings(), as_of=AS_OF)
    rows = {r.department_id: r for r in report.rows}
    # accepted: t1 answered, t2 and t3 dispatched, t4 queued -> 1/4 answered on the spot
    assert rows["all"].counts["direct_answer_rate"] == (1, 4)
    # zjj: t2 signed and called within 30 min; t3 was returned (granted): not counted
    assert rows["zjj"].counts["timely_response_rate"] == (1, 1)
    assert rows["zjj"].counts["return_rate"] == (1, 2)  # 1 return / 2 dispatches
    assert rows["zjj"].counts["satisfaction_rate"] == (1, 1)
    # cgj: the granted re-dispatch was answered in time; the re-handling dispatch is not
    # signed yet -> 1/2
    assert rows["cgj"].counts["timely_response_rate"] == (1, 2)
    assert rows["cgj"].counts["satisfaction_rate"] == (0, 1)
    assert rows["cgj"].counts["rehandling_rate"] == (1, 0)
    # all: 1 re-handling / 1 closed
    assert rows["all"].rates["rehandling_rate"] == 1.0
    assert rows["all"].rates["connection_rate"] is None  # no calls table here
    assert [w.week for w in report.hotspots] == ["2026-W41"]


def test_report_command_json_and_csv(
    service: TicketService,
    clock: Clock,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    month_of_work(service, clock)
    parser = argparse.ArgumentParser(prog="hotline")
    cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "--period", "2026-10", "--json", "--db", db_url, "--as-of", AS_OF.isoformat(),
         "--csv-dir", str(tmp_path), "--chart"]
    )  # fmt: skip
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["department_id"] for d in data] == ["all", "cgj", "gaj", "scj", "zjj"]
    zjj = data[-1]
    assert zjj["return_rate"] == 0.5 and zjj["timely_response_rate"] == 1.0
    assert set(kpi.KPI_NAMES) <= set(zjj)
    with (tmp_path / "kpi-2026-10.csv").open(encoding="utf-8-sig") as f:
        table = list(csv.DictReader(f))
    assert [r["department_id"] for r in table] == ["all", "cgj", "gaj", "scj", "zjj"]
    assert float(table[-1]["return_rate"]) == 0.5
    assert (tmp_path / "hotspots-2026-10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "repeat-callers-2026-10.csv").exists()

    args = parser.parse_args(["report", "--period", "2026-10", "--db", db_url,
                              "--csv-dir", str(tmp_path / "text")])  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "接通率" in out and "住建局 (zjj)" in out and "wrote" in out
    args = parser.parse_args(["report", "--period", "October", "--db", db_url])
    assert args.func(args) == 2


def test_calls_are_read_from_the_cti_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE calls (id INTEGER PRIMARY KEY, node VARCHAR, linkedid VARCHAR, "
                "direction VARCHAR, caller VARCHAR, did VARCHAR, topic VARCHAR, "
                "started_at DATETIME, answered_at DATETIME, ended_at DATETIME, "
                "answered BOOLEAN, abandoned BOOLEAN, wait_s FLOAT, talk_s FLOAT, "
                "agent_id VARCHAR, seat VARCHAR, ticket_id VARCHAR)"
            )
        )
        rows = [
            ("2026-09-30 16:30:00.000000", "inbound", 1, 4.0, True),  # 1 Oct 00:30 Shanghai
            ("2026-10-10 02:00:00.000000", "inbound", 1, 20.0, True),
            ("2026-10-11 02:00:00.000000", "inbound", 0, 30.0, True),
            ("2026-10-11 03:00:00.000000", "inbound", 0, 10.0, False),  # still waiting
            ("2026-10-11 04:00:00.000000", "callback", 0, 0.0, True),  # not offered
            ("2026-09-30 15:59:00.000000", "inbound", 1, 1.0, True),  # 30 Sept 23:59: out
        ]
        for started, direction, answered, wait, ended in rows:
            conn.execute(
                text(
                    "INSERT INTO calls (started_at, direction, answered, wait_s, ended_at) "
                    "VALUES (:s, :d, :a, :w, :e)"
                ),
                {
                    "s": started,
                    "d": direction,
                    "a": answered,
                    "w": wait,
                    "e": started if ended else None,
                },
            )
    with engine.connect() as conn:
        calls = kpi.load_calls(conn, OCT)
    engine.dispose()
    assert calls is not None and len(calls) == 5
    assert kpi.connection_rate(calls, OCT) == kpi.Ratio(2, 3)
    assert kpi.answered_15s_rate(calls, OCT) == kpi.Ratio(1, 2)
    assert calls[0].started_at.tzinfo is not None


def test_repeat_callers(service: TicketService, clock: Clock, engine: Engine) -> None:
    clock.now = datetime(2026, 10, 2, tzinfo=UTC)
    for n in range(3):
        service.open_for_call(
            f"2026100200000{n}", call_id=f"r{n}", caller="13900009999", topic="噪音"
        )
    service.open_for_call("20261002000009", call_id="r9", caller="13900009999", topic="路灯")
    with engine.connect() as conn:
        found = repeat_callers(conn, AS_OF, threshold=3)
        assert [(r.caller, r.category, r.count) for r in found] == [("13900009999", "噪音", 3)]
        assert repeat_callers(conn, AS_OF, threshold=4) == []
        assert repeat_callers(conn, datetime(2027, 11, 1, tzinfo=UTC), threshold=3) == []


def test_hotspots_by_week(tmp_path: Path) -> None:
    def rec(day: int, cat: str, loc: str, desc: str) -> HotspotRecord:
        return HotspotRecord(datetime(2026, 10, day, 2, tzinfo=UTC), cat, loc, desc)

    records = [
        rec(5, "噪音", "谯城区薛阁街道光明路12号", "夜间施工噪音扰民,工地噪音"),
        rec(6, "噪音", "谯城区薛阁街道光明路15号", "工地夜间施工噪音"),
        rec(7, "路灯", "谯城区花戏楼社区", "路灯不亮"),
        rec(12, "供水", "利辛县城关镇", "停水没有通知,停水"),
    ]
    weeks = weekly_hotspots(records)
    assert [w.week for w in weeks] == ["2026-W41", "2026-W42"]
    first = weeks[0]
    assert first.total == 3 and first.categories[0] == ("噪音", 2)
    assert first.places[0] == ("谯城区薛阁街道", 2)
    words = [w for w, _ in first.keywords]
    assert "噪音" in words and "市民" not in words
    assert weeks[1].keywords[0][0] == "停水"
    assert place_key("  ") == "" and place_key("人民路5号") == "人民路"
    assert keywords([]) == []
    png = write_chart(weeks, tmp_path / "chart.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
