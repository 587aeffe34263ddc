"""Our dialplan (config/asterisk/extensions.conf) as coroutines, one per context.

Priorities and application data match the file, so Newexten events look like the real ones;
the priorities come from ``cti.testing.dialplan_table``, which the tests compare with the
file priority for priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any

from cti.testing.bridging import dial_app, finish_channel
from cti.testing.confbridge import confbridge_app
from cti.testing.dialplan_table import (
    CTI_CALLBACK,
    CTI_DELIVER,
    CTI_HOLD,
    FROM_CITIZEN,
    priorities,
)
from cti.testing.internode import from_node
from cti.testing.local_route import cti_route, dial_route, take_route
from cti.testing.model import RING, UP, Channel

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator, CallHandle

P = priorities(FROM_CITIZEN)
H = priorities(CTI_HOLD)
D = priorities(CTI_DELIVER)
INCIDENT_HEADER = "X-Incident-Id"  # 110's incident number on a call it puts through
C = priorities(CTI_CALLBACK)


def start_inbound_call(
    sim: AsteriskSimulator,
    caller: str,
    name: str,
    did: str,
    talk_s: float | None,
    patience_s: float | None,
    *,
    sip_headers: dict[str, str] | None = None,
) -> CallHandle:
    from cti.testing.pbx import CallHandle

    channel = sim.new_channel(
        "trunk", cid_num=caller, cid_name=name, context="from-citizen", exten=did, state=RING
    )
    channel.sip_headers = dict(sip_headers or {})
    channel.has_pbx = True
    channel.role = "citizen"
    channel.dnid = did
    handle = CallHandle(channel)
    sim.calls.append(handle)
    sim.handles[channel.uniqueid] = handle
    sim.processed_calls += 1
    sim.setvar(channel, "SIPDOMAIN", "127.0.0.1")
    start_pbx(sim, channel, "from-citizen", did, 1)
    sim.spawn(_citizen(sim, handle, talk_s, patience_s), name=f"citizen-{channel.name}")
    return handle


async def _citizen(
    sim: AsteriskSimulator, handle: CallHandle, talk_s: float | None, patience_s: float | None
) -> None:
    """The citizen: gives up after ``patience_s`` unanswered, hangs up ``talk_s`` after a seat
    answered (whatever happens to the call in between: transfers, conferences)."""
    channel = handle.channel
    gone = asyncio.ensure_future(channel.hangup_requested.wait())
    try:
        connected = asyncio.ensure_future(handle.connected.wait())
        done, _ = await asyncio.wait(
            {gone, connected},
            timeout=None if patience_s is None else patience_s * sim.config.scale,
            return_when=asyncio.FIRST_COMPLETED,
        )
        connected.cancel()
        if not done:
            handle.outcome = "abandoned"
            sim.request_hangup(channel)
            return
        if gone in done or talk_s is None:
            return
        if not await _wait(gone, talk_s * sim.config.scale):
            sim.request_hangup(channel)
    finally:
        gone.cancel()


async def _wait(fut: asyncio.Future[Any], timeout: float) -> bool:
    done, _ = await asyncio.wait({fut}, timeout=timeout)
    return bool(done)


def start_pbx(
    sim: AsteriskSimulator, channel: Channel, context: str, exten: str, priority: int
) -> None:
    """Give the channel a PBX thread at context,exten,priority (new or after a Redirect)."""
    channel.has_pbx = True
    channel.context, channel.exten, channel.priority = context, exten, priority
    channel.pbx_task = sim.spawn(
        _pbx(sim, channel, context, exten, priority), name=f"pbx-{channel.name}"
    )


async def _pbx(
    sim: AsteriskSimulator, channel: Channel, context: str, exten: str, priority: int
) -> None:
    try:
        await run_context(sim, channel, context, exten, priority)
    except asyncio.CancelledError:
        # Redirected elsewhere (the new PBX owns the channel now) or the simulator stops.
        raise
    finish_channel(sim, channel)


async def run_context(
    sim: AsteriskSimulator, ch: Channel, context: str, exten: str, priority: int
) -> None:
    if context == "from-citizen":
        await _from_citizen(sim, ch, exten)
    elif context == "cti-route":
        await cti_route(sim, ch, exten)
    elif context == "cti-hold":
        await cti_hold(sim, ch)
    elif context == "cti-deliver":
        await _dial_then_hold(sim, ch, f"PJSIP/{exten}", 20, "tT")
    elif context == "cti-deliver-remote":
        # The ACD set HOTLINE_VIA (Setvar) to the trunk of the seat's node before the Redirect.
        via = ch.variables.get("HOTLINE_VIA", "")
        await _dial_then_hold(sim, ch, f"PJSIP/{exten}@{via}", 20, "tT")
    elif context == "from-node":
        await from_node(sim, ch, exten)
    elif context == "cti-window":
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}", 30, "tT")
    elif context == "cti-conf":
        sim.newexten(ch, "ConfBridge", exten, 1)
        await confbridge_app(sim, ch, exten)
    elif context == "cti-callback":
        await _cti_callback(sim, ch, exten)
    elif context == "cti-police":
        ticket = ch.variables.get("HOTLINE_TICKET", "")
        sim.newexten(ch, "Set", f"CALLERID(name)=12345 {ticket}", 1)
        ch.cid_name = f"12345 {ticket}"
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}@trunk", 30, "", 2)
    elif context == "from-seat" and re.fullmatch(r"9\d{3}", exten):
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}", 30, "")
    elif context == "from-seat" and re.fullmatch(r"1\d{10}|110", exten):
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}@trunk", 30, "")
    # Anything else: no such extension, the channel hangs up.


async def _cti_callback(sim: AsteriskSimulator, ch: Channel, number: str) -> None:
    """[cti-callback]: a seat calling a citizen back records the call (its legs named as an
    inbound call's: the citizen's voice is -in) unless the channel records already or is a
    Local helper; then the trunk is dialled."""
    skip = bool(ch.variables.get("MIXMONITOR_FILENAME")) or not ch.name.startswith("PJSIP/")
    sim.newexten(ch, "GotoIf", f"{int(skip)}?dial", C["if_recording"])
    if not skip:
        rec = sim.config.rec_path(ch.uniqueid, time.time())
        sim.newexten(ch, "Set", f"HOTLINE_REC={rec}", C["rec"])
        sim.setvar(ch, "HOTLINE_REC", rec)
        base = rec[:-4]
        sim.newexten(ch, "MixMonitor", f"{rec},br({base}-out.wav)t({base}-in.wav)", C["mixmonitor"])
        sim.setvar(ch, "MIXMONITOR_FILENAME", rec)
        ch.mixmonitor = {"mixed": rec, "in": f"{base}-in.wav", "out": f"{base}-out.wav"}
        ch.mixmonitor_started = sim.now()
        sim.start_monitor(ch)
        sim.channel_event("MixMonitorStart", ch)
    await _dial_then_hangup(sim, ch, f"PJSIP/{number}@trunk", 30, "tT", C["dial"])


async def _dial_then_hangup(
    sim: AsteriskSimulator, ch: Channel, target: str, timeout: int, options: str, prio: int = 1
) -> None:
    data = f"{target},{timeout}" + (f",{options}" if options else "")
    sim.newexten(ch, "Dial", data, prio)
    await dial_app(sim, ch, target, timeout, options)


async def _dial_then_hold(
    sim: AsteriskSimulator, ch: Channel, target: str, timeout: int, options: str
) -> None:
    sim.newexten(ch, "Dial", f"{target},{timeout},{options}", D["dial"])
    status = await dial_app(sim, ch, target, timeout, options)
    if not ch.alive:
        return
    answered = status == "ANSWER"
    sim.newexten(ch, "GotoIf", f"{int(answered)}?done", D["check"])
    if answered:
        sim.newexten(ch, "Hangup", "", D["done"])
        return
    sim.newexten(ch, "Goto", "cti-hold,s,1", D["to_hold"])
    await cti_hold(sim, ch)


async def _from_citizen(sim: AsteriskSimulator, ch: Channel, did: str) -> None:
    cfg = sim.config
    sim.newexten(ch, "NoOp", f'Inbound "{ch.cid_name}" <{ch.cid_num}> -> {did}', P["noop"])
    sim.newexten(ch, "Answer", "", P["answer"])
    sim.set_state(ch, UP)
    sim.newexten(ch, "Set", f"HOTLINE_DID={did}", P["did"])
    sim.setvar(ch, "HOTLINE_DID", did)
    # PJSIP_HEADER(read,...) of a header the INVITE lacks is empty; FILTER keeps letters and
    # digits. Inherited (__) by the route helper, which passes it to the CTI.
    incident = "".join(
        c for c in ch.sip_headers.get(INCIDENT_HEADER, "") if c.isascii() and c.isalnum()
    )
    sim.newexten(ch, "Set", f"__HOTLINE_INCIDENT={incident}", P["incident"])
    sim.setvar(ch, "__HOTLINE_INCIDENT", incident)
    rec = cfg.rec_path(ch.uniqueid, time.time())
    sim.newexten(ch, "Set", f"HOTLINE_REC={rec}", P["rec"])
    sim.setvar(ch, "HOTLINE_REC", rec)
    for step, var, value in (
        ("target", "ROUTE_TARGET", ""),
        ("hold", "HOTLINE_HOLD", "0"),
        ("ticket", "HOTLINE_TICKET", ""),
    ):
        sim.newexten(ch, "Set", f"{var}={value}", P[step])
        sim.setvar(ch, var, value)
    stale = sim.heartbeat_stale()
    sim.newexten(ch, "GotoIf", f"{int(stale)}?routed", P["guard"])
    if not stale:
        # The AGI runs on a helper Local channel the caller Dials for CTI_ROUTE_TIMEOUT
        # seconds: a stalled CTI holds only the helper (cti.testing.local_route).
        for step, var, value in (
            ("caller_uid", "__HOTLINE_CALLER_UID", ch.uniqueid),
            ("caller_chan", "__HOTLINE_CALLER_CHAN", ch.name),
        ):
            sim.newexten(ch, "Set", f"{var}={value}", P[step])
            sim.setvar(ch, var, value)
        timeout = f"{cfg.route_timeout_s:g}"
        sim.newexten(ch, "Dial", f"Local/{did}@cti-route/n,{timeout},m", P["route"])
        await dial_route(sim, ch, did)
        if not ch.alive:
            return
        take_route(sim, ch, P)
    rec = ch.variables.get("HOTLINE_REC", rec)
    base = rec[:-4]
    sim.newexten(ch, "MixMonitor", f"{rec},br({base}-in.wav)t({base}-out.wav)", P["mixmonitor"])
    sim.setvar(ch, "MIXMONITOR_FILENAME", rec)
    ch.mixmonitor = {"mixed": rec, "in": f"{base}-in.wav", "out": f"{base}-out.wav"}
    ch.mixmonitor_started = sim.now()
    sim.start_monitor(ch)
    sim.channel_event("MixMonitorStart", ch)
    target = ch.variables.get("ROUTE_TARGET", "")
    sim.newexten(ch, "GotoIf", f"{int(target != '')}?dial", P["if_target"])
    if target:
        sim.newexten(ch, "Dial", f"{target},20,tT", P["dial"])
        status = await dial_app(sim, ch, target, 20, "tT")
        if not ch.alive:
            return
        answered = status == "ANSWER"
        sim.newexten(ch, "GotoIf", f"{int(answered)}?done", P["dial_check"])
        if answered:
            sim.newexten(ch, "Hangup", "", P["done"])
            return
        sim.newexten(ch, "Goto", "cti-hold,s,1", P["dial_to_hold"])
        await cti_hold(sim, ch)
        return
    hold = ch.variables.get("HOTLINE_HOLD") == "1"
    sim.newexten(ch, "GotoIf", f"{int(hold)}?cti-hold,s,1", P["if_hold"])
    if hold:
        await cti_hold(sim, ch)
        return
    sim.newexten(ch, "Queue", f"{cfg.queue_name},tT,,,{int(cfg.queue_timeout_s)}", P["queue"])
    await sim.queue.queue_app(ch)
    if ch.alive:
        sim.newexten(ch, "Hangup", "", P["queue_hangup"])


async def cti_hold(sim: AsteriskSimulator, ch: Channel) -> None:
    """[cti-hold]: music in 5 s slices; between slices the CTI heartbeat is checked."""
    ch.context, ch.exten = "cti-hold", "s"
    sim.newexten(ch, "NoOp", f"hold {ch.uniqueid}", H["noop"])
    while ch.alive:
        sim.newexten(ch, "MusicOnHold", f"default,{int(sim.config.hold_check_s)}", H["wait"])
        sim.channel_event("MusicOnHoldStart", ch, [("Class", "default")])
        gone = asyncio.ensure_future(ch.hangup_requested.wait())
        try:
            await asyncio.wait({gone}, timeout=sim.config.hold_check_s * sim.config.scale)
        finally:
            gone.cancel()
            # Redirect out of the hold (the ACD's delivery) stops the music first.
            if not ch.hungup:
                sim.channel_event("MusicOnHoldStop", ch)
        if not ch.alive:
            return
        stale = sim.heartbeat_stale()
        sim.newexten(ch, "GotoIf", f"{int(stale)}?queue", H["check"])
        if stale:
            sim.newexten(
                ch,
                "Queue",
                f"{sim.config.queue_name},tT,,,{int(sim.config.queue_timeout_s)}",
                H["queue"],
            )
            await sim.queue.queue_app(ch)
            if ch.alive:
                sim.newexten(ch, "Hangup", "", H["hangup"])
            return
        sim.newexten(ch, "Goto", "wait", H["again"])


async def redirect(sim: AsteriskSimulator, targets: list[tuple[Channel, str, str, int]]) -> None:
    """AMI Redirect (one or two channels): stop what they run, pull them out of their
    bridge, and start the dialplan at the new place."""
    for channel, *_ in targets:
        task = channel.pbx_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        channel.in_queue = False
    moved = {c for c, *_ in targets}
    for channel, context, _, _ in targets:
        bridge = channel.bridge
        channel.context = context
        if bridge is None:
            continue
        sim.bridge_leave(channel)
        others = [c for c in bridge.channels if c not in moved]
        if not bridge.channels:
            sim.bridge_destroy(bridge)
        elif others and all(not c.has_pbx for c in others):
            for other in others:
                sim.bridge_leave(other)
            sim.bridge_destroy(bridge)
            for other in others:
                sim.destroy(other)
    for channel, context, exten, priority in targets:
        start_pbx(sim, channel, context, exten, priority)
