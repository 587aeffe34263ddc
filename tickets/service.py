"""The ticket service: intake from calls, the department workflow, and what routing asks.

Methods are synchronous (one short database transaction each) and thread-safe; the CTI calls
them through ``asyncio.to_thread`` or from FastAPI's thread pool. Domain events are published
on the bus from the event loop's thread whenever the service knows the loop (``bind_loop``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from cti.bus import Bus
from cti.claims import claim_once
from cti.db import utcnow
from cti.errors import Conflict, Forbidden, Invalid
from cti.events import Alarm, Event, TicketChanged, TicketOpened, TicketUpdated
from cti.rows import dialect_insert
from tickets.calendar import WorkCalendar
from tickets.deadlines import Deadlines
from tickets.fields import clean_text
from tickets.models import (
    Attachment,
    Department,
    Ticket,
    TicketCall,
    TicketEvent,
    WindowOutcome,
)
from tickets.notify import Notifier, NullNotifier
from tickets.numbers import TicketNumbers
from tickets.phones import normalise_phone
from tickets.queries import TicketQueries
from tickets.settings import DepartmentSettings, TicketSettings
from tickets.statemachine import (
    DEPARTMENT,
    OPEN_STATES,
    WINDOW,
    Actor,
    State,
)
from tickets.timers import TicketTimers, job_id
from tickets.views import TicketView, to_jsonable
from tickets.workflow import Workflow

log = logging.getLogger(__name__)

_INSERT_TICKET = insert(Ticket)
_INSERT_TICKET_CALL = insert(TicketCall)
_INSERT_EVENT = insert(TicketEvent)
_IGNORING: dict[tuple[str, str], Any] = {}


def _insert_ignoring(model: type[Ticket] | type[TicketCall], dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL): a unique key that is taken
    inserts nothing (rowcount 0) and leaves the transaction usable."""
    key = (model.__tablename__, dialect)
    stmt = _IGNORING.get(key)
    if stmt is None:
        ins = dialect_insert(model, dialect)
        # rowcount is kept for INSERTs only when asked (SQLAlchemy 2)
        stmt = ins.on_conflict_do_nothing().execution_options(preserve_rowcount=True)
        _IGNORING[key] = stmt
    return stmt


@dataclass(frozen=True, slots=True)
class DraftCall:
    """What an answered call's draft ticket is opened from."""

    call_id: str
    node: str = ""
    caller: str = ""
    caller_name: str = ""
    did: str = ""
    topic: str = ""
    agent_id: str = ""
    leader: bool = False
    answered_at: datetime | None = None
    recording_path: str = ""

    def cleaned(self) -> DraftCall:
        """From the phone network, not a person: bounded to the columns, no control
        characters."""
        return replace(
            self,
            caller=_CONTROL_CHARS.sub("", self.caller)[:32],
            caller_name=_CONTROL_CHARS.sub("", self.caller_name)[:50],
        )


def _opened(ticket_id: str, call: DraftCall, at: datetime) -> TicketOpened:
    return TicketOpened(
        ticket_id=ticket_id,
        call_id=call.call_id,
        caller=call.caller,
        caller_name=call.caller_name,
        did=call.did,
        topic=call.topic,
        agent_id=call.agent_id,
        leader=call.leader,
        at=at,
    )


EDITABLE_FIELDS = {
    "citizen_name": 50,
    "occurred": 100,
    "location": 200,
    "description": 20_000,
    "contact_phone": 20,
    "category": 50,
}
EDIT_ROLES = frozenset({"agent", "leader", "supervisor"})
# The rest are single lines (a CSV cell, an SMS field).
MULTILINE_FIELDS = frozenset({"description"})
# The audit action of a service window joining a three-way call (三方通话) about a ticket: from
# then on the window's staff may read the ticket and write the window's answer on it
# (``console.scopes``).
WINDOW_CALL = "window_call"


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Rounds of ``open_id_for_call``: a number found taken by another caller, or a race lost.
_OPEN_ATTEMPTS = 5


