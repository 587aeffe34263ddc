"""/healthz and /metrics of a running CTI, end to end: per-dependency status that follows
an Asterisk outage, and a Prometheus exposition that parses and tells the same story."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from tests.cti.live import close_floor
from tests.reliability.helpers import open_site, site_data, until

SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>[-+0-9.eEinfNa]+)$"
)
LABEL = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"$')


def parse_exposition(text: str) -> dict[str, float]:
    """``name{labels}`` -> value; every sample belongs to a family with HELP and TYPE."""
    typed: set[str] = set()
    helped: set[str] = set()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            typed.add(name)
        elif line:
            m = SAMPLE.match(line)
            assert m is not None, line
            labels = m["labels"] or ""
            for pair in filter(None, re.split(r",(?=[a-zA-Z_]+=)", labels)):
                assert LABEL.match(pair), line
            assert m["name"] in typed and m["name"] in helped, line
            samples[f"{m['name']}{{{labels}}}" if labels else m["name"]] = float(m["value"])
    return samples


async def test_healthz_and_metrics_follow_an_asterisk_outage(
    any_db_url: str, tmp_path: Path
) -> None:
    data = site_data(2, skills=1)
    data["asterisk"][0].update(backoff_max_s=1.0)
    floor = await open_site(
        data,
        any_db_url,
        tmp_path,
        sim_config={"scale": 0.1, "restart_delay_s": 1.0},
        console=True,
    )
    sim, hotline = floor.sim, floor.hotline
    base = f"http://127.0.0.1:{hotline.console_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            handle = sim.place_call(caller="13800000001", did="12300", talk_s=3)
            assert await handle.wait(5) == "answered"
            r = await client.get("/healthz")
            health = r.json()
            assert r.status_code == 200 and health["status"] == "ok", health
            assert health["asterisk"]["pbx1"] == {"state": "connected", "connected": True}
            assert health["database"]["ok"] and health["database"]["writer_healthy"]
            assert health["scheduler"]["running"] and health["agi"]["listening"]
            metrics = await client.get("/metrics")
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            samples = parse_exposition(metrics.text)
            assert samples['hotline_ami_up{node="pbx1"}'] == 1
            assert samples["hotline_store_healthy"] == 1
            assert samples['hotline_ami_events_received_total{node="pbx1"}'] > 0
            assert samples['hotline_agents{state="ready"}'] == 2
            assert samples['hotline_acd_total{kind="routed"}'] >= 1

            restart = hotline.nodes["pbx1"]
            task = asyncio.create_task(sim.restart())
            await until(lambda: not restart.connected, 5)
            r = await client.get("/healthz")
            assert r.status_code == 503 and r.json()["asterisk"]["pbx1"]["connected"] is False
            samples = parse_exposition((await client.get("/metrics")).text)
            assert samples['hotline_ami_up{node="pbx1"}'] == 0
            await task
            await until(lambda: restart.connected and "pbx1" in hotline.resync_seconds, 10)
            r = await client.get("/healthz")
            assert r.status_code == 200, r.json()
            samples = parse_exposition((await client.get("/metrics")).text)
            assert samples['hotline_ami_up{node="pbx1"}'] == 1
            assert samples['hotline_ami_resync_seconds{node="pbx1"}'] >= 0
    finally:
        await close_floor(floor)
