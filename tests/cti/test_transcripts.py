"""Every recorded AMI session replayed through the CTI's real client, tracker, store and
ticket service over a loopback socket, with the resulting state asserted."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from cti.events import (
    AmiDisconnected,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    RecordingStopped,
    SeatAlarm,
    SeatStatusChanged,
    TicketOpened,
)
from cti.models import CallbackTaskRow, CallRow
from cti.testing import fixture_path
from tests.cti.streamer import TranscriptStreamer
from tickets.models import Ticket


async def replay(make_hotline, name: str, *, split: int = 0, before=None):  # noqa: ANN001, ANN202
    streamer = TranscriptStreamer(fixture_path(f"{name}.ami.jsonl"), split=split)
    port = await streamer.start()
    started = await make_hotline(port)
    if before is not None:
        before(started.hotline)
    await asyncio.wait_for(streamer.done.wait(), 10)
    await quiet(started.hotline)
    assert await started.hotline.store.flush(10)
    await streamer.stop()
    return started


async def quiet(hotline, settle: float = 0.3) -> None:  # noqa: ANN001
    """Until the client has taken in everything sent (its event count stops moving)."""
    node = hotline.nodes["pbx1"]
    last, still = -1, 0.0
    while still < settle:
        await asyncio.sleep(0.05)
        if node.events_received == last:
            still += 0.05
        else:
            last, still = node.events_received, 0.0


def rows(hotline, model):  # noqa: ANN001, ANN201
    with hotline.sessions() as s:
        return list(s.scalars(select(model)))


async def test_direct_to_seat(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "direct_to_seat", split=3)
    h = s.hotline
    (start,) = s.of(CallStarted)
    assert (start.caller, start.caller_name, start.did) == ("13800000001", "张三", "12345")
    (ans,) = s.of(CallAnswered)
    assert ans.seat == "8001" and ans.topic == "综合咨询"
    (end,) = s.of(CallEnded)
    assert end.answered and not end.abandoned
    (call,) = rows(h, CallRow)
    assert call.answered and call.seat == "8001" and call.caller_name == "张三"
    assert call.ended_at is not None and call.talk_s >= 0
    (ticket,) = rows(h, Ticket)
    assert ticket.caller == "13800000001" and ticket.topic == "综合咨询"
    assert ticket.id == call.ticket_id
    assert len(s.of(TicketOpened)) == 1
    assert len(s.of(RecordingStopped)) == 1
    assert h.seats.get("8001").contact == "Removed"


async def test_queue_answered_is_a_fallback_answer(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "queue_answered")
    (call,) = rows(s.hotline, CallRow)
    assert call.answered and call.seat == "8002" and call.caller_name == "李四"
    assert call.routed_by == "fallback"
    assert len(rows(s.hotline, Ticket)) == 1


async def test_queue_abandoned_becomes_a_callback_task(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "queue_abandoned")
    (end,) = s.of(CallEnded)
    assert end.abandoned and not end.answered
    (call,) = rows(s.hotline, CallRow)
    assert call.abandoned and not call.answered
    (task,) = rows(s.hotline, CallbackTaskRow)
    assert task.caller == "13800000003" and task.status == "open"
    assert rows(s.hotline, Ticket) == []


async def test_three_way_window(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "three_way_window")
    (ans,) = s.of(CallAnswered)
    assert ans.seat == "8001" and ans.caller_name == "赵六"
    (end,) = s.of(CallEnded)
    assert end.answered
    (call,) = rows(s.hotline, CallRow)
    assert call.seat == "8001"


async def test_blind_transfer(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "blind_transfer")
    (tr,) = s.of(CallTransferred)
    assert (tr.kind, tr.target, tr.result) == ("blind", "9001", "Success")
    assert len(s.of(CallAnswered)) == 1


async def test_attended_transfer(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "attended_transfer")
    (tr,) = s.of(CallTransferred)
    assert tr.kind == "attended" and tr.result == "Success"
    (end,) = s.of(CallEnded)
    assert end.answered and end.seat == "8001"


async def test_callback_originate(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "callback_originate")
    (call,) = rows(s.hotline, CallRow)
    assert call.direction == "callback" and call.caller == "13800000007"
    assert call.answered and call.seat == "8001"


async def test_seat_status_and_alarm(make_hotline) -> None:  # noqa: ANN001
    def login(h) -> None:  # noqa: ANN001
        h.seats.get("8003").contact = "Reachable"
        h.agents.login("wang", "8003", ready=True)

    s = await replay(make_hotline, "seat_status", before=login)
    h = s.hotline
    contacts = [(e.seat, e.contact) for e in s.of(SeatStatusChanged)]
    assert ("8001", "Removed") in contacts and ("8003", "Unreachable") in contacts
    assert contacts.index(("8001", "Removed")) < contacts.index(("8003", "Unreachable"))
    assert h.seats.get("8003").unreachable_since is not None
    alarms = s.of(SeatAlarm)
    assert alarms and alarms[-1].seat == "8003" and not alarms[-1].cleared
    assert h.agents.get("wang").state == "not_ready"
    assert h.agents.get("wang").reason == "phone-unreachable"
    statuses = {(e.seat, e.contact) for e in s.of(SeatStatusChanged)}
    assert ("8001", "Reachable") in statuses


async def test_peak_load(make_hotline) -> None:  # noqa: ANN001
    s = await replay(make_hotline, "peak_load")
    ends = s.of(CallEnded)
    assert len(ends) == 30 and all(e.answered for e in ends)
    assert len(rows(s.hotline, Ticket)) == 30
    assert {e.seat for e in ends} == {"8001", "8002", "8003"}


async def test_asterisk_restart_reconnects(make_hotline) -> None:  # noqa: ANN001
    streamer = TranscriptStreamer(fixture_path("asterisk_restart.ami.jsonl"))
    port = await streamer.start()
    s = await make_hotline(port)
    for _ in range(100):
        if streamer.connections >= 2 and s.hotline.nodes["pbx1"].connected:
            break
        await asyncio.sleep(0.05)
    assert s.of(AmiDisconnected)
    assert s.hotline.nodes["pbx1"].connected
    await streamer.stop()
