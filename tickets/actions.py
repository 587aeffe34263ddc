"""The side effects of each action: assignments, deadlines, timers and messages. The
handlers are named after the table's actions (``_do_sign_off``); ``Workflow`` runs them inside
the action's transaction, and what must wait for the commit goes to ``Step.after``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.validation import MAX_YEAR, MIN_YEAR
from cti.errors import Conflict, Forbidden, Invalid
from tickets.models import Assignment, Department, Extension, Survey, Ticket
from tickets.phones import is_mobile
from tickets.statemachine import ESCALATE_ROLES, OPEN_STATES, Actor, IllegalTransition, State

if TYPE_CHECKING:
    from tickets.service import TicketService

MAX_SUPERVISION_LEVEL = 3
ESCALATION_KINDS = ("overdue", "leader_instruction", "hotspot", "media", "unsatisfied", "other")


@dataclass
class Step:
    """One action in progress: its transaction, its record, and what to do after commit."""

    session: Session
    ticket: Ticket
    actor: Actor
    reason: str
    data: dict[str, Any]
    now: datetime
    audit: dict[str, Any] = field(default_factory=dict)
    after: list[Callable[[], None]] = field(default_factory=list)


class Actions:
    s: TicketService

    # --- helpers ----------------------------------------------------------------------

    def _local(self, at: datetime) -> str:
        return at.astimezone(ZoneInfo(self.s.settings.timezone)).strftime("%Y-%m-%d %H:%M")

    @staticmethod
    def _lead(ticket: Ticket) -> Assignment | None:
        for assignment in reversed(ticket.assignments):
            if assignment.active and assignment.role == "lead":
                return assignment
        return None

    @staticmethod
    def _contact(session: Session, department_id: str) -> tuple[str, str]:
        dept = session.get(Department, department_id)
        return (dept.name, dept.contact_phone) if dept else (department_id, "")

    @staticmethod
    def _end_assignments(ticket: Ticket, now: datetime, why: str) -> None:
        for assignment in ticket.assignments:
            if assignment.active:
                assignment.active = False
                assignment.ended_at = now
                assignment.end_reason = why

    def _schedule(
        self, step: Step, kind: str, at: datetime | None, remind: datetime | None
    ) -> None:
        timers = self.s.timers
        if timers is None or at is None:
            return
        ticket_id = step.ticket.id

        def effect() -> None:
            timers.cancel(ticket_id, [kind])
            timers.schedule(ticket_id, kind, "overdue", at, at)
            if remind is not None:
                timers.schedule(ticket_id, kind, "remind", remind, at)

        step.after.append(effect)

    def _cancel(self, step: Step, *kinds: str) -> None:
        timers = self.s.timers
        if timers is None:
            return
        ticket_id = step.ticket.id
        step.after.append(lambda: timers.cancel(ticket_id, kinds or ("response", "due", "survey")))

    def _notify_citizen(self, step: Step, purpose: str, **fields: str) -> None:
        phone = step.ticket.contact_phone
        if phone and is_mobile(phone):
            ticket_id = step.ticket.id
            step.after.append(lambda: self.s.notifier.notify(purpose, phone, ticket_id, **fields))

    def _department(self, step: Step, key: str, *, co: bool = False) -> Department:
        dept_id = step.data.get(key) if not co else key
        if not isinstance(dept_id, str) or not dept_id:
            raise Invalid("department-required", "name the department (lead unit)", field=key)
        dept = step.session.get(Department, dept_id)
        if dept is None or not dept.active:
            raise Invalid("no-such-department", f"no active department {dept_id!r}", id=dept_id)
        if co and not dept.co_handling:
            raise Invalid(
                "no-co-handling", f"{dept.name} does not take co-handled tickets", id=dept_id
            )
        return dept

    def _dispatch(self, step: Step, lead: Department, end_reason: str) -> None:
        ticket, now = step.ticket, step.now
        co_ids = step.data.get("co_handlers") or []
        if not isinstance(co_ids, list | tuple) or not all(isinstance(c, str) for c in co_ids):
            raise Invalid("invalid-co-handlers", "co_handlers must be a list of department ids")
        co_depts = [self._department(step, c, co=True) for c in dict.fromkeys(co_ids)]
        if any(d.id == lead.id for d in co_depts):
            raise Invalid("lead-is-co-handler", "the lead unit cannot also be a co-handler")
        self._end_assignments(ticket, now, end_reason)
        rule = self.s.settings.rule_for(ticket.category)
        clock = self.s.deadlines.clock_for(
            rule, receipt=ticket.opened_at, dispatched_at=now, signed_at=None
        )
        ticket.lead_department_id = lead.id
        ticket.rule_category = rule.category
        ticket.dispatched_at = now
        ticket.signed_at = ticket.contacted_at = None
        ticket.replied_at = ticket.first_replied_at = ticket.reply_approved_at = None
        ticket.survey_due_at = None
        ticket.response_due_at = clock.response_due_at
        ticket.due_at = ticket.original_due_at = clock.due_at
        ticket.feedback_due_at = clock.feedback_due_at
        ticket.assignments.append(
            Assignment(
                department_id=lead.id,
                role="lead",
                assigned_at=now,
                assigned_by=step.actor.id,
                response_due_at=clock.response_due_at,
                due_at=clock.due_at,
                feedback_due_at=clock.feedback_due_at,
            )
        )
        for dept in co_depts:
            ticket.assignments.append(
                Assignment(
                    department_id=dept.id, role="co", assigned_at=now, assigned_by=step.actor.id
                )
            )
        step.audit.update(
            department=lead.id,
            co_handlers=[d.id for d in co_depts],
            rule=rule.category,
            limit=rule.limit,
            anchor=rule.anchor,
            response_due=clock.response_due_at,
            due=clock.due_at,
        )
        self._cancel(step, "survey")
        self._schedule(step, "response", clock.response_due_at, None)
        self._schedule(step, "due", clock.due_at, clock.remind_at)
        if clock.due_at is None:
            self._cancel(step, "due")
        due_text = self._local(clock.due_at) if clock.due_at else "签收后计时"
        for dept in [lead, *co_depts]:
            if dept.contact_phone:
                step.after.append(
                    self._dispatch_message(ticket.id, dept.contact_phone, dept.name, due_text)
                )

    def _dispatch_message(
        self, ticket_id: str, phone: str, name: str, due: str
    ) -> Callable[[], None]:
        def send() -> None:
            self.s.notifier.notify(
                "department_dispatch", phone, ticket_id, department=name, due=due
            )

        return send

    def _start_clock_at_sign_off(self, step: Step) -> None:
        """Anchor ``sign_off``: the completion clock starts now."""
        ticket = step.ticket
        if ticket.due_at is not None or ticket.dispatched_at is None:
            return
        rule = self.s.settings.rule_for(ticket.rule_category or ticket.category)
        clock = self.s.deadlines.clock_for(
            rule, receipt=ticket.opened_at, dispatched_at=ticket.dispatched_at, signed_at=step.now
        )
        ticket.due_at = ticket.original_due_at = clock.due_at
        ticket.feedback_due_at = clock.feedback_due_at
        lead = self._lead(ticket)
        if lead is not None:
            lead.due_at, lead.feedback_due_at = clock.due_at, clock.feedback_due_at
        step.audit["due"] = clock.due_at
        self._schedule(step, "due", clock.due_at, clock.remind_at)

    def _reschedule_due(self, step: Step) -> None:
        ticket = step.ticket
        if ticket.due_at is None:
            self._start_clock_at_sign_off(step)
        elif ticket.due_at > step.now:
            start = ticket.signed_at or ticket.dispatched_at or step.now
            rule = self.s.settings.rule_for(ticket.rule_category or ticket.category)
            remind = self.s.deadlines.remind_at(start, ticket.due_at, rule.remind_before)
            if remind is not None and remind <= step.now:
                remind = None
            self._schedule(step, "due", ticket.due_at, remind)

    def _escalate(self, step: Step, state: State) -> None:
        if state not in OPEN_STATES:
            raise IllegalTransition(state, "escalate")
        if not step.actor.may(ESCALATE_ROLES):
            raise Forbidden("role-not-allowed", "escalate needs a leader or supervisor")
        kind = step.data.get("kind", "other")
        if kind not in ESCALATION_KINDS:
            raise Invalid("invalid-kind", f"kind must be one of {list(ESCALATION_KINDS)}")
        ticket = step.ticket
        level = step.data.get("level", ticket.supervision_level + 1)
        if not isinstance(level, int) or not 1 <= level <= MAX_SUPERVISION_LEVEL:
            raise Invalid("invalid-level", f"level must be 1..{MAX_SUPERVISION_LEVEL}")
        step.audit.update(old_level=ticket.supervision_level, level=level, kind=kind)
        ticket.supervision_level = level
        ticket.supervision_reason = str(kind)
        message = f"ticket {ticket.id} under supervision level {level} ({kind})"
        step.after.append(lambda: self.s.alarm("ticket_escalated", message, ticket_id=ticket.id))

    def _parse_until(self, value: Any) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError as exc:
                raise Invalid("invalid-date", f"{value!r} is not an ISO date/time") from exc
        if not isinstance(value, datetime):
            raise Invalid("until-required", "request_extension needs the new due date (until)")
        if not MIN_YEAR <= value.year <= MAX_YEAR:  # and year 9999 overflows in UTC
            raise Invalid("invalid-date", f"until: the year must be {MIN_YEAR} to {MAX_YEAR}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(self.s.settings.timezone))
        result: datetime = value.astimezone(UTC)
        return result

    # --- the actions (named after the table's actions) ------------------------------

    def _accept(self, step: Step, outcome: str) -> None:
        step.ticket.intake_outcome = outcome
        if step.ticket.accepted_at is None:
            step.ticket.accepted_at = step.now

    def _do_answer(self, step: Step) -> None:
        self._accept(step, "answered")
        text = step.data.get("text", "")
        step.ticket.reply_text = str(text)

    def _do_queue_dispatch(self, step: Step) -> None:
        self._accept(step, "queued")
        self._notify_citizen(step, "citizen_opened")

    def _do_dispatch(self, step: Step) -> None:
        lead = self._department(step, "department")
        if step.ticket.state == State.INTAKE:
            self._accept(step, "dispatched")
            self._notify_citizen(step, "citizen_opened")
        self._dispatch(step, lead, "replaced")

    def _do_not_accept(self, step: Step) -> None:
        step.ticket.intake_outcome = "not_accepted"

    def _do_transfer_police(self, step: Step) -> None:
        step.ticket.intake_outcome = "police"
        step.audit["police_ref"] = str(step.data.get("police_ref", ""))
        # What 110 receives (12号文: the matter, not only its number), as it stood when handed
        # over; 110's system reads it with GET /api/police/handovers.
        step.audit["handover"] = police_handover(step.ticket)

    def _do_sign_off(self, step: Step) -> None:
        lead = self._lead(step.ticket)
        if lead is not None and lead.signed_at is None:
            lead.signed_at = step.now
        step.ticket.signed_at = step.now
        self._start_clock_at_sign_off(step)
        if lead is not None and lead.contacted_at is not None:
            self._cancel(step, "response")

    def _do_contact_citizen(self, step: Step) -> None:
        lead = self._lead(step.ticket)
        if lead is not None and lead.contacted_at is None:
            lead.contacted_at = step.now
        if step.ticket.contacted_at is None:
            step.ticket.contacted_at = step.now
        self._cancel(step, "response")

    def _do_return(self, step: Step) -> None:
        basis = step.data.get("legal_basis", "")
        if not isinstance(basis, str) or not basis.strip():
            raise Invalid(
                "legal-basis-required",
                "a return needs the legal basis (the rule that puts the matter elsewhere)",
            )
        step.ticket.return_count += 1
        step.audit["legal_basis"] = basis.strip()

    def _do_grant_return(self, step: Step) -> None:
        lead = self._department(step, "department")
        if lead.id == step.ticket.lead_department_id:
            raise Invalid(
                "same-department", "a granted return goes to another unit than the one returning"
            )
        self._dispatch(step, lead, "returned")

    def _do_refuse_return(self, step: Step) -> None:
        self._reschedule_due(step)

    def _do_request_extension(self, step: Step) -> None:
        until = self._parse_until(step.data.get("until"))
        ticket = step.ticket
        if until <= step.now or (ticket.due_at is not None and until <= ticket.due_at):
            raise Invalid("until-too-early", "the new due date must be later than the current one")
        step.session.add(
            Extension(
                ticket_id=ticket.id,
                department_id=ticket.lead_department_id,
                requested_at=step.now,
                requested_by=step.actor.id,
                reason=step.reason,
                old_due_at=ticket.due_at,
                new_due_at=until,
            )
        )
        step.audit.update(old_due=ticket.due_at, until=until)

    def _pending_extension(self, step: Step) -> Extension:
        ext = step.session.scalar(
            select(Extension)
            .where(Extension.ticket_id == step.ticket.id, Extension.decided_at.is_(None))
            .order_by(Extension.id.desc())
        )
        if ext is None:
            raise Conflict("no-pending-extension", "no extension request is pending")
        ext.decided_at = step.now
        ext.decided_by = step.actor.id
        return ext

    def _do_approve_extension(self, step: Step) -> None:
        ext = self._pending_extension(step)
        ext.approved = True
        ticket = step.ticket
        step.audit.update(old_due=ticket.due_at, new_due=ext.new_due_at)
        ticket.due_at = ext.new_due_at
        lead = self._lead(ticket)
        if lead is not None:
            lead.due_at = ext.new_due_at
        self._reschedule_due(step)
        self._notify_citizen(step, "citizen_extension", due=self._local(ext.new_due_at))

    def _do_reject_extension(self, step: Step) -> None:
        self._pending_extension(step).approved = False

    def _do_reply(self, step: Step) -> None:
        text = step.data.get("text", "")
        if not isinstance(text, str) or not text.strip():
            raise Invalid("reply-text-required", "the reply needs its text", field="text")
        ticket = step.ticket
        ticket.reply_text = text.strip()
        ticket.replied_at = step.now
        if ticket.first_replied_at is None:
            ticket.first_replied_at = step.now
        lead = self._lead(ticket)
        if lead is not None:
            lead.replied_at = step.now
            if lead.first_replied_at is None:
                lead.first_replied_at = step.now
        self._cancel(step, "response", "due")

    def _do_approve_reply(self, step: Step) -> None:
        ticket = step.ticket
        ticket.reply_approved_at = step.now
        due, remind = self.s.deadlines.survey_due(self.s.settings.survey, step.now)
        ticket.survey_due_at = due
        step.audit["survey_due"] = due
        self._schedule(step, "survey", due, remind)
        self._notify_citizen(step, "citizen_reply", reply=ticket.reply_text[:300])

    def _do_reject_reply(self, step: Step) -> None:
        self._reschedule_due(step)

    def _survey(self, step: Step) -> str:
        rating = str(step.data["rating"])
        step.session.add(
            Survey(
                ticket_id=step.ticket.id,
                department_id=step.ticket.lead_department_id,
                at=step.now,
                agent=step.actor.id,
                rating=rating,
                round=step.ticket.rehandling_count,
                comment=str(step.data.get("comment", "")),
            )
        )
        step.audit["rating"] = rating
        return rating

    def _do_survey_satisfied(self, step: Step) -> None:
        self._survey(step)
        self._close(step)

    def _do_survey_unreachable(self, step: Step) -> None:
        self._survey(step)

    def _do_survey_unsatisfied(self, step: Step) -> None:
        self._survey(step)
        ticket = step.ticket
        ticket.rehandling_count += 1
        lead_id = ticket.lead_department_id
        if lead_id is None:
            raise Conflict("no-department", "the ticket has no lead unit to re-handle it")
        dept = step.session.get(Department, lead_id)
        assert dept is not None
        step.data = {}
        self._dispatch(step, dept, "rehandling")
        if ticket.rehandling_count > self.s.settings.max_rehandlings:
            # Still unsatisfied after re-handling: the case goes up (督办).
            ticket.supervision_level = min(ticket.supervision_level + 1, MAX_SUPERVISION_LEVEL)
            ticket.supervision_reason = "unsatisfied"
            step.audit["escalated_to"] = ticket.supervision_level
            rounds = ticket.rehandling_count - 1
            message = f"ticket {ticket.id} still unsatisfied after {rounds} re-handling(s)"
            step.after.append(
                lambda: self.s.alarm("ticket_unsatisfied", message, ticket_id=ticket.id)
            )

    def _close(self, step: Step) -> None:
        step.ticket.closed_at = step.now
        self._end_assignments(step.ticket, step.now, "closed")
        self._cancel(step)

    def _do_close(self, step: Step) -> None:
        self._close(step)

    def _do_archive(self, step: Step) -> None:
        step.ticket.archived_at = step.now
        self._cancel(step)


# The ticket's fields that go to 110 with a transfer.
HANDOVER_FIELDS = (
    "id",
    "channel",
    "caller",
    "contact_phone",
    "citizen_name",
    "category",
    "occurred",
    "location",
    "description",
)


def police_handover(ticket: Ticket) -> dict[str, Any]:
    """The ticket's content for 110: the five elements, the category and the contact."""
    data: dict[str, Any] = {name: getattr(ticket, name) or "" for name in HANDOVER_FIELDS}
    data["opened_at"] = ticket.opened_at.isoformat() if ticket.opened_at else None
    return data
