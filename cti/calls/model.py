"""Channels and calls as the CTI tracks them, and the call state machine (a table)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

log = logging.getLogger(__name__)


class IllegalTransition(ValueError):
    pass


# Call states. "routed": the CTI answered the FastAGI route; "waiting": on hold in the CTI's
# line or in the fallback queue; "ringing": a seat is being dialled; "talking": bridged with
# a seat (or the window in a three-way); "ended": the citizen's channel hung up.
CALL_TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"routed", "waiting", "ringing", "talking", "ended"}),
    "routed": frozenset({"waiting", "ringing", "talking", "ended"}),
    "waiting": frozenset({"ringing", "talking", "ended"}),
    "ringing": frozenset({"waiting", "talking", "ended"}),
    "talking": frozenset({"waiting", "ringing", "ended"}),
    "ended": frozenset(),
}


@dataclass(slots=True)
class Channel:
    node: str
    uniqueid: str
    linkedid: str
    name: str
    endpoint: str  # "8001", "trunk", "" for Local channels
    tech: str  # "PJSIP", "Local", ...
    state: str  # ChannelStateDesc
    caller: str
    caller_name: str
    context: str
    exten: str
    created_at: datetime
    bridge: str = ""
    held: bool = False
    recording: bool = False
    dial_options: str = ""
    # An outgoing leg through the trunk to another node: the seat it dials over there.
    via_seat: str = ""


@dataclass(slots=True)
class Call:
    node: str
    call_id: str  # Linkedid
    direction: str  # inbound | callback | internal
    channel: str  # the citizen's channel name
    uniqueid: str  # the citizen's channel Uniqueid
    caller: str
    caller_name: str
    did: str
    started_at: datetime
    started_mono: float
    state: str = "new"
    topic: str = ""
    skill: str = ""
    priority: int = 0
    route_reason: str = ""
    routed_by: str = ""
    leader: bool = False
    ticket_id: str = ""
    recording: str = ""
    seat: str = ""
    agent_id: str = ""
    answered_at: datetime | None = None
    answered_mono: float | None = None
    ended_at: datetime | None = None
    waiting_since: float | None = None
    queue: str = ""
    abandoned: bool = False
    cause: str = ""
    conference: str = ""
    legs: set[str] = field(default_factory=set)
    transfers: list[tuple[str, str]] = field(default_factory=list)
    offered_seat: str = ""
    # The move to the offered seat is under way in Asterisk (the route named it, or the
    # ACD's Redirect was accepted): music starting again before any Dial means it failed.
    delivering: bool = False
    # The CTI's route sent the call to a seat or to its hold line (not the plain queue).
    route_kept: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.call_id)

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def snapshot(self) -> Call:
        """A copy of the call as it is now (its sets and lists copied too): for the writer
        thread, which runs later while the call moves on."""
        return replace(self, legs=set(self.legs), transfers=list(self.transfers))

    def set_state(self, new: str) -> str:
        old = self.state
        if new == old:
            return old
        if new not in CALL_TRANSITIONS[old]:
            raise IllegalTransition(f"call {self.call_id}: {old} -> {new}")
        log.debug("call %s: %s -> %s", self.call_id, old, new)
        self.state = new
        return old

    def wait_s(self, now_mono: float) -> float:
        end = self.answered_mono if self.answered_mono is not None else now_mono
        return max(0.0, end - self.started_mono)

    def to_dict(self, now_mono: float) -> dict[str, object]:
        return {
            "node": self.node,
            "call_id": self.call_id,
            "direction": self.direction,
            "channel": self.channel,
            "caller": self.caller,
            "caller_name": self.caller_name,
            "did": self.did,
            "topic": self.topic,
            "skill": self.skill,
            "state": self.state,
            "priority": self.priority,
            "route_reason": self.route_reason,
            "leader": self.leader,
            "ticket_id": self.ticket_id,
            "recording": self.recording,
            "seat": self.seat,
            "agent_id": self.agent_id,
            "started_at": self.started_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "wait_s": round(self.wait_s(now_mono), 1),
            "conference": self.conference,
        }


def split_channel(name: str) -> tuple[str, str]:
    """``PJSIP/8001-0000001a`` -> ("PJSIP", "8001"); ``Local/9001@ctx-0003;1`` -> ("Local", "")."""
    tech, _, rest = name.partition("/")
    if tech == "Local":
        return tech, ""
    endpoint, dash, _suffix = rest.rpartition("-")
    return tech, endpoint if dash else rest
