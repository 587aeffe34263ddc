"""Our dialplan (config/asterisk/extensions.conf) as coroutines, one per context.

Priorities and application data match the file, so Newexten events look like the real ones;
``tests/testing/test_sim_dialplan.py`` checks the priorities against the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any

from cti.testing.agi_client import run_agi
from cti.testing.bridging import dial_app, finish_channel
from cti.testing.confbridge import confbridge_app
from cti.testing.model import RING, UP, Channel

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator, CallHandle

# [from-citizen] priorities (labels: routed=10, queue=13, dial=15, done=18).
P_NOOP, P_ANSWER, P_DID, P_REC, P_TARGET, P_HOLD, P_TICKET, P_GUARD, P_AGI = range(1, 10)
P_MIXMON, P_IF_TARGET, P_IF_HOLD, P_QUEUE, P_QUEUE_HANGUP = range(10, 15)
P_DIAL, P_DIAL_CHECK, P_DIAL_TO_HOLD, P_DONE = range(15, 19)
# [cti-hold] priorities (wait=2, queue=5).
H_NOOP, H_WAIT, H_CHECK, H_GOTO, H_QUEUE, H_HANGUP = range(1, 7)

FROM_CITIZEN_PRIORITIES = {
    "NoOp": P_NOOP,
    "Answer": P_ANSWER,
    "MixMonitor": P_MIXMON,
    "Queue": P_QUEUE,
    "Dial": P_DIAL,
}
CTI_HOLD_PRIORITIES = {"NoOp": H_NOOP, "MusicOnHold": H_WAIT, "Queue": H_QUEUE}


def start_inbound_call(
    sim: AsteriskSimulator,
    caller: str,
    name: str,
    did: str,
    talk_s: float | None,
    patience_s: float | None,
) -> CallHandle:
    from cti.testing.pbx import CallHandle

    channel = sim.new_channel(
        "trunk", cid_num=caller, cid_name=name, context="from-citizen", exten=did, state=RING
    )
    channel.has_pbx = True
    channel.role = "citizen"
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
    elif context == "cti-hold":
        await cti_hold(sim, ch)
    elif context == "cti-deliver":
        await _dial_then_hold(sim, ch, f"PJSIP/{exten}", 20, "tT")
    elif context == "cti-window":
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}", 30, "tT")
    elif context == "cti-conf":
        sim.newexten(ch, "ConfBridge", exten, 1)
        await confbridge_app(sim, ch, exten)
    elif context == "cti-callback":
        await _dial_then_hangup(sim, ch, f"PJSIP/trunk/sip:{exten}@carrier", 30, "tT")
    elif context == "cti-police":
        ticket = ch.variables.get("HOTLINE_TICKET", "")
        sim.newexten(ch, "Set", f"CALLERID(name)=12345 {ticket}", 1)
        ch.cid_name = f"12345 {ticket}"
        await _dial_then_hangup(sim, ch, f"PJSIP/trunk/sip:{exten}@carrier", 30, "", 2)
    elif context == "from-seat" and re.fullmatch(r"9\d{3}", exten):
        await _dial_then_hangup(sim, ch, f"PJSIP/{exten}", 30, "")
    elif context == "from-seat" and re.fullmatch(r"1\d{10}|110", exten):
        await _dial_then_hangup(sim, ch, f"PJSIP/trunk/sip:{exten}@carrier", 30, "")
    # Anything else: no such extension, the channel hangs up.


async def _dial_then_hangup(
    sim: AsteriskSimulator, ch: Channel, target: str, timeout: int, options: str, prio: int = 1
) -> None:
    data = f"{target},{timeout}" + (f",{options}" if options else "")
    sim.newexten(ch, "Dial", data, prio)
    await dial_app(sim, ch, target, timeout, options)


async def _dial_then_hold(
    sim: AsteriskSimulator, ch: Channel, target: str, timeout: int, options: str
) -> None:
    sim.newexten(ch, "Dial", f"{target},{timeout},{options}", 1)
    status = await dial_app(sim, ch, target, timeout, options)
    if not ch.alive:
        return
    answered = status == "ANSWER"
    sim.newexten(ch, "GotoIf", f"{int(answered)}?done", 2)
    if answered:
        sim.newexten(ch, "Hangup", "", 4)
        return
    sim.newexten(ch, "Goto", "cti-hold,s,1", 3)
    await cti_hold(sim, ch)


async def _from_citizen(sim: AsteriskSimulator, ch: Channel, did: str) -> None:
    cfg = sim.config
    sim.newexten(ch, "NoOp", f'Inbound "{ch.cid_name}" <{ch.cid_num}> -> {did}', P_NOOP)
    sim.newexten(ch, "Answer", "", P_ANSWER)
    sim.set_state(ch, UP)
    sim.newexten(ch, "Set", f"HOTLINE_DID={did}", P_DID)
    sim.setvar(ch, "HOTLINE_DID", did)
    rec = cfg.rec_path(ch.uniqueid, time.time())
    sim.newexten(ch, "Set", f"HOTLINE_REC={rec}", P_REC)
    sim.setvar(ch, "HOTLINE_REC", rec)
    for prio, var, value in (
        (P_TARGET, "ROUTE_TARGET", ""),
        (P_HOLD, "HOTLINE_HOLD", "0"),
        (P_TICKET, "HOTLINE_TICKET", ""),
    ):
        sim.newexten(ch, "Set", f"{var}={value}", prio)
        sim.setvar(ch, var, value)
    stale = sim.heartbeat_stale()
    sim.newexten(ch, "GotoIf", f"{int(stale)}?routed", P_GUARD)
    if not stale:
        sim.newexten(ch, "AGI", f"agi://{cfg.agi_host}:{cfg.agi_port}/route,{did}", P_AGI)
        status = await run_agi(sim, ch, "route", [did])
        sim.setvar(ch, "AGISTATUS", status)
        if not ch.alive:
            return
    rec = ch.variables.get("HOTLINE_REC", rec)
    base = rec[:-4]
    sim.newexten(ch, "MixMonitor", f"{rec},br({base}-in.wav)t({base}-out.wav)", P_MIXMON)
    sim.setvar(ch, "MIXMONITOR_FILENAME", rec)
    ch.mixmonitor = {"mixed": rec, "in": f"{base}-in.wav", "out": f"{base}-out.wav"}
    ch.mixmonitor_started = sim.now()
    sim.start_monitor(ch)
    sim.channel_event("MixMonitorStart", ch)
    target = ch.variables.get("ROUTE_TARGET", "")
    sim.newexten(ch, "GotoIf", f"{int(target != '')}?dial", P_IF_TARGET)
    if target:
        sim.newexten(ch, "Dial", f"{target},20,tT", P_DIAL)
        status = await dial_app(sim, ch, target, 20, "tT")
        if not ch.alive:
            return
        answered = status == "ANSWER"
        sim.newexten(ch, "GotoIf", f"{int(answered)}?done", P_DIAL_CHECK)
        if answered:
            sim.newexten(ch, "Hangup", "", P_DONE)
            return
        sim.newexten(ch, "Goto", "cti-hold,s,1", P_DIAL_TO_HOLD)
        await cti_hold(sim, ch)
        return
    hold = ch.variables.get("HOTLINE_HOLD") == "1"
    sim.newexten(ch, "GotoIf", f"{int(hold)}?cti-hold,s,1", P_IF_HOLD)
    if hold:
        await cti_hold(sim, ch)
        return
    sim.newexten(ch, "Queue", f"{cfg.queue_name},tT,,,{int(cfg.queue_timeout_s)}", P_QUEUE)
    await sim.queue.queue_app(ch)
    if ch.alive:
        sim.newexten(ch, "Hangup", "", P_QUEUE_HANGUP)


async def cti_hold(sim: AsteriskSimulator, ch: Channel) -> None:
    """[cti-hold]: music in 5 s slices; between slices the CTI heartbeat is checked."""
    ch.context, ch.exten = "cti-hold", "s"
    sim.newexten(ch, "NoOp", f"hold {ch.uniqueid}", H_NOOP)
    while ch.alive:
        sim.newexten(ch, "MusicOnHold", f"default,{int(sim.config.hold_check_s)}", H_WAIT)
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
        sim.newexten(ch, "GotoIf", f"{int(stale)}?queue", H_CHECK)
        if stale:
            sim.newexten(
                ch,
                "Queue",
                f"{sim.config.queue_name},tT,,,{int(sim.config.queue_timeout_s)}",
                H_QUEUE,
            )
            await sim.queue.queue_app(ch)
            if ch.alive:
                sim.newexten(ch, "Hangup", "", H_HANGUP)
            return
        sim.newexten(ch, "Goto", "wait", H_GOTO)


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
