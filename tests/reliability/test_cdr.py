"""The CDR file: the mapping Asterisk writes, the simulator's lines, and the import of the
calls the CTI missed (new ones, ones it left open, idempotent)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cti.app import Hotline
from cti.cdr import FIELDS, ImportResult, fold, import_missed_calls, parse_time, read_records
from cti.config import parse
from cti.db import create_schema
from cti.models import AgentStateLogRow, CallRow
from cti.testing.cdr import cdr_line
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.reliability.helpers import ledger, site_data, until, with_cdr_path

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_mapping_in_the_asterisk_config_is_the_one_the_cti_reads() -> None:
    text = (ROOT / "config/asterisk/cdr_custom.conf").read_text(encoding="utf-8")
    (mapping,) = [line for line in text.splitlines() if line.startswith("hotline.csv =>")]
    assert tuple(re.findall(r"CDR\((\w+)", mapping)) == FIELDS
    # text columns quoted (names hold commas), times as epoch seconds
    assert "${CSV_QUOTE(${CDR(clid)})}" in mapping and "${CDR(start,u)}" in mapping


def test_times_in_both_formats() -> None:
    assert parse_time("0.000000", TZ) is None and parse_time("", TZ) is None
    assert parse_time("1763800000.250000", TZ) == datetime(2025, 11, 22, 8, 26, 40, 250000, UTC)
    assert parse_time("2025-11-22 16:26:40", TZ) == datetime(2025, 11, 22, 8, 26, 40, tzinfo=UTC)


async def test_simulator_writes_lines_the_importer_reads(tmp_path: Path) -> None:
    """No CTI at all (the heartbeat is missing): the fallback queue answers one caller, the
    other gives up; a name with a quote and a comma survives the CSV."""
    cdr = tmp_path / "cdr.csv"
    sim = AsteriskSimulator(SimConfig(scale=0.02, cdr_path=str(cdr), rec_dir=str(tmp_path)))
    await sim.start()
    try:
        sim.register_phone("8001", answer_delay=0.01)
        sim.queue.add_member("PJSIP/8001", "li", "PJSIP/8001", False, "")
        one = sim.place_call(caller="13800000001", name='张"三,', did="12345", talk_s=5)
        assert await one.wait(10) == "answered"
        sim.queue.pause("PJSIP/8001", True, "lunch")
        two = sim.place_call(caller="13800000002", name="李四", did="12345", patience_s=3)
        assert await two.wait(10) == "abandoned"
    finally:
        await sim.stop()
    result = ImportResult()
    since = datetime.now(UTC) - timedelta(minutes=5)
    calls = fold(
        read_records(cdr, TZ, since, result),
        frozenset({"from-citizen", "cti-hold", "cti-deliver"}),
        "from-citizen",
        {"8001": "seat", "8002": "seat"},
    )
    assert result.records == 2 and result.bad_lines == 0
    first, second = calls[one.uniqueid], calls[two.uniqueid]
    assert (first.caller, first.caller_name, first.did, first.seat) == (
        "13800000001",
        '张"三,',
        "12345",
        "8001",
    )
    assert first.answered_at is not None and first.started_at <= first.answered_at
    assert second.answered_at is None and second.seat == ""
    assert second.ended_at >= second.started_at


def line(linkedid: str, *, seat: str = "", channel: str = "", uniqueid: str = "", **kw: str) -> str:
    start = T0 + timedelta(seconds=float(linkedid.split(".")[1]))
    values = {
        "linkedid": linkedid,
        "uniqueid": uniqueid or linkedid,
        "clid": '"市民" <13900000000>',
        "src": "13900000000",
        "dst": "12345",
        "dcontext": "from-citizen",
        "channel": channel or f"PJSIP/trunk-{linkedid.split('.')[1]:0>8}",
        "dstchannel": f"PJSIP/{seat}-00000099" if seat else "",
        "lastapp": "Queue",
        "start": f"{start.timestamp():.6f}",
        "answer": f"{start.timestamp() + 1:.6f}",
        "end": f"{start.timestamp() + 30:.6f}",
        "duration": "30",
        "billsec": "29",
        "disposition": "ANSWERED",
        "userfield": "",
    }
    values.update(kw)
    return cdr_line(values)


@pytest.fixture
def hotline(any_db_url: str, tmp_path: Path) -> Iterator[Hotline]:
    data = site_data(3, skills=2)
    data["database"] = {"url": any_db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    h = Hotline(with_cdr_path(parse(data), str(tmp_path / "cdr.csv")), console=False)
    create_schema(h.engine)
    h._sync_reference_data()
    yield h
    h.store.stop()
    h.agents.stop()
    h.engine.dispose()


async def test_import_records_the_calls_the_cti_missed_once(hotline: Hotline) -> None:
    h, path = hotline, Path(hotline.settings.asterisk[0].cdr_path)  # type: ignore[attr-defined]
    with h.sessions.begin() as s:
        # a00000 was ready at 8001 before the CTI went away
        s.add(
            AgentStateLogRow(agent_id="a00000", seat="8001", old="logged_out", new="ready", at=T0)
        )
        # 100.2: routed by the CTI (its ticket number), on hold when the CTI died
        s.add(
            CallRow(node="pbx1", linkedid="100.2", caller="13900000002", did="12300",
                    topic="话题00", started_at=T0, ticket_id="20990101000042", routed_by="cti",
                    state="waiting")
        )  # fmt: skip
        # 100.3: answered while the CTI was up (ticket written), ended while it was down
        s.add(
            CallRow(node="pbx1", linkedid="100.3", caller="13900000003", started_at=T0,
                    answered_at=T0, answered=True, seat="8002", agent_id="a00001",
                    state="talking", routed_by="cti")
        )  # fmt: skip
        # 100.4: the CTI saw it end
        s.add(
            CallRow(node="pbx1", linkedid="100.4", caller="13900000004", started_at=T0,
                    ended_at=T0, answered=False, abandoned=True, state="ended")
        )  # fmt: skip
    h.tickets.open_for_call("20990101000007", call_id="100.3", node="pbx1", caller="13900000003")
    path.write_text(
        "\n".join(
            [
                line("100.1", seat="8001", src="13900000001", clid='"王五" <13900000001>'),
                line("100.2", seat="8003", src="13900000002", dcontext="cti-hold", dst="s"),
                line("100.3", seat="8002", src="13900000003"),
                line("100.4", src="13900000004"),
                line("100.5", src="13900000005", dstchannel="", lastapp="Queue"),
                # not citizen calls: a seat's callback, a Local leg, a second leg of 100.1
                line("100.6", channel="PJSIP/8001-0000000a", dcontext="from-seat"),
                line("100.7", channel="Local/9001@cti-window-00000001;2"),
                line("100.1", uniqueid="100.8", channel="PJSIP/8001-00000010", dcontext=""),
                "this is not a CDR line",
                "",
            ]
        ),
        encoding="utf-8",
    )
    result = await import_missed_calls(h.settings, h.sessions, h.persistence)
    assert (result.calls, result.new, result.closed, result.skipped) == (5, 2, 2, 1)
    assert (result.tickets, result.callbacks, result.bad_lines) == (2, 1, 1)
    h.store.start()
    assert await h.store.flush(10)
    book = ledger(h.sessions)
    rows = book["rows"]
    assert set(rows) == {"100.1", "100.2", "100.3", "100.4", "100.5"}
    assert all(r.ended_at is not None for r in rows.values())
    new = rows["100.1"]
    assert (new.routed_by, new.answered, new.seat, new.agent_id, new.caller_name) == (
        "fallback",
        True,
        "8001",
        "a00000",
        "王五",
    )
    assert new.did == "12345" and new.ticket_id
    held = rows["100.2"]
    assert held.answered and held.seat == "8003" and held.topic == "话题00"
    # a fresh number: the route's was never written, and the new process may draw it again
    assert book["ticket_calls"]["100.2"] == [held.ticket_id] != ["20990101000042"]
    assert book["ticket_calls"]["100.1"] == [new.ticket_id]
    assert book["ticket_calls"]["100.3"] == ["20990101000007"]
    assert book["tickets"] == 3
    assert rows["100.5"].abandoned and not rows["100.5"].answered
    assert book["callbacks"]["13900000005"].status == "open"
    assert "13900000004" not in book["callbacks"]  # the CTI handled that one live
    assert h.store.stats()["dead"] == 0

    again = await import_missed_calls(h.settings, h.sessions, h.persistence)
    assert (again.new, again.closed, again.tickets, again.callbacks) == (0, 0, 0, 0)
    assert again.skipped == 5
    await until(lambda: h.store.pending == 0)
    assert ledger(h.sessions)["tickets"] == 3
    assert ledger(h.sessions)["callbacks"]["13900000005"].missed_calls == 1


async def test_no_file_or_no_setting_imports_nothing(hotline: Hotline) -> None:
    result = await import_missed_calls(hotline.settings, hotline.sessions, hotline.persistence)
    assert result.calls == 0 and result.files == []


async def test_hostile_values_in_the_file_are_cleaned(hotline: Hotline) -> None:
    """The carrier's caller id is not to be trusted: control characters are dropped and the
    values cut to the columns, so the call and its ticket are written (PostgreSQL refuses
    NUL and over-long text)."""
    h, path = hotline, Path(hotline.settings.asterisk[0].cdr_path)  # type: ignore[attr-defined]
    name = "李\x00四\r\n" + "王" * 300
    path.write_text(
        line("200.1", seat="8001", src="1" * 80, clid=f'"{name}" <1>', dst="9" * 60) + "\n",
        encoding="utf-8",
    )
    result = await import_missed_calls(h.settings, h.sessions, h.persistence)
    assert (result.new, result.tickets) == (1, 1)
    h.store.start()
    assert await h.store.flush(10)
    assert h.store.stats()["dead"] == 0
    book = ledger(h.sessions)
    row = book["rows"]["200.1"]
    assert row.caller_name.startswith("李四王") and len(row.caller) <= 32
    (ticket,) = book["ticket_calls"]["200.1"]
    assert h.tickets.get(ticket).citizen_name.startswith("李四王")


async def test_an_unreadable_file_does_not_stop_the_cti(
    hotline: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    Path(hotline.settings.asterisk[0].cdr_path).mkdir()  # type: ignore[attr-defined]
    result = await import_missed_calls(hotline.settings, hotline.sessions, hotline.persistence)
    assert result.calls == 0
    assert any("CDR import failed" in r.getMessage() for r in caplog.records)
