"""What the CTI writes to the database, and when: the subscriptions of the store, in one place.

Every write goes through ``Store`` (off the event loop, buffered across outages) and is
idempotent (upserts keyed by node + Linkedid), because the same fact can be seen twice: once
live, once again in the resync after a reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
from cti.seats.registry import SeatRegistry
from cti.store import Store

log = logging.getLogger(__name__)


def _call_row(session: Session, call: Call) -> CallRow:
    row = session.scalar(
        select(CallRow).where(CallRow.node == call.node, CallRow.linkedid == call.call_id)
    )
    if row is None:
        row = CallRow(node=call.node, linkedid=call.call_id, started_at=call.started_at)
        session.add(row)
    return row


def _copy(row: CallRow, call: Call, ended_at: datetime | None = None) -> None:
    row.direction = call.direction
    row.channel = call.channel
    row.caller = call.caller
    row.caller_name = call.caller_name[:128]
    row.did = call.did
    row.topic = call.topic
    row.skill = call.skill
    row.route_reason = call.route_reason
    row.routed_by = call.routed_by or ("cti" if call.route_reason else "")
    row.priority = call.priority
    row.leader = call.leader
    row.answered_at = call.answered_at
    row.answered = call.answered_at is not None
    row.abandoned = call.abandoned
    row.seat = call.seat
    row.agent_id = call.agent_id
    # The ticket task is the authority on which ticket a call has (a call seen again after a
    # reconnect keeps its first one): later snapshots only fill an empty field.
    if call.ticket_id and not row.ticket_id:
        row.ticket_id = call.ticket_id
    row.recording = call.recording
    row.state = call.state
    row.cause = call.cause[:64]
    if ended_at is not None:
        row.ended_at = ended_at


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
        snapshot = _snapshot(call)

        def write(session: Session) -> None:
            _copy(_call_row(session, snapshot), snapshot)

        self.store.submit(write, f"call-start {call.call_id}")

    def call_answered(self, call: Call) -> None:
        snapshot = _snapshot(call)

        def write(session: Session) -> None:
            _copy(_call_row(session, snapshot), snapshot)
            if snapshot.direction == "callback":
                _close_callbacks(session, snapshot.caller, snapshot.agent_id, snapshot.answered_at)

        self.store.submit(write, f"call-answered {call.call_id}")
        if call.direction == "inbound":
            self._open_ticket(call)

    def call_ended(self, call: Call) -> None:
        snapshot = _snapshot(call)
        mono_wait = call.wait_s(call.answered_mono or _now_mono())
        talk = 0.0
        if call.answered_at and call.ended_at:
            talk = (call.ended_at - call.answered_at).total_seconds()
        legs = [
            (ch.uniqueid, ch.name, ch.endpoint)
            for uid in list(call.legs)
            if (ch := self.tracker.channels.get((call.node, uid))) is not None
        ]

        def write(session: Session) -> None:
            row = _call_row(session, snapshot)
            _copy(row, snapshot, ended_at=snapshot.ended_at)
            row.wait_s = round(mono_wait, 3)
            row.talk_s = round(talk, 3)
            for uid, name, endpoint in legs:
                if (
                    session.scalar(
                        select(CallLegRow.id).where(
                            CallLegRow.node == snapshot.node, CallLegRow.uniqueid == uid
                        )
                    )
                    is None
                ):
                    session.add(
                        CallLegRow(
                            node=snapshot.node,
                            uniqueid=uid,
                            linkedid=snapshot.call_id,
                            channel=name,
                            endpoint=endpoint,
                            created_at=snapshot.started_at,
                            ended_at=snapshot.ended_at,
                        )
                    )
            if snapshot.direction == "inbound":
                if snapshot.answered_at is None and snapshot.caller:
                    _missed(session, snapshot)
                elif snapshot.answered_at is not None:
                    _close_callbacks(
                        session, snapshot.caller, snapshot.agent_id, snapshot.answered_at
                    )

        self.store.submit(write, f"call-end {call.call_id}")
        if call.direction == "inbound" and call.answered_at is None and call.caller:
            self._bus.publish(
                CallbackTaskChanged(
                    task_id=0,
                    caller=call.caller,
                    status="open",
                    at=call.ended_at or call.started_at,
                )
            )

    def agent_changed(self, ev: AgentStateChanged) -> None:
        def write(session: Session) -> None:
            row = session.get(AgentRow, ev.agent_id)
            if row is None:
                row = AgentRow(id=ev.agent_id, name=ev.agent_id)
                session.add(row)
                session.flush()
            row.state = ev.new
            row.reason = ev.reason
            row.seat = ev.seat
            row.state_since = ev.at
            session.add(
                AgentStateLogRow(
                    agent_id=ev.agent_id,
                    seat=ev.seat,
                    old=ev.old,
                    new=ev.new,
                    reason=ev.reason,
                    at=ev.at,
                )
            )

        self.store.submit(write, f"agent {ev.agent_id}")

    def seat_changed(self, ev: SeatStatusChanged) -> None:
        seat = self.seats.get(ev.seat)
        if seat is None:
            return
        values: dict[str, Any] = {
            "contact": seat.contact,
            "device": seat.device,
            "rtt_us": seat.rtt_us,
            "user_agent": seat.user_agent[:128],
            "address": seat.uri[:64],
            "unreachable_since": seat.unreachable_since,
            "updated_at": ev.at,
        }
        seat_id = seat.id

        def write(session: Session) -> None:
            row = session.get(SeatRow, seat_id)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)

        self.store.submit(write, f"seat {seat_id}")

    def recording_stopped(self, ev: RecordingStopped) -> None:
        call = self.tracker.find_call(ev.call_id, ev.node)
        self._register_recording(ev, call)


def _missed(session: Session, call: Call) -> None:
    """An unanswered inbound call: one open callback task per caller, ordered by the first
    call; later missed calls of the same caller are counted on it."""
    task = session.scalar(
        select(CallbackTaskRow).where(
            CallbackTaskRow.caller == call.caller, CallbackTaskRow.status != "done"
        )
    )
    at = call.ended_at or call.started_at
    if task is None:
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
    else:
        task.missed_calls += 1
        task.last_call_at = at


def _close_callbacks(session: Session, caller: str, agent_id: str, at: datetime | None) -> None:
    if not caller:
        return
    for task in session.scalars(
        select(CallbackTaskRow).where(
            CallbackTaskRow.caller == caller, CallbackTaskRow.status != "done"
        )
    ):
        task.status = "done"
        task.closed_at = at
        task.closed_by = agent_id or "reached"


def _snapshot(call: Call) -> Call:
    """A copy of the call as it is now: the writer thread runs later, the call moves on."""
    from dataclasses import replace

    return replace(call, legs=set(call.legs), transfers=list(call.transfers))


def _now_mono() -> float:
    import time

    return time.monotonic()
