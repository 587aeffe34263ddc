"""What the CTI writes to the database, and when: the subscriptions of the store, in one place.

Every write goes through ``Store`` (off the event loop, buffered across outages) and is
idempotent (upserts keyed by node + Linkedid), because the same fact can be seen twice: once
live, once again in the resync after a reconnect. The frequent ones (a call's snapshots, an
agent's state, a seat's phone) are row values of the kinds below, which the store batches into
one statement each; only a missed call's callback task is an ORM write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from cti.agents.board import restored_as
from cti.bus import Bus
from cti.calls.model import Call
from cti.calls.tracker import CallTracker
from cti.events import (
    AgentStateChanged,
    CallbackTaskChanged,
    CallStarted,
    RecordingStopped,
    SeatStatusChanged,
)
from cti.models import AgentRow, AgentStateLogRow, CallbackTaskRow, CallLegRow, CallRow, SeatRow
from cti.rows import RowKind, Values
from cti.seats.registry import SeatRegistry
from cti.store import Store

log = logging.getLogger(__name__)

# The ticket task is the authority on which ticket a call has (a call seen again after a
# reconnect keeps its first one): later snapshots only fill an empty field.
CALL = RowKind(
    "call",
    CallRow.__table__,  # type: ignore[arg-type]
    "upsert",
    key=("node", "linkedid"),
    insert_only=("started_at",),
    fill_empty=("ticket_id",),
)
LEG = RowKind("call leg", CallLegRow.__table__, "insert_ignore", key=("node", "uniqueid"))  # type: ignore[arg-type]
AGENT = RowKind("agent", AgentRow.__table__, "upsert", key=("id",), insert_only=("name",))  # type: ignore[arg-type]
AGENT_LOG = RowKind("agent state", AgentStateLogRow.__table__, "insert")  # type: ignore[arg-type]
SEAT = RowKind("seat", SeatRow.__table__, "update", key=("id",))  # type: ignore[arg-type]
CALLBACKS_DONE = RowKind(
    "callbacks reached",
    CallbackTaskRow.__table__,  # type: ignore[arg-type]
    "update",
    key=("caller",),
    where=CallbackTaskRow.__table__.c.status != "done",
)

# A seat's device state as the seats table records it: whether the phone can be dialled (see
# Persistence.seat_changed); every other state is "up".
_DEVICE_CLASS = {"UNAVAILABLE": "down", "INVALID": "down", "UNKNOWN": "unknown"}
# A round trip that moved less than this (or a quarter) is not written again.
RTT_WRITE_STEP_US = 5_000


def _call_values(call: Call, *, ended: bool = False) -> Values:
    values: Values = {
        "node": call.node,
        "linkedid": call.call_id,
        "started_at": call.started_at,
        "direction": call.direction,
        "channel": call.channel,
        "caller": call.caller,
        "caller_name": call.caller_name[:128],
        "did": call.did,
        "topic": call.topic,
        "skill": call.skill,
        "route_reason": call.route_reason,
        "routed_by": call.routed_by or ("cti" if call.route_reason else ""),
        "priority": call.priority,
        "leader": call.leader,
        "answered_at": call.answered_at,
        "answered": call.answered_at is not None,
        "abandoned": call.abandoned,
        "seat": call.seat,
        "agent_id": call.agent_id,
        "ticket_id": call.ticket_id,
        "recording": call.recording,
        "state": call.state,
        "cause": call.cause[:64],
    }
    if ended:
        talk = 0.0
        if call.answered_at and call.ended_at:
            talk = (call.ended_at - call.answered_at).total_seconds()
        values["ended_at"] = call.ended_at
        values["wait_s"] = round(call.wait_s(call.answered_mono or _now_mono()), 3)
        values["talk_s"] = round(talk, 3)
    return values


class Persistence:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        tracker: CallTracker,
        seats: SeatRegistry,
        *,
        open_ticket: Callable[[Call], None],
        register_recording: Callable[[RecordingStopped, Call | None], None],
    ) -> None:
        self.store = store
        self.tracker = tracker
        self.seats = seats
        self._bus = bus
        self._open_ticket = open_ticket
        self._register_recording = register_recording
        self._ending: dict[tuple[str, str], Call] = {}
        # What the seats table last got of each seat's phone (see seat_changed).
        self._seat_written: dict[str, tuple[object, ...]] = {}
        # What the agents table last got of each agent: (as restored, reason, seat).
        self._agent_written: dict[str, tuple[str, str, str]] = {}
        tracker.on_answered.append(self.call_answered)
        tracker.on_ended.append(self.call_ended)
        bus.subscribe(CallStarted, self._started)
        bus.subscribe(AgentStateChanged, self.agent_changed)
        bus.subscribe(SeatStatusChanged, self.seat_changed)
        bus.subscribe(RecordingStopped, self.recording_stopped)

    def _started(self, ev: CallStarted) -> None:
        call = self.tracker.find_call(ev.call_id, ev.node)
        if call is not None:
            self.call_started(call)

    def call_started(self, call: Call) -> None:
        self.store.submit_row(CALL, _call_values(call), f"call-start {call.call_id}")

    def call_answered(self, call: Call) -> None:
        self.store.submit_row(CALL, _call_values(call), f"call-answered {call.call_id}")
        if call.direction == "callback":
            self._callbacks_done(call)
        if call.direction == "inbound":
            self._open_ticket(call)

    def call_ended(self, call: Call) -> None:
        self.store.submit_row(CALL, _call_values(call, ended=True), f"call-end {call.call_id}")
        for uid in list(call.legs):
            ch = self.tracker.channels.get((call.node, uid))
            if ch is None:
                continue
            leg = {
                "node": call.node,
                "uniqueid": ch.uniqueid,
                "linkedid": call.call_id,
                "channel": ch.name,
                "endpoint": ch.endpoint,
                "created_at": call.started_at,
                "ended_at": call.ended_at,
            }
            self.store.submit_row(LEG, leg)
        if call.direction != "inbound":
            return
        if call.answered_at is not None:
            self._callbacks_done(call)
        elif call.caller:
            snapshot = call.snapshot()
            self.store.submit(lambda session: _missed(session, snapshot), f"missed {call.call_id}")
            self._bus.publish(
                CallbackTaskChanged(
                    task_id=0,
                    caller=call.caller,
                    status="open",
                    at=call.ended_at or call.started_at,
                )
            )

    def _callbacks_done(self, call: Call) -> None:
        """The caller was reached: their open callback tasks are done."""
        if not call.caller:
            return
        values = {
            "caller": call.caller,
            "status": "done",
            "closed_at": call.answered_at,
            "closed_by": call.agent_id or "reached",
        }
        self.store.submit_row(CALLBACKS_DONE, values)

    def agent_changed(self, ev: AgentStateChanged) -> None:
        """Every change goes to the state log (the reports read it). The agents row is what
        a CTI that starts or takes over restores (``Hotline._restore_agents``): logged out,
        not ready with a reason, or logged in at a seat and ready, whether they were ready,
        rung, on a call or in wrap-up. So it is written when that changes, not at each of
        the four changes of every call."""
        restored = restored_as(ev.new)
        key = (restored, ev.reason if restored == "not_ready" else "", ev.seat)
        if self._agent_written.get(ev.agent_id) != key:
            self._agent_written[ev.agent_id] = key
            agent = {
                "id": ev.agent_id,
                "name": ev.agent_id,
                "state": ev.new,
                "reason": ev.reason,
                "seat": ev.seat,
                "state_since": ev.at,
            }
            self.store.submit_row(AGENT, agent, f"agent {ev.agent_id}")
        entry = {
            "agent_id": ev.agent_id,
            "seat": ev.seat,
            "old": ev.old,
            "new": ev.new,
            "reason": ev.reason,
            "at": ev.at,
        }
        self.store.submit_row(AGENT_LOG, entry)

    def seat_changed(self, ev: SeatStatusChanged) -> None:
        """The seats table keeps each seat's phone: registered where, reachable or not since
        when, its round trip. A phone's device state also follows each of its calls
        (ringing, in use, free: three changes a call, more than any other row); those are in
        the calls and agents tables already, so a change of only that, or a small change of
        the round trip, is not written."""
        seat = self.seats.get(ev.seat)
        if seat is None:
            return
        facts = (
            seat.contact,
            _DEVICE_CLASS.get(seat.device, "up"),
            seat.user_agent,
            seat.uri,
            seat.unreachable_since,
        )
        written = self._seat_written.get(seat.id)
        if written is not None and written[:-1] == facts:
            last_rtt = written[-1]
            assert isinstance(last_rtt, int)
            if abs(seat.rtt_us - last_rtt) <= max(RTT_WRITE_STEP_US, last_rtt // 4):
                return
        self._seat_written[seat.id] = (*facts, seat.rtt_us)
        values: Values = {
            "id": seat.id,
            "contact": seat.contact,
            "device": seat.device,
            "rtt_us": seat.rtt_us,
            "user_agent": seat.user_agent[:128],
            "address": seat.uri[:64],
            "unreachable_since": seat.unreachable_since,
            "updated_at": ev.at,
        }
        self.store.submit_row(SEAT, values, f"seat {seat.id}")

    def recording_stopped(self, ev: RecordingStopped) -> None:
        call = self.tracker.find_call(ev.call_id, ev.node)
        self._register_recording(ev, call)


def _missed(session: Session, call: Call) -> None:
    """An unanswered inbound call: one open callback task per caller, ordered by the first
    call; later missed calls of the same caller are counted on it (in the database, so that
    a count is never lost to another writer)."""
    at = call.ended_at or call.started_at
    counted = session.execute(
        update(CallbackTaskRow)
        .where(CallbackTaskRow.caller == call.caller, CallbackTaskRow.status != "done")
        .values(missed_calls=CallbackTaskRow.missed_calls + 1, last_call_at=at)
    )
    if counted.rowcount:  # type: ignore[attr-defined]
        return
    session.add(
        CallbackTaskRow(
            caller=call.caller,
            caller_name=call.caller_name[:128],
            did=call.did,
            topic=call.topic,
            first_call_at=call.started_at,
            last_call_at=at,
            missed_calls=1,
        )
    )


def _now_mono() -> float:
    import time

    return time.monotonic()
