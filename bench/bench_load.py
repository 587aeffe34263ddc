"""Load: the CTI under a steady stream of citizens, with thousands of seats, for minutes.

    python bench/bench_load.py [--seconds 600] [--seats 2000] [--rate 20] [--skills 40]
                               [--surge-rate 100 --surge-seconds 120]
                               [--db URL] [--wrapup 0] [--out FILE]

Two processes, so that each side's numbers are its own: this process is the CTI (the real
``Hotline`` composition root, console off, SQLite in a temporary directory unless ``--db``),
and a child process (this file with ``--role sim``) runs the Asterisk simulator with one
registered phone per seat and places the calls. The site is generated: ``--seats`` seats and
as many agents, spread over ``--skills`` skills (two skills each), one hotline number per
skill; every agent logs in ready before the first call. Talk times are uniform around
0.6 x seats / rate, so the floor runs at about 60 % occupancy and nobody waits long.

Measured, over the load window (the drain at the end is left out of CPU and memory):
- CTI CPU (this process, all threads: event loop, store writer) in % of one core, mean and
  p95 of 1 s samples, and the writer thread's share; the simulator's CPU alongside, to see
  which side is the limit;
- CTI RSS sampled every second: start, end, max, least-squares slope after the first fifth
  (warm-up), and ``memory_flat`` (growth over the steady part < max(5 MiB, 5 %));
- event-loop lag (how late a 100 ms timer fires), p99;
- AMI event lag: the simulator's wall time when it emitted a call's Newchannel against the
  CTI's wall time when it published CallStarted for it (same machine, same clock);
- route time: what Asterisk waits in ``AGI()``, from the simulator's AGI step to its next
  dialplan step (connect, the agi_* block, the route's commands), p50/p99/max; and the
  route script as the CTI timed it, from the agi_* block to its end (``route_cti_ms``), and
  to the answer written (``route_answer_ms``: the CTI's own part);
- ticket write time: the store's batch timings (every write the CTI makes, tickets included);
- calls: placed, answered, recorded in the database, tickets, and ``lost`` (placed calls with
  no call row, answered calls without exactly one ticket): must be 0;
- the console: a supervisor's browser, a third process (``--role console``), asks
  ``/api/calls/waiting`` four times a second; its response times, p50/p99/max, before and
  during the surge;
- the simulator's own event-loop lag (``sim.loop_lag_ms``): its route and AMI figures include
  its own delays, which Asterisk (a thread per channel) does not have.

With ``--surge-rate``, the steady ``--seconds`` are followed by ``--surge-seconds`` at that rate
(the 5x surge after a typhoon): calls beyond the floor's capacity wait for a seat, and the
drain waits for all of them. RSS after the drain against the plateau before the surge says
whether memory returns.

Prints one JSON object (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
FIRST_EXTENSION = 20000


# --- the generated site ---------------------------------------------------------------------


def site(seats: int, skills: int) -> dict[str, Any]:
    from cti.config import default_data

    names = [f"skill{k:02d}" for k in range(skills)]
    data = default_data()
    data["hotlines"] = [
        {"did": str(12300 + k), "name": f"热线{k:02d}", "topic": f"话题{k:02d}", "skill": name}
        for k, name in enumerate(names)
    ]
    data["routing"] = {"default_skill": names[0]}
    data["seats"] = [
        {
            "id": f"S{i:05d}",
            "extension": str(FIRST_EXTENSION + i),
            "room": f"{i // 100 + 1}号厅",
            "position": f"{i % 100 + 1:02d}",
        }
        for i in range(seats)
    ]
    data["agents"] = [
        {
            "id": f"a{i:05d}",
            "name": f"坐席{i:05d}",
            "skills": {names[i % skills]: 8, names[(i * 7 + 1) % skills]: 5},
        }
        for i in range(seats)
    ]
    data["windows"] = []
    return data


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 0.50) * 1000, 2),
        "p99": round(pct(values, 0.99) * 1000, 2),
        "max": round(max(values, default=0.0) * 1000, 2),
    }


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 3:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the simulator's process ------------------------------------------------------------------


async def sim_main(args: argparse.Namespace) -> None:
    from cti.testing.model import SimConfig
    from cti.testing.pbx import AsteriskSimulator

    class Measured(AsteriskSimulator):
        """Times what a channel spends in AGI(): from that step to its next one."""

        def __init__(self, config: SimConfig) -> None:
            super().__init__(config)
            self.in_agi: dict[str, float] = {}
            self.route_s: list[tuple[float, float]] = []  # (wall time, seconds in AGI)

        def newexten(self, channel: Any, app: str, data: str, priority: int | None = None) -> None:
            now = time.perf_counter()
            if app == "AGI":
                self.in_agi[channel.uniqueid] = now
            else:
                began = self.in_agi.pop(channel.uniqueid, None)
                if began is not None:
                    self.route_s.append((time.time(), now - began))
            super().newexten(channel, app, data, priority)

    out = sys.stdout

    def say(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    # A 5x surge has ten thousand calls up. Asterisk holds three MixMonitor files open for
    # each (its ``maxfiles`` in asterisk.conf must allow as much); the simulator opens a file
    # for each write (cti.testing.recording), and raises its limit for its sockets.
    raise_open_files()
    exts = [str(FIRST_EXTENSION + i) for i in range(args.seats)]
    sim = Measured(
        SimConfig(
            scale=1.0,
            endpoints={e: f"Seat {e}" for e in exts},
            emit_dialplan_events=False,  # the CTI's login leaves them out anyway
            queue_timeout_s=3600,
            rec_dir=args.tmp,
            # MixMonitor's files, as Asterisk writes them: the CTI registers (hashes) each.
            write_recordings=True,
        )
    )
    port = await sim.start()
    for i, ext in enumerate(exts):
        sim.register_phone(ext, ip=f"10.0.{i // 250}.{i % 250 + 1}", answer_delay=0.2)
    # Asterisk has no garbage collector: the simulator's floor (a phone per seat) is kept out
    # of Python's, so that its full collections do not show up as route time.
    gc.collect()
    gc.freeze()

    async def keep_out_of_the_collector() -> None:
        # It keeps every call it placed (the outcomes are counted at the end): a full
        # collection over ten thousand calls would stop its loop for a second. What a few
        # seconds have left alive is moved out of the collector's reach, as the floor was.
        while True:
            await asyncio.sleep(5.0)
            gc.freeze()

    freezer = asyncio.ensure_future(keep_out_of_the_collector())
    say({"ami_port": port})
    loop = asyncio.get_running_loop()
    go = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    sim.config.agi_port = int(go["agi_port"])
    while sim.heartbeat_stale():
        await asyncio.sleep(0.1)
    polls: list[tuple[float, float]] = []  # (time since start, response seconds)
    # The supervisor's browser is a process of its own, as a browser is: timed in this one, the
    # console's answers would wait for the simulator's loop too.
    poller = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        "console",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert poller.stdin is not None and poller.stdout is not None
    poller.stdin.write(json.dumps({"console": go["console"], "t0": time.time()}).encode() + b"\n")
    await poller.stdin.drain()

    async def hear_polls() -> None:
        assert poller.stdout is not None
        while line := await poller.stdout.readline():
            t, dt = json.loads(line)
            polls.append((t, dt))

    hearing = asyncio.create_task(hear_polls())
    sim_lag: list[float] = []  # how late a 100 ms timer fires in this process (its own loop)

    async def sim_lag_sampler() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            sim_lag.append(loop.time() - before - 0.1)

    lagging = asyncio.create_task(sim_lag_sampler())
    rng = random.Random(args.seed)
    talk = (args.talk_min, args.talk_max)
    dids = [str(12300 + k) for k in range(args.skills)]
    batch: dict[str, float] = {}  # placed since the last report: sent once a second
    handles = []
    started = time.time()
    say({"started": started})
    gap = 1.0 / args.rate
    n = 0
    next_at = loop.time()
    reported = loop.time()
    surging = False
    while time.time() - started < args.seconds + args.surge_seconds:
        if not surging and time.time() - started >= args.seconds and args.surge_seconds:
            surging, gap = True, 1.0 / args.surge_rate
            say({"surge_started": time.time()})
        if loop.time() - reported >= 1.0:
            say({"placed": batch})
            batch, reported = {}, loop.time()
        n += 1
        handle = sim.place_call(
            caller=str(15000000000 + n),
            name=rng.choice(["张三", "李四", "王五", "赵六", "市民"]),
            did=rng.choice(dids),
            talk_s=rng.uniform(*talk),
            patience_s=None,
        )
        batch[handle.uniqueid] = time.time()
        handles.append(handle)
        next_at += rng.expovariate(1.0 / gap) if args.poisson else gap
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    say({"placed": batch})
    say({"placing_done": time.time(), "placed": len(handles)})
    # A surge leaves callers waiting for seats: the floor clears them at seats / mean talk.
    backlog = max(0.0, args.surge_seconds * (args.surge_rate - args.rate))
    drain = args.talk_max + 60 + backlog * (args.talk_min + args.talk_max) / 2 / args.seats
    done, pending = await asyncio.wait([asyncio.ensure_future(h.done.wait()) for h in handles],
                                       timeout=drain)  # fmt: skip
    poller.terminate()
    await poller.wait()
    lagging.cancel()
    await asyncio.gather(hearing, lagging, return_exceptions=True)
    for fut in pending:
        fut.cancel()
    outcomes: dict[str, int] = {}
    for h in handles:
        key = h.outcome or "unfinished"
        outcomes[key] = outcomes.get(key, 0) + 1
    say(
        {
            "finished": time.time(),
            "outcomes": outcomes,
            "placed_ids": [h.uniqueid for h in handles],
            "answered": [h.uniqueid for h in handles if h.outcome == "answered"],
            "route_s": sim.route_s,
            "polls": polls,
            "loop_lag_s": sim_lag,
            **({"slow_callbacks": args.slow.report()} if args.slow is not None else {}),
        }
    )
    await loop.run_in_executor(None, sys.stdin.readline)  # until the CTI has looked
    freezer.cancel()
    await sim.stop()


def console_main() -> None:
    """``--role console``: the supervisor's browser (its console and start time on stdin), one
    line ``[time since start, seconds]`` per answer on stdout, until terminated."""
    asked = json.loads(sys.stdin.readline())

    def record(t: float, dt: float) -> None:
        sys.stdout.write(json.dumps([t, dt]) + "\n")
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(poll_console(asked["console"], record, asked["t0"]))


async def poll_console(
    console: dict[str, str], record: Callable[[float, float], None], t0: float
) -> None:
    """A supervisor's wallboard: logged in, then ``/api/calls/waiting`` every 250 ms."""
    import httpx

    async with httpx.AsyncClient(base_url=console["url"], timeout=10) as client:
        page = (await client.get("/login")).text
        marker = '"csrf":"'
        start = page.index(marker) + len(marker)
        csrf = page[start : page.index('"', start)]
        answer = await client.post(
            "/api/login",
            json={"username": console["user"], "password": console["password"]},
            headers={"X-CSRF-Token": csrf},
        )
        answer.raise_for_status()
        while True:
            began = time.perf_counter()
            response = await client.get("/api/calls/waiting")
            response.raise_for_status()
            record(time.time() - t0, time.perf_counter() - began)
            await asyncio.sleep(0.25)


