"""Ticket slice timings on a throwaway SQLite database; prints one JSON object.

    python bench/bench_tickets.py [--tickets 500]

- ``number_us``: TicketNumbers.next() (on the FastAGI route's hot path), p50/p99 in µs
- ``open_ms``: open_for_call, p50/p99 in ms
- ``transition_ms``: dispatch / sign_off / reply, p50/p99 in ms
- ``caller_summary_ms``: what routing asks per call, p50/p99 in ms
- ``report_s``: the monthly KPI report over all tickets
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from console.security import User
from cti.bus import Bus
from cti.db import Base, make_engine, session_factory
from tickets.numbers import TicketNumbers
from tickets.reports import build_report, parse_period
from tickets.service import TicketService
from tickets.settings import DepartmentSettings, TicketSettings


def pct(samples: list[float], scale: float) -> dict[str, float]:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return {"p50": round(statistics.median(samples) * scale, 3), "p99": round(p99 * scale, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=500)
    n = parser.parse_args().tickets
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        Base.metadata.create_all(engine)
        sessions = session_factory(engine)
        depts = [DepartmentSettings(id="zjj", name="住建局")]
        service = TicketService(sessions, Bus(), TicketSettings(), depts)
        numbers = TicketNumbers(sessions)
        agent = User(1, "a1", "a1", frozenset({"agent"}))
        unit = User(2, "d1", "d1", frozenset({"department"}), department_id="zjj")
        number_t, open_t, trans_t, summary_t = [], [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            tid = numbers.next()
            number_t.append(time.perf_counter() - t0)
            caller = f"138{i % 97:08d}"
            t0 = time.perf_counter()
            service.caller_summary(caller)
            summary_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            service.open_for_call(tid, call_id=f"c{i}", caller=caller, topic="咨询")
            open_t.append(time.perf_counter() - t0)
            for action, who, data in (
                ("dispatch", agent, {"department": "zjj"}),
                ("sign_off", unit, {}),
                ("reply", unit, {"text": "已办"}),
            ):
                t0 = time.perf_counter()
                service.transition(tid, action, who, **data)
                trans_t.append(time.perf_counter() - t0)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        with engine.connect() as conn:
            build_report(conn, parse_period(f"{now:%Y-%m}"), TicketSettings(), with_hotspots=False)
        report_s = time.perf_counter() - t0
        engine.dispose()
    print(
        json.dumps(
            {
                "tickets": n,
                "number_us": pct(number_t, 1e6),
                "open_ms": pct(open_t, 1e3),
                "transition_ms": pct(trans_t, 1e3),
                "caller_summary_ms": pct(summary_t, 1e3),
                "report_s": round(report_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
