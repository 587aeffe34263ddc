"""A separate process for the timer restart test.

``python -m tests.tickets.timer_process URL schedule`` opens and dispatches a ticket whose
deadline is a second away, then stops at once (before it falls due).
``python -m tests.tickets.timer_process URL resume TICKET`` starts a new scheduler on the same
database and waits until the overdue timer fired; it prints the ticket's supervision level.
"""

from __future__ import annotations

import asyncio
import sys

from cti.bus import Bus
from cti.db import Base, make_engine, session_factory
from tests.tickets.support import AGENT, DEPARTMENTS
from tickets.notify import NullNotifier
from tickets.service import TicketService
from tickets.settings import DeadlineRule, TicketSettings
from tickets.timers import TicketTimers

FAST = TicketSettings(
    rules=[DeadlineRule(category="快", limit="1s", response_limit="1s", remind_before=0.5)]
)


async def main(url: str, mode: str, ticket_id: str = "") -> int:
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    timers = TicketTimers(url)
    service = TicketService(
        session_factory(engine), Bus(), FAST, DEPARTMENTS, NullNotifier(), timers
    )
    service.start_timers()
    try:
        if mode == "schedule":
            view = service.open_for_call("20261001000001", call_id="p1", topic="快")
            service.transition(view.id, "dispatch", AGENT, department="zjj")
            print(view.id, flush=True)
            return 0
        for _ in range(100):
            view = service.get(ticket_id)
            # The view is read in several statements: the ticket row may predate the events
            # read after it (the escalation committed in between). Both must show it.
            if view.supervision_level and any(e.action == "due_overdue" for e in view.events):
                print(view.supervision_level, flush=True)
                return 0
            await asyncio.sleep(0.05)
        return 1
    finally:
        timers.shutdown(wait=False)
        engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:])))
