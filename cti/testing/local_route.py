"""The routing question asked from a helper Local channel, as config/asterisk/extensions.conf
now does it: ``Dial(Local/${EXTEN}@cti-route/n,${CTI_ROUTE_TIMEOUT},m)`` from [from-citizen],
and [cti-route] running the FastAGI on the Local;2 half.

FastAGI has no timeout on the Asterisk side, so a stalled CTI holds whatever channel runs the
AGI. Here that is the helper: the caller's Dial gives up after CTI_ROUTE_TIMEOUT, hangs up
Local;1 (which queues a hangup on ;2: its AGI goes on in dead mode until the CTI closes) and
goes on to the fallback queue with its defaults. The caller hears music meanwhile (m).

Events as app_dial, core_local and core_unreal make them (Asterisk 22 sources): the two
halves' Newchannel (same Linkedid as the caller), the outgoing leg's caller id (the dialled
extension) and connected line (the citizen), the copy of both and of the variables onto ;2,
LocalBridge (LocalOptimization No: /n), DialBegin, MusicOnHoldStart; at the end DialEnd
NOANSWER (an unanswered Local channel that hangs up reads as no answer), Hangup of ;1 and
MusicOnHoldStop, and the Local device's state after each half goes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cti.testing.agi_client import run_agi
from cti.testing.bridging import DIAL_VARS, wait_any
from cti.testing.dialplan_table import CTI_ROUTE, priorities
from cti.testing.model import DOWN, RING, Channel, dial_fields, local_pair_fields

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

R = priorities(CTI_ROUTE)
CONTEXT = "cti-route"
CALLING_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
# The fields of HOTLINE_ROUTE, in the order [from-citizen]'s MSet sets them, with their CUT
# position.
COPIED = (("HOTLINE_TICKET", 1), ("HOTLINE_HOLD", 2), ("HOTLINE_REC", 4), ("ROUTE_TARGET", 3))


async def dial_route(sim: AsteriskSimulator, caller: Channel, exten: str) -> str:
    """Dial(Local/<exten>@cti-route/n,<timeout>,m) run by ``caller``; returns DIALSTATUS."""
    for var in DIAL_VARS:
        sim.setvar(caller, var, "")
    device = f"Local/{exten}@{CONTEXT}"
    name1, name2 = sim.new_local_name(exten, CONTEXT)
    common = {"context": CONTEXT, "exten": exten, "linkedid": caller.linkedid, "device": device}
    one = sim.new_channel(
        "", cid_num="<unknown>", cid_name="<unknown>", state=DOWN, name=name1, **common
    )
    two = sim.new_channel(
        "", cid_num="<unknown>", cid_name="<unknown>", state=RING, name=name2, **common
    )
    one.local_peer, two.local_peer = two, one
    dialstring = f"{exten}@{CONTEXT}/n"
    # app_dial prepares the outgoing half: the dialled number, the inherited variables, a
    # caller id made of the caller's extension, the citizen as connected line.
    sim.setvar(one, "DIALEDPEERNUMBER", dialstring)
    for var, value in caller.inherit.items():
        # __X goes down every generation, _X one only (and arrives without the prefix).
        sim.setvar(one, var if var.startswith("__") else var[1:], value)
    one.cid_num = caller.exten
    sim.channel_event("NewCallerid", one, [CALLING_PRES])
    sim.connected_line(one, caller.cid_num, caller.cid_name)
    # local_call -> ast_unreal_call_setup: ;2 gets them crossed over, and ;1's variables.
    sim.setvar(two, "DIALEDPEERNUMBER", dialstring)
    for var, value in one.inherit.items():
        sim.setvar(two, var, value)
    two.cid_num, two.cid_name = caller.cid_num, caller.cid_name
    sim.channel_event("NewCallerid", two, [CALLING_PRES])
    sim.connected_line(two, one.cid_num, one.cid_name)
    sim.emit(
        "LocalBridge",
        "call,all",
        [
            *local_pair_fields(one, two),
            ("Context", CONTEXT),
            ("Exten", exten),
            ("LocalOptimization", "No"),
        ],
    )
    from cti.testing.dialplan import start_pbx

    start_pbx(sim, two, CONTEXT, exten, 1)
    sim.emit("DialBegin", "call,all", [*dial_fields(caller, one), ("DialString", dialstring)])
    sim.channel_event("MusicOnHoldStart", caller, [("Class", "default")])
    answered = await wait_any(
        one.hangup_requested, caller.hangup_requested, timeout=sim.config.route_timeout_s
    )
    if caller.hangup_requested.is_set():
        status, cause = "CANCEL", caller.hangup_cause
        sim.emit("DialEnd", "call,all", [*dial_fields(caller, one), ("DialStatus", status)])
        _stop_music(sim, caller)
        _hang_up_one(sim, one, device, cause)
    elif answered:
        # [cti-route] ran out and hung ;2 up: app_dial reads the hangup of ;1 as no answer.
        status = "NOANSWER"
        sim.emit("DialEnd", "call,all", [*dial_fields(caller, one), ("DialStatus", status)])
        _hang_up_one(sim, one, device, one.hangup_cause)
        _stop_music(sim, caller)
    else:
        # The CTI did not answer in time: give up on it, hanging the helper up (cause 0:
        # hanguptree's default), its AGI goes on dead until the CTI closes.
        status = "NOANSWER"
        sim.emit("DialEnd", "call,all", [*dial_fields(caller, one), ("DialStatus", status)])
        _stop_music(sim, caller)
        _hang_up_one(sim, one, device, 0)
    sim.setvar(caller, "DIALSTATUS", status)
    return status


def _stop_music(sim: AsteriskSimulator, caller: Channel) -> None:
    if not caller.hungup:
        sim.channel_event("MusicOnHoldStop", caller)


def _hang_up_one(sim: AsteriskSimulator, one: Channel, device: str, cause: int) -> None:
    if not one.hungup:
        one.hangup_cause = cause
        sim.destroy(one, cause)
        local_device_gone(sim, device)


def local_device_gone(sim: AsteriskSimulator, device: str) -> None:
    # Local channels do not cache their device state: each half going reports it again.
    sim.emit("DeviceStateChange", "call,all", [("Device", device), ("State", "NOT_INUSE")])


async def cti_route(sim: AsteriskSimulator, ch: Channel, exten: str) -> None:
    """[cti-route] on Local;2: ask the CTI, copy its answer onto the caller, hang up."""
    cfg = sim.config
    uid = ch.variables.get("HOTLINE_CALLER_UID", "")
    chan = ch.variables.get("HOTLINE_CALLER_CHAN", "")
    incident = ch.variables.get("HOTLINE_INCIDENT", "")
    # ${STRFTIME(,,%s.%3q)}: the moment of asking, to the millisecond (the PBX's clock).
    asked = f"{time.time():.3f}"
    data = f"agi://{cfg.agi_host}:{cfg.agi_port}/route,{exten},{uid},{chan},{asked},{incident}"
    sim.newexten(ch, "AGI", data, R["agi"])
    status = await run_agi(sim, ch, "route", [exten, uid, chan, asked, incident])
    sim.setvar(ch, "AGISTATUS", status)
    if ch.alive:
        # Refused (that CTI is down or on standby): ask CTI_AGI_2, when there is one.
        again = status == "FAILURE" and bool(cfg.agi_port_2)
        sim.newexten(ch, "GotoIf", f"{int(not again)}?asked", R["if_refused"])
        if again:
            asked = f"{time.time():.3f}"
            second = (cfg.agi_host_2, cfg.agi_port_2)
            data = f"agi://{second[0]}:{second[1]}/route,{exten},{uid},{chan},{asked},{incident}"
            sim.newexten(ch, "AGI", data, R["agi_2"])
            status = await run_agi(sim, ch, "route", [exten, uid, chan, asked, incident], second)
            sim.setvar(ch, "AGISTATUS", status)
    if not ch.alive:
        # Hung up by the caller's Dial timeout: the dialplan does not run on.
        sim.destroy(ch)
        local_device_gone(sim, ch.device)
        return
    route = ch.variables.get("HOTLINE_ROUTE", "")
    sim.newexten(ch, "GotoIf", f"{int(route == '')}?end", R["if_route"])
    if route:
        # SHARED(HOTLINE_ROUTE,<the citizen's channel name>): left on the citizen's channel,
        # found by its name; func_global writes it without a VarSet.
        sim.newexten(ch, "Set", f"SHARED(HOTLINE_ROUTE,{chan})={route}", R["share"])
        caller = sim.channels.get(chan)
        if caller is not None and not caller.hungup:
            caller.shared["HOTLINE_ROUTE"] = route
    sim.newexten(ch, "Hangup", "", R["end"])
    sim.destroy(ch, 16)
    local_device_gone(sim, ch.device)


def take_route(sim: AsteriskSimulator, caller: Channel, priorities: dict[str, int]) -> None:
    """[from-citizen] after the helper's Dial: the answer [cti-route] left in the caller's
    SHARED() area, split onto its variables by ExecIf(...?MSet(...)) when there is one."""
    route = caller.shared.get("HOTLINE_ROUTE", "")
    sim.newexten(caller, "Set", f"HOTLINE_ROUTE={route}", priorities["route_answer"])
    sim.setvar(caller, "HOTLINE_ROUTE", route)
    parts = route.split("|")
    # CUT(HOTLINE_ROUTE,|,n): the n-th field, empty when there are fewer.
    values = [(var, parts[n - 1] if n <= len(parts) else "") for var, n in COPIED]
    pairs = ",".join(f"{var}={value}" for var, value in values)
    # The MSet that ExecIf runs makes no Newexten: the priority does not change.
    sim.newexten(caller, "ExecIf", f"{int(route != '')}?MSet({pairs})", priorities["route_split"])
    if route:
        for var, value in values:
            sim.setvar(caller, var, value)
