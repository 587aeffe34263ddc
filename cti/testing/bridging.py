"""Dial() and two-party bridges: ringing a leg, answering, and tearing the call down.

The teardown orders follow the transcripts: the side that hung up leaves the bridge first,
the caller's PBX sends SoftHangupRequest, the bridge is destroyed, then Hangup events, then
device states.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from cti.testing import internode
from cti.testing.model import DOWN, RINGING, UP, Bridge, Channel, dial_fields

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

DIAL_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)

Hook = Callable[[], None]


async def wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """True when one of the events is set, False on timeout."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


def parse_target(target: str) -> tuple[str, str, str]:
    """(endpoint, dial string, number): ``PJSIP/8001`` -> (8001, 8001, "");
    ``PJSIP/138..@trunk`` -> (trunk, 138..@trunk, 138..), as our dialplan dials out;
    ``PJSIP/trunk/sip:138..@carrier`` -> (trunk, trunk/sip:..., 138..)."""
    rest = target.split("/", 1)[1] if "/" in target else target
    if "@" in rest and "/" not in rest:
        number, _, endpoint = rest.partition("@")
        return endpoint, rest, number
    resource = rest.split("/", 1)[0]
    number = ""
    if resource == "trunk" and "sip:" in rest:
        number = rest.split("sip:", 1)[1].split("@", 1)[0]
    return resource, rest, number


def create_callee(
    sim: AsteriskSimulator, caller: Channel | None, target: str, linkedid: str
) -> Channel:
    """Newchannel for an outgoing leg, as chan_pjsip names it."""
    resource, _, number = parse_target(target)
    if resource == "trunk" or resource in sim.peers:
        # A trunk leg is created in its endpoint's context: [from-citizen] for the carrier,
        # [from-node] for another node of the floor (config/asterisk/pjsip.conf).
        callee = sim.new_channel(
            resource,
            cid_num="<unknown>",
            cid_name="<unknown>",
            context="from-citizen" if resource == "trunk" else "from-node",
            exten="s",
            state=DOWN,
            linkedid=linkedid,
            role="callee",
        )
        callee.cid_num = number
        callee.cid_name = caller.cid_name if caller is not None else ""
        callee.exten = number
        sim.channel_event(
            "NewCallerid", callee, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
        )
        return callee
    name = sim.endpoints.get(resource, resource)
    return sim.new_channel(
        resource,
        cid_num=resource,
        cid_name=name,
        context="from-seat",
        exten="s",
        state=DOWN,
        linkedid=linkedid,
        role="callee",
    )


def reachable(sim: AsteriskSimulator, target: str) -> bool:
    """Whether chan_pjsip creates the channel: an endpoint with a contact it may use (with
    qualify on, one that answers OPTIONS)."""
    resource = parse_target(target)[0]
    if resource == "trunk":
        return sim.trunk_reachable
    if resource in sim.peers:
        return internode.reachable(sim, resource)
    phone = sim.phones.get(resource)
    return phone is not None and phone.reachable


async def ring(
    sim: AsteriskSimulator, callee: Channel, timeout_s: float, abort: asyncio.Event
) -> str:
    """The far phone's answer: ANSWER, BUSY, NOANSWER, or CANCEL when ``abort`` fires."""
    resource = callee.device.split("/", 1)[1]
    if resource == "trunk":
        decision, delay = "answer", sim.config.callback_answer_delay_s
    else:
        phone = sim.phones[resource]
        decision, delay = phone.decide(callee), phone.answer_delay
    wait_s = timeout_s if decision == "ignore" else min(delay, timeout_s)
    if decision == "ignore":
        # Nobody answers by themselves; the agent may still lift the handset (pick_up).
        callee.picked_up = asyncio.Event()
        if await wait_any(abort, callee.picked_up, timeout=wait_s * sim.config.scale):
            return "CANCEL" if abort.is_set() else "ANSWER"
        return "NOANSWER"
    if await wait_any(abort, timeout=wait_s * sim.config.scale):
        return "CANCEL"
    if delay > timeout_s:
        return "NOANSWER"
    return "ANSWER" if decision == "answer" else "BUSY"


