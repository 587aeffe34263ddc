"""110 -> 12345 by phone: a call 110 puts through carries 110's incident number, and its
ticket carries 110's record of the incident (12号文).

110 transfers the citizen to one of the hotline's numbers configured for it (``[[hotlines]]``
with ``police110 = true``) and names the incident in the INVITE's ``X-Incident-Id`` header;
the dialplan hands it to the route (``cti-route``), and the CTI calls ``link_call`` once the
call's ticket is open. 110 posts its record through the intake API (``POST /api/tickets``,
channel ``police110``, ``external_id`` = the incident number), before or after the call:

- the record first: it opened a draft of its own. The call's ticket takes the record's
  content where the call's draft is still empty, and the record's draft is merged (并单) into
  the call's ticket, which is the one an agent is working on;
- the call first: the call's ticket holds a ``ticket_intakes`` row of source ``CALL_SOURCE``
  for the incident, and the record, when it comes, is attached to that ticket
  (``record_ticket``) whatever phone number it names (110's record may give a contact number
  other than the one the call came from).

Either way the call's ticket has channel ``police110``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cti.errors import HotlineError
from tickets.channels import Channel
from tickets.models import Ticket, TicketIntake
from tickets.service import TicketService
from tickets.statemachine import OPEN_STATES, Actor, State

log = logging.getLogger(__name__)

CALL_SOURCE = "110-call"  # ticket_intakes.source of a call 110 put through
CALL_KIND = "call"
# What 110's record gives a call's draft, when the agent has not written it yet.
CARRIED = ("citizen_name", "occurred", "location", "description", "category")


def record_ticket(session: Session, incident: str) -> Ticket | None:
    """The open ticket of the call 110 put through for ``incident``, if there is one."""
    ticket_id = session.scalar(
        select(TicketIntake.ticket_id).where(
            TicketIntake.source == CALL_SOURCE, TicketIntake.external_id == incident
        )
    )
    ticket = session.get(Ticket, ticket_id) if ticket_id else None
    if ticket is None or State(ticket.state) not in OPEN_STATES:
        return None
    return ticket


def carry(ticket: Ticket, fields: dict[str, str]) -> list[str]:
    """Copy 110's fields into the ticket where it is empty; returns the names copied."""
    copied = []
    for name in CARRIED:
        value = fields.get(name) or ""
        if value and not getattr(ticket, name):
            setattr(ticket, name, value)
            copied.append(name)
    ticket.channel = Channel.POLICE110.value
    return copied


def link_call(service: TicketService, ticket_id: str, incident: str, now: datetime) -> str | None:
    """The call's ticket ``ticket_id`` is 110's incident ``incident``: mark it, take the
    record's content if the record came first and merge the record's draft into it. Returns
    the id of the merged draft, if any. Idempotent (a call seen again links nothing twice)."""
    actor = Actor(Actor.SYSTEM_ID, frozenset({"agent"}))
    with service.sessions.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or session.scalar(
            select(TicketIntake.id).where(
                TicketIntake.source == CALL_SOURCE, TicketIntake.external_id == incident
            )
        ):
            return None
        record = session.scalar(
            select(TicketIntake)
            .where(
                TicketIntake.channel == Channel.POLICE110.value,
                TicketIntake.external_id == incident,
                TicketIntake.source != CALL_SOURCE,
            )
            .order_by(TicketIntake.id.desc())
            .limit(1)
        )
        drafted = session.get(Ticket, record.ticket_id) if record is not None else None
        copied = carry(ticket, _fields(drafted)) if drafted is not None else []
        ticket.channel = Channel.POLICE110.value
        session.add(
            TicketIntake(
                ticket_id=ticket_id,
                channel=Channel.POLICE110.value,
                source=CALL_SOURCE,
                external_id=incident,
                phone=ticket.caller[:20],
                kind=CALL_KIND,
                text=record.text if record is not None else "",
                data=dict(record.data) if record is not None else {},
                received_at=now,
            )
        )
        data: dict[str, Any] = {"incident": incident, "copied": copied}
        if record is not None:
            data["record"] = dict(record.data)
            data["record_ticket"] = record.ticket_id
        service.audit(session, ticket, "police_call", actor, ticket.state, data=data)
        merge = (
            drafted.id
            if drafted is not None
            and drafted.id != ticket_id
            and State(drafted.state) is State.INTAKE
            else None
        )
    if merge is None:
        return None
    try:
        service.merge(merge, ticket_id, actor, "110 的同一警情：来电工单已受理")
    except HotlineError as exc:  # taken up meanwhile by someone: both stay, linked
        log.warning("110 incident %s: draft %s not merged: %s", incident, merge, exc)
        return None
    return merge


def _fields(ticket: Ticket) -> dict[str, str]:
    return {name: str(getattr(ticket, name) or "") for name in CARRIED}
