"""``[logging]``: text for a person at a terminal, or one JSON object a line for a collector,
on stderr and in the log file alike."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti import logsetup
from cti.config import LoggingSettings
from tests.cli.conftest import hotline, site_config

JSON_LOGGING = '\n[logging]\nformat = "json"\nfile = "logs/hotline.jsonl"\nlevel = "info"\n'


def _json_site(path: Path) -> Path:
    site = site_config(path, "sqlite:///var/hotline.db")
    site.write_text(site.read_text(encoding="utf-8") + JSON_LOGGING, encoding="utf-8")
    return site


def test_json_lines_on_stderr_and_in_the_file(tmp_path: Path) -> None:
    site = _json_site(tmp_path / "hotline.toml")
    site.chmod(0o644)  # readable by everyone: `seats list` warns
    run = hotline("seats", "list", "--config", str(site), cwd=tmp_path)
    assert run.code == 0, run.err
    [line] = run.err.splitlines()
    record = json.loads(line)
    assert record["level"] == "warning" and record["logger"] == "cti.config"
    assert "chmod 600" in record["message"]
    assert record["time"].endswith("+00:00") and isinstance(record["process"], int)
    logged = (tmp_path / "logs" / "hotline.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(logged[0])["message"] == record["message"]


def test_an_unexpected_error_is_a_json_record_with_its_traceback(tmp_path: Path) -> None:
    site = _json_site(tmp_path / "hotline.toml")
    odd = tmp_path / "odd.db"
    with sqlite3.connect(odd) as conn:
        conn.execute("CREATE TABLE tickets (x)")
    run = hotline(
        "report", "--period", "2026-12", "--config", str(site), "--db", f"sqlite:///{odd}",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.code == 1
    assert run.err.strip().endswith(
        "the details are in logs/hotline.jsonl: please report them with the command you ran."
    )
    lines = (tmp_path / "logs" / "hotline.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    [crash] = [r for r in records if r["message"] == "hotline report: unexpected error"]
    assert crash["level"] == "error" and crash["exc_type"] == "OperationalError"
    assert crash["traceback"].startswith("Traceback (most recent call last)")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    logsetup.remove()


def test_fields_passed_with_extra_are_fields_of_the_object(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    logsetup.configure(LoggingSettings(format="json", file=str(path), level="debug"))
    logging.getLogger("cti.ami.client").info(
        "AMI node %s: connected", "pbx1", extra={"node": "pbx1", "peer": "127.0.0.1:5038"}
    )
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["message"] == "AMI node pbx1: connected"
    assert record["node"] == "pbx1" and record["peer"] == "127.0.0.1:5038"
    assert capsys.readouterr().err == ""  # INFO stays off the terminal


def test_text_on_the_terminal_shows_an_exception_without_its_traceback(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.log"
    logsetup.configure(LoggingSettings(file=str(path)))
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError:
        logging.getLogger("cti.ami.client").warning("AMI node pbx1: lost", exc_info=True)
    err = capsys.readouterr().err
    assert "AMI node pbx1: lost" in err and "ConnectionRefusedError" in err
    assert "Traceback" not in err
    assert "Traceback (most recent call last)" in path.read_text(encoding="utf-8")


def test_a_log_file_that_cannot_be_written_loses_no_crash(
    tmp_path: Path, restore_logging: None
) -> None:
    (tmp_path / "plain").write_text("a file, not a directory\n", encoding="utf-8")
    logsetup.configure(LoggingSettings(file=str(tmp_path / "plain" / "h.log")))
    logging.getLogger("hotline").error("nowhere to go")  # dropped without a logging error
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        kept = logsetup.record_crash("report", exc)
    try:
        assert kept.parent != tmp_path / "plain"
        assert "RuntimeError: boom" in kept.read_text(encoding="utf-8")
    finally:
        kept.unlink()
