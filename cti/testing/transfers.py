"""Originate, BlindTransfer and Atxfer, with the event order of the transcripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cti.testing.bridging import create_callee, reachable, ring, wait_any
from cti.testing.dialplan import redirect, start_pbx
from cti.testing.model import (
    DOWN,
    RING,
    RINGING,
    UP,
    Channel,
    Fields,
    dial_fields,
    local_pair_fields,
)

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

CALLING_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")


def parse_callerid(raw: str) -> tuple[str, str]:
    """``12345 回访 <12345>`` -> ("12345", "12345 回访")."""
    raw = raw.strip()
    if "<" in raw and raw.endswith(">"):
        name, _, num = raw[:-1].rpartition("<")
        return num.strip(), name.strip().strip('"')
    return raw, raw


@dataclass(slots=True)
class OriginateRequest:
    channel: str
    context: str
    exten: str
    priority: int
    callerid: str
    timeout_s: float
    variables: dict[str, str]
    action_id: str | None


async def originate(sim: AsteriskSimulator, req: OriginateRequest) -> None:
    """Async Originate: ring ``req.channel``; once answered, run the dialplan there."""
    cid_num, cid_name = parse_callerid(req.callerid) if req.callerid else ("", "")

    def response(ok: bool, reason: int, ch: Channel | None) -> None:
        fields: Fields = [("ActionID", req.action_id)] if req.action_id is not None else []
        fields += [
            ("Response", "Success" if ok else "Failure"),
            ("Channel", ch.name if ch is not None else req.channel),
            ("Context", req.context),
            ("Exten", req.exten),
            ("Reason", str(reason)),
            ("Uniqueid", ch.uniqueid if ch is not None else "<null>"),
            ("CallerIDNum", cid_num or "<unknown>"),
            ("CallerIDName", cid_name or "<unknown>"),
        ]
        sim.emit("OriginateResponse", "call,all", fields)

    if not req.channel.startswith("PJSIP/") or not reachable(sim, req.channel):
        response(False, 0, None)
        return
    ch = create_callee(sim, None, req.channel, linkedid="")
    ch.linkedid = ch.uniqueid
    ch.originated = True
    for name, value in req.variables.items():
        sim.setvar(ch, name, value)
    if cid_num:
        ch.cid_num, ch.cid_name = cid_num, cid_name
        sim.channel_event("NewCallerid", ch, [CALLING_PRES])
        sim.connected_line(ch, cid_num, cid_name)
    dialstring = req.channel.split("/", 1)[1]
    sim.emit("DialBegin", "call,all", [*dial_fields(None, ch), ("DialString", dialstring)])
    sim.set_state(ch, RINGING)
    sim.emit("DialState", "call,all", [*dial_fields(None, ch), ("DialStatus", "RINGING")])
    never = sim.stopping
    status = await ring(sim, ch, req.timeout_s, never)
    if status != "ANSWER":
        sim.emit("DialEnd", "call,all", [*dial_fields(None, ch), ("DialStatus", status)])
        sim.destroy(ch, {"BUSY": 17, "NOANSWER": 19}.get(status, 16))
        response(False, {"BUSY": 5, "NOANSWER": 3}.get(status, 1), None)
        return
    sim.set_state(ch, UP, device=False)
    response(True, 4, ch)
    sim.emit("DialEnd", "call,all", [*dial_fields(None, ch), ("DialStatus", "ANSWER")])
    sim.update_device(ch.device)
    ch.role = "originated"
    start_pbx(sim, ch, req.context, req.exten, req.priority)


async def blind_transfer(sim: AsteriskSimulator, ch: Channel, context: str, exten: str) -> None:
    """The transferer drops out, the transferee runs context,exten (IsExternal: Yes)."""
    bridge = ch.bridge
    if bridge is None:
        return
    peer = next(c for c in bridge.channels if c is not ch)
    sim.channel_event("Unhold", ch)
    sim.emit(
        "BlindTransfer",
        "call,all",
        [
            ("Result", "Success"),
            *ch.snapshot("Transferer"),
            *peer.snapshot("Transferee"),
            *bridge.fields(),
            ("IsExternal", "Yes"),
            ("Context", context),
            ("Extension", exten),
        ],
    )
    sim.bridge_leave(ch)
    sim.destroy(ch, 16, device=False)
    await redirect(sim, [(peer, context, exten, 1)])
    sim.update_device(ch.device)


def can_atxfer(sim: AsteriskSimulator, ch: Channel) -> bool:
    # Atxfer needs Dial option T (callee) / t (caller) on this leg and an atxfer feature code.
    return bool(sim.config.atxfer_code) and bool(ch.features) and ch.bridge is not None


async def atxfer(sim: AsteriskSimulator, seat: Channel, context: str, exten: str) -> None:
    """Attended transfer driven from AMI: the seat consults the target through a Local
    channel; when the seat hangs up, the citizen is joined to the target."""
    b1 = seat.bridge
    if b1 is None:
        return
    trunk = next(c for c in b1.channels if c is not seat)
    for digit in sim.config.atxfer_code or "":
        _dtmf(sim, seat, digit)
    sim.channel_event("Hold", seat)
    sim.set_on_hold(trunk, True)
    for digit in exten:
        _dtmf(sim, seat, digit)
    # ast_app_dtget: digits until "#" (which ends it at once), else until no extension of the
    # context could match more, which "_X." always could: then transferdigittimeout.
    exten, hashed, _ = exten.partition("#")
    if not hashed:
        await sim.sleep(sim.config.transfer_digit_timeout_s)
    b1.hold_open = True
    name1, name2 = sim.new_local_name(exten, context)
    device = f"Local/{exten}@{context}"
    common = {"context": context, "exten": exten, "linkedid": seat.linkedid, "device": device}
    l1 = sim.new_channel(
        "", cid_num="<unknown>", cid_name="<unknown>", state=DOWN, name=name1, **common
    )
    l2 = sim.new_channel(
        "", cid_num="<unknown>", cid_name="<unknown>", state=RING, name=name2, **common
    )
    b2 = sim.bridge_create()
    l2.cid_num, l2.cid_name = seat.cid_num, seat.cid_name
    sim.channel_event("NewCallerid", l2, [CALLING_PRES])
    sim.emit(
        "LocalBridge",
        "call,all",
        [
            *local_pair_fields(l1, l2),
            ("Context", context),
            ("Exten", exten),
            ("LocalOptimization", "Yes"),
        ],
    )
    sim.connected_line(l1, seat.cid_num, seat.cid_name)
    sim.bridge_enter(b2, l1)
    target = create_callee(sim, l2, f"PJSIP/{exten}", seat.linkedid)
    target.exten = exten
    sim.connected_line(target, l2.cid_num, l2.cid_name)
    sim.bridge_leave(seat)
    sim.bridge_enter(b2, seat)
    sim.connected_line(seat, l1.cid_num, l1.cid_name)
    sim.set_state(target, RINGING)
    sim.emit("DialBegin", "call,all", [*dial_fields(l2, target), ("DialString", exten)])
    sim.connected_line(l2, target.cid_num, target.cid_name)
    sim.connected_line(seat, target.cid_num, target.cid_name)
    sim.set_state(l1, RINGING, device=False)
    l1.cid_num, l1.cid_name = target.cid_num, target.cid_name
    sim.channel_event("NewCallerid", l1, [CALLING_PRES])
    _local_device(sim, device, "INUSE")
    sim.emit("DialState", "call,all", [*dial_fields(l2, target), ("DialStatus", "RINGING")])
    sim.emit("DialState", "call,all", [*dial_fields(None, l1), ("DialStatus", "RINGING")])
    status = await ring(sim, target, 30, seat.hangup_requested)
    if status != "ANSWER":
        await _abort(sim, seat, trunk, b1, b2, l1, l2, target, status)
        return
    sim.set_state(target, UP)
    sim.emit("DialEnd", "call,all", [*dial_fields(l2, target), ("DialStatus", "ANSWER")])
    sim.set_state(l1, UP, device=False)
    sim.set_state(l2, UP, device=False)
    b3 = sim.bridge_create()
    _local_device(sim, device, "INUSE")
    sim.emit("DialEnd", "call,all", [*dial_fields(None, l1), ("DialStatus", "ANSWER")])
    sim.bridge_enter(b3, target)
    sim.bridge_enter(b3, l2)
    _local_device(sim, device, "INUSE")

    await wait_any(seat.hangup_requested)
    # The transferer hung up: complete the transfer by merging the consultation bridge.
    sim.bridge_leave(seat)
    sim.set_on_hold(trunk, False)
    sim.emit("BridgeMerge", "call,all", [*b1.fields("To"), *b2.fields("From")])
    sim.bridge_leave(l1)
    sim.bridge_enter(b1, l1)
    sim.connected_line(l1, trunk.cid_num, trunk.cid_name)
    sim.emit(
        "AttendedTransfer",
        "call,all",
        [
            ("Result", "Success"),
            *seat.snapshot("OrigTransferer"),
            *b1.fields("Orig"),
            *seat.snapshot("SecondTransferer"),
            *b2.fields("Second"),
            *trunk.snapshot("Transferee"),
            ("IsExternal", "No"),
            ("DestType", "Bridge"),
            ("DestBridgeUniqueid", b1.uniqueid),
        ],
    )
    sim.connected_line(target, trunk.cid_num, trunk.cid_name)
    sim.connected_line(trunk, target.cid_num, target.cid_name)
    sim.bridge_destroy(b2)
    sim.destroy(seat)
    await sim.sleep(sim.config.local_optimize_delay_s)
    # Local channel optimization: the citizen takes ;2's place next to the target.
    source = trunk.snapshot("Source")
    sim.emit(
        "LocalOptimizationBegin",
        "call,all",
        [*local_pair_fields(l1, l2), *source, ("DestUniqueId", l2.uniqueid), ("Id", "1")],
    )
    sim.bridge_leave(trunk)
    l2.cid_num, l2.cid_name = trunk.cid_num, trunk.cid_name
    sim.channel_event("NewCallerid", l2, [CALLING_PRES])
    sim.bridge_leave(l2)
    sim.bridge_enter(b3, trunk, swap=l2)
    sim.emit(
        "LocalOptimizationEnd",
        "call,all",
        [*local_pair_fields(l1, l2), ("Success", "No"), ("Id", "1")],
    )
    sim.soft_hangup(l2)
    sim.request_hangup(l1, 16, with_cause=True)
    sim.destroy(l2, device=False)
    _local_device(sim, device, "NOT_INUSE")
    sim.bridge_leave(l1)
    b1.hold_open = False
    sim.bridge_destroy(b1)
    sim.destroy(l1, device=False)
    _local_device(sim, device, "NOT_INUSE")
    sim.mark_connected(trunk, target)


async def _abort(
    sim: AsteriskSimulator,
    seat: Channel,
    trunk: Channel,
    b1: object,
    b2: object,
    l1: Channel,
    l2: Channel,
    target: Channel,
    status: str,
) -> None:
    """The target did not answer: drop the consultation, give the seat its caller back."""
    sim.emit("DialEnd", "call,all", [*dial_fields(l2, target), ("DialStatus", status)])
    sim.destroy(target)
    for local in (l1, l2):
        if local.bridge is not None:
            sim.bridge_leave(local)
        sim.destroy(local, device=False)
    from cti.testing.model import Bridge

    assert isinstance(b1, Bridge) and isinstance(b2, Bridge)
    if seat.bridge is b2:
        sim.bridge_leave(seat)
    sim.bridge_destroy(b2)
    sim.set_on_hold(trunk, False)
    if seat.alive:
        sim.bridge_enter(b1, seat)
        sim.channel_event("Unhold", seat)
    b1.hold_open = False
    b1.changed.set()


def _dtmf(sim: AsteriskSimulator, ch: Channel, digit: str) -> None:
    sim.channel_event(
        "DTMFEnd",
        ch,
        [("Digit", digit), ("DurationMs", "0"), ("Direction", "Received")],
        "dtmf,all",
    )


def _local_device(sim: AsteriskSimulator, device: str, state: str) -> None:
    # Local channel device states are reported on every change of either half, even repeated.
    sim.devices[device] = state
    sim.emit("DeviceStateChange", "call,all", [("Device", device), ("State", state)])
