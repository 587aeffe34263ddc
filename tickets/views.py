"""Read-only views of tickets handed out by the service (never ORM objects)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tickets.models import (
    Assignment,
    Attachment,
    Extension,
    Survey,
    Ticket,
    TicketCall,
    TicketEvent,
    WindowOutcome,
)
from tickets.statemachine import State, allowed_actions


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class CallView:
    call_id: str
    node: str
    caller: str
    agent_id: str
    answered_at: datetime | None
    recording_path: str
    kind: str

    @classmethod
    def of(cls, row: TicketCall) -> CallView:
        return cls(
            row.call_id,
            row.node,
            row.caller,
            row.agent_id,
            row.answered_at,
            row.recording_path,
            row.kind,
        )


@dataclass(frozen=True, slots=True)
class EventView:
    at: datetime
    actor: str
    action: str
    old_state: str
    new_state: str
    reason: str
    department_id: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, row: TicketEvent) -> EventView:
        return cls(
            row.at,
            row.actor,
            row.action,
            row.old_state,
            row.new_state,
            row.reason,
            row.department_id,
            dict(row.data or {}),
        )


@dataclass(frozen=True, slots=True)
class AssignmentView:
    department_id: str
    role: str
    assigned_at: datetime
    response_due_at: datetime | None
    signed_at: datetime | None
    contacted_at: datetime | None
    active: bool
    end_reason: str

    @classmethod
    def of(cls, row: Assignment) -> AssignmentView:
        return cls(
            row.department_id,
            row.role,
            row.assigned_at,
            row.response_due_at,
            row.signed_at,
            row.contacted_at,
            row.active,
            row.end_reason,
        )


@dataclass(frozen=True, slots=True)
class TicketView:
    id: str
    state: State
    channel: str
    caller: str
    did: str
    topic: str
    category: str
    citizen_name: str
    occurred: str
    location: str
    description: str
    contact_phone: str
    enterprise: bool
    agent_id: str
    leader: bool
    opened_at: datetime
    lead_department_id: str | None
    co_handlers: tuple[str, ...]
    dispatched_at: datetime | None
    signed_at: datetime | None
    response_due_at: datetime | None
    due_at: datetime | None
    original_due_at: datetime | None
    feedback_due_at: datetime | None
    replied_at: datetime | None
    reply_text: str
    survey_due_at: datetime | None
    closed_at: datetime | None
    supervision_level: int
    supervision_reason: str
    return_count: int
    rehandling_count: int
    merged_into: str | None
    transcript: str
    calls: tuple[CallView, ...] = ()
    assignments: tuple[AssignmentView, ...] = ()
    events: tuple[EventView, ...] = ()
    extensions: tuple[dict[str, Any], ...] = ()
    surveys: tuple[dict[str, Any], ...] = ()
    attachments: tuple[dict[str, Any], ...] = ()
    window_outcomes: tuple[dict[str, Any], ...] = ()
    transcript_segments: dict[str, Any] = field(default_factory=dict)

    @property
    def state_code(self) -> str:
        return self.state.code

    @property
    def allowed_actions(self) -> list[str]:
        return allowed_actions(self.state)

    def to_dict(self) -> dict[str, Any]:
        data = to_jsonable(asdict(self))
        data["state"] = self.state.value
        data["state_code"] = self.state.code
        data["state_label"] = self.state.label
        data["allowed_actions"] = self.allowed_actions
        return data  # type: ignore[no-any-return]


def _row_dict(row: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def ticket_view(
    ticket: Ticket,
    *,
    events: list[TicketEvent] | None = None,
    extensions: list[Extension] | None = None,
    surveys: list[Survey] | None = None,
    attachments: list[Attachment] | None = None,
    window_outcomes: list[WindowOutcome] | None = None,
) -> TicketView:
    active = [a for a in ticket.assignments if a.active]
    return TicketView(
        id=ticket.id,
        state=State(ticket.state),
        channel=ticket.channel,
        caller=ticket.caller,
        did=ticket.did,
        topic=ticket.topic,
        category=ticket.category,
        citizen_name=ticket.citizen_name,
        occurred=ticket.occurred,
        location=ticket.location,
        description=ticket.description,
        contact_phone=ticket.contact_phone,
        enterprise=ticket.enterprise,
        agent_id=ticket.agent_id,
        leader=ticket.leader,
        opened_at=ticket.opened_at,
        lead_department_id=ticket.lead_department_id,
        co_handlers=tuple(a.department_id for a in active if a.role == "co"),
        dispatched_at=ticket.dispatched_at,
        signed_at=ticket.signed_at,
        response_due_at=ticket.response_due_at,
        due_at=ticket.due_at,
        original_due_at=ticket.original_due_at,
        feedback_due_at=ticket.feedback_due_at,
        replied_at=ticket.replied_at,
        reply_text=ticket.reply_text,
        survey_due_at=ticket.survey_due_at,
        closed_at=ticket.closed_at,
        supervision_level=ticket.supervision_level,
        supervision_reason=ticket.supervision_reason,
        return_count=ticket.return_count,
        rehandling_count=ticket.rehandling_count,
        merged_into=ticket.merged_into,
        transcript=ticket.transcript,
        calls=tuple(CallView.of(c) for c in ticket.calls),
        assignments=tuple(AssignmentView.of(a) for a in ticket.assignments),
        events=tuple(EventView.of(e) for e in events or ()),
        extensions=tuple(
            _row_dict(
                x,
                "requested_at",
                "requested_by",
                "reason",
                "old_due_at",
                "new_due_at",
                "decided_at",
                "decided_by",
                "approved",
            )
            for x in extensions or ()
        ),
        surveys=tuple(
            _row_dict(s, "at", "agent", "rating", "round", "comment", "department_id")
            for s in surveys or ()
        ),
        attachments=tuple(
            _row_dict(a, "id", "name", "content_type", "size", "uploaded_by", "at")
            for a in attachments or ()
        ),
        window_outcomes=tuple(
            _row_dict(w, "window_id", "text", "actor", "at") for w in window_outcomes or ()
        ),
        transcript_segments=dict(ticket.transcript_segments or {}),
    )
