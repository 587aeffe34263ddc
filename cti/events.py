"""Domain events: the shared vocabulary between the CTI slices, the console and the store.

Every event is a frozen, slotted dataclass. The state machines publish them on the bus
(``cti.bus.Bus``); the console forwards them to browsers, the store persists them.
Times are UTC ``datetime`` objects; ``node`` names the Asterisk server the fact came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["type"] = type(self).__name__
        return data


# --- AMI connection -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AmiConnected(Event):
    node: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AmiDisconnected(Event):
    node: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class AmiResynced(Event):
    """The state of ``node`` was rebuilt from the list actions after a (re)connect."""

    node: str
    at: datetime
    channels: int
    contacts: int
    seconds: float


# --- calls ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted(Event):
    node: str
    call_id: str  # the Linkedid of the call, unique per node
    channel: str
    caller: str
    caller_name: str
    did: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallRouted(Event):
    """The FastAGI route answered: a seat (``target``) or the waiting line (empty target)."""

    node: str
    call_id: str
    target: str
    skill: str
    topic: str
    reason: str
    priority: int
    ticket_id: str
    recording: str
    leader: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class CallQueued(Event):
    node: str
    call_id: str
    queue: str
    position: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CallRinging(Event):
    node: str
    call_id: str
    seat: str  # the seat's SIP extension, e.g. "8001"
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnswered(Event):
    node: str
    call_id: str
    seat: str
    agent_id: str
    caller: str
    caller_name: str
    did: str
    topic: str
    wait_s: float
    at: datetime


@dataclass(frozen=True, slots=True)
class CallTransferred(Event):
    node: str
    call_id: str
    kind: str  # "blind" | "attended" | "three_way" | "police"
    target: str
    result: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    node: str
    call_id: str
    caller: str
    did: str
    answered: bool
    abandoned: bool
    seat: str
    agent_id: str
    wait_s: float
    talk_s: float
    cause: str
    at: datetime


# --- seats and agents -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeatStatusChanged(Event):
    """The phone of a seat: registration (contact) and device state."""

    node: str
    seat: str  # SIP extension / endpoint name
    contact: str  # "Reachable" | "Unreachable" | "Removed" | "NonQualified" | "Unknown"
    device: str  # NOT_INUSE, INUSE, RINGING, UNAVAILABLE, ONHOLD, ...
    rtt_us: int
    at: datetime


@dataclass(frozen=True, slots=True)
class SeatAlarm(Event):
    """A logged-in agent's phone became unreachable (or came back: ``cleared``)."""

    seat: str
    agent_id: str
    reason: str
    cleared: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Event):
    agent_id: str
    seat: str
    old: str
    new: str
    reason: str
    at: datetime


# --- recordings and tickets -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingStarted(Event):
    node: str
    call_id: str
    path: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordingStopped(Event):
    node: str
    call_id: str
    path: str
    ticket_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TicketOpened(Event):
    ticket_id: str
    call_id: str
    caller: str
    caller_name: str
    did: str
    topic: str
    agent_id: str
    leader: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class TicketChanged(Event):
    ticket_id: str
    old: str
    new: str
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TicketUpdated(Event):
    """Something was added to a ticket without a change of state: the window's answer in a
    three-way call, an attachment, the five elements edited. Open views reload it."""

    ticket_id: str
    what: str  # window_outcome | attachment | fields
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallbackTaskChanged(Event):
    task_id: int
    caller: str
    status: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TranscriptReady(Event):
    recording_id: int
    ticket_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Alarm(Event):
    """Anything a supervisor must see: SLA breach, queue too long, node down."""

    kind: str
    message: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)
