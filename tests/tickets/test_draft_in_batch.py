"""The draft ticket of an answered call opened inside the CTI store's batch (``draft_in``):
the usual case in the batch's transaction, anything else left for ``open_id_for_call``, and
the store running what a write leaves for after its commit only once it is committed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cti.events import TicketOpened
from cti.models import CallRow
from cti.store import Store, after_commit
from tests.tickets.support import RecordingBus
from tickets.models import Ticket, TicketCall, TicketEvent
from tickets.service import DraftCall, TicketService

N1, N2 = "20261207000001", "20261207000002"


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int]:
    with sessions() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t)) or 0
            for t in (Ticket, TicketCall, TicketEvent)
        )


def opened(bus: RecordingBus) -> list[str]:
    return [e.ticket_id for e in bus.events if isinstance(e, TicketOpened)]


def test_a_new_call_opens_its_ticket_in_the_callers_transaction(
    service: TicketService, sessions: sessionmaker[Session], bus: RecordingBus
) -> None:
    with sessions() as s:
        call = DraftCall(
            call_id="1796658156.179", node="pbx1", caller="13800000038\r\n", agent_id="a1"
        )
        done = service.draft_in(s, N1, call)
        assert done is not None
        assert opened(bus) == []  # said once committed, not before
        s.commit()
    done()
    assert opened(bus) == [N1]
    view = service.get(N1)
    assert (view.caller, view.agent_id) == ("13800000038", "a1")
    assert [c.call_id for c in view.calls] == ["1796658156.179"]
    assert counts(sessions) == (1, 1, 1)


def test_a_taken_number_or_a_call_seen_before_leaves_nothing_written(
    service: TicketService, sessions: sessionmaker[Session], bus: RecordingBus
) -> None:
    first = service.open_id_for_call(N1, call_id="c1", node="pbx1", caller="13811110000")
    before = counts(sessions)
    with sessions() as s:  # the number is another call's
        assert service.draft_in(s, N1, DraftCall("c2", "pbx1", "13922220000")) is None
        s.commit()
    with sessions() as s:  # the call has its ticket already: the fresh number is not kept
        assert service.draft_in(s, N2, DraftCall("c1", "pbx1", "13811110000")) is None
        s.commit()
    assert counts(sessions) == before
    assert opened(bus) == [first]
    # what the CTI then runs, in its own transaction, sorts both out
    assert service.open_id_for_call(N1, call_id="c1", node="pbx1", caller="13811110000") == N1
    other = service.open_id_for_call(N1, call_id="c2", node="pbx1", caller="13922220000")
    assert other != N1 and service.get(other).caller == "13922220000"


def test_the_store_runs_what_a_write_leaves_for_after_its_commit(
    sessions: sessionmaker[Session],
) -> None:
    store = Store(sessions, backoff_max_s=0.05)
    ran: list[str] = []

    def good(session: Session) -> None:
        session.add(CallRow(node="pbx1", linkedid="1.1", started_at=datetime.now(UTC)))
        after_commit(session, lambda: ran.append("good"))

    def bad(session: Session) -> None:
        after_commit(session, lambda: ran.append("bad"))
        raise ValueError("a bug in a write")

    store.start()
    store.submit(good)
    store.submit(bad)
    assert store.flush_sync(10)
    store.stop()
    # the batch failed as a whole, then each write alone: the good one's commit is said once,
    # the bad one's never
    assert ran == ["good"]
    assert [label for label, _ in store.dead] == [""]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(CallRow)) == 1
