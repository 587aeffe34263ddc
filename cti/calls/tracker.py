"""Calls, channels and bridges from AMI events, as the transcripts show them.

A call is tied together by ``Linkedid`` (the Uniqueid of its first channel); each leg is a
channel keyed by ``Uniqueid``. The citizen's trunk channel in the inbound context starts an
inbound call; a seat channel whose Linkedid is its own Uniqueid starts an outbound one (a
callback Originated from a seat). Answered = the citizen's channel and a seat's channel in
one bridge (direct Dial, the fallback queue and the ACD's deliveries alike).

Several nodes: a seat registered on another node is dialled through the trunk to that node
(``cti.calls.nodes``). The call and its events stay on the caller's node, where the trunk leg
stands for the seat (its DialString names it); the seat's own leg, its ringing and its hangup
are seen on the seat's node, where the trunk's incoming leg starts no call of its own.

The subscriptions of this slice are the keys of ``CallTracker.handlers``: one place.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cti.agents.board import AgentBoard
from cti.bus import Bus
from cti.calls.model import Call, Channel, IllegalTransition, split_channel
from cti.calls.nodes import FROM_NODE_CONTEXT, dialled_seat, is_node_trunk
from cti.events import (
    CallAnswered,
    CallEnded,
    CallQueued,
    CallRinging,
    CallRouted,
    CallStarted,
    CallTransferred,
    RecordingStarted,
    RecordingStopped,
)
from cti.seats.registry import Seat, SeatRegistry

log = logging.getLogger(__name__)

Msg = dict[str, str]
CallHook = Callable[[Call], None]


@dataclass(frozen=True, slots=True)
class RouteInfo:
    target: str
    hold: bool
    skill: str
    topic: str
    reason: str
    priority: int
    ticket_id: str
    recording: str
    leader: bool
    seat: str = ""
    agent_id: str = ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_text(value: str, limit: int) -> str:
    """Caller ids come from the citizen's side: control characters (NUL, CR, LF) are dropped
    and the length bounded before they reach state, tickets or the database."""
    return _CONTROL.sub("", value)[:limit]


class CallTracker:
    def __init__(
        self,
        bus: Bus,
        seats: SeatRegistry,
        agents: AgentBoard,
        now: Callable[[], datetime],
        *,
        inbound_context: str | Callable[[str], str] = "from-citizen",
        topics: Callable[[str], tuple[str, str]] = lambda did: ("", ""),
    ) -> None:
        self._bus = bus
        self._seats = seats
        self._agents = agents
        self._now = now
        self._inbound = (
            inbound_context if callable(inbound_context) else (lambda n: inbound_context)
        )
        self._topics = topics
        self.channels: dict[tuple[str, str], Channel] = {}
        self.by_name: dict[tuple[str, str], Channel] = {}
        self.calls: dict[tuple[str, str], Call] = {}
        # The calls by id alone (the ACD's offers name no node): a scan of every call up for
        # each offer cost the loop a few ms in a surge of thousands of calls.
        self._by_id: dict[str, Call] = {}
        self.bridges: dict[tuple[str, str], set[str]] = {}
        self.conferences: dict[str, tuple[str, str]] = {}  # conference name -> call key
        self._pending_routes: dict[str, RouteInfo] = {}
        self._node_of_uid: dict[str, str] = {}
        # Channels up per PJSIP endpoint: a seat may carry two at once (a fallback queue
        # caller rung while the ACD delivers another, a consultation), and its agent is free
        # only when the last of them hangs up.
        self._legs_of: dict[str, int] = {}
        # Per node, while its CoreShowChannels is on its way (``mark``): the channels known
        # when it was asked for, and those that hung up since.
        self._marks: dict[str, tuple[set[str], set[str]]] = {}
        # hooks for the ACD and the stores (set by the composition root)
        self.on_waiting: list[CallHook] = []
        self.on_answered: list[CallHook] = []
        self.on_ended: list[CallHook] = []
        # (call, seat extension, DialStatus): a seat offered the call did not take it.
        self.on_dial_failed: list[Callable[[Call, str, str], None]] = []
        self.on_recording_unknown: list[CallHook] = []
        self.on_adopted: list[CallHook] = []  # calls found by a resync, not seen starting
        # While a resync reads its list: the hooks of the calls found waiting, run once the
        # whole list is known (``resync``).
        self._held_hooks: list[tuple[CallHook, Call]] | None = None
        self.handlers: dict[str, Callable[[str, Msg], None]] = {
            "Newchannel": self._newchannel,
            "Newstate": self._newstate,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "BridgeDestroy": self._bridge_destroy,
            "Hangup": self._hangup,
            "QueueCallerJoin": self._queue_join,
            "QueueCallerAbandon": self._queue_abandon,
            "AgentConnect": self._agent_connect,
            "MusicOnHoldStart": self._moh_start,
            "MixMonitorStart": self._mixmonitor_start,
            "MixMonitorStop": self._mixmonitor_stop,
            "Hold": self._hold,
            "Unhold": self._unhold,
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            "ConfbridgeJoin": self._conf_join,
            "ContactStatus": seats.on_contact_status,
            "DeviceStateChange": seats.on_device_state,
        }

    # --- entry points -------------------------------------------------------------------

    def handle(self, node: str, msg: Msg) -> None:
        handler = self.handlers.get(msg.get("Event", ""))
        if handler is None:
            return
        try:
            handler(node, msg)
        except (KeyError, ValueError, IllegalTransition) as exc:
            # One odd event must not stop the stream: log it and go on.
            log.warning("AMI %s: cannot apply %s: %r", node, msg.get("Event"), exc)

    def routed(self, uniqueid: str, info: RouteInfo) -> bool:
        """The FastAGI route answered for the channel ``uniqueid``. The AGI connection can
        arrive before the channel's Newchannel event is processed: keep it until then.
        False when the answer came too late to count: the call already went on without it
        (into the fallback queue, to a seat, or away)."""
        call = self._call_of_uniqueid(uniqueid)
        if call is None:
            self._pending_routes[uniqueid] = info
            return True
        # (The caller hears music while it waits for the answer: "waiting" is no sign.)
        if call.state in ("talking", "ended") or call.answered or call.routed_by == "fallback":
            log.warning(
                "route for %s came after the call went on without it (%s); not applied",
                call.call_id,
                call.state,
            )
            return False
        self._apply_route(call, info)
        return True

    def active_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.state != "ended"]

    def find_call(self, call_id: str, node: str | None = None) -> Call | None:
        if node is not None:
            return self.calls.get((node, call_id))
        call = self._by_id.get(call_id)
        if call is not None and self.calls.get(call.key) is call:
            return call
        for (_node, cid), call in self.calls.items():
            if cid == call_id:
                return call
        return None

    def _forget(self, call: Call) -> None:
        if self._by_id.get(call.call_id) is call:
            del self._by_id[call.call_id]

    def call_of_seat(self, extension: str) -> Call | None:
        for call in self.calls.values():
            if call.state != "ended" and (call.seat == extension or call.offered_seat == extension):
                return call
        return None

    def seat_channel(self, call: Call, extension: str | None = None) -> Channel | None:
        ext = extension or call.seat
        for uid in call.legs:
            ch = self.channels.get((call.node, uid))
            if ch is not None and ch.endpoint == ext and ch.tech == "PJSIP":
                return ch
        return None

    def node_of_uniqueid(self, uniqueid: str) -> str:
        """The node of a channel seen on one of the AMI links, or ""."""
        return self._node_of_uid.get(uniqueid, "")

    def citizen_channel(self, call: Call) -> Channel | None:
        return self.channels.get((call.node, call.uniqueid))

    # --- resync ---------------------------------------------------------------------------

    def mark(self, node: str) -> None:
        """Call before asking ``node`` for CoreShowChannels. Live events go on meanwhile:
        a channel that begins after the list was taken is not in it and is not gone, and one
        that hangs up after it is in it and is not to be adopted again."""
        known = {uid for n, uid in self.channels if n == node}
        self._marks[node] = (known, set())

    def resync(self, node: str, items: list[Msg]) -> tuple[int, int]:
        """Reconcile with CoreShowChannels after a (re)connect: channels Asterisk no longer
        has ended while we were away (their calls end now); channels we did not know are
        added (calls answered while the CTI was down or disconnected). Returns
        (calls ended, calls adopted)."""
        present = {m.get("Uniqueid", ""): m for m in items}
        known, gone = self._marks.pop(node, (None, set()))
        ended = 0
        for (n, uid), ch in list(self.channels.items()):
            if n == node and uid not in present and (known is None or uid in known):
                self._hangup(
                    node,
                    {
                        "Uniqueid": uid,
                        "Channel": ch.name,
                        "Cause": "0",
                        "Cause-txt": "gone after reconnect",
                    },
                )
        for call in list(self.calls.values()):
            if call.node == node and call.state == "ended":
                ended += 1
        adopted = 0
        # The calls found waiting are offered to seats only once the whole list is read: a
        # seat's own channel (talking, or rung by the fallback queue) comes after the citizen
        # legs, and until then its agent, restored as ready by a CTI taking over, looks free.
        self._held_hooks = []
        try:
            adopted = self._adopt(node, items, gone)
        finally:
            held, self._held_hooks = self._held_hooks, None
        for hook, call in held:
            hook(call)
        # Drop ended calls of this node from memory: they were persisted when they ended.
        for key in [k for k, c in self.calls.items() if c.node == node and c.state == "ended"]:
            self._forget(self.calls.pop(key))
        return ended, adopted

    def _adopt(self, node: str, items: list[Msg], gone: set[str]) -> int:
        adopted = 0
        # Newchannel-equivalents first (citizen legs, whose Uniqueid == Linkedid), then the rest.
        ordered = sorted(items, key=lambda m: m.get("Uniqueid") != m.get("Linkedid"))
        listed = {m.get("Uniqueid", ""): m for m in items}
        for m in ordered:
            uid = m.get("Uniqueid", "")
            if (node, uid) in self.channels or uid in gone:
                continue
            before = len(self.calls)
            self._newchannel(node, m, resync=True)
            adopted += len(self.calls) - before
            found = self.channels.get((node, uid))
            if found is None:
                continue
            seat = self._seats.get(found.endpoint) if found.tech == "PJSIP" else None
            if found.state == "Ringing" and seat is not None:
                # Rung while nobody watched (by the fallback queue): as its Newstate would
                # have, so that the seat is offered nothing else meanwhile.
                self._agents.ringing(found.endpoint)
            if found.tech == "PJSIP" and is_node_trunk(found.endpoint) and not found.via_seat:
                # A leg to a seat of another node: which seat, its caller's Dial says
                # ("PJSIP/8002@node-b,20,tT"), as the DialBegin would have.
                dialler = listed.get(found.linkedid, {})
                if dialler.get("Application") == "Dial":
                    target = dialler.get("ApplicationData", "").split(",", 1)[0]
                    found.via_seat = dialled_seat(target.partition("/")[2])
            bridge = m.get("BridgeId", "")
            if seat is not None and bridge and self._over_trunk(node, found):
                # Talking with a caller of another node, who is that node's call: the seat
                # is busy all the same.
                self._agents.answered(found.endpoint)
            if bridge:
                self._bridge_enter(
                    node,
                    {
                        "BridgeUniqueid": bridge,
                        "Uniqueid": uid,
                        "Channel": found.name,
                        "Linkedid": found.linkedid,
                    },
                )
        return adopted

    # --- channel lifecycle -------------------------------------------------------------

    def _newchannel(self, node: str, m: Msg, resync: bool = False) -> None:
        uid = m["Uniqueid"]
        name = m["Channel"]
        tech, endpoint = split_channel(name)
        linkedid = m.get("Linkedid", uid)
        ch = Channel(
            node=node,
            uniqueid=uid,
            linkedid=linkedid,
            name=name,
            endpoint=endpoint,
            tech=tech,
            state=m.get("ChannelStateDesc", ""),
            caller=clean_text(m.get("CallerIDNum", ""), 32),
            caller_name=clean_text(m.get("CallerIDName", ""), 64),
            context=m.get("Context", ""),
            exten=m.get("Exten", ""),
            created_at=self._now(),
        )
        if tech == "PJSIP" and (node, uid) not in self.channels:
            self._legs_of[endpoint] = self._legs_of.get(endpoint, 0) + 1
        self.channels[(node, uid)] = ch
        self.by_name[(node, name)] = ch
        self._node_of_uid[uid] = node
        call = self.calls.get((node, linkedid))
        if call is not None:
            call.legs.add(uid)
            return
        if uid != linkedid:
            return  # a leg of a call we do not track (internal, or started before us)
        seat = self._seats.get(endpoint) if tech == "PJSIP" else None
        inbound = ch.context == self._inbound(node)
        # After a reconnect a citizen's channel may sit anywhere in the dialplan (on hold in
        # [cti-hold], in the queue): the first leg of a call on a non-seat PJSIP endpoint is
        # the citizen's, whatever its context now.
        adopted = resync and not inbound and tech == "PJSIP" and seat is None
        if is_node_trunk(endpoint) or ch.context == FROM_NODE_CONTEXT:
            return  # another node's call for a seat here: that node tracks it
        if (inbound or adopted) and seat is None:
            did = m.get("Exten", "") if inbound else ""
            topic, skill = self._topics(did)
            call = Call(
                node=node,
                call_id=linkedid,
                direction="inbound",
                channel=name,
                uniqueid=uid,
                caller=ch.caller,
                caller_name=ch.caller_name,
                did=did,
                started_at=ch.created_at,
                started_mono=time.monotonic(),
                topic=topic,
                skill=skill,
            )
        elif seat is not None and seat.kind == "seat":
            # A seat leg that starts its own call: an Originate from the seat (回访). Windows
            # and supervisors are Originated into conferences and ChanSpy: not calls.
            call = Call(
                node=node,
                call_id=linkedid,
                direction="callback",
                channel=name,
                uniqueid=uid,
                caller="",
                caller_name="",
                did="",
                started_at=ch.created_at,
                started_mono=time.monotonic(),
                seat=endpoint,
            )
        else:
            return
        call.legs.add(uid)
        if resync:
            call.routed_by = "resync"
        self.calls[(node, linkedid)] = call
        self._by_id[linkedid] = call
        self._bus.publish(
            CallStarted(
                node=node,
                call_id=linkedid,
                channel=name,
                caller=call.caller,
                caller_name=call.caller_name,
                did=call.did,
                at=ch.created_at,
            )
        )
        pending = self._pending_routes.pop(uid, None)
        if pending is not None:
            self._apply_route(call, pending)
        if resync and m.get("ChannelStateDesc") == "Up" and call.direction == "inbound":
            if m.get("BridgeId"):
                call.set_state("waiting")  # the bridge that follows makes it "talking"
                call.waiting_since = time.monotonic()
            else:
                # On hold or in the queue: the ACD must hear of it to move it.
                self._enter_waiting(call, m.get("Context", ""), 0)
            for hook in self.on_adopted:
                self._run_hook(hook, call)

    def _newstate(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        if ch is None:
            return
        ch.state = m.get("ChannelStateDesc", ch.state)
        if ch.tech == "PJSIP" and self._seats.get(ch.endpoint) is not None:
            call = self.calls.get((node, ch.linkedid)) or self._remote_call(node, ch)
            if ch.state == "Ringing":
                self._agents.ringing(ch.endpoint)
                if call is not None and call.direction == "inbound" and call.state != "ended":
                    call.offered_seat = ch.endpoint
                    if call.state != "talking":
                        call.set_state("ringing")
                    self._bus.publish(
                        CallRinging(
                            node=call.node, call_id=call.call_id, seat=ch.endpoint, at=self._now()
                        )
                    )
            elif ch.state == "Up" and call is not None and call.direction == "callback":
                self._agents.answered(ch.endpoint)

    def _over_trunk(self, node: str, ch: Channel) -> bool:
        """Whether ``ch`` is a leg of a call that came in from another node ([from-node])."""
        first = self.channels.get((node, ch.linkedid))
        return first is not None and first.context == FROM_NODE_CONTEXT

    def _remote_call(self, node: str, ch: Channel) -> Call | None:
        """The call of another node that this seat leg (dialled from [from-node]) is for: the
        one offered the seat (the ACD offers a seat one call at a time)."""
        first = self.channels.get((node, ch.linkedid))
        if first is None or first.context != FROM_NODE_CONTEXT:
            return None
        call = self.call_of_seat(ch.endpoint)
        return call if call is not None and call.node != node else None

    def _hangup(self, node: str, m: Msg) -> None:
        uid = m["Uniqueid"]
        ch = self.channels.pop((node, uid), None)
        if ch is None:
            return
        if node in self._marks:
            self._marks[node][1].add(uid)
        self.by_name.pop((node, ch.name), None)
        self._node_of_uid.pop(uid, None)
        if ch.bridge:
            members = self.bridges.get((node, ch.bridge))
            if members is not None:
                members.discard(uid)
        seat = None
        if ch.tech == "PJSIP":
            left = self._legs_of.pop(ch.endpoint, 1) - 1
            if left:
                self._legs_of[ch.endpoint] = left
            else:
                seat = self._seats.get(ch.endpoint)
        if seat is not None:
            self._agents.hung_up(ch.endpoint)
        call = self.calls.get((node, ch.linkedid))
        if call is None:
            return
        call.legs.discard(uid)
        if uid == call.uniqueid or (call.direction == "callback" and not call.legs):
            self._end_call(call, ch, m.get("Cause-txt", m.get("Cause", "")))

    def _end_call(self, call: Call, ch: Channel, cause: str) -> None:
        if call.state == "ended":
            return
        now = self._now()
        was_waiting = call.state in ("new", "routed", "waiting", "ringing")
        call.set_state("ended")
        call.ended_at = now
        call.cause = cause
        if call.direction == "inbound" and not call.answered and was_waiting:
            call.abandoned = True
        if ch.recording or call.recording:
            self._bus.publish(
                RecordingStopped(
                    node=call.node,
                    call_id=call.call_id,
                    path=call.recording,
                    ticket_id=call.ticket_id,
                    at=now,
                )
            )
        mono = time.monotonic()
        talk = (mono - call.answered_mono) if call.answered_mono is not None else 0.0
        self._bus.publish(
            CallEnded(
                node=call.node,
                call_id=call.call_id,
                caller=call.caller,
                did=call.did,
                answered=call.answered,
                abandoned=call.abandoned,
                seat=call.seat,
                agent_id=call.agent_id,
                wait_s=round(call.wait_s(mono), 3),
                talk_s=round(talk, 3),
                cause=cause,
                at=now,
            )
        )
        for hook in self.on_ended:
            hook(call)
        del self.calls[call.key]
        self._forget(call)
        if call.conference:
            self.conferences.pop(call.conference, None)

    # --- routing, waiting, ringing ---------------------------------------------------------

    def _apply_route(self, call: Call, info: RouteInfo) -> None:
        call.topic = info.topic or call.topic
        call.skill = info.skill or call.skill
        call.priority = info.priority
        call.route_reason = info.reason
        call.routed_by = "cti"
        call.route_kept = bool(info.target) or info.hold
        call.leader = info.leader
        call.ticket_id = info.ticket_id
        call.recording = info.recording
        if info.seat:
            call.offered_seat = info.seat
            call.agent_id = info.agent_id
            call.delivering = bool(info.target)
        if call.state == "new":
            call.set_state("routed")
        self._bus.publish(
            CallRouted(
                node=call.node,
                call_id=call.call_id,
                target=info.target,
                skill=call.skill,
                topic=call.topic,
                reason=info.reason,
                priority=info.priority,
                ticket_id=info.ticket_id,
                recording=info.recording,
                leader=info.leader,
                at=self._now(),
            )
        )

    def _enter_waiting(self, call: Call, queue: str, position: int) -> None:
        if call.state in ("waiting", "talking", "ended"):
            return
        call.set_state("waiting")
        call.queue = queue
        call.offered_seat = ""
        call.waiting_since = time.monotonic()
        self._bus.publish(
            CallQueued(
                node=call.node, call_id=call.call_id, queue=queue, position=position, at=self._now()
            )
        )
        for hook in self.on_waiting:
            self._run_hook(hook, call)

    def _run_hook(self, hook: CallHook, call: Call) -> None:
        if self._held_hooks is not None:
            self._held_hooks.append((hook, call))
        else:
            hook(call)

    def _moh_start(self, node: str, m: Msg) -> None:
        call = self._call_of_uniqueid(m.get("Uniqueid", ""), node)
        if call is not None and call.uniqueid == m.get("Uniqueid") and call.direction == "inbound":
            self._trunk_refused(call)
            self._enter_waiting(call, "cti-hold", 0)

    def _trunk_refused(self, call: Call) -> None:
        """Back on hold while offered a seat of another node, with no Dial seen: chan_pjsip
        made no channel, because the trunk to that node has no usable contact (its qualify
        fails; Dial ends CHANUNAVAIL without DialBegin). A failed Dial that had a channel
        ended with DialEnd, which cleared the offer."""
        delivering, call.delivering = call.delivering, False
        seat = self._seats.get(call.offered_seat) if call.offered_seat else None
        if not delivering or seat is None or not seat.node or seat.node == call.node:
            return
        if call.state not in ("routed", "waiting"):
            return
        call.offered_seat = ""
        log.warning(
            "AMI %s: no channel through the trunk to node %s for seat %s (CHANUNAVAIL)",
            call.node,
            seat.node,
            seat.extension,
        )
        for hook in self.on_dial_failed:
            hook(call, seat.extension, "CHANUNAVAIL")

    def _queue_join(self, node: str, m: Msg) -> None:
        call = self.calls.get((node, m.get("Linkedid", "")))
        if call is None:
            return
        if call.routed_by == "" or call.route_kept:
            # Not the CTI's answer (none, or a seat or the hold line, that the caller never
            # reached: the dialplan gave up waiting for it): the fallback queue's call now.
            call.routed_by = "fallback"
            call.route_kept = False
            call.offered_seat = ""
        position = int(m.get("Position", "0") or 0)
        self._enter_waiting(call, m.get("Queue", ""), position)

    def _queue_abandon(self, node: str, m: Msg) -> None:
        call = self.calls.get((node, m.get("Linkedid", "")))
        if call is not None:
            call.abandoned = True

    def _dial_begin(self, node: str, m: Msg) -> None:
        dest = m.get("DestChannel", "")
        call = self.calls.get((node, m.get("Linkedid", ""))) or self.calls.get(
            (node, m.get("DestLinkedid", ""))
        )
        if call is None:
            return
        call.delivering = False  # a Dial happened: its DialEnd tells how it went
        seat = self._seat_of(dest)
        via = dialled_seat(m.get("DialString", ""))
        if via and seat is None:
            # Through the trunk to the seat's node: the trunk leg stands for the seat here.
            leg = self.by_name.get((node, dest))
            if leg is not None:
                leg.via_seat = via
            seat = self._seats.get(via)
        if call.direction == "callback" and seat is None and dest.startswith("PJSIP/"):
            call.caller = m.get("DestExten", "") or m.get("DestCallerIDNum", "")
            return
        if seat is not None and seat.kind == "seat" and call.direction == "inbound":
            call.offered_seat = seat.extension

    def _dial_end(self, node: str, m: Msg) -> None:
        status = m.get("DialStatus", "")
        if status == "ANSWER":
            return
        call = self.calls.get((node, m.get("Linkedid", "")))
        if call is None or call.direction != "inbound":
            return
        dest = m.get("DestChannel", "")
        seat = self._seat_of(dest)
        leg = self.by_name.get((node, dest))
        remote = seat is None and leg is not None and bool(leg.via_seat)
        if remote and leg is not None:
            seat = self._seats.get(leg.via_seat)
        if seat is None:
            return
        endpoint = seat.extension
        if remote and status not in ("NOANSWER", "BUSY"):
            # The trunk could not reach the seat's node (CHANUNAVAIL, CONGESTION): the seat
            # never rang, and its agent did nothing wrong.
            log.warning("AMI %s: the trunk to %s's node failed (%s)", node, endpoint, status)
        elif status in ("NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION") or status == "":
            self._agents.ring_failed(endpoint)
        if call.offered_seat == endpoint:
            call.offered_seat = ""
        for hook in self.on_dial_failed:
            hook(call, endpoint, status)

    # --- bridges ------------------------------------------------------------------------

    def _bridge_enter(self, node: str, m: Msg) -> None:
        uid = m["Uniqueid"]
        bridge = m["BridgeUniqueid"]
        ch = self.channels.get((node, uid))
        if ch is None:
            return
        ch.bridge = bridge
        members = self.bridges.setdefault((node, bridge), set())
        members.add(uid)
        call = self.calls.get((node, ch.linkedid))
        if call is None:
            call = self._call_in_bridge(node, members)
            if call is None:
                return
            call.legs.add(uid)
        if call.direction == "callback":
            if call.answered_at is None and len(members) >= 2:
                self._answer(call, call.seat)
            return
        citizen_in = call.uniqueid in members
        if not citizen_in:
            return
        for other in members:
            if other == call.uniqueid:
                continue
            och = self.channels.get((node, other))
            if och is None or och.tech != "PJSIP":
                continue
            seat = self._seats.get(och.via_seat or och.endpoint)
            if seat is None:
                continue
            if seat.kind == "window":
                call.transfers.append(("window", och.endpoint))
                continue
            if call.answered_at is None or call.seat != seat.extension:
                self._answer(call, seat.extension)
            return

    def _answer(self, call: Call, extension: str) -> None:
        first = call.answered_at is None
        now = self._now()
        mono = time.monotonic()
        if first:
            call.answered_at = now
            call.answered_mono = mono
        call.seat = extension
        call.offered_seat = ""
        agent = self._agents.answered(extension)
        call.agent_id = agent.id if agent is not None else ""
        if first:
            # The route marks a call that waits for a leader on a live shift; when the wait runs
            # out a floor agent takes it, and the ticket says "leader" only if one answered.
            call.leader = agent is not None and agent.leader
        if call.state != "talking":
            call.set_state("talking")
        if not first:
            return
        self._bus.publish(
            CallAnswered(
                node=call.node,
                call_id=call.call_id,
                seat=extension,
                agent_id=call.agent_id,
                caller=call.caller,
                caller_name=call.caller_name,
                did=call.did,
                topic=call.topic,
                wait_s=round(call.wait_s(mono), 3),
                at=now,
            )
        )
        for hook in self.on_answered:
            hook(call)

    def _bridge_leave(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        members = self.bridges.get((node, m["BridgeUniqueid"]))
        if members is not None:
            members.discard(m["Uniqueid"])
        if ch is not None and ch.bridge == m["BridgeUniqueid"]:
            ch.bridge = ""

    def _bridge_destroy(self, node: str, m: Msg) -> None:
        self.bridges.pop((node, m["BridgeUniqueid"]), None)

    def _call_in_bridge(self, node: str, members: set[str]) -> Call | None:
        for uid in members:
            ch = self.channels.get((node, uid))
            if ch is not None:
                call = self.calls.get((node, ch.linkedid))
                if call is not None:
                    return call
        return None

    def _agent_connect(self, node: str, m: Msg) -> None:
        call = self.calls.get((node, m.get("Linkedid", "")))
        seat = self._seat_of(m.get("DestChannel", ""))
        if call is not None and call.answered_at is None and seat is not None:
            self._answer(call, seat.extension)

    # --- recording, hold, transfers, conferences ------------------------------------------

    def _mixmonitor_start(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        if ch is None:
            return
        ch.recording = True
        call = self.calls.get((node, ch.linkedid))
        if call is None:
            return
        self._bus.publish(
            RecordingStarted(node=node, call_id=call.call_id, path=call.recording, at=self._now())
        )
        if not call.recording:
            # Routed without the CTI (fallback): ask Asterisk for the file name.
            for hook in self.on_recording_unknown:
                hook(call)

    def _mixmonitor_stop(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        if ch is not None:
            ch.recording = False

    def _hold(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        if ch is not None:
            ch.held = True

    def _unhold(self, node: str, m: Msg) -> None:
        ch = self.channels.get((node, m["Uniqueid"]))
        if ch is not None:
            ch.held = False

    def _transfer(self, node: str, m: Msg, kind: str, target: str) -> None:
        uid = m.get("TransfereeUniqueid", "")
        call = self._call_of_uniqueid(uid, node) if uid else None
        if call is None:
            ch = self.by_name.get((node, m.get("TransfereeChannel", "")))
            call = self.calls.get((node, ch.linkedid)) if ch is not None else None
        if call is None:
            return
        call.transfers.append((kind, target))
        self._bus.publish(
            CallTransferred(
                node=node,
                call_id=call.call_id,
                kind=kind,
                target=target,
                result=m.get("Result", ""),
                at=self._now(),
            )
        )

    def _blind_transfer(self, node: str, m: Msg) -> None:
        self._transfer(node, m, "blind", m.get("Extension", ""))

    def _attended_transfer(self, node: str, m: Msg) -> None:
        target = m.get("SecondTransfererExten", "") or m.get("TransferTargetChannel", "")
        self._transfer(node, m, "attended", target)

    def _conf_join(self, node: str, m: Msg) -> None:
        conf = m.get("Conference", "")
        key = self.conferences.get(conf)
        call = self.calls.get(key) if key is not None else None
        if call is None:
            call = self.calls.get((node, m.get("Linkedid", "")))
            if call is None:
                return
            self.conferences[conf] = call.key
            call.conference = conf
        uid = m.get("Uniqueid", "")
        call.legs.add(uid)

    def bind_conference(self, call: Call, conference: str) -> None:
        call.conference = conference
        self.conferences[conference] = call.key

    # --- lookups --------------------------------------------------------------------------

    def _seat_of(self, channel: str) -> Seat | None:
        """The seat (or window) behind a PJSIP channel name such as ``PJSIP/8001-0000001a``."""
        tech, endpoint = split_channel(channel)
        return self._seats.get(endpoint) if tech == "PJSIP" else None

    def _call_of_uniqueid(self, uid: str, node: str | None = None) -> Call | None:
        if node is not None:
            ch = self.channels.get((node, uid))
            return self.calls.get((node, ch.linkedid)) if ch is not None else None
        found = self._node_of_uid.get(uid)
        if found is None:
            return None
        ch = self.channels.get((found, uid))
        return self.calls.get((found, ch.linkedid)) if ch is not None else None
