"""Reading a ticket: the ticket and its parts come from one snapshot of the database, even
when a transition commits between the statements that read them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.tickets.support import do, open_ticket
from tickets.service import TicketService


def test_a_ticket_and_its_events_are_read_in_one_snapshot(
    service: TicketService, engine: Engine
) -> None:
    ticket = open_ticket(service)
    before = service.get(ticket.id)
    fired: list[str] = []

    def transition_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Between the ticket's statement and its events' one: another request answers the
        # ticket (its own connection and transaction, committed).
        if fired or "FROM ticket_events" not in statement:
            return
        fired.append(statement)
        do(service, ticket.id, "answer")

    event.listen(engine, "before_cursor_execute", transition_meanwhile)
    try:
        seen = service.get(ticket.id)
    finally:
        event.remove(engine, "before_cursor_execute", transition_meanwhile)
    assert fired
    # The state and the trail agree: both from before the answer.
    assert seen.state == before.state
    assert [e.action for e in seen.events] == [e.action for e in before.events]
    after = service.get(ticket.id)
    assert after.state != before.state
    assert len(after.events) == len(before.events) + 1
