"""A resync snapshot asked for before a seat's latest live event must not undo that event."""

from __future__ import annotations

from datetime import UTC, datetime

from cti.bus import Bus
from cti.seats.registry import Seat, SeatRegistry


def registry() -> SeatRegistry:
    seats = [Seat(id="A01", extension="8001"), Seat(id="A02", extension="8002")]
    return SeatRegistry(seats, Bus(), lambda: datetime(2026, 11, 22, tzinfo=UTC))


def reachable(ext: str) -> dict[str, str]:
    return {"AOR": ext, "EndpointName": ext, "ContactStatus": "Reachable", "URI": f"sip:{ext}@x"}


def test_a_phone_registering_during_the_resync_stays_registered() -> None:
    seats = registry()
    mark = seats.mark()  # PJSIPShowContacts and DeviceStateList are sent now ...
    seats.on_contact_status("pbx1", reachable("8001"))  # ... 8001 registers meanwhile
    seats.on_device_state("pbx1", {"Device": "PJSIP/8001", "State": "NOT_INUSE"})
    # ... and the lists, built before the registration, arrive without it
    seats.resync_contacts("pbx1", [], mark)
    seats.resync_devices("pbx1", [{"Device": "PJSIP/8001", "State": "UNAVAILABLE"}], mark)
    one = seats.get("8001")
    assert one is not None and (one.contact, one.device) == ("Reachable", "NOT_INUSE")
    assert one.usable


def test_the_snapshot_still_corrects_seats_without_newer_events() -> None:
    seats = registry()
    seats.on_contact_status("pbx1", reachable("8002"))  # seen before the outage
    mark = seats.mark()
    seats.resync_contacts("pbx1", [], mark)  # gone while the link was down
    two = seats.get("8002")
    assert two is not None and two.contact == "Removed"
    seats.resync_devices("pbx1", [{"Device": "PJSIP/8002", "State": "UNAVAILABLE"}], mark)
    assert two.device == "UNAVAILABLE" and not two.usable