class SlowCallbacks:
    """Times every callback of the event loop (``asyncio.Handle._run``) and keeps, per callback
    (a task's coroutine name, or the function's), how many ran longer than ``threshold_s``, and
    their total and longest time: what a FastAGI request waiting for the loop waited behind."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.seen: dict[str, list[float]] = {}
        self.count = 0
        run = asyncio.events.Handle._run
        clock = time.perf_counter

        def timed(handle: asyncio.Handle) -> None:
            began = clock()
            run(handle)
            took = clock() - began
            self.count += 1
            if took >= threshold_s:
                entry = self.seen.setdefault(self.name(handle), [0, 0.0, 0.0])
                entry[0] += 1
                entry[1] += took
                entry[2] = max(entry[2], took)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    @staticmethod
    def name(handle: asyncio.Handle) -> str:
        cb = getattr(handle, "_callback", None)
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, asyncio.Task):
            coro = owner.get_coro()
            frame = getattr(coro, "cr_frame", None)
            where = f" at line {frame.f_lineno}" if frame is not None else ""
            return f"task {getattr(coro, '__qualname__', coro)}{where}"
        return getattr(cb, "__qualname__", repr(cb))

    def report(self) -> dict[str, Any]:
        rows = sorted(self.seen.items(), key=lambda kv: -kv[1][1])
        return {
            "threshold_ms": self.threshold_s * 1000,
            "callbacks": self.count,
            "slow": [
                {
                    "what": k,
                    "n": int(v[0]),
                    "total_ms": round(v[1] * 1000, 1),
                    "max_ms": round(v[2] * 1000, 2),
                }
                for k, v in rows[:25]
            ],
        }


async def staff_the_floor(hotline: Any, seats: list[str], timeout: float = 300.0) -> dict[str, str]:
    """Once every seat's phone is usable (at most ``timeout``), every agent logged in ready
    at a seat, in order, and the floor settled (a QueueAdd per seat, a row per agent: the
    set-up, not the load); returns a supervisor's console login."""
    from console.users import Users

    deadline = time.monotonic() + timeout
    while not all(getattr(hotline.seats.get(e), "usable", False) for e in seats):
        if time.monotonic() > deadline:
            down = [e for e in seats if not getattr(hotline.seats.get(e), "usable", False)]
            raise RuntimeError(f"{len(down)} seats not usable, e.g. {down[:5]}")
        await asyncio.sleep(0.1)
    for agent, ext in zip(hotline.settings.agents, seats, strict=True):
        hotline.agents.login(agent.id, ext, ready=True)
    while getattr(hotline.acd.members, "converging", 0) or hotline.store.pending:
        await asyncio.sleep(0.1)
    password = os.urandom(12).hex()
    Users(hotline.sessions).create("bench", password, ["supervisor"])
    return {
        "url": f"http://127.0.0.1:{hotline.console_port}",
        "user": "bench",
        "password": password,
    }


