"""Seat phones end to end (simulator + the whole CTI): a logged-in agent's phone going away
raises an alarm and takes the seat out of routing; agents log in at any seat."""

from __future__ import annotations

import asyncio

import pytest

from cti.events import AgentStateChanged, SeatAlarm
from tests.control.harness import Pbx


async def _no_ring_at(pbx: Pbx, ext: str, caller: str) -> None:
    """A new call arrives and is not offered to ``ext``."""
    pbx.heartbeat()
    handle = pbx.sim.place_call(caller, "王五", "12345", talk_s=None)
    call = await pbx.until(
        lambda: next((c for c in pbx.hotline.tracker.active_calls() if c.caller == caller), None)
    )
    await pbx.until(lambda: call.state == "waiting")
    await asyncio.sleep(0.3)
    assert pbx.channels(f"PJSIP/{ext}") == []
    assert call.state == "waiting" and call.seat == ""
    pbx.sim.hangup(handle.channel)


async def test_phone_unregistering_mid_call(pbx: Pbx) -> None:
    pbx.login("li", "A01")
    handle, call = await pbx.answered_call()

    pbx.sim.unregister_phone("8001")  # REGISTER Expires: 0 -> ContactStatus Removed

    alarm = await pbx.until(lambda: pbx.of(SeatAlarm))
    assert (alarm[0].seat, alarm[0].agent_id, alarm[0].cleared) == ("8001", "li", False)
    seat = pbx.hotline.seats.get("8001")
    assert seat is not None and seat.contact == "Removed" and seat.unreachable_since is not None
    # The call itself goes on; once it is over the agent is not ready.
    assert pbx.hotline.agents.get("li").state == "on_call"
    pbx.sim.hangup(handle.channel)
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "not_ready")
    assert pbx.hotline.agents.get("li").reason == "phone-unreachable"

    await _no_ring_at(pbx, "8001", "13900000001")

    # The phone comes back within a minute: the alarm clears and the agent, taken out by
    # the CTI for the phone, is ready again without a click.
    pbx.sim.register_phone("8001")
    cleared = await pbx.until(lambda: [a for a in pbx.of(SeatAlarm) if a.cleared])
    assert cleared[0].reason == "phone back"
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "ready")
    await pbx.answered_call(caller="13900000002")


async def test_phone_back_after_a_long_outage_leaves_the_agent_to_choose(
    pbx: Pbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cti.agents import board

    pbx.login("li", "A01")
    pbx.sim.unregister_phone("8001", clean=False)
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "not_ready")
    monkeypatch.setattr(board, "PHONE_BACK_S", 0.0)  # as if an hour went by
    pbx.sim.register_phone("8001")
    await pbx.until(lambda: [a for a in pbx.of(SeatAlarm) if a.cleared])
    assert pbx.hotline.agents.get("li").state == "not_ready"
    pbx.hotline.agents.set_ready("li")
    await pbx.answered_call(caller="13900000005")


async def test_a_break_chosen_while_the_phone_was_away_is_kept(pbx: Pbx) -> None:
    pbx.login("li", "A01")
    pbx.sim.unregister_phone("8001", clean=False)
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "not_ready")
    pbx.hotline.agents.set_not_ready("li", "lunch")
    pbx.sim.register_phone("8001")
    await pbx.until(lambda: [a for a in pbx.of(SeatAlarm) if a.cleared])
    assert (pbx.hotline.agents.get("li").state, pbx.hotline.agents.get("li").reason) == (
        "not_ready",
        "lunch",
    )


async def test_phone_losing_power_while_ready(pbx: Pbx) -> None:
    pbx.login("li", "A01")

    pbx.sim.unregister_phone("8001", clean=False)  # no REGISTER: qualify notices

    await pbx.until(lambda: pbx.of(SeatAlarm))
    seat = pbx.hotline.seats.get("8001")
    assert seat is not None and seat.contact == "Unreachable"
    changes = [(e.old, e.new, e.reason) for e in pbx.of(AgentStateChanged) if e.agent_id == "li"]
    assert changes[-1] == ("ready", "not_ready", "phone-unreachable")
    await _no_ring_at(pbx, "8001", "13900000003")


async def test_agent_moves_to_another_seat(pbx: Pbx) -> None:
    pbx.login("li", "A01")
    handle, call = await pbx.answered_call()
    assert call.agent_id == "li"
    pbx.sim.hangup(handle.channel)
    await pbx.until(lambda: pbx.hotline.agents.get("li").state == "ready")

    pbx.hotline.agents.logout("li")
    pbx.login("li", "A02")

    handle, call = await pbx.answered_call(caller="13900000004", seat="8002")
    assert call.agent_id == "li"
    assert pbx.hotline.seats.get("8001").agent_id == ""  # type: ignore[union-attr]
    assert pbx.hotline.seats.get("8002").agent_id == "li"  # type: ignore[union-attr]
    # Call control follows the agent to the new seat.
    held = await pbx.control.hold("li")
    assert held["seat"] == "8002"