async def dial_app(
    sim: AsteriskSimulator, caller: Channel, target: str, timeout_s: float, options: str
) -> str:
    """Dial(target,timeout,options) for a caller with a PBX; bridges on answer and returns
    DIALSTATUS once the bridge is over (ANSWER) or the call failed."""
    for var in DIAL_VARS:
        sim.setvar(caller, var, "")
    if not reachable(sim, target):
        # No channel at all (no Newchannel, no DialBegin); the caller keeps the cause
        # (AST_CAUSE_NO_ROUTE_DESTINATION) if its dialplan ends here.
        caller.hangup_cause = 3
        sim.setvar(caller, "DIALSTATUS", "CHANUNAVAIL")
        return "CHANUNAVAIL"
    resource, dialstring, number = parse_target(target)
    callee = create_callee(sim, caller, target, caller.linkedid)
    sim.setvar(callee, "DIALEDPEERNUMBER", dialstring)
    callee.exten = caller.exten
    sim.newexten(callee, "AppDial", "(Outgoing Line)", 1)
    sim.connected_line(callee, caller.cid_num, caller.cid_name)
    sim.emit("DialBegin", "call,all", [*dial_fields(caller, callee), ("DialString", dialstring)])
    sim.connected_line(caller, callee.cid_num, callee.cid_name)
    phone = sim.phones.get(resource)
    if phone is not None and phone.ring_delay > 0:
        # chan_pjsip reports Ringing when the phone's 180 arrives; a caller who hangs up
        # before that cancels a Dial whose callee never rang.
        await wait_any(caller.hangup_requested, timeout=phone.ring_delay * sim.config.scale)
    if caller.hangup_requested.is_set():
        status = "CANCEL"
    elif resource in sim.peers:
        status = await internode.ring_peer(sim, caller, callee, number, timeout_s)
    else:
        sim.set_state(callee, RINGING)
        sim.emit("DialState", "call,all", [*dial_fields(caller, callee), ("DialStatus", "RINGING")])
        # app_dial passes the ringing on to its caller (a 180 to the other node, if that is
        # where the caller came from).
        internode.signal(caller, "ringing")
        status = await ring(sim, callee, timeout_s, caller.hangup_requested)
    if status != "ANSWER":
        sim.emit("DialEnd", "call,all", [*dial_fields(caller, callee), ("DialStatus", status)])
        sim.destroy(callee, {"BUSY": 17, "NOANSWER": 19}.get(status, 16))
        sim.setvar(caller, "DIALSTATUS", status)
        if status == "CANCEL":
            caller_teardown(sim, caller)
        return status
    callee.features = "T" if "T" in options else ""
    caller.features = "t" if "t" in options else ""
    # The trunk leg reports INUSE only once bridged (callback_originate); a phone at answer.
    late_device = resource == "trunk"
    sim.set_state(callee, UP, device=not late_device)
    if caller.state != UP:
        # app_dial answers its caller once the callee has (the 200 OK to another node).
        sim.set_state(caller, UP)
    internode.signal(caller, "answer")
    sim.setvar(caller, "DIALSTATUS", "ANSWER")
    sim.setvar(caller, "DIALEDPEERNAME", callee.name)
    sim.emit("DialEnd", "call,all", [*dial_fields(caller, callee), ("DialStatus", "ANSWER")])
    bridge = sim.bridge_create()
    callee.exten = ""
    sim.newexten(callee, "AppDial", "(Outgoing Line)")
    sim.bridge_enter(bridge, callee)
    if late_device:
        sim.update_device(callee.device)
    sim.bridge_enter(bridge, caller)
    sim.mark_connected(caller, callee)
    return await hold_bridge(sim, caller)


async def hold_bridge(
    sim: AsteriskSimulator,
    caller: Channel,
    *,
    on_caller_hangup: Hook | None = None,
    on_peer_hangup: Callable[[Channel], None] | None = None,
    callee_first: bool = False,
) -> str:
    """The bridging part of Dial/Queue, run by the caller's PBX: returns ANSWER when the
    other side went away, HANGUP when the caller hung up (after the whole teardown)."""
    while True:
        bridge = caller.bridge
        if caller.hangup_requested.is_set():
            caller_teardown(sim, caller, on_soft=on_caller_hangup, callee_first=callee_first)
            return "HANGUP"
        if bridge is None:
            return "ANSWER"
        for peer in [c for c in bridge.channels if c is not caller]:
            if peer.hangup_requested.is_set():
                peer_teardown(sim, caller, peer, bridge, on_peer_hangup)
        bridge = caller.bridge
        if bridge is None:
            return "ANSWER"
        if len(bridge.channels) <= 1 and not bridge.hold_open:
            sim.bridge_leave(caller)
            sim.bridge_destroy(bridge)
            return "ANSWER"
        bridge.changed.clear()
        await wait_any(bridge.changed, caller.hangup_requested)


def caller_teardown(
    sim: AsteriskSimulator,
    caller: Channel,
    *,
    on_soft: Hook | None = None,
    callee_first: bool = False,
    cause: int | None = None,
) -> None:
    bridge = caller.bridge
    others: list[Channel] = []
    if bridge is not None:
        sim.bridge_leave(caller)
    sim.soft_hangup(caller, caller.hangup_cause)
    if on_soft is not None:
        on_soft()
    if bridge is not None:
        others = list(bridge.channels)
        for other in others:
            sim.bridge_leave(other)
        sim.bridge_destroy(bridge)
    # Legs without a PBX of their own (the dialled phone) go down with the bridge.
    orphans = [o for o in others if not o.has_pbx]
    if not callee_first:
        sim.destroy(caller, cause, device=False)
    for other in orphans:
        sim.destroy(other, device=False)
    if callee_first:
        sim.destroy(caller, cause, device=False)
    for other in orphans:
        sim.update_device(other.device)
    for other in others:
        if other.has_pbx:
            other.hangup_requested.set()
    sim.update_device(caller.device)


def peer_teardown(
    sim: AsteriskSimulator,
    caller: Channel,
    peer: Channel,
    bridge: Bridge,
    on_peer_hangup: Callable[[Channel], None] | None,
) -> None:
    """The dialled side hung up (a seat putting the phone down)."""
    sim.bridge_leave(peer)
    if on_peer_hangup is not None:
        on_peer_hangup(peer)
    if len(bridge.channels) <= 1 and not bridge.hold_open:
        sim.bridge_leave(caller)
        sim.bridge_destroy(bridge)
    if not peer.has_pbx:
        sim.destroy(peer)


def finish_channel(sim: AsteriskSimulator, channel: Channel) -> None:
    """The dialplan ran out (Hangup() or the caller hung up and the app returned)."""
    if channel.hungup:
        return
    if channel.bridge is not None:
        caller_teardown(sim, channel)
        return
    if channel.hangup_requested.is_set():
        sim.soft_hangup(channel, channel.hangup_cause)
    sim.destroy(channel)
