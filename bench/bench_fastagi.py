"""FastAGI ``route`` round trip at a fixed rate of new calls, and the same decision made by
the classic AGI script (a process per call), in the same run.

    python bench/bench_fastagi.py [--rate 100] [--seconds 20] [--classic 30]

The CTI (``cti.app.Hotline``: router, tracker, ticket numbers, store) runs in this process,
connected to the built-in simulator over AMI, with agents logged in. A separate process plays
Asterisk's side of FastAGI: at ``rate`` new sessions per second it connects, sends the
``agi_*`` block, answers every command like Asterisk (``200 result=1``) and measures from
connect to close. The classic side runs ``python -m agi_scripts.route`` per call with the
same block on stdin, as Asterisk's ``AGI(script)`` does, against the same database.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def env_block(n: int, port: int) -> bytes:
    """The block Asterisk sends from the [cti-route] Local channel: its own ids, the
    citizen's uniqueid and channel as the 2nd and 3rd arguments (ids of now: the CTI leaves
    questions older than the dialplan's wait unanswered)."""
    now = int(time.time())
    return (
        "agi_network: yes\nagi_network_script: route\n"
        f"agi_request: agi://127.0.0.1:{port}/route\n"
        f"agi_channel: Local/12345@cti-route-{n:08x};2\n"
        f"agi_language: en\nagi_type: Local\nagi_uniqueid: {now}.{2 * n + 1}\n"
        "agi_version: 22.0.0\n"
        f"agi_callerid: 139{n:08d}\nagi_calleridname: 市民\nagi_callingpres: 0\n"
        "agi_dnid: unknown\nagi_rdnis: unknown\nagi_context: cti-route\n"
        "agi_extension: 12345\nagi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \n"
        f"agi_threadid: {140000000000000 + n}\nagi_arg_1: 12345\n"
        f"agi_arg_2: {now}.{2 * n}\nagi_arg_3: PJSIP/trunk-{n:08x}\n\n"
    ).encode()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else 0.0


# --- the Asterisk side of FastAGI, in its own process ------------------------------------


async def one_session(port: int, n: int) -> tuple[float, int]:
    """One session as Asterisk runs it: each command answered as it is read (the server
    sends the next only after the answer, so each command is one round trip)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env_block(n, port))
    await writer.drain()
    commands = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        commands += 1
        writer.write(b"200 result=1\n")
    writer.close()
    return time.perf_counter() - t0, commands


async def drive(port: int, rate: float, seconds: float) -> dict:
    lat: list[float] = []
    tasks = []
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one_session(port, n))
        task.add_done_callback(lambda t: lat.append(t.result()[0]))
        tasks.append(task)
        n += 1
    results = await asyncio.gather(*tasks)
    return {
        "sessions": n,
        "latencies": lat,
        "commands_per_session": sorted({c for _, c in results}),
        "achieved_rate": n / (time.perf_counter() - start),
    }


def client_main(port: int, rate: float, seconds: float) -> None:
    result = asyncio.run(drive(port, rate, seconds))
    print(json.dumps(result))


# --- classic AGI: a process per call ------------------------------------------------------


def classic_call(n: int, config: str) -> float:
    env = dict(os.environ, HOTLINE_CONFIG=config, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agi_scripts.route"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(env_block(100000 + n, 0))
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        proc.stdin.write(b"200 result=1\n")
        proc.stdin.flush()
    proc.wait()
    return time.perf_counter() - t0


# --- the CTI ------------------------------------------------------------------------------


async def cti_side(args: argparse.Namespace, tmp: str) -> dict:
    from cti.app import Hotline
    from cti.config import default_data, parse
    from cti.testing.model import SimConfig
    from cti.testing.pbx import AsteriskSimulator

    sim = AsteriskSimulator(SimConfig(scale=1.0))
    ami = await sim.start()
    data = default_data()
    data["asterisk"][0]["port"] = ami
    db = f"sqlite:///{tmp}/bench.db"
    data["database"] = {"url": db}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": f"{tmp}/rec"}
    hotline = Hotline(parse(data), console=False)
    await hotline.start()
    for i, seat in enumerate(("8001", "8002", "8003")):
        sim.register_phone(seat, ip=f"127.0.0.{3 + i}")
    await hotline.wait_connected(5)
    await asyncio.sleep(0.5)
    for agent, seat in (("li", "8001"), ("wang", "8002"), ("zhao", "8003")):
        hotline.agents.login(agent, seat, ready=True)
    await hotline.store.flush(10)
    config = Path(tmp) / "hotline.toml"
    config.write_text(
        f'[database]\nurl = "{db}"\n[recordings]\ndir = "{tmp}/rec"\n'
        + "\n".join(line for line in _default_toml().splitlines()),
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        str(hotline.agi.port),
        str(args.rate),
        str(args.seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    fast = json.loads(out.decode())
    classic = []
    for n in range(args.classic):
        classic.append(await asyncio.to_thread(classic_call, n, str(config)))
    stats = dict(hotline.agi.stats)
    server = list(hotline.agi.durations)
    await hotline.stop()
    await sim.stop()
    return {"fast": fast, "classic": classic, "agi_stats": stats, "server": server}


def _default_toml() -> str:
    from cti.config import DEFAULT_TOML

    return DEFAULT_TOML


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--classic", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = asyncio.run(cti_side(args, tmp))
    fast = [x * 1000 for x in res["fast"]["latencies"]]
    classic = [x * 1000 for x in res["classic"]]
    out = {
        "bench": "fastagi_route",
        "cores": os.cpu_count(),
        "rate_target_per_s": args.rate,
        "rate_achieved_per_s": round(res["fast"]["achieved_rate"], 1),
        "fastagi_sessions": res["fast"]["sessions"],
        "fastagi_commands_per_session": res["fast"]["commands_per_session"],
        "fastagi_p50_ms": round(pct(fast, 0.50), 3),
        "fastagi_p99_ms": round(pct(fast, 0.99), 3),
        "fastagi_max_ms": round(max(fast), 3),
        # inside the CTI: from the agi_* block read to the answer acknowledged
        "server_p50_ms": round(pct([x * 1000 for x in res["server"]], 0.50), 3),
        "server_p99_ms": round(pct([x * 1000 for x in res["server"]], 0.99), 3),
        "classic_calls": len(classic),
        "classic_p50_ms": round(pct(classic, 0.50), 1),
        "classic_p99_ms": round(pct(classic, 0.99), 1),
        "classic_mean_ms": round(statistics.mean(classic), 1) if classic else None,
        "speedup_p50": round(pct(classic, 0.5) / pct(fast, 0.5), 1) if classic else None,
        "agi_server": res["agi_stats"],
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
