"""Deadlines on the official calendar: the 2026 National Day holiday, the working Saturday
2026-10-10, the Mid-Autumn holiday and the 调休 Sunday 2026-09-20, anchors, the override file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tickets.calendar import CalendarError, WorkCalendar, load_override
from tickets.deadlines import Deadlines, Limit, parse_limit
from tickets.settings import DeadlineRule, SurveyRule

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


@pytest.fixture
def deadlines() -> Deadlines:
    return Deadlines(WorkCalendar(), "Asia/Shanghai")


def test_official_calendar_2026() -> None:
    cal = WorkCalendar()
    assert not cal.is_workday(date(2026, 10, 1))
    assert not cal.is_workday(date(2026, 10, 7))
    assert cal.is_workday(date(2026, 10, 8))
    assert cal.is_workday(date(2026, 10, 10))  # Saturday, 调休 working day
    assert not cal.is_workday(date(2026, 10, 11))
    assert cal.is_workday(date(2026, 9, 20))  # Sunday, 调休 working day
    assert not cal.is_workday(date(2026, 9, 25))  # Mid-Autumn Festival (Friday)


def test_parse_limit() -> None:
    assert parse_limit("10min") == Limit(10, "min")
    assert parse_limit(" 3wd ") == Limit(3, "wd")
    assert str(parse_limit("1.5h")) == "1.5h"
    for bad in ("3 weeks", "wd", "-1h", ""):
        with pytest.raises(ValueError):
            parse_limit(bad)


def test_wall_clock_limits_ignore_holidays(deadlines: Deadlines) -> None:
    start = sh(2026, 9, 30, 23, 55)
    assert deadlines.add(start, "10min") == sh(2026, 10, 1, 0, 5)
    assert deadlines.add(start, "1h") == sh(2026, 10, 1, 0, 55)
    assert deadlines.add(start, "2d") == sh(2026, 10, 2, 23, 55)
    assert deadlines.add(start, "30s").tzinfo == UTC


def test_one_working_day_across_national_day(deadlines: Deadlines) -> None:
    # Wednesday 30 Sept 15:00, the last working day before the holiday: 9 working hours left
    # that day, the other 15 on Thursday 8 October.
    assert deadlines.add(sh(2026, 9, 30, 15, 0), "1wd") == sh(2026, 10, 8, 15, 0)
    # Dispatched during the holiday: the clock starts on 8 October and runs a whole day.
    assert deadlines.add(sh(2026, 10, 3, 10, 0), "1wd") == sh(2026, 10, 9, 0, 0)


def test_the_working_saturday_counts(deadlines: Deadlines) -> None:
    # Friday 9 October 10:00 + 1 working day = Saturday 10 October 10:00 (调休 workday);
    # without the adjustment it would be Monday the 12th.
    assert deadlines.add(sh(2026, 10, 9, 10, 0), "1wd") == sh(2026, 10, 10, 10, 0)
    # Saturday 10:00 + 1 wd skips Sunday the 11th.
    assert deadlines.add(sh(2026, 10, 10, 10, 0), "1wd") == sh(2026, 10, 12, 10, 0)
    # Bozhou "137" rule from 30 Sept 15:00: 3 wd -> 8, 9, 10 Oct; 7 wd -> 8,9,10,12,13,14,15.
    assert deadlines.add(sh(2026, 9, 30, 15, 0), "3wd") == sh(2026, 10, 10, 15, 0)
    assert deadlines.add(sh(2026, 9, 30, 15, 0), "7wd") == sh(2026, 10, 15, 15, 0)


def test_mid_autumn_and_the_working_sunday(deadlines: Deadlines) -> None:
    # Friday 18 Sept 10:00 + 1 wd: Saturday 19 off, Sunday 20 is a working day.
    assert deadlines.add(sh(2026, 9, 18, 10, 0), "1wd") == sh(2026, 9, 20, 10, 0)
    # Thursday 24 Sept 10:00 + 1 wd: 25-27 Mid-Autumn holiday -> Monday 28.
    assert deadlines.add(sh(2026, 9, 24, 10, 0), "1wd") == sh(2026, 9, 28, 10, 0)


def test_anchors(deadlines: Deadlines) -> None:
    receipt = sh(2026, 9, 30, 15, 0)
    dispatched = sh(2026, 9, 30, 15, 2)
    signed = sh(2026, 10, 8, 9, 0)
    kwargs = {"receipt": receipt, "dispatched_at": dispatched, "signed_at": signed}
    assert deadlines.anchor_time("receipt", **kwargs) == receipt
    assert deadlines.anchor_time("dispatch", **kwargs) == dispatched
    assert deadlines.anchor_time("sign_off", **kwargs) == signed
    assert deadlines.anchor_time("day_after_receipt", **kwargs) == sh(2026, 10, 1, 0, 0)
    # Counting from the day after receipt gives "by the end of the Nth working day".
    rule = DeadlineRule(limit="1wd", anchor="day_after_receipt", response_limit="10min")
    clock = deadlines.clock_for(rule, receipt=receipt, dispatched_at=dispatched, signed_at=None)
    assert clock.due_at == sh(2026, 10, 9, 0, 0)
    assert clock.response_due_at == sh(2026, 9, 30, 15, 12)  # Yantai: 10 min, 7x24
    assert clock.feedback_due_at == clock.due_at
    rule = DeadlineRule(limit="1wd", anchor="sign_off")
    clock = deadlines.clock_for(rule, receipt=receipt, dispatched_at=dispatched, signed_at=None)
    assert clock.due_at is None and clock.remind_at is None


def test_reminders(deadlines: Deadlines) -> None:
    start, due = sh(2026, 10, 9, 10, 0), sh(2026, 10, 10, 10, 0)
    assert deadlines.remind_at(start, due, "2h") == sh(2026, 10, 10, 8, 0)
    assert deadlines.remind_at(start, due, 0.25) == sh(2026, 10, 10, 4, 0)
    assert deadlines.remind_at(start, due, "2d") is None  # before the start: no reminder
    survey_due, remind = deadlines.survey_due(SurveyRule(), sh(2026, 9, 30, 17, 0))
    assert survey_due == sh(2026, 10, 8, 17, 0)  # Yantai: survey within 1 working day
    assert remind is not None and remind < survey_due


def test_working_seconds_between(deadlines: Deadlines) -> None:
    seconds = deadlines.working_seconds_between(sh(2026, 9, 30, 15, 0), sh(2026, 10, 8, 15, 0))
    assert seconds == 24 * 3600


def test_override_file_loads_next_year(tmp_path: Path, deadlines: Deadlines) -> None:
    path = tmp_path / "2027.toml"
    path.write_text(
        '[2027]\nholidays = ["2027-01-01", "2027-10-01..2027-10-07"]\n'
        'workdays = ["2027-09-26", "2027-10-09"]\n',
        encoding="utf-8",
    )
    cal = WorkCalendar(path, strict=True)
    assert cal.override_years == [2027]
    assert not cal.is_workday(date(2027, 10, 4))  # a Monday inside the holiday
    assert cal.is_workday(date(2027, 10, 9))  # a Saturday worked
    assert cal.is_workday(date(2027, 10, 8))  # an ordinary Friday
    assert not cal.is_workday(date(2027, 10, 10))  # an ordinary Sunday
    assert cal.is_workday(date(2026, 10, 10))  # other years still come from the package
    later = Deadlines(cal).add(sh(2027, 9, 30, 15, 0), "1wd")
    assert later == sh(2027, 10, 8, 15, 0)


def test_override_directory_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"2028": {"holidays": ["2028-01-03"]}}))
    (tmp_path / "b.toml").write_text('[2029]\nworkdays = ["2029-01-06"]\n')
    (tmp_path / "README.txt").write_text("ignored")
    years = load_override(tmp_path)
    assert sorted(years) == [2028, 2029]
    assert not years[2028].is_workday(date(2028, 1, 3))
    assert years[2029].is_workday(date(2029, 1, 6))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[2027]\nholidays = ["2027-13-01"]\n', "bad date"),
        ('[2027]\nholidays = ["2028-01-01"]\n', "another year"),
        ('[2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-01"]\n', "both"),
        ('[2027]\nrest = ["2027-01-01"]\n', "unknown keys"),
        ("[next]\nholidays = []\n", "not a year"),
        ("[2027\n", "2027"),
    ],
)
def test_bad_override_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(CalendarError, match=message):
        WorkCalendar(path)


def test_unknown_year(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(CalendarError, match="2031"):
        WorkCalendar(strict=True).is_workday(date(2031, 5, 5))
    cal = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger="tickets.calendar"):
        assert cal.is_workday(date(2031, 5, 5))  # a Monday
        assert not cal.is_workday(date(2031, 5, 4))
    assert sum("2031" in r.getMessage() for r in caplog.records) == 1  # warned once


def test_shipped_override_files_parse() -> None:
    folder = Path(__file__).resolve().parents[2] / "config" / "calendar"
    if not folder.exists():
        pytest.skip("no config/calendar")
    load_override(folder)


def test_settings_validation() -> None:
    from pydantic import ValidationError

    from tickets.settings import DepartmentSettings, SmsSettings, TicketSettings

    with pytest.raises(ValidationError, match="two deadline rules"):
        TicketSettings(rules=[DeadlineRule(category="a"), DeadlineRule(category="a")])
    with pytest.raises(ValidationError):
        TicketSettings.model_validate({"timezone": "Mars/Olympus"})
    with pytest.raises(ValidationError):
        TicketSettings.model_validate({"unknown": 1})  # extra="forbid"
    with pytest.raises(ValidationError, match="area code"):
        DepartmentSettings(id="x", name="x", contact_phone="5123456")
    assert DepartmentSettings(id="x", name="x", contact_phone="0558 5123456").contact_phone == (
        "0558-5123456"
    )
    with pytest.raises(ValidationError, match="from_number or messaging_service_sid"):
        SmsSettings(enabled=True, account_sid="AC1", auth_token="t")
    assert TicketSettings().rule_for("anything").limit == "5wd"
