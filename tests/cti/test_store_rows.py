"""Row writes: the persistence's kinds, batched into one statement each, on both databases."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from cti.db import load_models, make_engine, session_factory
from cti.models import AgentRow, AgentStateLogRow, CallbackTaskRow, CallLegRow, CallRow, SeatRow
from cti.persist import AGENT, AGENT_LOG, CALL, CALLBACKS_DONE, LEG, SEAT
from cti.store import Store

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _store(url: str) -> tuple[Store, object]:
    engine = make_engine(url)
    load_models().create_all(engine)
    return Store(session_factory(engine), backoff_max_s=0.05), engine


def _call(linkedid: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {
        "node": "pbx1",
        "linkedid": linkedid,
        "started_at": T0,
        "caller": "13800000000",
        "state": "ringing",
        "ticket_id": "",
    }
    row.update(values)
    return row


def test_a_call_upserted_in_one_batch_is_one_row_with_the_newest_values(any_db_url: str) -> None:
    """Start, answer and end of one call in one batch: one row with the newest values (the
    ends of a call are never undone by an older snapshot)."""
    store, engine = _store(any_db_url)
    store.submit_row(CALL, _call("c1"))
    store.submit_row(CALL, _call("c1", state="up", answered_at=T0 + timedelta(seconds=3)))
    store.submit_row(CALL, _call("c1", state="down", ended_at=T0 + timedelta(seconds=60)))
    store.start()
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        rows = list(s.scalars(select(CallRow)))
    assert len(rows) == 1
    assert rows[0].state == "down"
    assert rows[0].answered_at == T0 + timedelta(seconds=3)
    assert rows[0].ended_at == T0 + timedelta(seconds=60)
    assert store.dead == []
    engine.dispose()  # type: ignore[attr-defined]


def test_a_call_keeps_its_first_ticket_and_start(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    store.start()
    store.submit_row(CALL, _call("c2", ticket_id="20261207000001"))
    assert store.flush_sync(10)
    # seen again after a reconnect: another start time, another ticket number drawn
    later = T0 + timedelta(minutes=5)
    store.submit_row(CALL, _call("c2", started_at=later, ticket_id="20261207000099", state="up"))
    store.submit_row(CALL, _call("c3", ticket_id=""))
    assert store.flush_sync(10)
    store.submit_row(CALL, _call("c3", ticket_id="20261207000002"))
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        c2 = s.scalar(select(CallRow).where(CallRow.linkedid == "c2"))
        c3 = s.scalar(select(CallRow).where(CallRow.linkedid == "c3"))
    assert c2 is not None and c3 is not None
    assert (c2.ticket_id, c2.started_at, c2.state) == ("20261207000001", T0, "up")
    assert c3.ticket_id == "20261207000002"  # an empty one is filled
    engine.dispose()  # type: ignore[attr-defined]


def test_an_agent_and_its_log_in_one_batch_with_foreign_keys_on(any_db_url: str) -> None:
    """The log refers to the agent: agents are written first whatever the submit order."""
    store, engine = _store(any_db_url)
    for i, state in enumerate(("ready", "ringing", "busy", "ready")):
        old = "logged_out" if i == 0 else "x"
        store.submit_row(
            AGENT_LOG,
            {"agent_id": "a1", "seat": "1001", "old": old, "new": state, "reason": "", "at": T0},
        )
        store.submit_row(
            AGENT,
            {"id": "a1", "name": "a1", "state": state, "reason": "", "seat": "1001",
             "state_since": T0 + timedelta(seconds=i)},
        )  # fmt: skip
    store.start()
    assert store.flush_sync(10)
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        s.add(AgentRow(id="a2", name="王芳"))
        s.commit()
    store.submit_row(
        AGENT,
        {"id": "a2", "name": "a2", "state": "ready", "reason": "", "seat": "1002",
         "state_since": T0},
    )  # fmt: skip
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        a1 = s.get(AgentRow, "a1")
        a2 = s.get(AgentRow, "a2")
        log = list(s.scalars(select(AgentStateLogRow.new).order_by(AgentStateLogRow.id)))
    assert a1 is not None and a1.state == "ready" and a1.state_since == T0 + timedelta(seconds=3)
    assert log == ["ready", "ringing", "busy", "ready"]  # every change logged, in order
    assert a2 is not None and a2.name == "王芳" and a2.state == "ready"  # the name stays
    assert store.dead == []
    engine.dispose()  # type: ignore[attr-defined]


def test_seat_updates_touch_only_known_seats(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        s.add(SeatRow(id="S1", extension="1001"))
        s.commit()
    for device in ("RINGING", "INUSE", "NOT_INUSE"):
        store.submit_row(SEAT, {"id": "S1", "device": device, "contact": "Reachable"})
    store.submit_row(SEAT, {"id": "S9", "device": "INUSE", "contact": "Reachable"})
    store.start()
    assert store.flush_sync(10)
    store.stop()
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("select id, device, contact from seats")).all() == [
            ("S1", "NOT_INUSE", "Reachable")
        ]
    engine.dispose()  # type: ignore[attr-defined]


def test_legs_are_written_once_and_callbacks_close_only_open_tasks(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        for status in ("open", "done"):
            s.add(
                CallbackTaskRow(
                    caller="13900000000",
                    status=status,
                    first_call_at=T0,
                    last_call_at=T0,
                    closed_by="earlier" if status == "done" else "",
                )
            )
        s.commit()
    leg = {"node": "pbx1", "uniqueid": "u1", "linkedid": "c1", "channel": "PJSIP/trunk-1",
           "endpoint": "trunk", "created_at": T0, "ended_at": T0}  # fmt: skip
    store.submit_row(LEG, leg)
    store.submit_row(LEG, dict(leg, channel="PJSIP/trunk-again"))
    closed = {"caller": "13900000000", "status": "done", "closed_at": T0, "closed_by": "a7"}
    store.submit_row(CALLBACKS_DONE, closed)
    store.start()
    assert store.flush_sync(10)
    store.submit_row(LEG, leg)  # seen again in a resync
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        legs = list(s.scalars(select(CallLegRow.channel)))
        tasks = sorted(s.scalars(select(CallbackTaskRow.closed_by)))
    assert legs == ["PJSIP/trunk-1"]
    assert tasks == ["a7", "earlier"]  # the task done earlier keeps who closed it
    engine.dispose()  # type: ignore[attr-defined]


def test_a_write_between_rows_sees_the_rows_before_it(any_db_url: str) -> None:
    store, engine = _store(any_db_url)
    seen: list[int] = []
    store.submit_row(CALL, _call("before"))
    store.submit(lambda s: seen.append(len(list(s.scalars(select(CallRow.id))))))
    store.submit_row(CALL, _call("after"))
    store.start()
    assert store.flush_sync(10)
    store.stop()
    assert seen == [1]
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("select count(*) from calls")).scalar() == 2
    engine.dispose()  # type: ignore[attr-defined]


def test_rows_wait_out_a_locked_database(tmp_path) -> None:  # noqa: ANN001
    """The file's write lock held elsewhere (a long transaction): the rows stay queued, are
    retried, and all land once it is free."""
    import sqlite3
    import time

    path = tmp_path / "hotline.db"
    store, engine = _store(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    store.start()
    for i in range(20):
        store.submit_row(CALL, _call(f"c{i}", state="up"))
    deadline = time.monotonic() + 30
    while store.retries == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.retries > 0 and store.pending > 0
    other.rollback()
    other.close()
    assert store.flush_sync(30)
    store.stop()
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("select count(*) from calls")).scalar() == 20
    assert store.dead == []
    engine.dispose()  # type: ignore[attr-defined]


def test_a_recording_started_gets_one_live_job_and_a_stopped_one_is_left_alone(
    any_db_url: str,
) -> None:
    from recordings import models as rm
    from recordings.rows import LIVE_JOB, STARTED

    store, engine = _store(any_db_url)

    def started(call_id: str) -> dict[str, object]:
        return {"call_id": call_id, "node": "pbx1", "ticket_id": "", "agent_id": None,
                "path": f"/rec/{call_id}.wav", "started_at": T0, "ended_at": T0,
                "status": rm.RECORDING, "created_at": T0}  # fmt: skip

    with session_factory(engine)() as s:  # type: ignore[arg-type]
        done = rm.Recording(**dict(started("old"), status=rm.REGISTERED))
        s.add(done)
        s.commit()
    for call_id in ("new", "new", "old"):  # a start seen twice, a start after the stop
        store.submit_row(STARTED, started(call_id))
        store.submit_row(LIVE_JOB, {"call_id": call_id, "path": f"/rec/{call_id}.wav", "now": T0})
    store.start()
    assert store.flush_sync(10)
    store.submit_row(STARTED, started("new"))  # and again in a later batch
    store.submit_row(LIVE_JOB, {"call_id": "new", "path": "/rec/new.wav", "now": T0})
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        recs = {r.call_id: r.status for r in s.scalars(select(rm.Recording))}
        jobs = [
            (j.recording_id, j.status, j.attempts) for j in s.scalars(select(rm.TranscriptionJob))
        ]
        new_id = s.scalar(select(rm.Recording.id).where(rm.Recording.call_id == "new"))
    assert recs == {"new": rm.RECORDING, "old": rm.REGISTERED}
    assert jobs == [(new_id, rm.LIVE, 0)]
    assert store.dead == []
    engine.dispose()  # type: ignore[attr-defined]


def test_missed_calls_count_on_one_open_task_until_the_caller_is_reached(any_db_url: str) -> None:
    from cti.calls.model import Call
    from cti.persist import _missed

    store, engine = _store(any_db_url)

    def missed(n: int) -> Call:
        at = T0 + timedelta(minutes=n)
        return Call(
            node="pbx1",
            call_id=f"m{n}",
            direction="inbound",
            channel="PJSIP/trunk-1",
            uniqueid=f"m{n}",
            caller="13700000000",
            caller_name="张三",
            did="12345",
            started_at=at,
            started_mono=0.0,
            ended_at=at + timedelta(seconds=30),
        )

    for n in range(3):
        call = missed(n)
        store.submit(lambda s, call=call: _missed(s, call))  # type: ignore[misc]
    reached = {"caller": "13700000000", "status": "done", "closed_at": T0, "closed_by": "a1"}
    store.submit_row(CALLBACKS_DONE, reached)
    later = missed(9)
    store.submit(lambda s: _missed(s, later))
    store.start()
    assert store.flush_sync(10)
    store.stop()
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        tasks = [
            (t.status, t.missed_calls, t.first_call_at, t.last_call_at)
            for t in s.scalars(select(CallbackTaskRow).order_by(CallbackTaskRow.id))
        ]
    end = timedelta(seconds=30)
    assert tasks == [
        ("done", 3, T0, T0 + timedelta(minutes=2) + end),
        ("open", 1, T0 + timedelta(minutes=9), T0 + timedelta(minutes=9) + end),
    ]
    engine.dispose()  # type: ignore[attr-defined]


def test_writes_that_come_together_after_a_quiet_moment_are_one_transaction(
    any_db_url: str,
) -> None:
    """The writer woken by a call's first event waits ``linger_s`` for the rest of the burst:
    one transaction for both, not one each."""
    engine = make_engine(any_db_url)
    load_models().create_all(engine)
    store = Store(session_factory(engine), backoff_max_s=0.05, linger_s=1.0)
    store.start()
    store.submit_row(CALL, _call("c7"))
    time.sleep(0.05)  # the writer is awake, lingering
    store.submit_row(CALL, _call("c8"))
    assert store.flush_sync(10)
    store.stop()
    assert store.written == 2
    assert len(store.write_seconds) == 1
    engine.dispose()  # type: ignore[attr-defined]


def test_a_seat_row_follows_its_phone_not_its_calls(any_db_url: str) -> None:
    """The seats table keeps a seat's phone (registration, reachability, round trip): the
    device states of each call (ringing, in use, free) and a round trip that barely moved do
    not write the row again; a phone that stops answering does."""
    from cti.agents.board import AgentBoard
    from cti.bus import Bus
    from cti.calls.tracker import CallTracker
    from cti.persist import Persistence
    from cti.seats.registry import Seat, SeatRegistry

    store, engine = _store(any_db_url)
    with session_factory(engine)() as s:  # type: ignore[arg-type]
        s.add(SeatRow(id="S1", extension="1001"))
        s.commit()
    bus = Bus()
    seats = SeatRegistry([Seat(id="S1", extension="1001")], bus, lambda: T0)
    agents = AgentBoard([], seats, bus, lambda: T0, wrapup_s=0, reasons=())
    tracker = CallTracker(bus, seats, agents, lambda: T0)
    Persistence(
        store,
        bus,
        tracker,
        seats,
        open_ticket=lambda call: None,
        register_recording=lambda ev, call: None,
    )
    contact = {"AOR": "1001", "ContactStatus": "Reachable", "URI": "sip:1001@10.0.0.5"}
    seats.on_contact_status("pbx1", {**contact, "RoundtripUsec": "20000"})
    seats.on_device_state("pbx1", {"Device": "PJSIP/1001", "State": "NOT_INUSE"})
    queued = store.pending
    for _ in range(3):  # three calls
        for state in ("RINGING", "INUSE", "NOT_INUSE"):
            seats.on_device_state("pbx1", {"Device": "PJSIP/1001", "State": state})
    seats.on_contact_status("pbx1", {**contact, "RoundtripUsec": "21000"})
    assert store.pending == queued  # nine device states and a round trip 1 ms longer
    seats.on_contact_status("pbx1", {**contact, "RoundtripUsec": "90000"})
    seats.on_contact_status("pbx1", {**contact, "ContactStatus": "Unreachable"})
    assert store.pending == queued + 2
    store.start()
    assert store.flush_sync(10)
    store.stop()
    with engine.connect() as c:  # type: ignore[attr-defined]
        assert c.execute(text("select contact, rtt_us from seats")).all() == [("Unreachable", 0)]
    engine.dispose()  # type: ignore[attr-defined]