def call_ledger(hotline: Any) -> tuple[dict[str, bool], dict[str, int]]:
    """What the database holds of the run: each call row (by Linkedid) with whether it was
    answered, and the number of tickets each call is on."""
    from sqlalchemy import func, select

    from cti.models import CallRow
    from tickets.models import TicketCall

    with hotline.sessions() as s:
        rows = {
            uid: at is not None
            for uid, at in s.execute(select(CallRow.linkedid, CallRow.answered_at))
        }
        per_call = s.execute(
            select(TicketCall.call_id, func.count()).group_by(TicketCall.call_id)
        ).all()
    return rows, {call_id: n for call_id, n in per_call}


def raise_open_files(want: int = 65536) -> None:
    """A 5x surge has ten thousand calls up: their sockets, and Asterisk's three MixMonitor
    files each, need this process's (and its children's) limit raised, as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):  # not allowed to raise the hard limit: as far as it goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the CTI's process --------------------------------------------------------------------------


async def cti_main(args: argparse.Namespace) -> dict[str, Any]:
    from cti.app import Hotline
    from cti.config import parse
    from cti.events import CallStarted

    tmp = args.tmp
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        "sim",
        *args.forward,
        "--tmp",
        tmp,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**28,
    )
    assert child.stdin is not None and child.stdout is not None

    async def hear() -> dict[str, Any]:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if not line:
            raise RuntimeError("the simulator's process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    hotline: Hotline | None = None
    try:
        hello = await asyncio.wait_for(hear(), 120)
        data = site(args.seats, args.skills)
        data["asterisk"][0].update(port=hello["ami_port"], backoff_max_s=1.0)
        data["database"] = {"url": args.db or f"sqlite:///{tmp}/hotline.db"}
        data["agi"] = {"port": 0, "max_sessions": 4000}
        data["recordings"] = {"dir": f"{tmp}/rec"}
        data["control"] = {"wrapup_s": args.wrapup}
        data["console"] = {
            "port": 0,
            "secret_key": os.urandom(24).hex(),
            "plain_http_loopback": True,
        }
        setup_started = time.monotonic()
        hotline = Hotline(parse(data))
        # AMI event lag, matched as the reports come: both dicts only hold calls in flight,
        # so the measurement does not grow this process's memory over the run.
        seen: dict[str, float] = {}
        placed: dict[str, float] = {}
        event_lag = array("d")

        def call_started(ev: CallStarted) -> None:
            t = placed.pop(ev.call_id, None)
            if t is None:
                seen[ev.call_id] = time.time()
            else:
                event_lag.append(time.time() - t)

        hotline.bus.subscribe(CallStarted, call_started)
        await hotline.start()
        if not await hotline.wait_connected(120):
            raise RuntimeError("the CTI did not connect to the simulator")
        seats = [s.extension for s in hotline.settings.seats]
        console = await staff_the_floor(hotline, seats)
        setup_s = time.monotonic() - setup_started
        go = {"agi_port": hotline.agi.port, "console": console}
        child.stdin.write(json.dumps(go).encode() + b"\n")
        await child.stdin.drain()
        started = (await asyncio.wait_for(hear(), 120))["started"]

        samples: list[dict[str, float]] = []
        lag = array("d")
        control: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def listen() -> None:
            while True:
                message = await hear()
                if "placed" in message and isinstance(message["placed"], dict):
                    for uid, t in message["placed"].items():
                        s_t = seen.pop(uid, None)
                        if s_t is None:
                            placed[uid] = t
                        else:
                            event_lag.append(s_t - t)
                else:
                    await control.put(message)

        async def sample() -> None:
            me, pid = os.getpid(), child.pid
            last = (time.monotonic(), cpu_s(me), cpu_s(pid))
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.1)
                lag.append(time.monotonic() - before - 0.1)
                now = time.monotonic()
                if now - last[0] < 1.0:
                    continue
                mine, theirs = cpu_s(me), cpu_s(pid)
                span = now - last[0]
                samples.append(
                    {
                        "t": time.time() - started,
                        "cpu": 100 * (mine - last[1]) / span,
                        "sim_cpu": 100 * (theirs - last[2]) / span,
                        "rss": rss_mb(),
                        "calls": len(hotline.tracker.active_calls()) if hotline else 0,
                        "pending": hotline.store.pending if hotline else 0,
                        # (an older tree's store does not count it)
                        "writer_cpu_s": getattr(hotline.store, "cpu_seconds", 0.0),
                    }
                )
                last = (now, mine, theirs)

        sampler = asyncio.create_task(sample())
        listener = asyncio.create_task(listen())
        placing = await control.get()
        surge_at = None
        if "surge_started" in placing:
            surge_at = placing["surge_started"] - started
            placing = await control.get()
        load_end = placing["placing_done"] - started
        final = await control.get()
        for task in (sampler, listener):
            task.cancel()
        await asyncio.gather(sampler, listener, return_exceptions=True)
        deadline = time.monotonic() + 60
        while hotline.tracker.active_calls() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await hotline.store.flush(120)
        child.stdin.write(b"done\n")
        await child.stdin.drain()

        placed_ids: list[str] = final["placed_ids"]
        answered = set(final["answered"])
        rows, ticket_calls = call_ledger(hotline)
        lost_rows = [u for u in placed_ids if u not in rows]
        bad_tickets = [u for u in answered if ticket_calls.get(u) != 1]
        steady_end = surge_at if surge_at is not None else load_end
        window = [x for x in samples if x["t"] <= steady_end]
        steady = [x for x in window if x["t"] >= steady_end / 5]
        rss_slope = slope_per_min([(x["t"], x["rss"]) for x in steady])
        growth = (steady[-1]["rss"] - steady[0]["rss"]) if len(steady) > 1 else 0.0
        base_rss = steady[0]["rss"] if steady else 0.0
        writes = list(hotline.store.write_seconds)
        store = hotline.store.stats()
        routes = [(t - started, dt) for t, dt in final["route_s"]]
        polls = final["polls"]

        def phase(pairs: list[list[float]] | list[tuple[float, float]], a: float, b: float):  # noqa: ANN202
            return summary_ms([dt for t, dt in pairs if a <= t < b])

        surge: dict[str, Any] = {}
        if surge_at is not None:
            during = [x for x in samples if surge_at <= x["t"] <= load_end]
            plateau = statistics.fmean(x["rss"] for x in window[-max(1, len(window) // 5) :])
            after = samples[-1]["rss"] if samples else 0.0
            surge = {
                "rate_per_s": args.surge_rate,
                "seconds": args.surge_seconds,
                "route_ms": phase(routes, surge_at, load_end),
                "console_waiting_ms": phase(polls, surge_at, load_end),
                "cpu_pct_mean": round(statistics.fmean(x["cpu"] for x in during), 1)
                if during
                else 0.0,
                "peak_active": max((x["calls"] for x in during), default=0),
                "rss_mb_plateau_before": round(plateau, 1),
                "rss_mb_max": round(max((x["rss"] for x in during), default=0.0), 1),
                "rss_mb_after_drain": round(after, 1),
                "memory_returns": after <= plateau + max(5.0, 0.05 * plateau),
            }
        return {
            "config": {
                "seconds": args.seconds,
                "seats": args.seats,
                "agents": args.seats,
                "skills": args.skills,
                "rate_per_s": args.rate,
                "talk_s": [args.talk_min, args.talk_max],
                "wrapup_s": args.wrapup,
                "database": "postgresql" if (args.db or "").startswith("postgres") else "sqlite",
                "cores": os.cpu_count(),
                "processes": "CTI (this process) + simulator (child process)",
            },
            "setup_s": round(setup_s, 2),
            "calls": {
                "placed": len(placed_ids),
                "outcomes": final["outcomes"],
                "recorded": len(rows),
                "tickets_for_answered": sum(1 for u in answered if ticket_calls.get(u) == 1),
                "lost": len(lost_rows) + len(bad_tickets),
                "lost_examples": (lost_rows + bad_tickets)[:5],
                "peak_active": max((x["calls"] for x in samples), default=0),
            },
            "cti": {
                "cpu_pct_mean": round(statistics.fmean(x["cpu"] for x in window), 1)
                if window
                else 0.0,
                "cpu_pct_p95": round(pct([x["cpu"] for x in window], 0.95), 1),
                # of which the store's writer thread
                "writer_cpu_pct_mean": round(
                    100
                    * (window[-1]["writer_cpu_s"] - window[0]["writer_cpu_s"])
                    / max(window[-1]["t"] - window[0]["t"], 1e-9),
                    1,
                )
                if len(window) > 1
                else 0.0,
                "rss_mb_start": round(window[0]["rss"], 1) if window else 0.0,
                "rss_mb_end": round(window[-1]["rss"], 1) if window else 0.0,
                "rss_mb_max": round(max((x["rss"] for x in window), default=0.0), 1),
                "rss_slope_mb_per_min": round(rss_slope, 3),
                "rss_growth_steady_mb": round(growth, 1),
                "memory_flat": growth < max(5.0, 0.05 * base_rss),
                "loop_lag_ms": summary_ms(list(lag)),
            },
            "sim": {
                "cpu_pct_mean": round(statistics.fmean(x["sim_cpu"] for x in window), 1)
                if window
                else 0.0,
                # the simulator's own loop: what its route and AMI figures include of its own
                "loop_lag_ms": summary_ms(final.get("loop_lag_s", [])),
                **(
                    {"slow_callbacks": final["slow_callbacks"]} if "slow_callbacks" in final else {}
                ),
            },
            "ami_event_lag_ms": summary_ms(list(event_lag)),
            "route_ms": phase(routes, 0.0, steady_end),
            # the route script as the CTI timed it (from the agi_* block read to its end), last
            # 4,096: what the CTI adds, without the simulator's own scheduling
            "route_cti_ms": summary_ms(list(hotline.agi.durations)),
            # of which the CTI's part: from the agi_* block to the answer written (the rest
            # is the simulator's reply to it, which its own loop delays)
            "route_answer_ms": summary_ms(list(getattr(hotline.agi, "answer_durations", []))),
            "console_waiting_ms": phase(polls, 0.0, steady_end),
            "surge": surge,
            "store": {
                "batch_ms": summary_ms(writes),
                "written": store["written"],
                "retries": store["retries"],
                "dead": store["dead"],
                "pending_max": max((x["pending"] for x in samples), default=0),
            },
            "rss_series_mb": [round(x["rss"], 1) for x in window[:: max(1, len(window) // 60)]],
        }
    finally:
        if hotline is not None:
            await hotline.stop()
        if child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 20)
            except TimeoutError:
                child.kill()
                await child.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["cti", "sim", "console"], default="cti")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--seats", type=int, default=2000)
    ap.add_argument("--skills", type=int, default=40)
    ap.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    ap.add_argument("--poisson", action="store_true", help="exponential gaps, not fixed ones")
    ap.add_argument("--surge-rate", type=float, default=100.0, help="calls per second in a surge")
    ap.add_argument("--surge-seconds", type=float, default=0.0, help="surge after the steady load")
    ap.add_argument("--talk", help="talk time range in seconds, MIN,MAX (default: ~60%% load)")
    ap.add_argument("--wrapup", type=int, default=0, help="agents' wrap-up seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", help="database URL (default: SQLite in a temporary directory)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument(
        "--slow-ms",
        type=float,
        default=0.0,
        help="report the event loop's callbacks that ran longer than this (where the tail is)",
    )
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--talk-min", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--talk-max", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.talk or args.talk_min is None:
        args.talk_min, args.talk_max = talk_range(args.talk, args.seats, args.rate)
    if args.role == "sim":
        args.slow = SlowCallbacks(args.slow_ms / 1000) if args.slow_ms else None
        asyncio.run(sim_main(args))
        return 0
    if args.role == "console":
        console_main()
        return 0
    args.forward = [
        f"--seconds={args.seconds}",
        f"--seats={args.seats}",
        f"--skills={args.skills}",
        f"--rate={args.rate}",
        f"--surge-rate={args.surge_rate}",
        f"--surge-seconds={args.surge_seconds}",
        f"--seed={args.seed}",
        f"--talk-min={args.talk_min}",
        f"--talk-max={args.talk_max}",
        *(["--poisson"] if args.poisson else []),
        *([f"--slow-ms={args.slow_ms}"] if args.slow_ms else []),
    ]
    slow = SlowCallbacks(args.slow_ms / 1000) if args.slow_ms else None
    with tempfile.TemporaryDirectory(prefix="hotline-load-") as tmp:
        args.tmp = tmp
        result = asyncio.run(cti_main(args))
    if slow is not None:
        result["slow_callbacks"] = slow.report()
    emit(result, args.out)
    return 0


def talk_range(talk: str | None, seats: int, rate: float) -> tuple[float, float]:
    """``MIN,MAX`` as given, else around 0.6 x seats / rate: the floor at ~60 % occupancy."""
    if talk:
        low, high = (float(x) for x in talk.split(","))
        return low, high
    mean = 0.6 * seats / rate
    return round(mean / 2, 1), round(mean * 1.5, 1)


def emit(result: dict[str, Any], out: str | None) -> None:
    """The bench's JSON on stdout, and into ``out`` when given."""
    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
