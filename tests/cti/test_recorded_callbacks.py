"""Callback and survey calls (回访, Originated into [cti-callback]) are recorded as inbound
calls are: MixMonitor on the seat's channel, the file registered by the CTI and attached to
the ticket the callback is about."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from cti.events import CallAnswered, CallEnded
from recordings.models import Recording
from tests.cti.live import close_floor, open_floor
from tickets.models import Ticket


async def test_a_survey_callback_is_recorded_and_attached_to_its_ticket(
    any_db_url: str, tmp_path: Path
) -> None:
    floor = await open_floor(any_db_url, tmp_path)
    try:
        hotline = floor.hotline
        await floor.ready(("li", "8001"))
        first = floor.sim.place_call(caller="13800000021", name="甲", did="12345", talk_s=2)
        assert await first.wait(10) == "answered"
        await floor.until(lambda: len(floor.of(CallEnded)) == 1)
        await floor.until(lambda: hotline.agents.get("li").state == "ready")
        assert await hotline.store.flush(10)
        with hotline.sessions() as s:
            (ticket,) = s.scalars(select(Ticket)).all()
            ticket_id = ticket.id

        await hotline.control.callback("li", "13800000021", ticket_id=ticket_id)
        await floor.until(lambda: len(floor.of(CallAnswered)) == 2)

        def recordings() -> list[Recording]:
            with hotline.sessions() as s:
                return list(s.scalars(select(Recording).order_by(Recording.id)))

        # Registered while the callback goes on (a live transcript can follow it).
        await floor.until(lambda: len(recordings()) == 2, 10)
        assert recordings()[1].status == "recording"
        await hotline.control.hangup("li")
        await floor.until(lambda: len(floor.of(CallEnded)) == 2)
        callback = floor.of(CallEnded)[-1]
        await floor.until(lambda: len(recordings()) == 2 and bool(recordings()[1].legs), 15)
        inbound, survey = recordings()
        assert survey.call_id == callback.call_id != inbound.call_id
        assert survey.ticket_id == ticket_id and survey.agent_id == "li"
        assert Path(survey.path).exists() and survey.path.endswith(".wav")
        base = survey.path[:-4]
        assert Path(f"{base}-in.wav").exists() and Path(f"{base}-out.wav").exists()
    finally:
        await close_floor(floor)
