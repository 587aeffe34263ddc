"""Calls through the project's dialplan on a real Asterisk, routed by ``hotline serve``:
straight to a seat, held and delivered, abandoned on hold, transfers and the three-way call
with a service window."""

from __future__ import annotations

import time
import wave
from pathlib import Path

from tests.asterisk.carrier import Caller
from tests.asterisk.rig import Rig, until
from tests.asterisk.site import SEATS, WINDOW_EXT, WINDOW_ID


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / float(w.getframerate())


def test_direct_to_seat_with_ticket_and_recordings(rig: Rig) -> None:
    rig.ready()
    obs = rig.observer
    assert obs is not None and rig.carrier is not None
    offset = rig.pbx.log_offset()  # type: ignore[union-attr]
    run = rig.carrier.call(1, talk_s=(3.0, 3.0), names=("张三",))
    (caller,) = run.callers
    book = rig.settle([caller], 30)
    assert run.wait(15) == 0

    # Asterisk: the route's answer reached the caller's channel, which dialled the seat.
    assert caller.answered, "no seat answered"
    assert caller.seat in SEATS
    variables = rig.vars_of(caller)
    assert variables.get("ROUTE_TARGET") == f"PJSIP/{caller.seat}"
    assert variables.get("HOTLINE_TICKET")
    steps = rig.contexts_of(caller)
    assert ("from-citizen", "Dial", f"PJSIP/{caller.seat},20,tT") in steps, steps
    # How the answer got there, as the simulator models it (cti.testing.local_route): the
    # helper left it in the caller's SHARED() area (no VarSet on the caller for that), the
    # caller took it with one Set and split it with ExecIf's MSet, which makes no Newexten.
    answer = variables["HOTLINE_ROUTE"]
    assert answer.split("|")[2:4] == [variables["ROUTE_TARGET"], variables["HOTLINE_REC"]]
    helper = [
        (e.get("Application"), e.get("AppData"))
        for e in obs.since(0, "Newexten", Context="cti-route")
        if e.get("Linkedid") == caller.uniqueid
    ]
    assert ("Set", f"SHARED(HOTLINE_ROUTE,{caller.channel})={answer}") in helper, helper
    at = steps.index(("from-citizen", "Set", f"HOTLINE_ROUTE={answer}"))
    assert steps[at - 1][1] == "Dial" and steps[at - 1][2].startswith("Local/"), steps
    assert steps[at + 1][1] == "ExecIf", steps
    assert steps[at + 1][2].startswith(f"1?MSet(HOTLINE_TICKET={variables['HOTLINE_TICKET']},")
    assert steps[at + 2][1] == "MixMonitor", steps
    route_sets = obs.since(0, "VarSet", Uniqueid=caller.uniqueid, Variable="HOTLINE_ROUTE")
    assert [e.get("Value") for e in route_sets] == [answer]
    assert not any(ctx == "cti-hold" for ctx, _a, _d in steps), "went on hold with a free seat"

    # The CTI: the call, its ticket, the recording of both legs.
    row = book["rows"][caller.uniqueid]
    assert row.answered and not row.abandoned
    assert row.routed_by == "cti"
    assert row.seat == caller.seat and row.agent_id == SEATS[caller.seat]
    assert row.caller == caller.number and row.caller_name == "张三"
    assert book["ticket_calls"][caller.uniqueid] == [row.ticket_id]
    assert row.ticket_id == variables["HOTLINE_TICKET"]
    ticket = rig.desks[row.agent_id].ok("GET", f"/api/tickets/{row.ticket_id}")
    assert ticket["caller"] == caller.number
    mixed = Path(row.recording)
    assert mixed == Path(variables["HOTLINE_REC"])
    legs = [
        mixed,
        mixed.with_name(mixed.stem + "-in.wav"),
        mixed.with_name(mixed.stem + "-out.wav"),
    ]
    for path in legs:
        assert path.exists(), path
        assert audio_seconds(path) >= 2.0, (path, audio_seconds(path))
    problems = rig.pbx.log_problems(offset)  # type: ignore[union-attr]
    assert not problems, problems


