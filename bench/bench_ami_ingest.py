"""AMI ingest: the CTI's parse + full state updates against panoramisk's bare
parse-and-dispatch to a no-op callback, both replaying the recorded ``peak_load`` session
(30 calls, ~97 events per call) in a loop, in the same run.

    python bench/bench_ami_ingest.py [--loops 40] [--chunk 4096]

Both sides get the same bytes in the same TCP-sized chunks through their protocol's
``data_received``. Ours goes through ``HotlineAMIProtocol`` -> ``AmiParser`` ->
``CallTracker`` (calls, seats, agents, bus) -> ``Persistence`` (writes queued to the store,
whose thread writes them to SQLite meanwhile). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cti.testing import fixture_path, load_transcript  # noqa: E402


def stream_bytes() -> tuple[bytes, int]:
    t = load_transcript(fixture_path("peak_load.ami.jsonl"))
    parts = [e.data for e in t.entries if e.dir == "in" and e.data]
    events = sum(1 for p in parts if p.startswith("Event:"))
    return "".join(parts).encode("utf-8"), events


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_panoramisk(pieces: list[bytes], loops: int) -> float:
    from panoramisk.ami_protocol import AMIProtocol
    from panoramisk.manager import Manager

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    manager = Manager(loop=loop)
    seen = [0]

    def noop(_manager, _event) -> None:  # noqa: ANN001
        seen[0] += 1

    # Only the no-op: panoramisk's own FullyBooted hook would schedule tasks we never run.
    manager.callbacks.clear()
    manager.patterns.clear()
    manager.register_event("*", noop)
    proto = AMIProtocol()
    proto.connection_made(transport=None)
    proto.factory = manager
    proto.encoding = "utf8"
    t0 = time.perf_counter()
    for _ in range(loops):
        for piece in pieces:
            proto.data_received(piece)
    elapsed = time.perf_counter() - t0
    loop.close()
    return elapsed


def bench_hotline(pieces: list[bytes], loops: int, db_dir: str) -> tuple[float, dict]:
    from cti.ami.client import HotlineAMIProtocol
    from cti.app import Hotline
    from cti.config import default_data, parse
    from cti.db import create_schema

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    data = default_data()
    data["database"] = {"url": f"sqlite:///{db_dir}/bench.db"}
    hotline = Hotline(parse(data), console=False)
    create_schema(hotline.engine)
    hotline._sync_reference_data()
    hotline.store.start()

    class Factory:
        name = "pbx1"

        def on_raw_event(self, msg: dict) -> None:
            hotline.tracker.handle("pbx1", msg)

    proto = HotlineAMIProtocol()
    proto.connection_made(transport=None)
    proto.factory = Factory()

    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            for piece in pieces:
                proto.data_received(piece)
        return time.perf_counter() - t0

    elapsed = loop.run_until_complete(run())
    t1 = time.perf_counter()
    hotline.store.flush_sync(300)
    drain = time.perf_counter() - t1
    stats = {
        "calls_seen": loops * 30,
        "store": hotline.store.stats(),
        "store_drain_after_s": round(drain, 3),
        "dropped_early": proto.parser.dropped,
    }
    hotline.store.stop()
    hotline.engine.dispose()
    loop.close()
    return elapsed, stats


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", type=int, default=40)
    ap.add_argument("--chunk", type=int, default=4096)
    args = ap.parse_args()
    data, events = stream_bytes()
    pieces = chunks(data, args.chunk)
    total = events * args.loops
    bench_panoramisk(pieces, 2)  # warm up
    pano = bench_panoramisk(pieces, args.loops)
    with tempfile.TemporaryDirectory() as tmp:
        ours, stats = bench_hotline(pieces, args.loops, tmp)
    result = {
        "bench": "ami_ingest",
        "transcript": "peak_load",
        "events_per_loop": events,
        "events_per_call": round(events / 30, 1),
        "loops": args.loops,
        "chunk_bytes": args.chunk,
        "cores": os.cpu_count(),
        "panoramisk_bare_events_per_s": round(total / pano),
        "hotline_full_state_events_per_s": round(total / ours),
        "ratio_hotline_over_panoramisk": round(pano / ours, 2),
        **stats,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
