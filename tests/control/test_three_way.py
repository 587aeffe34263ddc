"""The three-way call with a service window against the simulator (transcript three_way_window):
one Redirect with ExtraChannel into cti-conf, then an Originate of the window into it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import cti.testing.ami_actions as sim_actions
from console.security import User
from cti.control import AsteriskRefused, NoActiveCall, WindowClosed, WindowUnreachable
from cti.errors import Invalid
from cti.events import Alarm, CallTransferred
from cti.testing.frames import header, headers_all
from tests.control.harness import Pbx

SH = ZoneInfo("Asia/Shanghai")


def fields(request: list[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in request if k != "ActionID"}


async def test_three_way_follows_the_recorded_sequence(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    seat_channel = pbx.hotline.tracker.seat_channel(call)
    assert seat_channel is not None

    conf = await pbx.control.three_way("li", "shebao", ticket_id="T-0004")

    assert conf == "3w-" + call.call_id.replace(".", "-")
    assert conf[0].isdigit()  # [cti-conf] matches _X.
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")
    await pbx.until(lambda: len(pbx.control.session_of("li")["members"]) == 3)
    redirect, originate, conflist = pbx.actions("Redirect", "Originate", "ConfbridgeList")
    assert fields(redirect) == {
        "Action": "Redirect",
        "Channel": handle.channel.name,
        "ExtraChannel": seat_channel.name,
        "Context": "cti-conf",
        "Exten": conf,
        "Priority": "1",
        "ExtraContext": "cti-conf",
        "ExtraExten": conf,
        "ExtraPriority": "1",
    }
    assert fields(originate) == {
        "Action": "Originate",
        "Channel": "PJSIP/9001",
        "Context": "cti-conf",
        "Exten": conf,
        "Priority": "1",
        "CallerID": "12345 <12345>",
        "Async": "true",
        "Variable": "HOTLINE_TICKET=T-0004",
    }
    assert header(conflist, "Conference") == conf
    members = sorted(c.name.split("-")[0] for c in pbx.sim.conferences[conf].channels)
    assert members == ["PJSIP/8001", "PJSIP/9001", "PJSIP/trunk"]
    session = pbx.control.session_of("li")
    assert session["window_id"] == "shebao" and len(session["members"]) == 3
    transferred = pbx.of(CallTransferred)
    assert [(t.kind, t.target, t.result) for t in transferred] == [
        ("three_way", "shebao", "Success")
    ]
    assert pbx.hotline.agents.get("li").state == "on_call"


@pytest.mark.parametrize(("behaviour", "reason"), [("ignore", "no answer"), ("busy", "busy")])
async def test_window_not_answering_leaves_the_agent_with_the_citizen(
    pbx: Pbx, behaviour: str, reason: str
) -> None:
    pbx.sim.set_phone_behaviour("9001", answer=behaviour)  # type: ignore[arg-type]
    pbx.login()
    handle, call = await pbx.answered_call()

    conf = await pbx.control.three_way("li", "shebao")

    alarm = await pbx.until(lambda: pbx.of(Alarm))
    assert alarm[0].kind == "window-no-answer"
    assert alarm[0].details["reason"] == reason
    assert alarm[0].details["suggestion"] == "dispatch"
    assert alarm[0].details["agent_id"] == "li"
    assert pbx.control.session_of("li")["state"] == "conference"
    together = sorted(c.name.split("-")[0] for c in pbx.sim.conferences[conf].channels)
    assert together == ["PJSIP/8001", "PJSIP/trunk"]
    assert pbx.channels("PJSIP/9001") == []
    assert pbx.of(CallTransferred)[0].result == f"Failure: {reason}"

    # The window answers the second time: only a new Originate, no second Redirect.
    pbx.sim.set_phone_behaviour("9001", answer="answer")
    mark = pbx.mark()
    assert await pbx.control.three_way("li", "shebao") == conf
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")
    # the check of the conference may still be on its way when the state changes (under load)
    await pbx.until(lambda: len(pbx.sent_since(mark)) >= 2)
    assert pbx.sent_since(mark)[:2] == ["Originate", "ConfbridgeList"]


async def test_citizen_hanging_up_during_the_three_way_releases_window_and_seat(
    pbx: Pbx,
) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")

    pbx.sim.hangup(handle.channel)

    await pbx.until(lambda: not pbx.channels("PJSIP/9001") and not pbx.channels("PJSIP/8001"))
    assert pbx.control.session_of("li") is None
    assert pbx.control.sessions == {}
    hangups = [header(r, "Channel") or "" for r in pbx.actions("Hangup")]
    assert any(h.startswith("PJSIP/9001-") for h in hangups)
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "ready")


async def test_agent_leaves_and_the_window_finishes_with_the_citizen(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    conf = await pbx.control.three_way("li", "shebao", ticket_id="T-0009")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")

    await pbx.control.agent_leave_three_way("li")

    await pbx.until(lambda: not pbx.channels("PJSIP/8001"))
    left = sorted(c.name.split("-")[0] for c in pbx.sim.conferences[conf].channels)
    assert left == ["PJSIP/9001", "PJSIP/trunk"]
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "ready")
    # The agent is free: no action on the old call any more.
    with pytest.raises(NoActiveCall):
        await pbx.control.hold("li")

    # The window hangs up: nobody is left for the citizen, the CTI ends the call.
    window = pbx.channels("PJSIP/9001")[0]
    pbx.sim.hangup(window)
    assert await handle.wait(5) == "answered"
    assert pbx.control.sessions == {}


async def test_window_with_unreachable_phone_is_refused_before_anything_is_sent(
    pbx: Pbx,
) -> None:
    pbx.login()
    await pbx.answered_call()
    pbx.sim.unregister_phone("9001")
    await pbx.until(lambda: not pbx.hotline.seats.get("9001").usable)
    mark = pbx.mark()

    with pytest.raises(WindowUnreachable) as err:
        await pbx.control.three_way("li", "shebao")

    assert err.value.error_id == "window-unreachable"
    assert err.value.details["suggestion"] == "dispatch"
    assert pbx.sent_since(mark) == []


async def test_window_closed_on_national_day_offers_dispatch(
    pbx: Pbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    pbx.login()
    await pbx.answered_call()
    monkeypatch.setattr(pbx.control, "_now", lambda: datetime(2026, 10, 1, 10, 0, tzinfo=SH))
    mark = pbx.mark()

    with pytest.raises(WindowClosed) as err:
        await pbx.control.three_way("li", "gongjijin")

    assert err.value.status == 409 and err.value.error_id == "window-closed"
    assert err.value.details["next_open"] == "2026-10-08T09:00:00+08:00"
    assert err.value.details["suggestion"] == "dispatch"
    assert pbx.sent_since(mark) == []


async def test_window_that_cannot_be_rung_after_the_redirect_leaves_both_in_conference(
    pbx: Pbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(sim: object, session: object, request: list[tuple[str, str]]) -> None:
        session.error(request, "Originate failed")  # type: ignore[attr-defined]

    monkeypatch.setitem(sim_actions.HANDLERS, "originate", refuse)
    pbx.login()
    handle, call = await pbx.answered_call()

    with pytest.raises(AsteriskRefused) as err:
        await pbx.control.three_way("li", "shebao")

    assert err.value.error_id == "asterisk-refused"
    assert err.value.details["asterisk_message"] == "Originate failed"
    assert err.value.details["together"] is True
    conf = err.value.details["conference"]
    assert pbx.control.session_of("li")["state"] == "conference"
    await pbx.until(lambda: conf in pbx.sim.conferences)
    await pbx.until(lambda: len(pbx.sim.conferences[conf].channels) == 2)
    names = sorted(c.name.split("-")[0] for c in pbx.sim.conferences[conf].channels)
    assert names == ["PJSIP/8001", "PJSIP/trunk"]


async def test_three_way_without_a_call_is_refused(pbx: Pbx) -> None:
    pbx.login()
    mark = pbx.mark()
    with pytest.raises(NoActiveCall) as err:
        await pbx.control.three_way("li", "shebao")
    assert err.value.error_id == "no-active-call"
    assert pbx.sent_since(mark) == []


def test_headers_helper_is_what_the_simulator_parses() -> None:
    # The tests read repeated headers (Variable) the way the simulator does.
    assert headers_all([("Variable", "A=1"), ("Variable", "B=2")], "Variable") == ["A=1", "B=2"]


async def test_window_records_its_outcome_on_the_ticket(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")
    assert await pbx.hotline.store.flush()
    clerk = User(7, "clerk", "社保窗口", frozenset({"window"}), window_id="shebao")

    view = await pbx.control.window_outcome(clerk, call.ticket_id, " 可以办理，带身份证原件 ")

    [outcome] = view.window_outcomes
    assert outcome["window_id"] == "shebao" and outcome["text"] == "可以办理，带身份证原件"
    nobody = User(8, "x", "x", frozenset({"window"}))
    with pytest.raises(Invalid):
        await pbx.control.window_outcome(nobody, call.ticket_id, "text")
    with pytest.raises(Invalid):
        await pbx.control.window_outcome(clerk, call.ticket_id, "   ")


async def test_the_window_joining_the_call_is_written_on_the_ticket(pbx: Pbx) -> None:
    """From then on the window's staff may read the ticket and answer on it (console.scopes);
    a window that never answered was in no call."""
    pbx.sim.set_phone_behaviour("9001", answer="ignore")  # type: ignore[arg-type]
    pbx.login()
    handle, call = await pbx.answered_call()
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.of(Alarm))
    assert await pbx.hotline.store.flush()

    def joined() -> list[dict[str, object]]:
        view = pbx.hotline.tickets.get(call.ticket_id)
        return [e.data for e in view.events if e.action == "window_call"]

    assert joined() == []
    pbx.sim.set_phone_behaviour("9001", answer="answer")
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")
    assert await pbx.hotline.store.flush()
    assert joined() == [{"window_id": "shebao", "call_id": call.call_id}]
