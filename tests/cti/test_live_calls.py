"""One call end to end, the ACD's moves and races, and the fallback when the CTI is down:
the CTI's real code against the simulated PBX over loopback sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from cti.events import CallAnswered, CallEnded, CallRouted
from cti.models import AgentRow, AgentStateLogRow, CallbackTaskRow, CallRow
from recordings.models import Recording
from tests.cti.live import Floor, close_floor, open_floor
from tickets.models import Ticket


@pytest.fixture
async def floor(any_db_url: str, tmp_path: Path):  # noqa: ANN201
    f = await open_floor(any_db_url, tmp_path)
    yield f
    await close_floor(f)


def db(floor: Floor, model):  # noqa: ANN001, ANN201
    with floor.hotline.sessions() as s:
        return list(s.scalars(select(model)))


async def test_one_call_end_to_end(floor: Floor) -> None:
    await floor.ready(("li", "8001"))
    handle = floor.sim.place_call(caller="13800000001", name="张三", did="12345", talk_s=6)
    assert await handle.wait(10) == "answered"
    (routed,) = floor.of(CallRouted)
    assert routed.target == "PJSIP/8001" and routed.reason in ("skill", "sticky")
    (ans,) = floor.of(CallAnswered)
    assert (ans.seat, ans.agent_id, ans.caller_name) == ("8001", "li", "张三")
    await floor.until(lambda: bool(floor.of(CallEnded)))
    assert await floor.hotline.store.flush(10)
    (call,) = db(floor, CallRow)
    assert call.routed_by == "cti" and call.answered and call.agent_id == "li"
    (ticket,) = db(floor, Ticket)
    assert ticket.id == call.ticket_id == routed.ticket_id
    assert (ticket.caller, ticket.topic, ticket.agent_id) == ("13800000001", "综合咨询", "li")
    await floor.until(lambda: bool(db(floor, Recording)), 10)
    (rec,) = db(floor, Recording)
    assert rec.path == routed.recording and rec.ticket_id == ticket.id
    assert Path(routed.recording).exists()


async def test_waiting_call_is_moved_when_an_agent_becomes_ready(floor: Floor) -> None:
    handle = floor.sim.place_call(caller="13800000002", name="李四", did="12345", talk_s=4)
    await floor.until(lambda: bool(floor.of(CallRouted)))
    (routed,) = floor.of(CallRouted)
    assert routed.target == "" and routed.reason == "queued"
    await asyncio.sleep(0.3)
    assert not floor.of(CallAnswered)
    await floor.ready(("wang", "8002"))
    assert await handle.wait(10) == "answered"
    assert floor.of(CallAnswered)[0].seat == "8002"
    assert floor.hotline.acd.stats["moves"] == 1


async def test_two_seats_freeing_at_once_take_one_call_each(floor: Floor) -> None:
    a = floor.sim.place_call(caller="13800000003", name="王五", did="12345", talk_s=4)
    await floor.until(lambda: len(floor.of(CallRouted)) == 1)
    floor.hotline.agents.login("li", "8001", ready=False)
    floor.hotline.agents.login("wang", "8002", ready=False)
    floor.hotline.agents.set_ready("li")
    floor.hotline.agents.set_ready("wang")
    assert await a.wait(10) == "answered"
    assert len(floor.of(CallAnswered)) == 1
    assert floor.hotline.acd.stats["moves"] == 1


async def test_caller_hangs_up_while_waiting_gets_a_callback_task(floor: Floor) -> None:
    handle = floor.sim.place_call(
        caller="13800000004", name="赵六", did="12345", talk_s=4, patience_s=2
    )
    assert await handle.wait(10) == "abandoned"
    await floor.until(lambda: bool(floor.of(CallEnded)))
    assert floor.of(CallEnded)[0].abandoned
    assert await floor.hotline.store.flush(10)
    (task,) = db(floor, CallbackTaskRow)
    assert task.caller == "13800000004" and task.status == "open"
    # the router forgot the call: a ready agent now gets nothing
    await floor.ready(("li", "8001"))
    await asyncio.sleep(0.3)
    assert floor.hotline.acd.snapshot()["waiting"] == []
    # the citizen calls again and is reached: the task closes
    again = floor.sim.place_call(caller="13800000004", name="赵六", did="12345", talk_s=2)
    assert await again.wait(10) == "answered"
    await floor.until(lambda: len(floor.of(CallEnded)) == 2)
    assert await floor.hotline.store.flush(10)
    (task,) = db(floor, CallbackTaskRow)
    assert task.status == "done"


async def test_seat_not_answering_goes_to_the_next_agent(floor: Floor) -> None:
    await floor.ready(("li", "8001"))
    floor.sim.set_phone_behaviour("8001", answer="ignore")
    handle = floor.sim.place_call(caller="13800000005", name="钱七", did="12345", talk_s=3)
    await floor.until(lambda: floor.hotline.agents.get("li").state == "ringing")
    await floor.ready(("wang", "8002"))
    assert await handle.wait(20) == "answered"
    assert floor.of(CallAnswered)[0].seat == "8002"
    li = floor.hotline.agents.get("li")
    assert (li.state, li.reason) == ("not_ready", "no-answer")


async def test_agent_going_not_ready_is_skipped(floor: Floor) -> None:
    await floor.ready(("li", "8001"), ("wang", "8002"))
    floor.hotline.agents.set_not_ready("li", "break")
    handle = floor.sim.place_call(caller="13800000006", name="孙八", did="12345", talk_s=2)
    assert await handle.wait(10) == "answered"
    assert floor.of(CallAnswered)[0].seat == "8002"


async def test_the_agents_row_keeps_what_a_restart_restores_and_the_log_every_change(
    floor: Floor,
) -> None:
    """A call moves li through ringing, on a call and wrap-up: four entries in the state log,
    none in the agents row, which a CTI starting or taking over restores from (li is ready
    at 8001 either way). Going not ready for a break is written there."""
    await floor.ready(("li", "8001"))
    assert await floor.hotline.store.flush(10)
    with floor.hotline.sessions() as s:
        since = s.get(AgentRow, "li").state_since  # type: ignore[union-attr]
    handle = floor.sim.place_call(caller="13800000008", name="吴十", did="12345", talk_s=2)
    assert await handle.wait(10) == "answered"
    await floor.until(lambda: bool(floor.of(CallEnded)))
    await floor.until(lambda: floor.hotline.agents.get("li").state == "ready")
    assert await floor.hotline.store.flush(10)
    with floor.hotline.sessions() as s:
        row = s.get(AgentRow, "li")
        assert row is not None
        assert (row.state, row.seat, row.state_since) == ("ready", "8001", since)
        log = list(
            s.scalars(
                select(AgentStateLogRow.new)
                .where(AgentStateLogRow.agent_id == "li")
                .order_by(AgentStateLogRow.id)
            )
        )
    assert log[-4:] == ["ringing", "on_call", "wrap_up", "ready"]
    floor.hotline.agents.set_not_ready("li", "break")
    assert await floor.hotline.store.flush(10)
    with floor.hotline.sessions() as s:
        row = s.get(AgentRow, "li")
        assert row is not None and (row.state, row.reason, row.seat) == (
            "not_ready",
            "break",
            "8001",
        )


async def test_sticky_agent_gets_the_repeat_caller(floor: Floor) -> None:
    await floor.ready(("li", "8001"))
    first = floor.sim.place_call(caller="13800000007", name="周九", did="12345", talk_s=2)
    assert await first.wait(10) == "answered"
    await floor.until(lambda: floor.hotline.callers.info("13800000007").open_ticket)
    await floor.ready(("wang", "8002"))
    await floor.until(lambda: floor.hotline.agents.get("li").state == "ready")
    # wang has been idle longer than li now? No: li just finished, wang logged in after.
    second = floor.sim.place_call(caller="13800000007", name="周九", did="12345", talk_s=2)
    assert await second.wait(10) == "answered"
    routes = floor.of(CallRouted)
    assert routes[-1].reason == "sticky" and routes[-1].target == "PJSIP/8001"


async def test_fallback_queue_answers_when_the_cti_is_down(any_db_url: str, tmp_path: Path) -> None:
    floor = await open_floor(any_db_url, tmp_path)
    try:
        await floor.ready(("li", "8001"))
        await floor.until(lambda: "PJSIP/8001" in floor.sim.queue.members, 5)
        # The CTI dies: no more heartbeat, no FastAGI. Calls still reach a human.
        await floor.hotline.stop()
        floor.sim.astdb[("cti", "heartbeat")] = "0"
        handle = floor.sim.place_call(caller="13800000008", name="吴十", did="12345", talk_s=2)
        assert await handle.wait(15) == "answered"
        assert handle.answered_by.startswith("PJSIP/8001")
    finally:
        await floor.sim.stop()


async def test_caller_hanging_up_while_being_moved(floor: Floor) -> None:
    """The Redirect meets a channel that is already gone: the reservation is undone and the
    agent is free for the next caller."""
    handle = floor.sim.place_call(caller="13800000009", name="郑一", did="12345", talk_s=4)
    await floor.until(lambda: bool(floor.of(CallRouted)))
    await floor.until(lambda: floor.hotline.acd.snapshot()["waiting"] != [])
    floor.hotline.agents.login("li", "8001", ready=False)
    await floor.until(lambda: floor.hotline.seats.get("8001").usable)
    # The citizen hangs up; before the CTI has read the Hangup, the agent becomes ready and
    # the ACD moves the (already gone) call to her.
    floor.sim.hangup(handle.channel)
    floor.hotline.agents.set_ready("li")
    assert await handle.wait(10) == "abandoned"
    await floor.until(lambda: floor.hotline.acd.snapshot()["reserved"] == [])
    await floor.until(lambda: floor.hotline.router.agent_state("li") == "ready")
    # Whether the Redirect met the gone channel (NoSuchChannel) or the Hangup was read first,
    # the reservation is undone and nothing was answered.
    assert not floor.of(CallAnswered)
    # and she takes the next call
    nxt = floor.sim.place_call(caller="13800000010", name="冯二", did="12345", talk_s=2)
    assert await nxt.wait(10) == "answered"
    assert floor.of(CallAnswered)[-1].seat == "8001"


async def test_transcript_is_on_the_ticket_moments_after_the_hangup(
    any_db_url: str, tmp_path: Path
) -> None:
    """The CTI registers the recording at MixMonitorStart, a transcription worker follows
    the files live while the call goes on, and the transcript reaches the ticket (the
    ``TranscriptReady`` event) right after the hangup. The engine decodes nothing (the vosk
    engine is tested on real audio in tests/recordings); the rest is the real path."""
    import threading

    from cti.db import make_engine, session_factory
    from cti.events import TranscriptReady
    from recordings import models as rm
    from recordings.testing import FixedStreamingTranscriber
    from recordings.worker import Worker

    floor = await open_floor(
        any_db_url,
        tmp_path,
        recordings={"settle_s": 0.2},
        transcription={"live_poll_s": 0.1, "poll_s": 0.1},
    )
    settings = floor.hotline.settings
    engine = make_engine(any_db_url)
    fake = FixedStreamingTranscriber("市民反映路灯不亮")
    worker = Worker(
        session_factory(engine), settings.recordings, settings.transcription, fake, worker_id="w1"
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        await floor.ready(("li", "8001"))
        handle = floor.sim.place_call(caller="13800000009", name="赵六", did="12345", talk_s=60)
        await floor.until(lambda: bool(floor.of(CallAnswered)))

        def job_status() -> str:
            with floor.hotline.sessions() as s:
                return s.scalar(select(rm.TranscriptionJob.status)) or ""

        await floor.until(lambda: job_status() == rm.FOLLOWING, 10)
        (rec,) = db(floor, Recording)
        assert rec.status == rm.RECORDING  # the call goes on
        await floor.until(lambda: any(s.audio_s > 0.5 for s in fake.streams), 10)
        assert await handle.wait(15) == "answered"
        await floor.until(lambda: bool(floor.of(TranscriptReady)), 10)
        (ready,) = floor.of(TranscriptReady)
        (ticket,) = db(floor, Ticket)
        assert ready.ticket_id == ticket.id
        (rec,) = db(floor, Recording)
        assert rec.status == rm.REGISTERED and rec.transcript_text
        assert job_status() == rm.DONE
        segments = db(floor, rm.TranscriptSegment)
        assert {g.speaker for g in segments} == {"citizen", "agent"}
        # Every second the legs hold was decoded, none twice.
        assert sorted(s.audio_s for s in fake.streams) == pytest.approx(
            [rec.duration_s, rec.duration_s], abs=0.01
        )
    finally:
        stop.set()
        thread.join()
        engine.dispose()
        await close_floor(floor)


async def test_callers_hanging_up_while_moved_get_one_redirect_each(floor: Floor) -> None:
    """Asterisk answers "Redirect failed, channel not up." for a channel that is hanging up.
    That means the caller is gone, not "try again": an ACD that re-offered at once sent
    ~20,000 Redirects in 4 s for 7 calls on a real PBX."""
    handles = [
        floor.sim.place_call(caller=f"1380000011{i}", name="郑一", did="12345", talk_s=4)
        for i in range(7)
    ]
    await floor.until(lambda: len(floor.hotline.acd.snapshot()["waiting"]) == 7)
    # A hangup takes Asterisk a while (a busy PBX, an AGI running on dead): the channel is
    # there, refusing moves, for a second before its Hangup event.
    floor.sim.config.hangup_notice_s = 1.0
    floor.hotline.agents.login("li", "8001", ready=False)
    await floor.until(lambda: floor.hotline.seats.get("8001").usable)
    for handle in handles:
        floor.sim.hangup(handle.channel)  # hanging up: a Redirect now is refused
    floor.hotline.agents.set_ready("li")
    for handle in handles:
        assert await handle.wait(10) == "abandoned"
    await asyncio.sleep(1.0)  # a retry loop would go on past the hangups
    stats = floor.hotline.acd.stats
    assert stats["move_failed"] <= 2 * len(handles), stats
    assert not floor.of(CallAnswered)
    await floor.until(lambda: floor.hotline.router.agent_state("li") == "ready")


async def test_caller_hanging_up_while_the_seat_rings_leaves_the_agent_ready(
    floor: Floor,
) -> None:
    """The ACD moved the caller to the seat; the caller hangs up while it rings (DialEnd
    CANCEL). The agent did nothing wrong: the router and the agent board must both keep her
    ready (the router used to mark her not ready behind the board's back, and she was never
    offered a call again)."""
    waiting = floor.sim.place_call(caller="13800000120", name="郑一", did="12345", talk_s=4)
    await floor.until(lambda: floor.hotline.acd.snapshot()["waiting"] != [])
    floor.hotline.agents.login("li", "8001", ready=False)
    await floor.until(lambda: floor.hotline.seats.get("8001").usable)
    # The phone's 180 comes late: the caller hangs up between the Dial and the ringing.
    floor.sim.set_phone_behaviour("8001", ring_delay=20.0)
    floor.hotline.agents.set_ready("li")
    await floor.until(lambda: floor.hotline.acd.stats["moves"] == 1)
    await floor.until(lambda: bool(floor.sim.channels_of("8001")))
    floor.sim.hangup(waiting.channel)
    assert await waiting.wait(10) == "abandoned"
    await floor.until(lambda: floor.hotline.agents.get("li").state == "ready")
    await floor.until(lambda: floor.hotline.router.agent_state("li") == "ready")
    floor.sim.set_phone_behaviour("8001", ring_delay=0.0)
    nxt = floor.sim.place_call(caller="13800000121", name="冯二", did="12345", talk_s=2)
    assert await nxt.wait(10) == "answered"


async def test_router_holding_a_ready_agent_not_ready_is_repaired(floor: Floor) -> None:
    """Should the router and the agent board ever disagree (a bug), an agent whose desktop
    says ready is not left without calls: two checks 5 s apart repair it, loudly."""
    import time

    await floor.ready(("li", "8001"))
    floor.hotline.router.agent_not_ready("li", time.time())  # what such a bug leaves behind
    acd = floor.hotline.acd
    acd._check_agents()
    assert floor.hotline.router.agent_state("li") == "not_ready"  # once may be a race
    acd._check_agents()
    assert floor.hotline.router.agent_state("li") == "ready"
    handle = floor.sim.place_call(caller="13800000122", name="冯二", did="12345", talk_s=2)
    assert await handle.wait(10) == "answered"


async def test_a_route_answered_after_the_caller_went_to_the_queue_changes_nothing(
    floor: Floor,
) -> None:
    """A CTI that stalled answers the question once it runs again, after the dialplan gave
    up and sent the caller to the fallback queue. That late answer must not reserve a seat
    nor rewrite the call: the queue's agent answered it, and it was the fallback's call."""
    from agi_scripts.route import RouteRequest

    hotline = floor.hotline
    await floor.ready(("li", "8001"), ("wang", "8002"))
    port = floor.sim.config.agi_port
    floor.sim.config.agi_port = 9  # the route question goes nowhere: defaults, the queue
    handle = floor.sim.place_call(caller="13800000130", name="郑一", did="12345", talk_s=3)
    await floor.until(
        lambda: handle.uniqueid in {c.call_id for c in hotline.tracker.calls.values()}
    )
    call = hotline.tracker.find_call(handle.uniqueid)
    assert call is not None
    await floor.until(lambda: call.routed_by == "fallback")
    floor.sim.config.agi_port = port
    # The stalled CTI's late answer to the question (it picks an agent and a seat).
    answer = hotline.acd.route(
        RouteRequest(handle.uniqueid, handle.channel.name, "13800000130", "郑一", "12345")
    )
    assert answer.target or answer.hold
    snap = hotline.acd.snapshot()
    assert snap["reserved"] == []
    assert handle.uniqueid not in {w["call_id"] for w in snap["waiting"]}
    assert await handle.wait(10) == "answered"
    await floor.until(lambda: bool(floor.of(CallEnded)))
    assert await hotline.store.flush(10)
    (row,) = db(floor, CallRow)
    assert row.routed_by == "fallback"
    assert row.agent_id == floor.of(CallAnswered)[0].agent_id
