"""Tables of the CTI slice: calls, call legs, seats, agents, agent state history, callbacks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cti.db import Base, JSONDict, UTCDateTime, utcnow


class CallRow(Base):
    """One citizen call, keyed by (node, Linkedid): the id Asterisk gives the whole call."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("node", "linkedid"),
        Index("ix_calls_caller_started", "caller", "started_at"),
        Index("ix_calls_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(32))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    channel: Mapped[str] = mapped_column(String(128), default="")
    caller: Mapped[str] = mapped_column(String(32), default="")
    caller_name: Mapped[str] = mapped_column(String(128), default="")
    did: Mapped[str] = mapped_column(String(32), default="")
    topic: Mapped[str] = mapped_column(String(64), default="")
    skill: Mapped[str] = mapped_column(String(64), default="")
    route_reason: Mapped[str] = mapped_column(String(32), default="")
    routed_by: Mapped[str] = mapped_column(String(16), default="")  # cti | fallback | none
    priority: Mapped[int] = mapped_column(Integer, default=0)
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    seat: Mapped[str] = mapped_column(String(16), default="")
    agent_id: Mapped[str] = mapped_column(String(32), default="")
    ticket_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    recording: Mapped[str] = mapped_column(String(512), default="")
    cause: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="new")
    extra: Mapped[dict[str, object]] = mapped_column(JSONDict, default=dict)


class CallLegRow(Base):
    """One channel of a call (a Uniqueid): the citizen's trunk leg, a seat, a window..."""

    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("node", "uniqueid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(32))
    uniqueid: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="other")  # citizen seat window ...
    endpoint: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cause: Mapped[str] = mapped_column(String(64), default="")


class SeatRow(Base):
    """A physical seat and the last known state of its phone."""

    __tablename__ = "seats"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="seat")
    room: Mapped[str] = mapped_column(String(64), default="")
    position: Mapped[str] = mapped_column(String(64), default="")
    phone_model: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(32), default="")
    contact: Mapped[str] = mapped_column(String(32), default="Unknown")
    device: Mapped[str] = mapped_column(String(32), default="UNKNOWN")
    rtt_us: Mapped[int] = mapped_column(Integer, default=0)
    user_agent: Mapped[str] = mapped_column(String(128), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    unreachable_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(String(32), default="")
    skills: Mapped[dict[str, object]] = mapped_column(JSONDict, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="logged_out")
    reason: Mapped[str] = mapped_column(String(32), default="")
    seat: Mapped[str] = mapped_column(String(16), default="")
    state_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AgentStateLogRow(Base):
    """Every agent state change, for reports (occupancy, not-ready time by reason)."""

    __tablename__ = "agent_state_log"
    __table_args__ = (Index("ix_agent_state_log_agent_at", "agent_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(32), ForeignKey("agents.id"))
    seat: Mapped[str] = mapped_column(String(16), default="")
    old: Mapped[str] = mapped_column(String(16))
    new: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallbackTaskRow(Base):
    """漏接回拨: a missed or abandoned call to be called back, ordered by the first call."""

    __tablename__ = "callback_tasks"
    __table_args__ = (Index("ix_callback_tasks_status_first", "status", "first_call_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller: Mapped[str] = mapped_column(String(32), index=True)
    caller_name: Mapped[str] = mapped_column(String(128), default="")
    did: Mapped[str] = mapped_column(String(32), default="")
    topic: Mapped[str] = mapped_column(String(64), default="")
    first_call_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_call_at: Mapped[datetime] = mapped_column(UTCDateTime())
    missed_calls: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open calling done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    assigned_agent: Mapped[str] = mapped_column(String(32), default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str] = mapped_column(String(32), default="")
    note: Mapped[str] = mapped_column(Text, default="")


class CallerFlagRow(Base):
    """Callers flagged by supervisors (priority), or marked as enterprises."""

    __tablename__ = "caller_flags"

    caller: Mapped[str] = mapped_column(String(32), primary_key=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    enterprise: Mapped[bool] = mapped_column(Boolean, default=False)
    # A supervisor's flag (console.callers): priority (VIP, vulnerable), abusive, frequent.
    kind: Mapped[str] = mapped_column(String(16), default="", server_default="")
    note: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallerFlagEvent(Base):
    """The audit trail of caller flags: who set or cleared which flag on a number, and why."""

    __tablename__ = "caller_flag_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(8))  # set | clear
    kind: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, default=utcnow)


class JobClaim(Base):
    """A job run claimed for one due time (``cti.claims``): a timer or a sweep that two CTI
    processes both see as due is run only by the process whose claim row was inserted."""

    __tablename__ = "job_claims"

    job: Mapped[str] = mapped_column(String(120), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")


class LeaseRow(Base):
    """Who leads the CTIs sharing this database (``cti.leader``): one row per lease, taken
    and renewed with a conditional UPDATE. Times are the database's clock in epoch seconds,
    so the machines' clocks never have to agree."""

    __tablename__ = "cti_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), default="")
    # Raised at each change of holder: a number that tells one leadership from the next.
    term: Mapped[int] = mapped_column(Integer, default=0)
    since: Mapped[float] = mapped_column(Float, default=0.0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
    # Where the holder answers, for the console of the others and the operator.
    address: Mapped[str] = mapped_column(String(256), default="")
