"""``simulate`` and ``staffing`` as the main CLI registers them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from routing.cli import add_commands

SMALL = """\
name = "small"
base = "bozhou-normal"
hourly_weights = [1, 3, 2]
calls_per_day = 600
"""


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
def small(tmp_path: Path) -> str:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    return str(path)


def test_staffing_json(small: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["staffing", "--profile", small, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["agents"]) == 3 and all(isinstance(n, int) for n in out["agents"])
    assert out["agents"][1] == max(out["agents"])
    assert out["answer_rate"] >= 0.985 and out["service_level_15s"] >= 0.8
    assert [h["hour"] for h in out["hours"]] == [0, 1, 2]


def test_simulate_json_with_the_staffing_file(
    small: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    assert run(["staffing", "--profile", small, "--output", str(plan)]) == 0
    capsys.readouterr()
    chart = tmp_path / "day.png"
    code = run(
        ["simulate", "--profile", small, "--staffing", str(plan), "--json", "--chart", str(chart)]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("offered", "answered", "abandoned", "answer_rate", "service_level_15s"):
        assert key in out
    assert {"asa_s", "occupancy", "avg_abandon_s", "hours"} <= set(out)
    assert len(out["hours"]) == 3
    assert out["offered"] == out["answered"] + out["abandoned"]
    assert [h["agents"] for h in out["hours"]] == json.loads(plan.read_text())["agents"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_auto_and_flat_staffing(small: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", "--profile", small, "--staffing", "auto"]) == 0
    table = capsys.readouterr().out
    assert " day " in table and "staffing: auto" in table
    assert run(["simulate", "--profile", small, "--staffing", "12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [h["agents"] for h in out["hours"]] == [12, 12, 12]


def test_errors_exit_with_2(small: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["staffing", "--profile", "atlantis"]) == 2
    assert "no profile" in capsys.readouterr().err
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"agents": [5]}), encoding="utf-8")
    assert run(["simulate", "--profile", small, "--staffing", str(short)]) == 2
    assert "intervals" in capsys.readouterr().err
