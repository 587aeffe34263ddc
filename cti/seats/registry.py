"""Seats and the live state of their SIP phones, from ContactStatus / DeviceStateChange.

A seat's phone is usable when its contact is registered and reachable (``Reachable``, or
``NonQualified`` for phones without qualify) and its device is not ``UNAVAILABLE``. When the
phone of a logged-in agent stops being usable, an alarm goes out and routing skips the seat
until it comes back.

Several nodes: every node may have an endpoint for every seat, but a phone registers on one
of them, and the seat belongs to that node (``Seat.node``) until it registers elsewhere. What
the other nodes say about the seat (its device UNAVAILABLE there, no contact in their lists)
is about an endpoint nobody uses and changes nothing. When the CTI loses a node, the seats
registered on it are unusable until the node is back or the phones register elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from cti.bus import Bus
from cti.events import SeatAlarm, SeatStatusChanged

log = logging.getLogger(__name__)

USABLE_CONTACT = frozenset({"Reachable", "NonQualified", "Created", "Updated"})
# A contact in one of these states is registered on the node that reports it.
REGISTERED = USABLE_CONTACT
# EndpointList's DeviceState is prose; DeviceStateChange uses the enum names.
DEVICE_STATE_NAMES = {
    "Not in use": "NOT_INUSE",
    "In use": "INUSE",
    "Busy": "BUSY",
    "Invalid": "INVALID",
    "Unavailable": "UNAVAILABLE",
    "Ringing": "RINGING",
    "Ring+Inuse": "RINGINUSE",
    "On Hold": "ONHOLD",
    "Unknown": "UNKNOWN",
}


@dataclass(slots=True)
class Seat:
    id: str
    extension: str
    kind: str = "seat"
    room: str = ""
    position: str = ""
    phone_model: str = ""
    mac: str = ""
    node: str = ""
    contact: str = "Unknown"
    device: str = "UNKNOWN"
    rtt_us: int = 0
    uri: str = ""
    user_agent: str = ""
    unreachable_since: datetime | None = None
    agent_id: str = ""  # the agent logged in at this seat (hot-desking)
    alarm: bool = False
    node_down: bool = False  # the CTI lost the node the phone is registered on

    @property
    def usable(self) -> bool:
        if self.node_down:
            return False
        if self.device in ("UNAVAILABLE", "INVALID"):
            return False
        if self.contact in ("Unreachable", "Removed"):
            return False
        return self.contact in USABLE_CONTACT or self.device not in ("UNKNOWN",)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "extension": self.extension,
            "kind": self.kind,
            "room": self.room,
            "position": self.position,
            "phone_model": self.phone_model,
            "node": self.node,
            "node_down": self.node_down,
            "contact": self.contact,
            "device": self.device,
            "rtt_ms": round(self.rtt_us / 1000, 1),
            "uri": self.uri,
            "user_agent": self.user_agent,
            "usable": self.usable,
            "unreachable_since": (
                self.unreachable_since.isoformat() if self.unreachable_since else None
            ),
            "agent_id": self.agent_id,
            "alarm": self.alarm,
        }


class SeatRegistry:
    """Seats by extension; fed with AMI messages of the subscriptions in ``cti.app``."""

    def __init__(self, seats: Iterable[Seat], bus: Bus, now: Callable[[], datetime]) -> None:
        self._by_ext: dict[str, Seat] = {s.extension: s for s in seats}
        self._by_id: dict[str, Seat] = {s.id: s for s in self._by_ext.values()}
        self._bus = bus
        self._now = now
        self.on_usable_changed: list[Callable[[Seat], None]] = []
        self.on_node_changed: list[Callable[[Seat], None]] = []  # registered elsewhere
        # Live events are numbered; a resync snapshot asked for before a seat's latest event
        # is older than that event and must not undo it (a phone registering mid-resync).
        self._seq = 0
        self._touched: dict[str, int] = {}

    def __iter__(self) -> Iterator[Seat]:
        return iter(list(self._by_ext.values()))

    def all(self) -> list[Seat]:
        return list(self._by_ext.values())

    def get(self, extension: str) -> Seat | None:
        return self._by_ext.get(extension)

    def by_id(self, seat_id: str) -> Seat | None:
        return self._by_id.get(seat_id)

    def resolve(self, seat: str) -> Seat | None:
        """A seat by extension or by id."""
        return self._by_ext.get(seat) or self._by_id.get(seat)

    # --- AMI ---------------------------------------------------------------------------

    def mark(self) -> int:
        """Before asking Asterisk for a snapshot: pass the result to the ``resync_*`` call."""
        return self._seq

    def _touch(self, seat: Seat) -> None:
        self._seq += 1
        self._touched[seat.extension] = self._seq

    def _newer_than(self, seat: Seat, since: int | None) -> bool:
        return since is not None and self._touched.get(seat.extension, 0) > since

    def _elsewhere(self, seat: Seat, node: str) -> bool:
        """The seat's phone is registered on another node than ``node``."""
        return bool(seat.node) and seat.node != node

    def on_contact_status(self, node: str, msg: dict[str, str]) -> None:
        seat = self._by_ext.get(msg.get("AOR") or msg.get("EndpointName", ""))
        if seat is None:
            return
        status = msg.get("ContactStatus", "Unknown")
        if status not in REGISTERED and self._elsewhere(seat, node):
            return  # an old contact on a node the phone has left
        self._touch(seat)
        try:
            rtt = int(msg.get("RoundtripUsec", "0") or 0)
        except ValueError:
            rtt = 0
        self._update(seat, node, contact=status, rtt_us=rtt, uri=msg.get("URI", seat.uri))

    def on_device_state(self, node: str, msg: dict[str, str]) -> None:
        device = msg.get("Device", "")
        if not device.startswith("PJSIP/"):
            return
        seat = self._by_ext.get(device[6:])
        if seat is not None and not self._elsewhere(seat, node):
            self._touch(seat)
            self._update(seat, node, device=msg.get("State", "UNKNOWN"))

    def resync_devices(self, node: str, items: list[dict[str, str]], since: int | None) -> None:
        """``DeviceStateList`` items, except for seats with a live event since ``since``."""
        for msg in items:
            device = msg.get("Device", "")
            seat = self._by_ext.get(device[6:]) if device.startswith("PJSIP/") else None
            if seat is None or self._elsewhere(seat, node):
                continue
            if not self._newer_than(seat, since):
                self._update(seat, node, device=msg.get("State", "UNKNOWN"))

    def on_contact_list(self, node: str, msg: dict[str, str], since: int | None = None) -> None:
        """A ``ContactList`` item of PJSIPShowContacts (resync)."""
        seat = self._by_ext.get(msg.get("Endpoint", "") or msg.get("Aor", ""))
        if seat is None or self._newer_than(seat, since):
            return
        status = msg.get("Status", "Unknown")
        if status not in REGISTERED and self._elsewhere(seat, node):
            return
        try:
            rtt = int(msg.get("RoundtripUsec", "0") or 0)
        except ValueError:
            rtt = 0
        self._update(
            seat,
            node,
            contact=status,
            rtt_us=rtt,
            uri=msg.get("Uri", ""),
            user_agent=msg.get("UserAgent", ""),
        )

    def resync_contacts(
        self, node: str, items: list[dict[str, str]], since: int | None = None
    ) -> int:
        """After a reconnect: seats of this node absent from the contact list are not
        registered any more (their Removed event may have been missed). Seats with a live
        event since ``since`` (``mark()`` before the list was asked for) keep that newer state."""
        seen = set()
        for item in items:
            self.on_contact_list(node, item, since)
            seen.add(item.get("Endpoint", "") or item.get("Aor", ""))
        for seat in self._by_ext.values():
            if self._newer_than(seat, since):
                continue
            if seat.node in ("", node) and seat.extension not in seen:
                if seat.contact not in ("Unknown", "Removed") or seat.node_down:
                    self._update(seat, node, contact="Removed", rtt_us=0)
        return len(seen)

    def node_lost(self, node: str) -> list[Seat]:
        """The CTI lost its AMI link to ``node``: the seats registered there are unusable
        (their calls cannot be dialled or seen) until the node's resync, or until their phones
        register on another node. Returns those seats."""
        lost = [s for s in self._by_ext.values() if s.node == node and not s.node_down]
        for seat in lost:
            self._touch(seat)
            self._update(seat, node, node_down=True)
        return lost

    # --- state -------------------------------------------------------------------------

    def _update(self, seat: Seat, node: str, **changes: object) -> None:
        """Apply what ``node`` said about the seat. A registered contact makes the seat the
        node's; anything a node says means that node is there."""
        was_usable = seat.usable
        changes.setdefault("node_down", False)
        if changes.get("contact") in REGISTERED or not seat.node:
            changes["node"] = node
        changed = False
        moved = changes.get("node", seat.node) != seat.node
        for key, value in changes.items():
            if getattr(seat, key) != value:
                setattr(seat, key, value)
                changed = True
        if moved:
            for hook in self.on_node_changed:
                hook(seat)
        if not changed:
            return
        now = self._now()
        usable = seat.usable
        if usable:
            seat.unreachable_since = None
        elif seat.unreachable_since is None:
            seat.unreachable_since = now
        self._bus.publish(
            SeatStatusChanged(
                node=seat.node or node,
                seat=seat.extension,
                contact=seat.contact,
                device=seat.device,
                rtt_us=seat.rtt_us,
                at=now,
            )
        )
        if usable != was_usable:
            self._usable_changed(seat, usable, now)

    def _usable_changed(self, seat: Seat, usable: bool, now: datetime) -> None:
        if seat.agent_id:
            if not usable and not seat.alarm:
                seat.alarm = True
                log.warning(
                    "seat %s: phone unusable with agent %s logged in", seat.id, seat.agent_id
                )
                self._bus.publish(
                    SeatAlarm(
                        seat=seat.extension,
                        agent_id=seat.agent_id,
                        reason=f"phone {seat.contact}/{seat.device}",
                        cleared=False,
                        at=now,
                    )
                )
            elif usable and seat.alarm:
                seat.alarm = False
                self._bus.publish(
                    SeatAlarm(
                        seat=seat.extension,
                        agent_id=seat.agent_id,
                        reason="phone back",
                        cleared=True,
                        at=now,
                    )
                )
        for hook in self.on_usable_changed:
            hook(seat)
