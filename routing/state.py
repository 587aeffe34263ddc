"""The router's live records of agents and calls, and the agent state table."""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.heap import IndexedHeap, Key
from routing.settings import AgentSettings
from routing.types import WRAPUP, AgentState, CallState


@dataclass(slots=True, eq=False)
class AgentRecord:
    conf: AgentSettings
    seat: str
    state: AgentState = AgentState.NOT_READY
    since: float = 0.0
    ready_since: float = 0.0
    calls: int = 0
    reachable: bool = True
    reason: str = ""  # why not ready (pending or current)
    pending: AgentState | None = None
    call_id: str | None = None
    targeted: IndexedHeap = field(default_factory=IndexedHeap)

    @property
    def wrapup(self) -> bool:
        return self.reason == WRAPUP


@dataclass(slots=True, eq=False)
class CallRecord:
    call_id: str
    skill: str
    topic: str
    priority: int
    arrived: float
    key: Key
    state: CallState = CallState.WAITING
    skills: list[str] = field(default_factory=list)  # eligible skills, primary first
    overflow_stage: int = 0
    targets: tuple[str, ...] = ()
    target_reason: str = ""
    target_until: float = 0.0
    agent_id: str | None = None
    node: str = ""  # the Asterisk node the call arrived on ("" when unknown)


# Agent transitions outside a reservation: (state, event) -> new state. A missing pair is an
# illegal operation. During a reservation the events are kept pending (see module docstring).
AGENT_TRANSITIONS: dict[tuple[AgentState, str], AgentState] = {
    (AgentState.NOT_READY, "ready"): AgentState.READY,
    (AgentState.BUSY, "ready"): AgentState.READY,
    (AgentState.READY, "ready"): AgentState.READY,
    (AgentState.READY, "not_ready"): AgentState.NOT_READY,
    (AgentState.BUSY, "not_ready"): AgentState.NOT_READY,
    (AgentState.NOT_READY, "not_ready"): AgentState.NOT_READY,
    (AgentState.READY, "busy"): AgentState.BUSY,
    (AgentState.NOT_READY, "busy"): AgentState.BUSY,
    (AgentState.BUSY, "busy"): AgentState.BUSY,
    (AgentState.READY, "logout"): AgentState.LOGGED_OUT,
    (AgentState.NOT_READY, "logout"): AgentState.LOGGED_OUT,
    (AgentState.BUSY, "logout"): AgentState.LOGGED_OUT,
    (AgentState.READY, "reserve"): AgentState.RESERVED,
    (AgentState.RESERVED, "confirm"): AgentState.BUSY,
}