class TicketService(TicketQueries):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        bus: Bus,
        settings: TicketSettings,
        departments: Sequence[DepartmentSettings] = (),
        notifier: Notifier | None = None,
        scheduler: TicketTimers | None = None,
        clock: Callable[[], datetime] = utcnow,
        calendar: WorkCalendar | None = None,
        numbers: TicketNumbers | None = None,
    ) -> None:
        self.sessions = sessions
        # Fresh numbers for a call whose number is found on another caller's ticket: rare,
        # so one at a time.
        self.numbers = numbers or TicketNumbers(sessions, settings.timezone, clock, block=1)
        self.bus = bus
        self.settings = settings
        self.notifier: Notifier = notifier or NullNotifier()
        self.timers = scheduler
        self.clock = clock
        self.calendar = calendar or WorkCalendar(settings.calendar_override)
        self.deadlines = Deadlines(self.calendar, settings.timezone)
        self.workflow = Workflow(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        if departments:
            self.sync_departments(departments)

    # --- plumbing -------------------------------------------------------------------

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish bus events on ``loop`` even when a method runs in a worker thread."""
        self._loop = loop

    def publish(self, event: Event) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self.bus.publish, event)
                return
        self.bus.publish(event)

    def start_timers(self) -> None:
        """Start the SLA scheduler (inside the running loop); overdue timers fire now."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self.timers is not None and not self.timers.running:
            self.timers.start(self)

    def sync_departments(self, departments: Sequence[DepartmentSettings]) -> None:
        """Make the departments table match the configuration (unlisted ones go inactive)."""
        with self.sessions.begin() as session:
            known = {d.id: d for d in session.scalars(select(Department))}
            listed = set()
            for conf in departments:
                listed.add(conf.id)
                row = known.get(conf.id)
                if row is None:
                    row = Department(id=conf.id)
                    session.add(row)
                row.name = conf.name
                row.contact_name = conf.contact_name
                row.contact_phone = conf.contact_phone
                row.co_handling = conf.co_handling
                row.active = conf.active
            for dept_id, row in known.items():
                if dept_id not in listed:
                    row.active = False

    def audit(
        self,
        session: Session,
        ticket: Ticket,
        action: str,
        actor: Actor,
        old: str,
        reason: str = "",
        data: dict[str, Any] | None = None,
        department_id: str | None = None,
    ) -> None:
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                at=self.clock(),
                actor=actor.id,
                actor_roles=",".join(sorted(actor.roles)),
                department_id=department_id,
                action=action,
                old_state=old,
                new_state=ticket.state,
                reason=reason,
                data=_jsonable(data or {}),
            )
        )

    # --- intake -----------------------------------------------------------------------

    def open_for_call(self, ticket_id: str, **call: Any) -> TicketView:
        """The draft ticket (S0) of an answered call, as a view (see ``open_id_for_call``)."""
        return self.get(self.open_id_for_call(ticket_id, **call))

    def open_id_for_call(self, ticket_id: str, **call: Any) -> str:
        """Open the draft ticket (S0) of an answered call; returns its id. Idempotent: a
        replayed call (same node and call id) returns the ticket it opened. A ticket id that
        exists already gets the call attached only when the ticket is the same caller's;
        otherwise the call opens a ticket under a fresh number (the returned id), since
        another citizen's ticket is never this caller's. It builds no view: the CTI's writer
        opens every answered call's ticket this way (:meth:`open_draft`, :meth:`draft_in`).

        ``call``: the fields of :class:`DraftCall`."""
        return self.open_draft(ticket_id, DraftCall(**call))

    def open_draft(self, ticket_id: str, call: DraftCall) -> str:
        """:meth:`open_id_for_call` with the call's facts in one value."""
        now = self.clock()
        call = call.cleaned()
        # The usual case first: a call not seen before and a fresh number, three inserts in
        # one transaction. A call seen before or a number taken fails a unique key, and the
        # next rounds look at what is there.
        look = False
        for _ in range(_OPEN_ATTEMPTS):
            if look:
                with self.sessions() as session:
                    existing = self._ticket_of_call(session, call.node, call.call_id)
                    if existing is not None:
                        return existing
                    holder = session.scalar(select(Ticket.caller).where(Ticket.id == ticket_id))
                    if holder is not None:
                        if _same_caller(holder, call.caller):
                            self.attach_call(
                                ticket_id,
                                call.call_id,
                                node=call.node,
                                caller=call.caller,
                                agent_id=call.agent_id,
                                answered_at=call.answered_at,
                                recording_path=call.recording_path,
                            )
                            return ticket_id
                        log.warning(
                            "ticket %s is another caller's: call %s/%s gets a new number",
                            ticket_id,
                            call.node,
                            call.call_id,
                        )
                        ticket_id = self.numbers.next()
                        continue
            look = True
            try:
                with self.sessions.begin() as session:
                    conn = session.connection()
                    ticket, origin, event = self._draft_rows(ticket_id, now, call)
                    conn.execute(_INSERT_TICKET, ticket)
                    conn.execute(_INSERT_TICKET_CALL, origin)
                    conn.execute(_INSERT_EVENT, event)
            except IntegrityError:
                # The same call raced in twice (a replay during reconnect): the first one won,
                # and the next round returns its ticket. Or the number was taken meanwhile:
                # the next round looks at whose ticket it is.
                continue
            self.publish(_opened(ticket_id, call, now))
            return ticket_id
        raise Conflict("ticket-exists", f"ticket {ticket_id} exists", ticket_id=ticket_id)

    def draft_in(
        self, session: Session, ticket_id: str, call: DraftCall
    ) -> Callable[[], None] | None:
        """:meth:`open_draft`'s usual case inside the caller's transaction (the CTI store's
        batch): the three inserts, each ignoring a unique key that is taken. Returns what to
        run once the transaction is committed (it says the ticket is open), or None when the
        number or the call was there already: nothing is left written, and
        :meth:`open_draft` is what sorts that case out, in its own transaction."""
        now = self.clock()
        call = call.cleaned()
        ticket, origin, event = self._draft_rows(ticket_id, now, call)
        conn = session.connection()
        dialect = conn.dialect.name
        if conn.execute(_insert_ignoring(Ticket, dialect), ticket).rowcount != 1:
            return None  # the number is taken
        if conn.execute(_insert_ignoring(TicketCall, dialect), origin).rowcount != 1:
            conn.execute(delete(Ticket).where(Ticket.id == ticket_id))  # the call has one
            return None
        conn.execute(_INSERT_EVENT, event)
        opened = _opened(ticket_id, call, now)
        return lambda: self.publish(opened)

    def _draft_rows(
        self, ticket_id: str, now: datetime, call: DraftCall
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The draft ticket's row, its origin call's and its audit entry's, as Core inserts
        take them: this runs for every answered call in the CTI's writer thread, where an ORM
        unit of work of three objects cost about two milliseconds."""
        try:
            contact = normalise_phone(call.caller)
        except Invalid:
            contact = ""  # withheld or odd caller ids: the agent asks for a number
        actor = Actor(call.agent_id or Actor.SYSTEM_ID, frozenset({"agent"}))
        answered = call.answered_at or now
        return (
            {
                "id": ticket_id,
                "state": State.INTAKE.value,
                "caller": call.caller,
                "citizen_name": call.caller_name,
                "did": call.did,
                "topic": call.topic,
                "category": call.topic,
                "agent_id": call.agent_id,
                "leader": call.leader,
                "opened_at": answered,
                "contact_phone": contact,
            },
            {
                "ticket_id": ticket_id,
                "call_id": call.call_id,
                "node": call.node,
                "caller": call.caller,
                "agent_id": call.agent_id,
                "answered_at": answered,
                "recording_path": call.recording_path,
                "kind": "origin",
                "attached_at": now,
            },
            {
                "ticket_id": ticket_id,
                "at": self.clock(),
                "actor": actor.id,
                "actor_roles": ",".join(sorted(actor.roles)),
                "department_id": None,
                "action": "open",
                "old_state": "",
                "new_state": State.INTAKE.value,
                "reason": "",
                "data": {"call_id": call.call_id},
            },
        )

    @staticmethod
    def _ticket_of_call(session: Session, node: str, call_id: str) -> str | None:
        return session.scalar(
            select(TicketCall.ticket_id).where(
                TicketCall.node == node, TicketCall.call_id == call_id
            )
        )

    def attach_call(
        self,
        ticket_id: str,
        call_id: str,
        *,
        node: str = "",
        caller: str = "",
        agent_id: str = "",
        answered_at: datetime | None = None,
        recording_path: str = "",
        actor: Actor | None = None,
    ) -> TicketView:
        """Attach another call to a ticket (the citizen calls again about the same matter)."""
        now = self.clock()
        actor = actor or Actor(agent_id or Actor.SYSTEM_ID, frozenset({"agent"}))
        try:
            with self.sessions.begin() as session:
                ticket = self.load_ticket(session, ticket_id)
                owner = self._ticket_of_call(session, node, call_id)
                if owner is not None:
                    if owner != ticket_id:
                        raise Conflict(
                            "call-on-other-ticket",
                            f"call {call_id} belongs to ticket {owner}",
                            ticket_id=owner,
                        )
                else:
                    session.add(
                        TicketCall(
                            ticket_id=ticket_id,
                            call_id=call_id,
                            node=node,
                            caller=caller,
                            agent_id=agent_id,
                            answered_at=answered_at or now,
                            recording_path=recording_path,
                            kind="attached",
                            attached_at=now,
                        )
                    )
                    self.audit(
                        session,
                        ticket,
                        "attach_call",
                        actor,
                        ticket.state,
                        data={"call_id": call_id},
                    )
        except IntegrityError:
            pass  # attached concurrently by a replay: nothing to do
        return self.get(ticket_id)

    def merge(self, ticket_id: str, into_id: str, actor: Any, reason: str = "") -> TicketView:
        """并单: ``ticket_id`` (a duplicate) joins the open ticket ``into_id``; its calls move."""
        self.workflow.merge(ticket_id, into_id, _actor(actor), reason)
        return self.get(ticket_id)

    def update_fields(
        self, ticket_id: str, actor: Any, *, not_theirs: bool = False, **fields: Any
    ) -> TicketView:
        """Edit the 五要素, the category or the enterprise flag (the channel is the intake
        path's, never edited).

        The floor shares the backlog: anyone at the desk may edit any ticket. An edit by
        someone who did not handle the ticket (``not_theirs``) names the handler in the audit
        event (``handled_by``), beside the editor and the changes every edit records."""
        who = _actor(actor)
        if not who.may(EDIT_ROLES):
            raise Forbidden("role-not-allowed", "editing a ticket needs an agent or supervisor")
        if "channel" in fields:
            raise Invalid(
                "channel-not-editable",
                "a ticket's channel is the way the request came in and cannot be edited",
                field="channel",
            )
        unknown = set(fields) - set(EDITABLE_FIELDS) - {"enterprise"}
        if unknown:
            raise Invalid(
                "unknown-field",
                f"cannot edit {sorted(unknown)}",
                fields=sorted(unknown),
                editable=sorted(EDITABLE_FIELDS) + ["enterprise"],
            )
        clean: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "enterprise":
                clean[name] = bool(value)
                continue
            value = clean_text(
                name, value, EDITABLE_FIELDS[name], multiline=name in MULTILINE_FIELDS
            )
            if name == "contact_phone":
                value = normalise_phone(value, field=name)
            clean[name] = value
        with self.write_tx() as session:
            ticket = self.load_ticket(session, ticket_id)
            if State(ticket.state) not in OPEN_STATES and ticket.state != State.ANSWERED:
                raise Conflict(
                    "ticket-closed",
                    f"ticket {ticket_id} is {ticket.state}: it can no longer be edited",
                )
            category = clean.get("category", ticket.category)
            if category != ticket.category and category not in self.settings.allowed_categories(
                ticket.topic
            ):
                raise Invalid(
                    "unknown-category",
                    f"category {category!r} is not one of tickets.categories",
                    field="category",
                    allowed=self.settings.allowed_categories(ticket.topic),
                )
            changes = {
                name: [getattr(ticket, name), value]
                for name, value in clean.items()
                if getattr(ticket, name) != value
            }
            for name, (_, value) in changes.items():
                setattr(ticket, name, value)
            if changes:
                data: dict[str, Any] = dict(changes)
                if not_theirs:
                    data["handled_by"] = ticket.agent_id
                self.audit(session, ticket, "update", who, ticket.state, data=data)
        return self.get(ticket_id)

    def transition(
        self, ticket_id: str, action: str, actor: Any, reason: str = "", **data: Any
    ) -> TicketView:
        """Drive the state machine (see ``tickets.statemachine.TRANSITIONS``)."""
        self.workflow.transition(ticket_id, action, _actor(actor), reason, data)
        return self.get(ticket_id)

    def on_timer(self, ticket_id: str, kind: str, phase: str, expected: str) -> None:
        """A timer fell due. Every CTI's scheduler may run it; the one whose claim of this
        (timer, deadline) is inserted acts. The claim commits before the action: a failed
        action is not run again, as APScheduler does not run a failed date job again."""
        job = job_id(ticket_id, kind, phase)
        with self.sessions.begin() as session:
            mine = claim_once(session, job, datetime.fromisoformat(expected))
        if not mine:
            log.info("timer %s of %s was fired by another process", job, expected)
            return
        self.workflow.on_timer(ticket_id, kind, phase, expected)

    def add_window_outcome(
        self, ticket_id: str, window_id: str, text: str, actor: Any
    ) -> TicketView:
        """The answer the window clerk gave in the three-way call (三方通话)."""
        who = _actor(actor)
        if not who.may(frozenset({WINDOW, "agent", "leader"})):
            raise Forbidden("role-not-allowed", "window outcomes come from window staff or agents")
        text = clean_text("text", text, 5000, multiline=True)
        if not text:
            raise Invalid("empty-text", "the window's answer is empty", field="text")
        with self.write_tx() as session:
            ticket = self.load_ticket(session, ticket_id)
            session.add(
                WindowOutcome(
                    ticket_id=ticket_id,
                    window_id=window_id,
                    text=text.strip(),
                    actor=who.id,
                    at=self.clock(),
                )
            )
            self.audit(
                session, ticket, "window_outcome", who, ticket.state, data={"window_id": window_id}
            )
        self.updated(ticket_id, "window_outcome", who)
        return self.get(ticket_id)

    def record_window_call(self, ticket_id: str, window_id: str, call_id: str, actor: Any) -> bool:
        """A service window joined a three-way call about the ticket (the audit event
        ``WINDOW_CALL``); False when that window was in that call already."""
        who = _actor(actor)
        with self.write_tx() as session:
            ticket = self.load_ticket(session, ticket_id)
            known = session.scalars(
                select(TicketEvent.data).where(
                    TicketEvent.ticket_id == ticket_id, TicketEvent.action == WINDOW_CALL
                )
            )
            if any(
                (d or {}).get("window_id") == window_id and (d or {}).get("call_id") == call_id
                for d in known
            ):
                return False
            self.audit(
                session,
                ticket,
                WINDOW_CALL,
                who,
                ticket.state,
                data={"window_id": window_id, "call_id": call_id},
            )
        return True

    def set_transcript(
        self, ticket_id: str, text: str, segments: list[dict[str, Any]] | dict[str, Any]
    ) -> None:
        """Store the transcript of the ticket's call (from the transcription workers)."""
        with self.write_tx() as session:
            ticket = self.load_ticket(session, ticket_id)
            ticket.transcript = text
            ticket.transcript_segments = (
                dict(segments) if isinstance(segments, dict) else {"segments": list(segments)}
            )

    def add_attachment(
        self, ticket_id: str, actor: Any, *, name: str, path: str, content_type: str, size: int
    ) -> TicketView:
        who = _actor(actor)
        with self.write_tx() as session:
            ticket = self.load_ticket(session, ticket_id)
            if DEPARTMENT in who.roles and ticket.lead_department_id != who.department_id:
                raise Forbidden("not-your-ticket", "the ticket is not dispatched to your unit")
            session.add(
                Attachment(
                    ticket_id=ticket_id,
                    name=name,
                    path=path,
                    content_type=content_type,
                    size=size,
                    uploaded_by=who.id,
                    at=self.clock(),
                )
            )
            self.audit(session, ticket, "attach_file", who, ticket.state, data={"name": name})
        self.updated(ticket_id, "attachment", who)
        return self.get(ticket_id)

    def attachment_path(self, ticket_id: str, attachment_id: int) -> str | None:
        with self.sessions() as session:
            row = session.get(Attachment, attachment_id)
            return row.path if row is not None and row.ticket_id == ticket_id else None

    # --- helpers for the workflow -----------------------------------------------------

    def write_tx(self) -> _WriteTx:
        return _WriteTx(self.sessions)

    def updated(self, ticket_id: str, what: str, who: Actor) -> None:
        self.publish(TicketUpdated(ticket_id=ticket_id, what=what, actor=who.id, at=self.clock()))

    def alarm(self, kind: str, message: str, **details: Any) -> None:
        self.publish(Alarm(kind=kind, message=message, at=self.clock(), details=details))

    def changed(self, ticket_id: str, old: str, new: str, actor: Actor, reason: str) -> None:
        self.publish(
            TicketChanged(
                ticket_id=ticket_id,
                old=old,
                new=new,
                actor=actor.id,
                reason=reason,
                at=self.clock(),
            )
        )


class _WriteTx:
    """A write transaction; a concurrent change of the same ticket is a Conflict."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._cm = sessions.begin()

    def __enter__(self) -> Session:
        return self._cm.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._cm.__exit__(exc_type, exc, tb)
        except StaleDataError as error:
            raise _changed() from error
        if isinstance(exc, StaleDataError):
            raise _changed() from exc


def _changed() -> Conflict:
    return Conflict("ticket-changed", "the ticket was changed meanwhile: reload and try again")


def _same_caller(holder: str, caller: str) -> bool:
    """Whether a call may join a ticket by its number: the same caller id, and a known one
    (two withheld numbers are not known to be one citizen)."""
    return bool(caller) and holder == caller


def _actor(actor: Any) -> Actor:
    return actor if isinstance(actor, Actor) else Actor.from_user(actor)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(data)
    return result
