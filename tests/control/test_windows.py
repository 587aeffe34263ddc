"""Window opening hours on the official calendar: the 2026 National Day holiday (1-7 October)
and its 调休 working Saturday, 10 October 2026."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from cti.config import WindowSettings
from cti.errors import NotFound
from cti.windows import WindowDirectory
from tickets.calendar import WorkCalendar, YearOverride

SH = ZoneInfo("Asia/Shanghai")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


@pytest.fixture(scope="module")
def directory() -> WindowDirectory:
    return WindowDirectory(
        [
            WindowSettings(
                id="shebao",
                name="社保窗口",
                department="人社局",
                services=["社保缴费"],
                extension="9001",
            ),
            WindowSettings(
                id="tax", name="税务窗口", external_number="057112366", hours=["08:30-17:00"]
            ),
            WindowSettings(id="night", name="夜间值班", extension="9009", hours=[]),
        ],
        WorkCalendar(),
        "Asia/Shanghai",
    )


@pytest.mark.parametrize(
    ("moment", "is_open", "next_open"),
    [
        # an ordinary Wednesday: morning, lunch break, afternoon, evening
        (at(2026, 9, 30, 10, 0), True, None),
        (at(2026, 9, 30, 12, 0), False, at(2026, 9, 30, 13, 30)),  # spans are half-open
        (at(2026, 9, 30, 13, 30), True, None),
        (at(2026, 9, 30, 18, 0), False, at(2026, 10, 8, 9, 0)),  # then the holiday
        # National Day: closed, including the weekdays 1, 2, 5, 6, 7 October
        (at(2026, 10, 1, 10, 0), False, at(2026, 10, 8, 9, 0)),
        (at(2026, 10, 5, 10, 0), False, at(2026, 10, 8, 9, 0)),
        (at(2026, 10, 7, 23, 59), False, at(2026, 10, 8, 9, 0)),
        (at(2026, 10, 8, 9, 0), True, None),
        # Friday evening: the next opening is the working Saturday
        (at(2026, 10, 9, 17, 45), False, at(2026, 10, 10, 9, 0)),
        (at(2026, 10, 10, 10, 0), True, None),
        (at(2026, 10, 10, 17, 30), False, at(2026, 10, 12, 9, 0)),  # Sunday 11th is off
        (at(2026, 10, 11, 10, 0), False, at(2026, 10, 12, 9, 0)),
        # 20 September 2026 is a Sunday worked before the holiday
        (at(2026, 9, 20, 10, 0), True, None),
        (at(2026, 9, 19, 10, 0), False, at(2026, 9, 20, 9, 0)),
    ],
)
def test_hours_on_the_official_calendar(
    directory: WindowDirectory, moment: datetime, is_open: bool, next_open: datetime | None
) -> None:
    assert directory.is_open("shebao", moment) == (is_open, next_open)


def test_times_in_other_zones_are_taken_in_the_sites_zone(directory: WindowDirectory) -> None:
    utc = datetime.fromisoformat("2026-10-10T01:00:00+00:00")  # 09:00 in Shanghai
    assert directory.is_open("shebao", utc) == (True, None)
    with pytest.raises(ValueError):
        directory.is_open("shebao", datetime(2026, 10, 10, 10, 0))


def test_always_open_and_other_spans(directory: WindowDirectory) -> None:
    assert directory.is_open("night", at(2026, 10, 1, 3, 0)) == (True, None)
    assert directory.is_open("tax", at(2026, 10, 10, 8, 30)) == (True, None)
    assert directory.closes_at("tax", at(2026, 10, 10, 8, 30)) == at(2026, 10, 10, 17, 0)
    assert directory.closes_at("tax", at(2026, 10, 11, 8, 30)) is None


def test_lookups(directory: WindowDirectory) -> None:
    assert directory.get("shebao").department == "人社局"
    assert directory.by_extension("9001") is directory.get("shebao")
    assert directory.by_extension("057112366") is directory.get("tax")
    assert directory.get("tax").number == "057112366"
    assert directory.find("nope") is None
    with pytest.raises(NotFound) as err:
        directory.get("nope")
    assert err.value.error_id == "no-such-window"
    items = directory.to_dict(at(2026, 10, 1, 10, 0))
    assert [w["id"] for w in items] == ["shebao", "tax", "night"]
    assert items[0]["hours"] == ["09:00-12:00", "13:30-17:30"]
    assert items[0]["next_open"] == "2026-10-08T09:00:00+08:00"
    assert "open" not in directory.to_dict()[0]


def test_a_year_from_the_override_file() -> None:
    calendar = WorkCalendar(
        {2031: YearOverride(2031, holidays=frozenset({date(2031, 1, 1)}))}, strict=True
    )
    directory = WindowDirectory(
        [WindowSettings(id="w", name="窗口", extension="9001")], calendar, "Asia/Shanghai"
    )
    assert directory.is_open("w", at(2031, 1, 1, 10, 0)) == (False, at(2031, 1, 2, 9, 0))


def test_duplicate_ids_are_refused() -> None:
    w = WindowSettings(id="w", name="窗口", extension="9001")
    with pytest.raises(ValueError):
        WindowDirectory([w, w], WorkCalendar(), "Asia/Shanghai")
