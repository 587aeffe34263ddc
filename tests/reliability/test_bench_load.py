"""Smoke run of bench/bench_load.py (20 s, 200 seats, 20 calls/s): the JSON has its shape
and no call was lost. The numbers themselves are for the bench, not for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_load_bench_smoke(any_db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    db = [] if any_db_url.startswith("sqlite") else ["--db", any_db_url]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/bench_load.py"), "--seconds", "20", "--seats", "200",
         "--out", str(out), *db],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == result
    assert set(result) >= {"config", "calls", "cti", "sim", "ami_event_lag_ms", "route_ms", "store"}
    for key in ("cpu_pct_mean", "cpu_pct_p95", "rss_mb_start", "rss_mb_end", "rss_mb_max",
                "rss_slope_mb_per_min", "memory_flat", "loop_lag_ms"):  # fmt: skip
        assert key in result["cti"], key
    for summary in (result["ami_event_lag_ms"], result["route_ms"], result["store"]["batch_ms"]):
        assert set(summary) == {"n", "p50", "p99", "max"} and summary["n"] > 0
    calls = result["calls"]
    assert calls["placed"] >= 350  # 20 calls/s for 20 s, on a loaded machine
    assert calls["lost"] == 0 and calls["lost_examples"] == []
    assert calls["recorded"] == calls["placed"]
    assert calls["outcomes"] == {"answered": calls["placed"]}
    assert calls["tickets_for_answered"] == calls["placed"]
    assert result["store"]["dead"] == 0
