"""Running an action: the table check, the department check, the handler, the audit record;
timers and messages only after the transaction committed. Also 并单 and the SLA timers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cti.errors import Conflict, Forbidden, Invalid
from tickets.actions import MAX_SUPERVISION_LEVEL, Actions, Step
from tickets.fields import clean_text
from tickets.models import Ticket
from tickets.statemachine import (
    ADMIN,
    DEPARTMENT_ONLY,
    DEPARTMENT_STATES,
    OPEN_STATES,
    SURVEY_RATINGS,
    Actor,
    State,
    check,
)

if TYPE_CHECKING:
    from tickets.service import TicketService

log = logging.getLogger(__name__)

DATA_KEYS: dict[str, frozenset[str]] = {
    "answer": frozenset({"text"}),
    "dispatch": frozenset({"department", "co_handlers"}),
    "grant_return": frozenset({"department", "co_handlers"}),
    "return": frozenset({"legal_basis"}),
    "request_extension": frozenset({"until"}),
    "reply": frozenset({"text"}),
    "survey": frozenset({"rating", "comment"}),
    "escalate": frozenset({"level", "kind"}),
    "transfer_police": frozenset({"police_ref"}),
    "merge": frozenset({"into"}),
}

# Text the actions store (the reply goes to the citizen by SMS): its limit, multi-line or not.
TEXT_DATA: dict[str, tuple[int, bool]] = {
    "text": (5000, True),
    "legal_basis": (2000, True),
    "comment": (2000, True),
    "police_ref": (32, False),
}


def _text(key: str, value: Any) -> str:
    limit, multiline = TEXT_DATA[key]
    return clean_text(key, value, limit, multiline=multiline)


class Workflow(Actions):
    def __init__(self, service: TicketService) -> None:
        self.s = service

    # --- entry points -----------------------------------------------------------------

    def transition(
        self, ticket_id: str, action: str, actor: Actor, reason: str, data: dict[str, Any]
    ) -> None:
        if action == "merge":
            into = data.get("into")
            if not isinstance(into, str) or not into:
                raise Invalid("merge-target-required", "merge needs the ticket to merge into")
            self.merge(ticket_id, into, actor, reason)
            return
        unknown = set(data) - DATA_KEYS.get(action, frozenset())
        if unknown:
            raise Invalid(
                "unknown-data", f"{action} takes no {sorted(unknown)}", fields=sorted(unknown)
            )
        data = {
            key: _text(key, value) if key in TEXT_DATA else value for key, value in data.items()
        }
        table_action = action
        if action == "survey":
            rating = data.get("rating")
            if not isinstance(rating, str) or rating not in SURVEY_RATINGS:
                raise Invalid(
                    "invalid-rating",
                    f"rating must be one of {sorted(SURVEY_RATINGS)}",
                    rating=rating,
                )
            table_action = SURVEY_RATINGS[str(rating)]
        with self.s.write_tx() as session:
            ticket = self.s.load_ticket(session, ticket_id)
            old = State(ticket.state)
            step = Step(session, ticket, actor, reason, dict(data), self.s.clock())
            department = ticket.lead_department_id
            if action == "escalate":
                self._escalate(step, old)
                new = old
            else:
                rule = check(old, table_action, actor, reason)
                if rule.roles == DEPARTMENT_ONLY and ADMIN not in actor.roles:
                    if actor.department_id is None or actor.department_id != department:
                        raise Forbidden(
                            "not-your-ticket",
                            f"ticket {ticket_id} is not dispatched to your unit",
                            lead_department_id=department,
                        )
                handler = getattr(self, "_do_" + table_action, None)
                if handler is not None:
                    handler(step)
                new = rule.new
                ticket.state = new.value
            self.s.audit(
                session, ticket, table_action, actor, old.value, reason, step.audit, department
            )
        for effect in step.after:
            try:
                effect()
            except Exception:
                log.exception("after-commit effect of %s on %s failed", action, ticket_id)
        self.s.changed(ticket_id, old.value, new.value, actor, reason or table_action)

    def merge(self, ticket_id: str, into_id: str, actor: Actor, reason: str) -> None:
        if ticket_id == into_id:
            raise Invalid("merge-into-self", "a ticket cannot be merged into itself")
        with self.s.write_tx() as session:
            dup = self.s.load_ticket(session, ticket_id)
            target = self.s.load_ticket(session, into_id)
            if State(target.state) not in OPEN_STATES:
                raise Conflict(
                    "merge-target-closed",
                    f"ticket {into_id} is {target.state}: merge only into an open ticket",
                )
            old = State(dup.state)
            check(old, "merge", actor, reason)
            now = self.s.clock()
            dup.state = State.MERGED.value
            dup.merged_into = into_id
            dup.intake_outcome = "merged"
            self._end_assignments(dup, now, "merged")
            moved = []
            for call in list(dup.calls):
                call.kind = "merged"
                target.calls.append(call)
                moved.append(call.call_id)
            data = {"into": into_id, "calls": moved}
            self.s.audit(session, dup, "merge", actor, old.value, reason, data)
            self.s.audit(
                session, target, "merged_in", actor, target.state, reason, {"from": ticket_id}
            )
        if self.s.timers is not None:
            self.s.timers.cancel(ticket_id)
        self.s.changed(ticket_id, old.value, State.MERGED.value, actor, reason or "merge")

    # --- timers -----------------------------------------------------------------------

    def on_timer(self, ticket_id: str, kind: str, phase: str, expected: str) -> None:
        for attempt in range(3):
            try:
                self._on_timer(ticket_id, kind, phase, datetime.fromisoformat(expected))
                return
            except Conflict:
                if attempt == 2:
                    raise

    def _on_timer(self, ticket_id: str, kind: str, phase: str, expected: datetime) -> None:
        system = Actor.system()
        after: list[Callable[[], None]] = []
        with self.s.write_tx() as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                return
            state = State(ticket.state)
            lead = self._lead(ticket)
            if kind == "response":
                current = ticket.response_due_at
                live = (
                    state in DEPARTMENT_STATES
                    and lead is not None
                    and (lead.signed_at is None or lead.contacted_at is None)
                )
            elif kind == "due":
                current = ticket.due_at
                live = state in DEPARTMENT_STATES
            else:
                current = ticket.survey_due_at
                live = state == State.SURVEY
            if not live or current is None or abs((current - expected).total_seconds()) > 1:
                log.debug("stale timer %s/%s/%s ignored", ticket_id, kind, phase)
                return
            if phase == "remind" and self.s.clock() >= current:
                return  # a reminder that ran late (after a restart) is pointless now
            dept = ticket.lead_department_id
            due_text = self._local(current)
            if phase == "remind":
                if kind == "due" and dept is not None:
                    phone = self._contact(session, dept)[1]
                    if phone:
                        after.append(
                            lambda: self.s.notifier.notify(
                                "department_reminder", phone, ticket_id, due=due_text
                            )
                        )
                message = f"ticket {ticket_id}: {kind} deadline at {due_text}"
                alarm_kind = f"ticket_{kind}_reminder"
            else:
                ticket.supervision_level = min(ticket.supervision_level + 1, MAX_SUPERVISION_LEVEL)
                ticket.supervision_reason = "overdue"
                message = f"ticket {ticket_id}: {kind} deadline {due_text} passed"
                alarm_kind = f"ticket_{kind}_overdue"
            self.s.audit(
                session,
                ticket,
                f"{kind}_{phase}",
                system,
                state.value,
                message,
                {"due": current, "level": ticket.supervision_level},
                dept,
            )
        for effect in after:
            effect()
        self.s.alarm(alarm_kind, message, ticket_id=ticket_id, department_id=dept)
        if phase == "overdue":
            self.s.changed(ticket_id, state.value, state.value, system, "overdue")
