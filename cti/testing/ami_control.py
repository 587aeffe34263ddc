"""AMI call-control actions: Hangup, Redirect, Originate, transfers, MixMonitor controls.

Messages and the order of checks follow manager.c (action_hangup, action_redirect...).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cti.testing.ami_actions import action, aid, channel_or_error, send_list
from cti.testing.ami_server import AmiSession
from cti.testing.dialplan import redirect
from cti.testing.frames import Pairs, header, headers_all
from cti.testing.transfers import OriginateRequest, atxfer, blind_transfer, can_atxfer, originate

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator


@action("Hangup")
async def _hangup(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    name = header(request, "Channel")
    if not name:
        session.error(request, "No channel specified")
        return
    cause = int(header(request, "Cause") or 16)
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        # A /regex/ hangs up every match and lists them (ChannelHungup events).
        pattern = re.compile(name[1:-1])
        matches = [c for c in list(sim.channels.values()) if pattern.search(c.name)]
        items = [[("Event", "ChannelHungup"), ("Channel", c.name), *aid(request)] for c in matches]
        send_list(
            session, request, "Channels hung up will follow", items, "ChannelsHungupListComplete"
        )
    else:
        channel = sim.find_channel(name)
        if channel is None:
            session.error(request, "No such channel")
            return
        matches = [channel]
        session.success(request, "Channel Hungup")
    for channel in matches:
        channel.hangup_cause = cause
        sim.notice_hangup(channel)


@action("Redirect")
async def _redirect(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    """manager.c's action_redirect, check for check."""
    name, name2 = header(request, "Channel"), header(request, "ExtraChannel")
    context, context2 = header(request, "Context"), header(request, "ExtraContext")
    exten, exten2 = header(request, "Exten"), header(request, "ExtraExten")
    priority, priority2 = header(request, "Priority"), header(request, "ExtraPriority")
    for value, message in (
        (name, "Channel not specified"),
        (context, "Context not specified"),
        (exten, "Exten not specified"),
        (priority, "Priority not specified"),
    ):
        if not value:
            session.error(request, message)
            return
    assert name and context and exten and priority
    pi = _priority(priority)
    if pi < 1:
        session.error(request, "Priority is invalid")
        return
    pi2 = 0
    if name2 and context2:
        if not exten2:
            session.error(request, "ExtraExten not specified")
            return
        if not priority2:
            session.error(request, "ExtraPriority not specified")
            return
        pi2 = _priority(priority2)
        if pi2 < 1:
            session.error(request, "ExtraPriority is invalid")
            return
    channel = sim.find_channel(name)
    if channel is None:
        session.error(request, f"Channel does not exist: {name}")
        return
    if channel.hangup_pending or channel.hangup_requested.is_set():
        # ast_check_hangup: the channel is on its way out (a HangupRequest went by, or it
        # runs an AGI in dead mode); it exists, but cannot be moved. Not a reason to retry.
        session.error(request, "Redirect failed, channel not up.")
        return
    targets = [(channel, context, exten, pi)]
    if not name2:
        session.success(request, "Redirect successful")
    else:
        extra = sim.find_channel(name2)
        if extra is None:
            session.error(request, f"ExtraChannel does not exist: {name2}")
            return
        if extra.hangup_pending or extra.hangup_requested.is_set():
            session.error(request, "Redirect failed, extra channel not up.")
            return
        if context2:
            targets.append((extra, context2, exten2 or exten, pi2))
        else:
            # Without ExtraContext the extra channel goes where the first one goes.
            targets.append((extra, context, exten, pi))
        session.success(request, "Dual Redirect successful")
    sim.spawn(redirect(sim, targets), name="redirect")


def _priority(value: str) -> int:
    """A number, or a label of the target extension (none of ours is redirected to)."""
    try:
        return int(value.strip())
    except ValueError:
        return 0


@action("Originate")
async def _originate(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = header(request, "Channel")
    if not channel:
        session.error(request, "Channel not specified")
        return
    variables = {}
    for raw in headers_all(request, "Variable"):
        for item in raw.split(","):
            key, _, value = item.partition("=")
            if key:
                variables[key.strip()] = value
    req = OriginateRequest(
        channel=channel,
        context=header(request, "Context") or "default",
        exten=header(request, "Exten") or "s",
        priority=int(header(request, "Priority") or 1),
        callerid=header(request, "CallerID") or "",
        timeout_s=int(header(request, "Timeout") or 30000) / 1000,
        variables=variables,
        action_id=header(request, "ActionID"),
    )
    session.success(request, "Originate successfully queued")
    sim.spawn(originate(sim, req), name=f"originate-{channel}")


@action("BlindTransfer")
async def _blind_transfer(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(
        sim, session, request, "No channel specified", "Channel specified does not exist"
    )
    if channel is None:
        return
    exten = header(request, "Exten")
    if not exten:
        session.error(request, "No extension specified")
        return
    if channel.bridge is None:
        session.error(request, "Transfer failed")
        return
    session.success(request, "Transfer succeeded")
    sim.spawn(
        blind_transfer(sim, channel, header(request, "Context") or channel.context, exten),
        name="blindxfer",
    )


@action("Atxfer")
async def _atxfer(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(
        sim, session, request, "Channel not specified", "Channel specified does not exist"
    )
    if channel is None:
        return
    exten = header(request, "Exten")
    if not exten:
        session.error(request, "Extension not specified")
        return
    if not can_atxfer(sim, channel):
        session.error(request, "No attended transfer feature code found")
        return
    session.success(request, "Atxfer successfully queued")
    sim.spawn(
        atxfer(sim, channel, header(request, "Context") or channel.context, exten), name="atxfer"
    )


@action("MixMonitorMute")
async def _mixmonitor_mute(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(sim, session, request, "No channel specified", "No such channel")
    if channel is None:
        return
    direction = (header(request, "Direction") or "both").lower()
    state = (header(request, "State") or "1").lower() in ("1", "true", "yes", "on")
    for leg in ("read", "write") if direction == "both" else (direction,):
        channel.mixmonitor_mute[leg] = state
    session.success(request)
    sim.channel_event(
        "MixMonitorMute", channel, [("Direction", direction), ("State", str(int(state)))]
    )


@action("StopMixMonitor")
async def _stop_mixmonitor(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(sim, session, request, "No channel specified", "No such channel")
    if channel is None:
        return
    if channel.mixmonitor is None:
        session.error(request, "Could not stop MixMonitor")
        return
    channel.mixmonitor = None
    sim.stop_monitor(channel)
    session.success(request)
    sim.channel_event("MixMonitorStop", channel)