def test_held_then_delivered(rig: Rig) -> None:
    """One ready seat, two callers 1 s apart: the second waits on hold in [cti-hold] and is
    moved to the seat by the ACD (Redirect to [cti-deliver]) when the first call ends."""
    rig.ready(agents=["a1"])
    assert rig.carrier is not None
    first = rig.carrier.call(1, talk_s=(3.0, 3.0), names=("张三",))
    time.sleep(1.0)
    second = rig.carrier.call(1, talk_s=(2.0, 2.0), names=("李四",))
    a, b = first.callers[0], second.callers[0]
    book = rig.settle([a, b], 40)

    assert a.answered and a.seat == "8001"
    assert b.answered and b.seat == "8001"
    assert b.answered_ts >= a.hangup_ts, "the second caller reached the seat before it was free"
    steps = [ctx for ctx, _a, _d in rig.contexts_of(b)]
    assert "cti-hold" in steps and "cti-deliver" in steps, steps
    assert steps.index("cti-hold") < steps.index("cti-deliver")
    assert rig.vars_of(b).get("HOTLINE_HOLD") == "1"
    for caller in (a, b):
        row = book["rows"][caller.uniqueid]
        assert row.answered and row.routed_by == "cti" and row.seat == "8001"
        assert len(book["ticket_calls"][caller.uniqueid]) == 1
    assert book["rows"][b.uniqueid].wait_s >= 1.5


def test_abandoned_on_hold_gets_a_callback_task(rig: Rig) -> None:
    """The only seat is busy; the next caller waits on hold and gives up after 3 s."""
    rig.ready(agents=["a1"])
    assert rig.carrier is not None
    busy = rig.carrier.call(1, talk_s=None, names=("王五",))
    until(lambda: busy.callers[0].answered, 10, what="first call answered")
    gives_up = rig.carrier.call(1, patience_s=3.0, names=("赵六",))
    (caller,) = gives_up.callers
    until(lambda: caller.hangup_ts, 15, what="caller gave up")
    rig.carrier.leave(busy.callers[0])
    book = rig.settle([caller, busy.callers[0]], 30)

    assert not caller.answered
    assert "cti-hold" in [ctx for ctx, _a, _d in rig.contexts_of(caller)]
    row = book["rows"][caller.uniqueid]
    assert row.abandoned and not row.answered
    assert row.routed_by == "cti"
    task = until(lambda: rig.ledger()["callbacks"].get(caller.number), 10, what="callback task")
    assert task.status == "open"
    listed = rig.desks["a1"].ok("GET", "/api/callbacks")
    items = listed["items"] if isinstance(listed, dict) else listed
    assert any(t.get("caller") == caller.number for t in items), listed


def _answered_at_a1(rig: Rig, name: str) -> Caller:
    assert rig.carrier is not None
    run = rig.carrier.call(1, talk_s=None, names=(name,))
    caller = run.callers[0]
    until(lambda: caller.answered, 10, what="answered at the seat")
    assert caller.seat == "8001"
    # the CTI's view: the agent is on this call
    until(
        lambda: (rig.desks["a1"].ok("GET", "/api/agents/me").get("call") or {}).get("call_id"),
        5,
        what="the desktop shows the call",
    )
    return caller


def _bridged_with(rig: Rig, caller: Caller, prefix: str, timeout: float = 10) -> None:
    """Until the caller's channel and a channel named ``prefix...`` are in the same bridge.

    Bridges as every event so far left them: a transfer completes either way round (the
    caller moved to the target's bridge, or, when Asterisk optimises a Local channel away, the
    target swapped into the caller's bridge, which the caller entered before the transfer)."""
    obs = rig.observer
    assert obs is not None

    def together() -> bool:
        bridges: dict[str, dict[str, str]] = {}  # bridge: uniqueid -> channel
        for e in obs.since(0):
            if e.name in ("BridgeEnter", "BridgeLeave"):
                members = bridges.setdefault(e.get("BridgeUniqueid"), {})
                if e.name == "BridgeEnter":
                    members[e.get("Uniqueid")] = e.get("Channel")
                else:
                    members.pop(e.get("Uniqueid"), None)
        return any(
            caller.uniqueid in m and any(c.startswith(prefix) for c in m.values())
            for m in bridges.values()
        )

    until(together, timeout, what=f"{caller.channel} bridged with {prefix}")


