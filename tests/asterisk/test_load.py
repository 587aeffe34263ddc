"""Load on the real PBX: the peak, callers leaving while the ACD moves them, and the time the
FastAGI route costs each call by Asterisk's own clock."""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time

from tests.asterisk.carrier import Caller
from tests.asterisk.observer import Message, agi_command_gaps, agi_route_times, percentile
from tests.asterisk.rig import Rig, until
from tests.asterisk.site import SEATS


def nothing_stuck(rig: Rig) -> None:
    """No channel left on Asterisk, no call left in the CTI, nobody in its waiting line."""
    assert rig.pbx is not None
    until(lambda: rig.pbx.channels() == 0, 20, what="no channel left on Asterisk")  # type: ignore[union-attr]
    until(lambda: rig.health().get("calls") == 0, 20, what="no active call in the CTI")
    metrics = rig.metrics()
    assert metrics.get("hotline_calls_waiting", 0) == 0, metrics


def moves_failed(rig: Rig) -> float:
    return rig.metrics().get('hotline_acd_total{kind="move_failed"}', 0.0)


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
    }


def test_peak_30_calls_at_3_per_s_on_3_seats(rig: Rig, results: dict) -> None:  # type: ignore[type-arg]
    rig.ready()
    assert rig.carrier is not None and rig.observer is not None
    tickets_before = rig.ledger()["tickets"]
    failed_before = moves_failed(rig)
    mark = rig.observer.mark()
    started = time.monotonic()
    run = rig.carrier.call(30, rate=3.0, patience_s=300.0, talk_s=(3.0, 5.0))
    book = rig.settle(run.callers, 150)
    elapsed = time.monotonic() - started
    nothing_stuck(rig)
    answered = [c for c in run.callers if c.answered]
    rows = [book["rows"][c.uniqueid] for c in run.callers]
    waits = sorted(c.answered_ts - c.invite_ts for c in answered)
    results["peak"] = {
        "callers": len(run.callers),
        "answered_by_a_seat": len(answered),
        "rows_answered": sum(r.answered for r in rows),
        "tickets": book["tickets"] - tickets_before,
        "routed_by": {k: sum(r.routed_by == k for r in rows) for k in {r.routed_by for r in rows}},
        "seats": {s: sum(c.seat == s for c in answered) for s in SEATS},
        "wait_median_s": round(statistics.median(waits), 2) if waits else None,
        "wait_max_s": round(waits[-1], 2) if waits else None,
        "failed_redirects": moves_failed(rig) - failed_before,
        "seconds": round(elapsed, 1),
        "route": stats(list(agi_route_times(rig.observer.since(mark))["route"].values())),
        "loadavg": os.getloadavg(),
    }
    assert len(answered) == 30, results["peak"]
    assert all(r.answered and not r.abandoned for r in rows), results["peak"]
    assert all(len(book["ticket_calls"].get(c.uniqueid, [])) == 1 for c in run.callers)
    assert book["tickets"] - tickets_before == 30


