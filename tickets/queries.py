"""Reading tickets: the full view, a caller's history, what routing asks, lists."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cti.errors import NotFound
from tickets.models import (
    Attachment,
    Department,
    Extension,
    Survey,
    Ticket,
    TicketEvent,
    WindowOutcome,
)
from tickets.settings import TicketSettings
from tickets.statemachine import OPEN_STATES, State
from tickets.views import TicketView, ticket_view

_TICKET_ID = re.compile(r"[0-9A-Za-z_-]{1,20}")


def _one_snapshot(session: Session) -> None:
    """Make every statement of ``session`` (a new one) read the same snapshot, so that a
    ticket and its parts, read in several statements, agree even while a transition commits
    meanwhile. PostgreSQL's default READ COMMITTED gives each statement its own snapshot:
    REPEATABLE READ takes one for the transaction. SQLite's driver opens no transaction for
    reads, so each SELECT would see the file as it is then: a BEGIN makes them one read
    transaction (in WAL mode it does not hold the writers back)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    elif dialect == "sqlite":
        session.connection().exec_driver_sql("BEGIN")


class TicketQueries:
    sessions: sessionmaker[Session]
    settings: TicketSettings
    clock: Callable[[], datetime]

    def departments(self) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(select(Department).order_by(Department.id))
            return [
                {
                    "id": d.id,
                    "name": d.name,
                    "contact_name": d.contact_name,
                    "contact_phone": d.contact_phone,
                    "co_handling": d.co_handling,
                    "active": d.active,
                }
                for d in rows
            ]

    @staticmethod
    def load_ticket(session: Session, ticket_id: str) -> Ticket:
        if not _TICKET_ID.fullmatch(ticket_id):
            # Not a ticket number at all (a NUL, markup, 200 characters): PostgreSQL would
            # refuse the query outright; it is simply no ticket.
            raise NotFound("no-such-ticket", "no such ticket", ticket_id=ticket_id[:40])
        ticket = session.scalar(
            select(Ticket)
            .where(Ticket.id == ticket_id)
            .options(selectinload(Ticket.calls), selectinload(Ticket.assignments))
        )
        if ticket is None:
            raise NotFound("no-such-ticket", f"no ticket {ticket_id}", ticket_id=ticket_id)
        return ticket

    def get(self, ticket_id: str) -> TicketView:
        with self.sessions() as session:
            _one_snapshot(session)
            ticket = self.load_ticket(session, ticket_id)

            def rows(model: Any, order: Any) -> list[Any]:
                return list(
                    session.scalars(
                        select(model).where(model.ticket_id == ticket_id).order_by(order)
                    )
                )

            return ticket_view(
                ticket,
                events=rows(TicketEvent, TicketEvent.id),
                extensions=rows(Extension, Extension.id),
                surveys=rows(Survey, Survey.id),
                attachments=rows(Attachment, Attachment.id),
                window_outcomes=rows(WindowOutcome, WindowOutcome.id),
            )

    def history_for_caller(
        self, caller: str, limit: int = 20, *, scope: ColumnElement[bool] | None = None
    ) -> list[TicketView]:
        """The caller's tickets, newest first (for the agent desktop's screen pop); ``scope``
        keeps those a user may see (``console.scopes.ticket_scope``)."""
        if not caller:
            return []
        with self.sessions() as session:
            tickets = session.scalars(
                select(Ticket)
                .where(Ticket.caller == caller, *(() if scope is None else (scope,)))
                .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
                .limit(limit)
                .options(selectinload(Ticket.calls), selectinload(Ticket.assignments))
            )
            return [ticket_view(t) for t in tickets]

    def caller_summary(self, caller: str) -> tuple[bool, str | None, bool]:
        """(has an open ticket, agent of the latest ticket, flagged repeat caller)."""
        if not caller:
            return False, None, False
        open_states = [s.value for s in OPEN_STATES if s != State.INTAKE]
        since = self.clock() - timedelta(days=self.settings.repeat_caller_window_days)
        with self.sessions() as session:
            has_open = session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.caller == caller, Ticket.state.in_(open_states))
            )
            last_agent = session.scalar(
                select(Ticket.agent_id)
                .where(Ticket.caller == caller)
                .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
                .limit(1)
            )
            most = session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.caller == caller, Ticket.opened_at >= since)
                .group_by(Ticket.category)
                .order_by(func.count().desc())
                .limit(1)
            )
        return (
            bool(has_open),
            last_agent or None,
            (most or 0) >= self.settings.repeat_caller_threshold,
        )

    def list_tickets(
        self,
        *,
        state: str | None = None,
        department_id: str | None = None,
        caller: str | None = None,
        limit: int = 50,
        offset: int = 0,
        scope: ColumnElement[bool] | None = None,
    ) -> list[TicketView]:
        """A page of tickets, newest first; ``scope`` keeps those a user may see."""
        query = select(Ticket) if scope is None else select(Ticket).where(scope)
        if state:
            query = query.where(Ticket.state == state)
        if department_id:
            query = query.where(Ticket.lead_department_id == department_id)
        if caller:
            query = query.where(Ticket.caller == caller)
        query = (
            query.order_by(Ticket.opened_at.desc(), Ticket.id.desc())
            .limit(min(limit, 500))
            .offset(offset)
            .options(selectinload(Ticket.calls), selectinload(Ticket.assignments))
        )
        with self.sessions() as session:
            return [ticket_view(t) for t in session.scalars(query)]