def test_blind_and_attended_transfer_to_the_window(rig: Rig, results: dict) -> None:  # type: ignore[type-arg]
    rig.ready(agents=["a1"])
    obs, carrier, desk = rig.observer, rig.carrier, rig.desks["a1"]
    assert obs is not None and carrier is not None

    # blind: the agent sends the citizen to the window and is free at once
    caller = _answered_at_a1(rig, "孙八")
    mark = obs.mark()
    out = desk.ok("POST", "/api/control/blind-transfer", {"target": WINDOW_ID})
    assert out["target"] == WINDOW_EXT and out["window"] == WINDOW_ID
    obs.wait_for(lambda e: e.name == "BlindTransfer", 10, mark)
    _bridged_with(rig, caller, f"PJSIP/{WINDOW_EXT}-")
    obs.wait_for(
        lambda e: e.name == "Hangup" and e.get("Channel").startswith("PJSIP/8001-"), 10, mark
    )
    assert not caller.hangup_ts, "the citizen was hung up by the transfer"
    until(
        lambda: desk.ok("GET", "/api/agents/me")["state"] in ("ready", "wrap_up"),
        5,
        what="the agent is free after the blind transfer",
    )
    carrier.leave(caller)
    rig.settle([caller], 20)

    # attended: the agent consults the window, then hangs up the phone to complete
    rig.ready(agents=["a1"])
    caller = _answered_at_a1(rig, "周九")
    mark = obs.mark()
    asked = time.time()
    out = desk.ok("POST", "/api/control/attended-transfer", {"target": WINDOW_ID})
    assert out["target"] == WINDOW_EXT
    # the consultation: the window's phone answers (auto-answer)
    obs.wait_for(
        lambda e: (
            e.name == "DialEnd"
            and e.get("DestChannel").startswith(f"PJSIP/{WINDOW_EXT}-")
            and e.get("DialStatus") == "ANSWER"
        ),
        15,
        mark,
    )
    dialled = obs.since(mark, "DialBegin")
    window_dial = next(
        e for e in dialled if e.get("DestChannel").startswith(f"PJSIP/{WINDOW_EXT}-")
    )
    # Asterisk waits transferdigittimeout (features.conf) for more digits before dialling
    results["attended_transfer_request_to_window_dial_s"] = round(window_dial.ts - asked, 2)
    time.sleep(0.5)
    rig.phones["8001"].hangup()
    done = obs.wait_for(lambda e: e.name == "AttendedTransfer", 10, mark)
    assert done.get("Result") == "Success", done.fields
    _bridged_with(rig, caller, f"PJSIP/{WINDOW_EXT}-")
    carrier.leave(caller)
    rig.settle([caller], 20)


def test_three_way_with_the_window_and_its_outcome_on_the_ticket(rig: Rig) -> None:
    rig.ready(agents=["a1"])
    obs, carrier, desk, clerk = rig.observer, rig.carrier, rig.desks["a1"], rig.desks["clerk"]
    assert obs is not None and carrier is not None
    if not clerk.csrf:
        clerk.login()
    caller = _answered_at_a1(rig, "吴十")
    ticket_id = rig.vars_of(caller)["HOTLINE_TICKET"]
    mark = obs.mark()
    out = desk.ok("POST", "/api/control/three-way", {"window_id": WINDOW_ID})
    conference = out["conference"]
    joined = until(
        lambda: (
            {e.get("Channel").split("-")[0] for e in obs.since(mark, "ConfbridgeJoin")}
            >= {"PJSIP/trunk", "PJSIP/8001", f"PJSIP/{WINDOW_EXT}"}
            and obs.since(mark, "ConfbridgeJoin")
        ),
        15,
        what="citizen, agent and window in the conference",
    )
    assert {e.get("Conference") for e in joined} == {conference}
    current = clerk.ok("GET", "/api/window/current")
    assert current, current
    text = "社保窗口：已为市民核实缴费记录，补缴可在线办理。"
    clerk.ok("POST", "/api/control/window-outcome", {"ticket_id": ticket_id, "text": text})
    carrier.leave(caller)
    rig.settle([caller], 20)
    ticket = desk.ok("GET", f"/api/tickets/{ticket_id}")
    outcomes = ticket.get("window_outcomes") or []
    assert [o["text"] for o in outcomes] == [text], ticket
    assert outcomes[0]["window_id"] == WINDOW_ID
