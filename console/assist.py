"""What the desk is given beside the form: the ticket drafted from the call
(``tickets.suggest``), what the agent did with it, and the caller in the screen pop.

The citizen's words come from the live transcript the hub relays (``console.transcripts``)
while the call goes on, and from the stored transcript once it is there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from console.security import User, require_roles
from console.validation import CallerPath, TicketId
from cti.errors import Invalid
from cti.models import CallerFlagRow
from recordings import models as rec
from tickets import suggest
from tickets.models import Ticket
from tickets.reports import parse_period
from tickets.statemachine import OPEN_STATES

DESK = ("agent", "leader", "supervisor")
DeskUser = Annotated[User, Depends(require_roles(*DESK))]
ReportUser = Annotated[User, Depends(require_roles("supervisor", "leader"))]
CITIZEN_SPEAKERS = ("citizen", "mixed")


class OutcomeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str = Field(pattern=r"^(description|category|location|repeat)$")
    suggested: str = Field(default="", max_length=20000)
    final: str = Field(default="", max_length=20000)
    outcome: str = Field(pattern=r"^(accepted|edited|ignored)$")


def now() -> datetime:
    return datetime.now(UTC)


def router(hotline: Any, hub: Any) -> APIRouter:
    api = APIRouter(tags=["assist"])
    service = hotline.tickets
    settings = hotline.settings

    def citizen_words(ticket: Ticket) -> list[str]:
        """The citizen's utterances: live while the call goes on, else the stored ones."""
        live = hub.transcripts
        words: list[str] = []
        if live is not None:
            for call in ticket.calls:
                words += [
                    line["text"]
                    for line in live.lines(call.call_id)
                    if line["speaker"] in CITIZEN_SPEAKERS and line["text"]
                ]
        if words:
            return words
        with service.sessions() as session:
            return list(
                session.scalars(
                    select(rec.TranscriptSegment.text_masked)
                    .where(
                        rec.TranscriptSegment.ticket_id == ticket.id,
                        rec.TranscriptSegment.speaker.in_(CITIZEN_SPEAKERS),
                    )
                    .order_by(rec.TranscriptSegment.recording_id, rec.TranscriptSegment.seq)
                )
            )

    def draft(ticket_id: str) -> dict[str, Any]:
        with service.sessions() as session:
            ticket = service.load_ticket(session, ticket_id)
            words = citizen_words(ticket)
            found = suggest.suggest(
                session,
                ticket,
                words,
                categories=settings.tickets.allowed_categories(ticket.topic),
                keywords=settings.tickets.category_keywords,
                places=settings.site.places,
                now=now(),
            )
            return {"ticket_id": ticket.id, "heard": len(words), **found.to_dict()}

    @api.get("/api/tickets/{ticket_id}/suggestions")
    async def suggestions(ticket_id: TicketId, user: DeskUser) -> dict[str, Any]:
        return await asyncio.to_thread(draft, ticket_id)

    @api.post("/api/tickets/{ticket_id}/suggestions")
    def suggestion_outcome(
        ticket_id: TicketId, body: OutcomeBody, user: DeskUser
    ) -> dict[str, Any]:
        with service.sessions() as session:
            service.load_ticket(session, ticket_id)
            suggest.record(
                session,
                ticket_id,
                body.field,
                suggested=body.suggested,
                final=body.final,
                outcome=body.outcome,
                actor=user.username,
                now=now(),
            )
            session.commit()
        return {"ticket_id": ticket_id, "field": body.field, "outcome": body.outcome}

    @api.get("/api/callers/{caller}/summary")
    def caller_summary(caller: CallerPath, user: DeskUser) -> dict[str, Any]:
        """The screen pop's line on the caller: open requests, last contact, repeat flag, and
        a supervisor's flag on the number."""
        has_open, last_agent, flagged = service.caller_summary(caller)
        with service.sessions() as session:
            open_rows = session.execute(
                select(Ticket.id, Ticket.state, Ticket.category, Ticket.opened_at)
                .where(Ticket.caller == caller, Ticket.state.in_([s.value for s in OPEN_STATES]))
                .order_by(Ticket.opened_at.desc())
                .limit(20)
            ).all()
            last = session.scalar(select(func.max(Ticket.opened_at)).where(Ticket.caller == caller))
            flag = session.get(CallerFlagRow, caller)
        return {
            "caller": caller,
            "has_open": has_open,
            "open": [
                {"id": i, "state": s, "category": c, "opened_at": at.isoformat()}
                for i, s, c, at in open_rows
            ],
            "last_contact": last.isoformat() if last else None,
            "last_agent": last_agent,
            "repeat_caller": flagged,
            # A supervisor's flag on the number (console.callers): the agent is told before
            # speaking whether the citizen is a VIP or vulnerable, abusive, or a frequent caller.
            "flag": {"kind": flag.kind, "note": flag.note}
            if flag is not None and flag.kind
            else None,
        }

    @api.get("/api/reports/suggestions")
    def suggestion_report(
        user: ReportUser, period: Annotated[str, Query(max_length=16)]
    ) -> dict[str, Any]:
        try:
            parsed = parse_period(period, settings.tickets.timezone)
        except ValueError as exc:
            raise Invalid("invalid-period", str(exc)) from exc
        with service.sessions() as session:
            fields = suggest.quality(session, parsed.start, parsed.end)
        return {"period": parsed.label, "fields": fields}

    return api
