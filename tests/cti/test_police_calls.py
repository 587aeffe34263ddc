"""110 -> 12345 by phone: 110 puts the citizen through on its number with the incident in the
INVITE's X-Incident-Id header; the call's ticket carries 110's record of the incident,
whether the record came through the intake API before the call or after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from cti.config import default_data
from cti.events import CallAnswered
from tests.cti.live import Floor, close_floor, open_floor
from tickets.channels import Channel
from tickets.intake import Intake
from tickets.models import Ticket, TicketEvent, TicketIntake
from tickets.settings import IntakeSettings

POLICE_DID = "12345110"
RECORD = {"incident": "J320100202612070001", "unit": "城东派出所", "officer": "王警官"}
FIELDS = {"location": "文昌路18号", "description": "邻居装修噪音扰民，非警情，转12345"}


async def _floor(db_url: str, tmp: Path) -> Floor:
    hotlines = default_data()["hotlines"] + [
        {"did": POLICE_DID, "name": "110转接", "topic": "综合咨询", "skill": "general",
         "police110": True},
    ]  # fmt: skip
    floor = await open_floor(db_url, tmp, hotlines=hotlines)
    await floor.ready(("li", "8001"))
    return floor


def _record(floor: Floor, incident: str, phone: str) -> Any:
    intake = Intake(floor.hotline.tickets, IntakeSettings())
    request = intake.clean_request(
        Channel.POLICE110, "police110", incident, phone, FIELDS, data=RECORD
    )
    return intake.submit(request)


async def _call(floor: Floor, did: str, incident: str, calls: int = 1) -> Ticket:
    floor.sim.place_call(
        caller="13900001111", name="", did=did, talk_s=60,
        sip_headers={"X-Incident-Id": incident},
    )  # fmt: skip
    await floor.until(lambda: len(floor.of(CallAnswered)) == calls)
    assert await floor.hotline.store.flush(10)
    call_id = floor.of(CallAnswered)[-1].call_id

    def linked() -> Ticket | None:
        with floor.hotline.sessions() as s:
            ticket = s.scalar(
                select(Ticket).join(Ticket.calls).where(Ticket.calls.any(call_id=call_id))
            )
            return ticket

    await floor.until(lambda: linked() is not None)
    ticket = linked()
    assert ticket is not None
    return ticket


async def test_the_record_first_then_the_call(any_db_url: str, tmp_path: Path) -> None:
    floor = await _floor(any_db_url, tmp_path)
    try:
        incident = RECORD["incident"]
        draft = _record(floor, incident, "13700002222")
        await _call(floor, POLICE_DID, incident)
        await floor.until(lambda: _ticket(floor, draft.ticket_id).state == "merged")
        with floor.hotline.sessions() as s:
            (ticket,) = s.scalars(select(Ticket).where(Ticket.state != "merged")).all()
            assert ticket.channel == "police110"
            assert (ticket.location, ticket.description) == (
                FIELDS["location"], FIELDS["description"]
            )  # fmt: skip
            assert _ticket(floor, draft.ticket_id).merged_into == ticket.id
            row = s.scalar(select(TicketIntake).where(TicketIntake.ticket_id == ticket.id))
            assert row is not None and (row.external_id, row.data) == (incident, RECORD)
            event = s.scalar(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == ticket.id, TicketEvent.action == "police_call"
                )
            )
            assert event is not None and event.data["record_ticket"] == draft.ticket_id
    finally:
        await close_floor(floor)


async def test_the_call_first_then_the_record(any_db_url: str, tmp_path: Path) -> None:
    floor = await _floor(any_db_url, tmp_path)
    try:
        incident = "J320100202612070002"
        ticket = await _call(floor, POLICE_DID, incident)
        await floor.until(lambda: _ticket(floor, ticket.id).channel == "police110")
        # 110's record names another number than the one the call came from.
        outcome = _record(floor, incident, "13700003333")
        assert (outcome.ticket_id, outcome.kind) == (ticket.id, "attached")
        after = _ticket(floor, ticket.id)
        assert (after.location, after.description) == (FIELDS["location"], FIELDS["description"])
        with floor.hotline.sessions() as s:
            assert len(s.scalars(select(Ticket)).all()) == 1
    finally:
        await close_floor(floor)


async def test_the_header_is_not_honoured_on_other_numbers(any_db_url: str, tmp_path: Path) -> None:
    """Any caller's INVITE may carry the header: only 110's number links a ticket."""
    floor = await _floor(any_db_url, tmp_path)
    try:
        draft = _record(floor, "J320100202612070003", "13700004444")
        ticket = await _call(floor, "12345", "J320100202612070003")
        assert await floor.hotline.store.flush(10)
        assert _ticket(floor, ticket.id).channel == "phone"
        assert _ticket(floor, draft.ticket_id).state == "intake"
    finally:
        await close_floor(floor)


def _ticket(floor: Floor, ticket_id: str) -> Ticket:
    with floor.hotline.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        s.expunge(ticket)
        return ticket
