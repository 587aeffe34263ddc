"""One place for the data: the demo writes the database every other command reads when run
from the same directory, and it never touches a site's."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli.conftest import Run, hotline, site_config


def _demo(cwd: Path, calls: int) -> Run:
    return hotline(
        "demo", "--calls", str(calls), "--no-browser", "--port", "0", cwd=cwd, timeout=300
    )


def _tickets(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        count: int = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
    return count


@pytest.mark.slow
def test_report_after_the_demo_reports_the_demos_calls(tmp_path: Path) -> None:
    demo = _demo(tmp_path, 3)
    assert demo.code == 0, demo.err
    summary = json.loads(demo.out.splitlines()[-1])
    assert summary["offered"] == 3

    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    report = hotline("report", "--period", month, "--json", cwd=tmp_path)
    assert report.code == 0, report.err
    everyone = json.loads(report.out)[0]
    assert everyone["department_id"] == "all"
    assert everyone["counts"]["connection_rate"]["denominator"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["var"]  # no CSV files here

    # A second run adds to the same database: nothing is wiped.
    again = _demo(tmp_path, 2)
    assert again.code == 0, again.err
    assert _tickets(tmp_path / "var" / "hotline.db") == 5


def test_the_demo_leaves_a_sites_database_alone(tmp_path: Path) -> None:
    """A database with a user the demo did not make is a site's: the demo refuses it before
    it starts anything, and adds no login with a published password."""
    site = site_config(tmp_path / "site.toml", "sqlite:///var/hotline.db")
    made = hotline(
        "users", "add", "chief", "--role", "supervisor", "--password-stdin", "--config", str(site),
        cwd=tmp_path, stdin="a-real-password-123\n",
    )  # fmt: skip
    assert made.code == 0, made.err
    db = tmp_path / "var" / "hotline.db"
    before = db.read_bytes()

    demo = hotline("demo", "--calls", "1", "--no-browser", "--port", "0", cwd=tmp_path)
    assert demo.code == 2
    assert "Traceback" not in demo.text
    assert demo.err.startswith(
        "hotline demo: database.url: sqlite:///./var/hotline.db holds users the demo did not"
        " make (chief): it is a site's database, which the demo leaves alone"
    ), demo.err
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT username FROM users").fetchall() == [("chief",)]


@pytest.mark.slow
def test_a_site_does_not_start_on_the_demos_logins(tmp_path: Path) -> None:
    """The demo's admin and supervisor have passwords the README publishes: a site whose
    configuration points at the demo's database is refused, by name."""
    demo = _demo(tmp_path, 1)
    assert demo.code == 0, demo.err
    site = site_config(tmp_path / "site.toml", "sqlite:///var/hotline.db")
    check = hotline("config", "check", "--config", str(site), cwd=tmp_path)
    assert check.code == 2 and "Traceback" not in check.text
    assert (
        "  database.url: sqlite:///var/hotline.db holds the demo's logins with their published"
        " passwords (admin / demo-admin, supervisor / demo-supervisor): give the site a"
        " database of its own, or change their passwords (hotline users passwd NAME)."
    ) in check.err.splitlines(), check.err
