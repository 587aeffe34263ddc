"""The ticket's leader mark: set when a leader on a live shift answered the call, not when the
call only waited for one and a floor agent took it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from cti.events import CallAnswered, CallEnded, CallRouted
from cti.models import CallRow
from tests.cti.live import close_floor, open_floor
from tickets.models import Ticket


async def test_a_call_that_waited_for_a_leader_and_went_to_the_floor_is_not_marked(
    any_db_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    shift = {
        "agent": "mayor",
        "seat": "8001",
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "topics": ["综合咨询"],
    }
    floor = await open_floor(
        any_db_url, tmp_path, leader_shifts=[shift], routing={"leader_wait_s": 0.3}
    )
    try:
        await floor.ready(("mayor", "8001"), ("li", "8002"))
        # The mayor takes the first call (3 s at the simulator's scale) and is still on it
        # when the second one arrives: the second waits for the mayor, then goes to li.
        first = floor.sim.place_call(caller="13800000011", name="甲", did="12345", talk_s=60)
        await floor.until(lambda: len(floor.of(CallAnswered)) == 1)
        second = floor.sim.place_call(caller="13800000012", name="乙", did="12345", talk_s=1)
        assert await second.wait(10) == "answered"
        assert await first.wait(10) == "answered"
        await floor.until(lambda: len(floor.of(CallAnswered)) == 2)
        routed = {e.call_id: e for e in floor.of(CallRouted)}
        answered = {e.agent_id: e for e in floor.of(CallAnswered)}
        assert set(answered) == {"mayor", "li"}
        assert routed[answered["li"].call_id].reason == "leader_wait"
        await floor.until(lambda: len(floor.of(CallEnded)) == 2, 20)
        assert await floor.hotline.store.flush(10)
        with floor.hotline.sessions() as s:
            tickets = {t.agent_id: t.leader for t in s.scalars(select(Ticket))}
            calls = {c.agent_id: c.leader for c in s.scalars(select(CallRow))}
        assert tickets == {"mayor": True, "li": False}
        assert calls == {"mayor": True, "li": False}
    finally:
        await close_floor(floor)
