"""Tables of the ticket slice. States are stored by name (``tickets.statemachine.State``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cti.db import Base, JSONDict, UTCDateTime, utcnow


class Department(Base):
    """A member unit (成员单位); kept in step with ``[[departments]]`` by the service."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    contact_name: Mapped[str] = mapped_column(String(50), default="")
    contact_phone: Mapped[str] = mapped_column(String(20), default="")
    co_handling: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    # tickets.channels.Channel: set by the intake path, never edited
    channel: Mapped[str] = mapped_column(String(16), default="phone")
    # who called and on which number
    caller: Mapped[str] = mapped_column(String(32), index=True, default="")
    did: Mapped[str] = mapped_column(String(32), default="")
    topic: Mapped[str] = mapped_column(String(50), default="")
    category: Mapped[str] = mapped_column(String(50), index=True, default="")
    # the 五要素: who, when, where, what happened, contact
    citizen_name: Mapped[str] = mapped_column(String(50), default="")
    occurred: Mapped[str] = mapped_column(String(100), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    contact_phone: Mapped[str] = mapped_column(String(20), default="")
    enterprise: Mapped[bool] = mapped_column(Boolean, default=False)
    # intake
    agent_id: Mapped[str] = mapped_column(String(32), default="")
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # how intake ended: answered (S1) | queued (S2) | dispatched | not_accepted | merged | police
    intake_outcome: Mapped[str] = mapped_column(String(16), default="")
    # the department workflow
    lead_department_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id"), index=True)
    rule_category: Mapped[str] = mapped_column(String(50), default="")
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    original_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_text: Mapped[str] = mapped_column(Text, default="")
    reply_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    survey_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # counters and overlays
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    rehandling_count: Mapped[int] = mapped_column(Integer, default=0)
    supervision_level: Mapped[int] = mapped_column(Integer, default=0)  # 督办 level, 0 = none
    supervision_reason: Mapped[str] = mapped_column(String(32), default="")
    merged_into: Mapped[str | None] = mapped_column(String(20))
    # transcript of the first call, filled by the transcription workers
    transcript: Mapped[str] = mapped_column(Text, default="")
    transcript_segments: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    calls: Mapped[list[TicketCall]] = relationship(
        back_populates="ticket", order_by="TicketCall.id", cascade="all, delete-orphan"
    )
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="ticket", order_by="Assignment.id", cascade="all, delete-orphan"
    )


Index("ix_tickets_caller_category", Ticket.caller, Ticket.category)


class TicketCall(Base):
    """A call attached to a ticket: the one that opened it, or later ones (并单)."""

    __tablename__ = "ticket_calls"
    __table_args__ = (UniqueConstraint("node", "call_id", name="uq_ticket_calls_node_call"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    call_id: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(32), default="")
    caller: Mapped[str] = mapped_column(String(32), default="")
    agent_id: Mapped[str] = mapped_column(String(32), default="")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recording_path: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(16), default="origin")  # origin | attached | merged
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="calls")


class TicketEvent(Base):
    """The audit trail: every transition, field change and system action."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_roles: Mapped[str] = mapped_column(String(100), default="")
    department_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    old_state: Mapped[str] = mapped_column(String(24))
    new_state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Assignment(Base):
    """A dispatch of a ticket to a department, as lead (主办) or co-handler (协办)."""

    __tablename__ = "ticket_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    role: Mapped[str] = mapped_column(String(8), default="lead")  # lead | co
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    assigned_by: Mapped[str] = mapped_column(String(64), default="")
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the completion clock of this dispatch (lead only): due_at follows approved extensions,
    # feedback_due_at does not; first_replied_at / replied_at are the first and last reply
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    feedback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # returned (a granted return) | rehandling | merged | closed
    end_reason: Mapped[str] = mapped_column(String(24), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    ticket: Mapped[Ticket] = relationship(back_populates="assignments")


class Extension(Base):
    """An extension request (延期): the old due date stays here and in the audit trail."""

    __tablename__ = "ticket_extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[str | None] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    old_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    new_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    approved: Mapped[bool | None] = mapped_column(Boolean)


class Survey(Base):
    """A callback survey attempt (回访) with its rating."""

    __tablename__ = "ticket_surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    department_id: Mapped[str | None] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    agent: Mapped[str] = mapped_column(String(64))
    # satisfied | basically_satisfied | unsatisfied | unreachable
    rating: Mapped[str] = mapped_column(String(24))
    round: Mapped[int] = mapped_column(Integer, default=0)  # rehandling count at the time
    comment: Mapped[str] = mapped_column(Text, default="")


class Attachment(Base):
    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    path: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WindowOutcome(Base):
    """The answer a service window clerk gave in a three-way call (三方通话)."""

    __tablename__ = "ticket_window_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    window_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SmsMessage(Base):
    """One outgoing SMS; failed sends stay here with their error, to be retried or seen."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str | None] = mapped_column(String(20), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    to: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    # queued | sending | sent | retrying | failed | delivered | undelivered (twilio's words)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[str] = mapped_column(String(16), default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TicketIntake(Base):
    """A request that reached the hotline other than by a call: a citizen's SMS, a confirmed
    web form, an intake API client's record (WeChat back-ends, 110). It opened its ticket
    (``kind = "opened"``) or was attached to an open one of the same citizen (``"attached"``).

    ``(source, external_id)`` is unique: twilio's MessageSid, a client's own record id. The
    same message delivered again finds its row and creates nothing."""

    __tablename__ = "ticket_intakes"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_ticket_intakes_source_external"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    # "twilio", "web", or the intake API client's name
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20), index=True, default="")
    kind: Mapped[str] = mapped_column(String(16), default="opened")  # opened | attached
    text: Mapped[str] = mapped_column(Text, default="")
    # what the sender gave beyond the text (110's record: its number, unit, times)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)


class IntakeCode(Base):
    """A web form waiting for the citizen to type the code sent by SMS to its phone number.

    Only a hash of the code is kept. The rows also count the requests per address and per
    phone number for the form's rate limits, whichever process served them."""

    __tablename__ = "intake_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True, default="")
    code_hash: Mapped[str] = mapped_column(String(64))
    form: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ticket_id: Mapped[str | None] = mapped_column(String(20))


class TicketCounter(Base):
    """The last ticket number handed out for a day (``YYYYMMDD``, local date).

    Every process that draws ticket numbers reserves them here, a block at a time, in one
    short transaction: the database serialises the reservations, so two CTIs (or a CTI and a
    classic AGI script) never hand out the same number."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class SuggestionOutcome(Base):
    """What the agent did with a suggestion drafted from the call (``tickets.suggest``): the
    site measures how good the suggestions are by how often they are taken as they were.

    One row per ticket and field, updated as the agent acts: ``accepted`` (taken as it was),
    ``edited`` (taken, then changed before saving) or ``ignored``."""

    __tablename__ = "ticket_suggestions"
    __table_args__ = (UniqueConstraint("ticket_id", "field", name="uq_ticket_suggestions_field"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(20), index=True)
    field: Mapped[str] = mapped_column(String(16))  # description | category | location | repeat
    suggested: Mapped[str] = mapped_column(Text, default="")
    final: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
