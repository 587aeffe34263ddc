"""Each call-control action against the simulator: what is sent, what Asterisk does, and the
typed errors when it refuses or the input is bad."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from cti.control import AsteriskRefused, BadNumber, NoActiveCall, NodeUnavailable
from cti.errors import ApiError, Conflict, Invalid
from cti.events import Alarm, CallTransferred
from cti.testing.frames import header, headers_all
from recordings.models import RecordingMute
from tests.control.harness import Pbx


def fields(request: list[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in request if k not in ("ActionID", "Variable")}


async def test_hold_parks_both_sides_and_unhold_brings_the_seat_back(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    seat = pbx.hotline.tracker.seat_channel(call)
    assert seat is not None

    held = await pbx.control.hold("li")

    conf = held["conference"]
    assert held["state"] == "held"
    redirect = pbx.actions("Redirect")[0]
    assert header(redirect, "Channel") == handle.channel.name
    assert header(redirect, "Exten") == conf
    assert header(redirect, "ExtraChannel") == seat.name
    assert header(redirect, "ExtraExten") == "3h" + conf[2:]
    await pbx.until(lambda: "3h" + conf[2:] in pbx.sim.conferences)
    assert [c.name for c in pbx.sim.conferences[conf].channels] == [handle.channel.name]

    back = await pbx.control.unhold("li")

    assert back["state"] == "conference"
    await pbx.until(
        lambda: len(pbx.sim.conferences.get(conf, ()) and pbx.sim.conferences[conf].channels) == 2
    )
    assert header(pbx.actions("Redirect")[1], "Channel") == seat.name
    with pytest.raises(Conflict):
        await pbx.control.unhold("li")

    # The agent hangs up while the citizen is in the conference: the citizen is not left alone.
    pbx.sim.hangup(seat.name)
    assert await handle.wait(5) == "answered"


async def test_blind_transfer_to_a_window(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    seat = pbx.hotline.tracker.seat_channel(call)
    assert seat is not None

    result = await pbx.control.blind_transfer("li", "shebao")

    assert result["context"] == "cti-window" and result["target"] == "9001"
    assert fields(pbx.actions("BlindTransfer")[0]) == {
        "Action": "BlindTransfer",
        "Channel": seat.name,
        "Context": "cti-window",
        "Exten": "9001",
    }
    transfer = await pbx.until(lambda: pbx.of(CallTransferred))
    assert (transfer[0].kind, transfer[0].target) == ("blind", "9001")
    await pbx.until(lambda: pbx.channels("PJSIP/9001") and not pbx.channels("PJSIP/8001"))
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "ready")


async def test_blind_transfer_from_hold_uses_redirect(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    await pbx.control.hold("li")

    await pbx.control.blind_transfer("li", "8002")

    redirect = pbx.actions("Redirect")[-1]
    assert header(redirect, "Channel") == handle.channel.name
    assert (header(redirect, "Context"), header(redirect, "Exten")) == ("cti-window", "8002")
    await pbx.until(lambda: pbx.channels("PJSIP/8002") and not pbx.channels("PJSIP/8001"))
    assert [t.kind for t in pbx.of(CallTransferred)] == ["blind"]


async def test_attended_transfer_completes_when_the_agent_hangs_up(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()
    seat = pbx.hotline.tracker.seat_channel(call)
    assert seat is not None

    loop = asyncio.get_running_loop()
    asked = loop.time()
    await pbx.control.attended_transfer("li", "9001")

    # "#" ends Asterisk's digit collection: the window rings at once, not after
    # transferdigittimeout (3 s of silence for the agent on a real PBX).
    assert fields(pbx.actions("Atxfer")[0]) == {
        "Action": "Atxfer",
        "Channel": seat.name,
        "Context": "cti-window",
        "Exten": "9001#",
    }
    await pbx.until(lambda: pbx.channels("PJSIP/9001"))
    assert loop.time() - asked < pbx.sim.config.transfer_digit_timeout_s * pbx.sim.config.scale
    await pbx.until(lambda: any(c.state == 6 for c in pbx.sim.channels_of("9001")))
    done = await pbx.control.hangup("li")
    assert done["hung_up"] == [seat.name]
    transfer = await pbx.until(lambda: [t for t in pbx.of(CallTransferred) if t.kind == "attended"])
    assert transfer[0].result == "Success"
    await pbx.until(lambda: pbx.channels("PJSIP/trunk") and not pbx.channels("PJSIP/8001"))


async def test_attended_transfer_without_the_feature_code_is_a_typed_error(pbx: Pbx) -> None:
    pbx.sim.config.atxfer_code = None  # no atxfer in features.conf
    pbx.login()
    await pbx.answered_call()

    with pytest.raises(AsteriskRefused) as err:
        await pbx.control.attended_transfer("li", "9001")

    assert err.value.status == 502
    assert err.value.details["asterisk_message"] == "No attended transfer feature code found"
    assert "tT" in err.value.details["hint"]
    assert err.value.raw["Response"] == "Error"
    # Nothing changed: the agent still talks to the citizen and can go on.
    assert pbx.control.session_of("li")["state"] == "bridged"
    await pbx.control.hold("li")


async def test_police_transfer_carries_the_ticket_id(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()

    ticket = call.ticket_id
    assert ticket
    assert await pbx.hotline.store.flush()

    result = await pbx.control.police("li", ticket)

    assert result["number"] == "110"
    setvar, redirect = pbx.actions("Setvar", "Redirect")
    assert fields(setvar) == {
        "Action": "Setvar",
        "Channel": handle.channel.name,
        "Value": ticket,
    }
    assert header(setvar, "Variable") == "HOTLINE_TICKET"
    assert fields(redirect) == {
        "Action": "Redirect",
        "Channel": handle.channel.name,
        "Context": "cti-police",
        "Exten": "110",
        "Priority": "1",
    }
    police = await pbx.until(lambda: [c for c in pbx.sim.channels.values() if c.cid_num == "110"])
    assert handle.channel.cid_name == f"12345 {ticket}"
    assert police
    await pbx.until(lambda: not pbx.channels("PJSIP/8001"))
    assert [(t.kind, t.target) for t in pbx.of(CallTransferred)] == [("police", "110")]
    # The ticket goes to 转110, after its own creation in the write-behind queue.
    assert await pbx.hotline.store.flush()
    assert str(pbx.hotline.tickets.get(ticket).state) == "police"


async def test_callback_originates_the_seat_then_the_citizen(pbx: Pbx) -> None:
    pbx.login()

    result = await pbx.control.callback("li", "13800000007", ticket_id="T-0007")

    originate = pbx.actions("Originate")[0]
    assert fields(originate) == {
        "Action": "Originate",
        "Channel": "PJSIP/8001",
        "Context": "cti-callback",
        "Exten": "13800000007",
        "Priority": "1",
        "CallerID": "12345 回访 <12345>",
        "Async": "true",
        "Timeout": "20000",
    }
    assert headers_all(originate, "Variable") == ["HOTLINE_TICKET=T-0007"]
    assert header(originate, "ActionID") == result["action_id"]
    call = await pbx.until(
        lambda: [c for c in pbx.hotline.tracker.active_calls() if c.direction == "callback"]
    )
    await pbx.until(lambda: call[0].state == "talking" and call[0].ticket_id == "T-0007")
    assert call[0].caller == "13800000007"
    assert pbx.hotline.agents.get("li").state == "on_call"
    with pytest.raises(Conflict) as err:
        await pbx.control.callback("li", "13800000008")
    assert err.value.error_id == "agent-busy"

    # Hang up by seat: every channel of the seat, with a regex, as the rig's CTI did.
    done = await pbx.control.hangup("li")
    assert header(pbx.actions("Hangup")[-1], "Channel") == "/^PJSIP\\/8001-.*$/"
    assert len(done["hung_up"]) == 1 and done["hung_up"][0].startswith("PJSIP/8001-")
    await pbx.until(lambda: not pbx.sim.channels)


async def test_callback_seat_not_answering_raises_an_alarm(pbx: Pbx) -> None:
    pbx.sim.set_phone_behaviour("8001", answer="ignore")
    pbx.login()
    await pbx.control.callback("li", "13800000007")
    alarm = await pbx.until(lambda: pbx.of(Alarm))
    assert alarm[0].kind == "callback-failed" and alarm[0].details["reason"] == "no answer"


@pytest.mark.parametrize(
    ("mode", "flags", "label"),
    [("listen", "q", "监听"), ("whisper", "qw", "耳语"), ("barge", "qB", "强插")],
)
async def test_spy_originates_the_supervisor_into_chanspy(
    pbx: Pbx, mode: str, flags: str, label: str
) -> None:
    pbx.login()
    await pbx.answered_call()

    await pbx.control.spy("S01", "li", mode)

    originate = pbx.actions("Originate")[0]
    assert fields(originate) == {
        "Action": "Originate",
        "Channel": "PJSIP/8009",
        "Context": "cti-spy",
        "Exten": "s",
        "Priority": "1",
        "CallerID": f"{label} 李娜 <8001>",
        "Async": "true",
        "Timeout": "20000",
    }
    assert headers_all(originate, "Variable") == ["SPY_TARGET=PJSIP/8001-", f"SPY_MODE={flags}"]


async def test_mute_recording(pbx: Pbx) -> None:
    pbx.login()
    handle, call = await pbx.answered_call()

    result = await pbx.control.mute_recording("li", True)

    assert result["muted"] is True
    assert fields(pbx.actions("MixMonitorMute")[0]) == {
        "Action": "MixMonitorMute",
        "Channel": handle.channel.name,
        "Direction": "both",
        "State": "1",
    }
    assert handle.channel.mixmonitor_mute == {"read": True, "write": True}
    await pbx.control.mute_recording("li", False)
    assert handle.channel.mixmonitor_mute == {"read": False, "write": False}
    # The pause is kept with the recording, for the replay.
    assert await pbx.hotline.store.flush()
    with pbx.hotline.sessions() as session:
        spans = session.scalars(select(RecordingMute).where(RecordingMute.call_id == call.call_id))
        [span] = list(spans)
    assert span.started_at is not None and span.stopped_at is not None


BAD_INPUTS = [
    ("callback", ("li", "138\r\nAction: Hangup"), BadNumber),
    ("callback", ("li", "12a45"), BadNumber),
    ("callback", ("li", "12"), BadNumber),
    ("callback", ("li", "13800000007", "T-1\r\nAction: Originate"), Invalid),
    ("blind_transfer", ("li", "9001\nAction: Hangup"), BadNumber),
    ("attended_transfer", ("li", "+86 571"), BadNumber),
    ("police", ("li", "T-1\rX"), Invalid),
    ("three_way", ("li", "shebao\r\n"), ApiError),
    ("spy", ("S01", "li", "listen\r\n"), Invalid),
]


@pytest.mark.parametrize(("method", "args", "error"), BAD_INPUTS)
async def test_bad_input_is_refused_before_anything_is_sent(
    pbx: Pbx, method: str, args: tuple[str, ...], error: type[Exception]
) -> None:
    pbx.login()
    await pbx.answered_call()
    mark = pbx.mark()

    with pytest.raises(error):
        await getattr(pbx.control, method)(*args)

    await asyncio.sleep(0.05)
    assert pbx.sent_since(mark) == []


async def test_actions_without_a_call(pbx: Pbx) -> None:
    pbx.login()
    mark = pbx.mark()
    for method, args in [
        ("hold", ("li",)),
        ("blind_transfer", ("li", "9001")),
        ("mute_recording", ("li", True)),
        ("police", ("li", "T-1")),
        ("hangup", ("li",)),
    ]:
        with pytest.raises(NoActiveCall):
            await getattr(pbx.control, method)(*args)
    assert pbx.sent_since(mark) == []


async def test_node_down_is_a_typed_error(pbx: Pbx) -> None:
    pbx.login()
    await pbx.answered_call()
    await pbx.sim.ami.stop()
    await pbx.until(lambda: not pbx.hotline.nodes["pbx1"].connected)

    with pytest.raises(NodeUnavailable) as err:
        await pbx.control.hold("li")

    assert err.value.status == 503 and err.value.error_id == "node-unavailable"
    # Nothing was done: the CTI's view of the call did not change.
    assert pbx.control.session_of("li")["state"] == "bridged"