def test_callers_hanging_up_while_being_moved(rig: Rig, results: dict) -> None:  # type: ignore[type-arg]
    """One seat and a line of held callers. Every other time the seat's call ends (when the
    ACD moves the head of the line with a Redirect), the head of the line hangs up, timed to
    land just before the Redirect: the delay is learnt from the moves seen so far (seat's
    Hangup -> [cti-deliver]) and from how long a caller takes to go (NOTIFY -> BYE -> Hangup).
    The ACD must not hammer Asterisk with Redirects of a channel that is going: at most 2
    failed Redirects per call (counted from the CTI's log and its /metrics)."""
    rig.ready(agents=["a1"])
    obs, carrier, cti = rig.observer, rig.carrier, rig.cti
    assert obs is not None and carrier is not None and cti is not None
    log_from = len(cti.log_text())
    failed_before = moves_failed(rig)
    held: dict[str, float] = {}  # uniqueid -> when it entered [cti-hold]
    freed: list[float] = []  # Asterisk's clock: the seat's Hangup, one per cycle
    reactions: list[float] = []  # seat free -> the next caller in [cti-deliver]
    latencies: list[float] = []  # the leave's delay -> the caller's Hangup
    aimed: dict[str, tuple[float, float]] = {}  # uniqueid -> (seat free ts, delay)
    jitter = itertools.cycle([-0.004, -0.002, 0.0, 0.001, 0.002, -0.001, 0.004])
    leavers: list[Caller] = []
    lock = threading.Lock()

    def caller_of(uniqueid: str) -> Caller | None:
        return next((c for c in list(carrier.by_channel.values()) if c.uniqueid == uniqueid), None)

    def watch(e: Message) -> None:
        uid = e.get("Uniqueid")
        with lock:
            if e.name == "Newexten" and e.get("Context") == "cti-hold" and e.get("Priority") == "1":
                held.setdefault(uid, e.ts)
            elif e.name == "Newexten" and e.get("Context") == "cti-deliver":
                held.pop(uid, None)
                if freed and e.get("Priority") == "1":
                    reactions.append(e.ts - freed[-1])
            elif e.name == "Hangup":
                held.pop(uid, None)
                if uid in aimed:
                    free_ts, delay = aimed.pop(uid)
                    latencies.append(e.ts - free_ts - delay)
            if e.name != "Hangup" or not e.get("Channel").startswith("PJSIP/8001-"):
                return
            freed.append(e.ts)
            if len(freed) % 2 or not reactions or len(leavers) >= 8:
                return  # this cycle the ACD's move is only measured
            line = [caller_of(u) for u in sorted(held, key=held.__getitem__)]
            head = next((c for c in line if c is not None and not c.left), None)
            if head is None:
                return
            react = statistics.median(reactions)
            lat = statistics.median(latencies) if latencies else 0.005
            delay = max(0.0, react - lat - 0.001 + next(jitter))
            aimed[head.uniqueid] = (e.ts, delay)
            leavers.append(head)
        timer = threading.Timer(delay, carrier.leave, (head,))
        timer.daemon = True
        timer.start()

    boss = rig.desks["boss"]
    if not boss.csrf:
        boss.login()
    line_seen: list[tuple[float, list[str], object]] = []
    stop = threading.Event()

    def poll_line() -> None:  # the CTI's own waiting line, for the report if a call is lost
        while not stop.wait(1.0):
            try:
                snap = boss.ok("GET", "/api/calls/waiting")
            except Exception as exc:
                line_seen.append((time.time(), [], repr(exc)))
                continue
            waiting = [w.get("call_id") for w in snap.get("waiting", [])]
            others = {k: v for k, v in snap.items() if k != "waiting"}
            line_seen.append((time.time(), waiting, others))

    poller = threading.Thread(target=poll_line, daemon=True)
    obs.on(watch)
    poller.start()
    try:
        run = carrier.call(20, rate=4.0, patience_s=25.0, talk_s=(0.5, 0.8))
        rig.settle(run.callers, 90)
    finally:
        obs.off(watch)
        stop.set()
        poller.join(5)
    nothing_stuck(rig)
    book = rig.ledger()
    failed = moves_failed(rig) - failed_before
    lines = cti.log_lines(r"ACD: .*(gone while moved|moving .* failed)", log_from)
    per_call: dict[str, int] = {}
    for line in lines:
        call_id = line.split("ACD: ", 1)[1].split()[0]
        per_call[call_id] = per_call.get(call_id, 0) + 1
    rows = [book["rows"][c.uniqueid] for c in run.callers]
    results["moves"] = {
        "callers": len(run.callers),
        "left_at_the_head_of_the_line": len(leavers),
        "answered": sum(r.answered for r in rows),
        "abandoned": sum(r.abandoned for r in rows),
        "acd_reaction_median_ms": round(statistics.median(reactions) * 1000, 1)
        if reactions
        else None,
        "leave_latency_median_ms": round(statistics.median(latencies) * 1000, 1)
        if latencies
        else None,
        "failed_redirects_metric": failed,
        "failed_redirects_logged": len(lines),
        "max_failed_per_call": max(per_call.values(), default=0),
        "log": lines[:6],
    }
    lost = [c.uniqueid for c in run.callers if not c.answered and c not in leavers]
    if lost:
        results["moves"]["never_moved"] = lost  # type: ignore[index]
        seen = [(round(t, 1), ids, more) for t, ids, more in line_seen if set(ids) & set(lost)]
        results["moves"]["cti_waiting_line"] = seen[-2:] or line_seen[-2:]  # type: ignore[index]
    # the ACD's view of the agent agrees with the agent's own state (the desktop's)
    board = rig.desks["a1"].ok("GET", "/api/agents/me")["state"]
    line = boss.ok("GET", "/api/calls/waiting?agents=1")
    acd = {a["agent_id"]: a["state"] for a in line["agents"]}
    results["moves"]["a1_desktop_vs_acd"] = [board, acd.get("a1")]  # type: ignore[index]
    assert all(r.ended_at is not None and (r.answered or r.abandoned) for r in rows)
    assert (board, acd.get("a1")) == ("ready", "ready"), (board, acd)
    for caller in run.callers:
        if caller not in leavers:
            assert caller.answered, caller
    assert max(per_call.values(), default=0) <= 2, per_call
    assert failed <= 2 * len(run.callers), failed


def test_route_latency_by_asterisk_clock(rig: Rig, results: dict) -> None:  # type: ignore[type-arg]
    """>= 20 calls; the FastAGI route time between the Newexten of AGI() and the next
    priority on the [cti-route] Local channel, and the caller's whole wait between the
    Newexten of Dial(Local/...) in [from-citizen] and its MixMonitor (the answer taken)."""
    rig.ready()
    assert rig.carrier is not None and rig.observer is not None
    mark = rig.observer.mark()
    run = rig.carrier.call(24, rate=2.0, patience_s=120.0, talk_s=(1.0, 1.5))
    rig.settle(run.callers, 120)
    events = rig.observer.since(mark)
    times = agi_route_times(events)
    gaps = agi_command_gaps(events)
    route = list(times["route"].values())
    wait = list(times["wait"].values())
    results["route_latency"] = {
        "route": stats(route),
        "caller_wait": stats(wait),
        "to_first_agi_command": stats(gaps["to_first_command"]),
        "between_agi_commands": stats(gaps["between_commands"]),
        "last_answer_to_next_priority": stats(gaps["last_answer_to_next_priority"]),
        "loadavg": os.getloadavg(),
    }
    everything = agi_route_times(rig.observer.since(0))
    results["route_latency_whole_session"] = stats(list(everything["route"].values()))
    assert len(route) >= 20 and len(wait) >= 20, results["route_latency"]
    assert statistics.median(route) <= 5.0, results["route_latency"]
