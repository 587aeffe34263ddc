"""app_queue for one queue (``hotline``: strategy leastrecent, ringinuse=no, autofill).

Members are dynamic (QueueAdd); a member is offered a call only when not paused, not being
rung, and its device is NOT_INUSE. The queue's device states (``Queue:hotline``,
``Queue:hotline_avail``, ``Queue:hotline_pause_<iface>``) change as in the transcripts.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cti.testing.bridging import create_callee, hold_bridge, ring, wait_any
from cti.testing.model import DEVICE_STATE_NUM, RINGING, UP, Channel, Fields, dial_fields

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

_added = itertools.count()


@dataclass(eq=False, slots=True)
class Member:
    interface: str
    name: str
    state_interface: str
    login_time: int
    paused: bool = False
    reason: str = ""
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    in_call: bool = False
    ringing_for: QueueCaller | None = None
    order: int = field(default_factory=lambda: next(_added))


@dataclass(eq=False, slots=True)
class QueueCaller:
    channel: Channel
    joined: float
    original_position: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    member: Member | None = None


class QueueModel:
    def __init__(self, sim: AsteriskSimulator, name: str) -> None:
        self.sim = sim
        self.name = name
        self.members: dict[str, Member] = {}
        self._by_device: dict[str, list[Member]] | None = None  # see device_changed
        self.callers: list[QueueCaller] = []
        self.completed = 0
        self.abandoned = 0
        self.completed_in_sl = 0
        self.holdtime = 0
        self.talktime = 0
        sim.devices[f"Queue:{name}"] = "NOT_INUSE"
        sim.devices[f"Queue:{name}_avail"] = "INUSE"

    def reset(self) -> None:
        self.members.clear()
        self._by_device = None
        self.callers.clear()

    # -- fields --------------------------------------------------------------------------

    def status(self, member: Member) -> int:
        state = self.sim.devices.get(member.state_interface, "UNAVAILABLE")
        return DEVICE_STATE_NUM.get(state, 0)

    def member_fields(self, m: Member) -> Fields:
        return [
            ("Queue", self.name),
            ("MemberName", m.name),
            ("Interface", m.interface),
            ("StateInterface", m.state_interface),
            ("Membership", "dynamic"),
            ("Penalty", str(m.penalty)),
            ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)),
            ("LastPause", str(m.last_pause)),
            ("LoginTime", str(m.login_time)),
            ("InCall", str(int(m.in_call))),
            ("Status", str(self.status(m))),
            ("Paused", str(int(m.paused))),
            ("PausedReason", m.reason),
            ("Ringinuse", "0"),
            ("Wrapuptime", "0"),
        ]

    def status_member_fields(self, m: Member, action_id: Fields) -> Fields:
        f = dict(self.member_fields(m))
        return [
            ("Queue", self.name),
            ("Name", m.name),
            ("Location", m.interface),
            *[(k, f[k]) for k in ("StateInterface", "Membership", "Penalty", "CallsTaken")],
            *[(k, f[k]) for k in ("LastCall", "LastPause", "LoginTime", "InCall", "Status")],
            *[(k, f[k]) for k in ("Paused", "PausedReason", "Wrapuptime")],
            *action_id,
        ]

    def params_fields(self, action_id: Fields) -> Fields:
        perf = 100.0 * self.completed_in_sl / self.completed if self.completed else 0.0
        total = self.completed + self.abandoned
        perf2 = 100.0 * self.completed_in_sl / total if total else 0.0
        return [
            ("Queue", self.name),
            ("Max", "0"),
            ("Strategy", "leastrecent"),
            ("Calls", str(len(self.callers))),
            ("Holdtime", str(self.holdtime)),
            ("TalkTime", str(self.talktime)),
            ("Completed", str(self.completed)),
            ("Abandoned", str(self.abandoned)),
            ("ServiceLevel", "0"),
            ("ServicelevelPerf", f"{perf:.1f}"),
            ("ServicelevelPerf2", f"{perf2:.1f}"),
            ("Weight", "0"),
            *action_id,
        ]

    def entry_fields(self, position: int, qc: QueueCaller, action_id: Fields) -> Fields:
        ch = qc.channel
        return [
            ("Queue", self.name),
            ("Position", str(position)),
            ("Channel", ch.name),
            ("Uniqueid", ch.uniqueid),
            ("CallerIDNum", ch.cid_num),
            ("CallerIDName", ch.cid_name),
            ("ConnectedLineNum", ch.connected_num),
            ("ConnectedLineName", ch.connected_name),
            ("Wait", str(int(self.sim.now() - qc.joined))),
            ("Priority", "0"),
            *action_id,
        ]

    def summary_fields(self, action_id: Fields) -> Fields:
        logged_in = len(self.members)
        available = sum(1 for m in self.members.values() if self._available(m))
        longest = max((int(self.sim.now() - c.joined) for c in self.callers), default=0)
        return [
            ("Queue", self.name),
            ("LoggedIn", str(logged_in)),
            ("Available", str(available)),
            ("Callers", str(len(self.callers))),
            ("HoldTime", str(self.holdtime)),
            ("TalkTime", str(self.talktime)),
            ("LongestHoldTime", str(longest)),
            *action_id,
        ]

    # -- membership ----------------------------------------------------------------------

    def add_member(
        self, interface: str, name: str, state_interface: str, paused: bool, reason: str
    ) -> bool:
        if interface in self.members:
            return False
        member = Member(
            interface, name or interface, state_interface or interface, int(time.time())
        )
        member.paused, member.reason = paused, reason if paused else ""
        if paused:
            member.last_pause = member.login_time
        self.members[interface] = member
        self._by_device = None
        self.sim.set_device(self._pause_device(member), "INUSE" if paused else "NOT_INUSE")
        self.sim.emit("QueueMemberAdded", "agent,all", self.member_fields(member))
        self._update_avail()
        self.kick()
        return True

    def remove_member(self, interface: str) -> bool:
        member = self.members.pop(interface, None)
        if member is None:
            return False
        self._by_device = None
        self.sim.emit("QueueMemberRemoved", "agent,all", self.member_fields(member))
        self._update_avail()
        return True

    def pause(self, interface: str, paused: bool, reason: str) -> bool:
        member = self.members.get(interface)
        if member is None:
            return False
        member.paused = paused
        member.reason = reason if paused else ""
        if paused:
            member.last_pause = int(time.time())
        self.sim.set_device(self._pause_device(member), "INUSE" if paused else "NOT_INUSE")
        self.sim.emit("QueueMemberPause", "agent,all", self.member_fields(member))
        self._update_avail()
        self.kick()
        return True

    def device_changed(self, device: str) -> None:
        # Members by state interface, rebuilt when the membership changed (a device change
        # is far more frequent than a QueueAdd, and a floor has thousands of members).
        if self._by_device is None:
            self._by_device = {}
            for m in self.members.values():
                self._by_device.setdefault(m.state_interface, []).append(m)
        touched = False
        for member in self._by_device.get(device, ()):
            self.sim.emit("QueueMemberStatus", "agent,all", self.member_fields(member))
            touched = True
        if touched:
            self._update_avail()
            self.kick()

    def _pause_device(self, member: Member) -> str:
        return f"Queue:{self.name}_pause_{member.interface}"

    def _available(self, member: Member) -> bool:
        # ringinuse=no: a member whose phone is busy or ringing is skipped.
        state = self.sim.devices.get(member.state_interface, "UNAVAILABLE")
        return not member.paused and member.ringing_for is None and state == "NOT_INUSE"

    def _update_avail(self) -> None:
        free = any(self._available(m) for m in self.members.values())
        self.sim.set_device(f"Queue:{self.name}_avail", "NOT_INUSE" if free else "INUSE")

    def kick(self) -> None:
        """Offer free members to waiting callers, oldest caller first (autofill)."""
        for qc in self.callers:
            if qc.member is not None:
                continue
            free = [m for m in self.members.values() if self._available(m)]
            if not free:
                return
            # leastrecent; among equals the member added last is rung first, as in peak_load.
            member = min(free, key=lambda m: (m.last_call, -m.order))
            member.ringing_for = qc
            qc.member = member
            qc.wake.set()

    # -- the Queue() application ---------------------------------------------------------

    async def queue_app(self, ch: Channel) -> str:
        sim = self.sim
        qc = QueueCaller(ch, sim.now(), len(self.callers) + 1)
        ch.in_queue = True
        self.callers.append(qc)
        sim.set_device(f"Queue:{self.name}", "RINGING")
        sim.channel_event(
            "QueueCallerJoin",
            ch,
            [
                ("Queue", self.name),
                ("Position", str(len(self.callers))),
                ("Count", str(len(self.callers))),
            ],
            "agent,all",
        )
        deadline = qc.joined + sim.config.queue_timeout_s
        try:
            while True:
                self.kick()
                if qc.member is None:
                    qc.wake.clear()
                    remaining = (deadline - sim.now()) * sim.config.scale
                    await wait_any(qc.wake, ch.hangup_requested, timeout=max(0.0, remaining))
                if ch.hangup_requested.is_set():
                    self._abandon(qc)
                    return "ABANDON"
                if qc.member is None:
                    if sim.now() >= deadline:
                        self._leave(qc)
                        return "TIMEOUT"
                    continue
                outcome = await self._ring_member(qc, qc.member)
                if outcome in ("CONNECTED", "ABANDON"):
                    return outcome
                await wait_any(
                    ch.hangup_requested, timeout=sim.config.member_retry_s * sim.config.scale
                )
        except asyncio.CancelledError:
            # Redirected out of the queue (or the simulator stops).
            if qc in self.callers:
                self._leave(qc)
            if qc.member is not None:
                qc.member.ringing_for = None
            raise
        finally:
            ch.in_queue = False

    def _leave(self, qc: QueueCaller) -> None:
        position = self.callers.index(qc) + 1
        self.callers.remove(qc)
        if not self.callers:
            self.sim.set_device(f"Queue:{self.name}", "NOT_INUSE")
        self.sim.channel_event(
            "QueueCallerLeave",
            qc.channel,
            [("Queue", self.name), ("Position", str(position)), ("Count", str(len(self.callers)))],
            "agent,all",
        )

    def _abandon(self, qc: QueueCaller) -> None:
        sim = self.sim
        position = self.callers.index(qc) + 1
        sim.channel_event(
            "QueueCallerAbandon",
            qc.channel,
            [
                ("Queue", self.name),
                ("Position", str(position)),
                ("OriginalPosition", str(qc.original_position)),
                ("HoldTime", str(round(sim.now() - qc.joined))),
            ],
            "agent,all",
        )
        self.abandoned += 1
        self._leave(qc)
        sim.soft_hangup(qc.channel)
        # app_queue leaves no cause on an abandoned caller: Hangup says Cause 0.
        sim.destroy(qc.channel, 0)

    async def _ring_member(self, qc: QueueCaller, member: Member) -> str:
        sim, ch = self.sim, qc.channel
        callee = create_callee(sim, ch, member.interface, ch.linkedid)
        callee.exten, callee.connected_num, callee.connected_name = (
            ch.exten,
            ch.cid_num,
            ch.cid_name,
        )
        queue_fields = [
            ("Queue", self.name),
            ("Interface", member.interface),
            ("MemberName", member.name),
        ]
        sim.emit("AgentCalled", "agent,all", [*dial_fields(ch, callee), *queue_fields])
        dialstring = member.interface.split("/", 1)[-1]
        sim.emit("DialBegin", "call,all", [*dial_fields(ch, callee), ("DialString", dialstring)])
        sim.connected_line(ch, callee.cid_num, callee.cid_name)
        sim.set_state(callee, RINGING, device=False)
        sim.channel_event("NewConnectedLine", callee)
        sim.update_device(callee.device)
        sim.emit("DialState", "call,all", [*dial_fields(ch, callee), ("DialStatus", "RINGING")])
        rang_at = sim.now()
        status = await ring(sim, callee, sim.config.member_timeout_s, ch.hangup_requested)
        if status != "ANSWER":
            if status == "NOANSWER":
                sim.emit(
                    "AgentRingNoAnswer",
                    "agent,all",
                    [
                        *dial_fields(ch, callee),
                        *queue_fields,
                        ("RingTime", str(int(sim.now() - rang_at))),
                    ],
                )
            sim.emit("DialEnd", "call,all", [*dial_fields(ch, callee), ("DialStatus", status)])
            member.ringing_for = None
            qc.member = None
            sim.destroy(callee, {"BUSY": 17, "NOANSWER": 19}.get(status, 16))
            if status == "CANCEL":
                self._abandon(qc)
                return "ABANDON"
            return status
        callee.features = "T"
        ch.features = "t"
        sim.set_state(callee, UP)
        sim.emit("DialEnd", "call,all", [*dial_fields(ch, callee), ("DialStatus", "ANSWER")])
        member.ringing_for = None
        hold = round(sim.now() - qc.joined)
        self._leave(qc)
        sim.emit(
            "AgentConnect",
            "agent,all",
            [
                *dial_fields(ch, callee),
                *queue_fields,
                ("HoldTime", str(hold)),
                ("RingTime", str(int(sim.now() - rang_at))),
            ],
        )
        self.completed += 1
        self.completed_in_sl += int(hold <= 0)
        self.holdtime = (self.holdtime * 3 + hold) // 4
        bridge = sim.bridge_create()
        sim.bridge_enter(bridge, callee)
        sim.bridge_enter(bridge, ch)
        sim.mark_connected(ch, callee)
        connected_at = sim.now()

        def complete(reason: str) -> None:
            talk = round(sim.now() - connected_at)
            member.calls_taken += 1
            member.last_call = int(time.time())
            self.talktime = (self.talktime * 3 + talk) // 4
            sim.emit(
                "AgentComplete",
                "agent,all",
                [
                    *dial_fields(ch, callee),
                    *queue_fields,
                    ("HoldTime", str(hold)),
                    ("TalkTime", str(talk)),
                    ("Reason", reason),
                ],
            )

        await hold_bridge(
            sim,
            ch,
            on_caller_hangup=lambda: complete("caller"),
            on_peer_hangup=lambda _peer: complete("agent"),
            callee_first=True,
        )
        return "CONNECTED"
