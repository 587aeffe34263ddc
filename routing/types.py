"""The values the router hands out: states, decisions and offers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WRAPUP = "wrapup"
"""Reason for ``agent_not_ready`` after a call: the agent is expected back within moments, so
sticky and leader calls keep waiting for them (other not-ready reasons do not)."""


class AgentState(StrEnum):
    NOT_READY = "not_ready"
    READY = "ready"
    RESERVED = "reserved"
    BUSY = "busy"
    LOGGED_OUT = "logged_out"


class CallState(StrEnum):
    WAITING = "waiting"  # on the floor, in line for its skills
    TARGETED = "targeted"  # waiting for named agents only (sticky, leader)
    RESERVED = "reserved"


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a new call goes. With an agent, the agent is reserved (confirm or release it)."""

    call_id: str
    agent_id: str | None
    seat: str | None
    skill: str
    topic: str
    priority: int
    reason: str  # sticky, leader, skill, overflow; or sticky_wait, leader_wait, queued
    leader: bool
    hold: bool  # True: the CTI holds the call and moves it later; False with no agent: Queue()


@dataclass(frozen=True, slots=True)
class Offer:
    """Move ``call_id`` to ``seat``: both are reserved until confirm or release."""

    call_id: str
    agent_id: str
    seat: str
    reason: str
    leader: bool
