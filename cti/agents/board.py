"""Agents and their state machine (a table). Agents log in at any seat (hot-desking): the
identity is the agent's, the phone is the seat's.

States: logged_out, ready, not_ready (with a reason code), ringing, on_call, wrap_up (a timer
during which the ticket gets finished; then ready again unless the agent chose otherwise).
Every change goes through ``_set_state``: it logs ``old -> new``, publishes
``AgentStateChanged`` (persisted by the store, shown by the console) and calls the hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cti.bus import Bus
from cti.errors import ApiError, Conflict, Invalid, NotFound
from cti.events import AgentStateChanged
from cti.seats.registry import SeatRegistry

log = logging.getLogger(__name__)

AGENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "logged_out": frozenset({"ready", "not_ready"}),
    "ready": frozenset({"not_ready", "ringing", "on_call", "logged_out"}),
    "not_ready": frozenset({"ready", "ringing", "on_call", "logged_out"}),
    "ringing": frozenset({"on_call", "ready", "not_ready", "logged_out"}),
    "on_call": frozenset({"wrap_up", "logged_out", "not_ready", "ready"}),
    "wrap_up": frozenset({"ready", "not_ready", "on_call", "ringing", "logged_out"}),
}
RING_NO_ANSWER = "no-answer"
# Not ready because the seat's phone stopped being usable (set by the CTI, undone by it).
PHONE_GONE = "phone-unreachable"
PHONE_BACK_S = 60.0


def restored_as(state: str) -> str:
    """What a CTI starting or taking over makes of an agent's stored state: logged out and
    not ready stay so; ready, ringing, on a call or in wrap-up come back ready."""
    return state if state in ("logged_out", "not_ready") else "ready"


class IllegalAgentTransition(Conflict):
    def __init__(self, agent_id: str, old: str, new: str) -> None:
        super().__init__(
            "illegal-agent-transition",
            f"agent {agent_id}: {old} -> {new} is not allowed",
            agent_id=agent_id,
            old=old,
            new=new,
        )


@dataclass(slots=True)
class Agent:
    id: str
    name: str
    skills: dict[str, int]
    leader: bool = False
    title: str = ""
    state: str = "logged_out"
    reason: str = ""
    seat: str = ""  # extension of the seat the agent is logged in at
    since: datetime | None = None
    since_mono: float = 0.0
    calls: int = 0
    after_wrapup: str = "ready"  # what wrap-up ends in: ready or not_ready
    after_wrapup_reason: str = ""
    _wrapup: asyncio.TimerHandle | None = field(default=None, repr=False)

    def to_dict(self, now_mono: float) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "skills": self.skills,
            "leader": self.leader,
            "title": self.title,
            "state": self.state,
            "reason": self.reason,
            "seat": self.seat,
            "since": self.since.isoformat() if self.since else None,
            "in_state_s": round(now_mono - self.since_mono, 1) if self.since else 0,
            "calls": self.calls,
        }


StateHook = Callable[[Agent, str, str], None]  # agent, old, new


class AgentBoard:
    def __init__(
        self,
        agents: Iterable[Agent],
        seats: SeatRegistry,
        bus: Bus,
        now: Callable[[], datetime],
        *,
        wrapup_s: float,
        reasons: Iterable[str],
    ) -> None:
        self._agents = {a.id: a for a in agents}
        self._seats = seats
        self._bus = bus
        self._now = now
        self.wrapup_s = wrapup_s
        self.reasons = frozenset(reasons) | {RING_NO_ANSWER, PHONE_GONE}
        self.hooks: list[StateHook] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise NotFound("no-such-agent", f"no agent {agent_id!r}", agent_id=agent_id)
        return agent

    def find(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def all(self) -> list[Agent]:
        return list(self._agents.values())

    def at_seat(self, extension: str) -> Agent | None:
        seat = self._seats.get(extension)
        if seat is None or not seat.agent_id:
            return None
        return self._agents.get(seat.agent_id)

    # --- commands from the desktop -------------------------------------------------------

    def login(self, agent_id: str, seat_ref: str, *, ready: bool = False) -> Agent:
        agent = self.get(agent_id)
        seat = self._seats.resolve(seat_ref)
        if seat is None or seat.kind == "window":
            raise Invalid("no-such-seat", f"no seat {seat_ref!r}", seat=seat_ref)
        if seat.agent_id and seat.agent_id != agent_id:
            raise Conflict(
                "seat-taken",
                f"seat {seat.id} is taken by {seat.agent_id}",
                seat=seat.id,
                agent_id=seat.agent_id,
            )
        if agent.state != "logged_out" and agent.seat != seat.extension:
            # Moving seats: log out of the old one first (hot-desking).
            self.logout(agent_id)
        seat.agent_id = agent_id
        agent.seat = seat.extension
        if agent.state == "logged_out":
            self._set_state(agent, "ready" if ready else "not_ready", "" if ready else "login")
        return agent

    def logout(self, agent_id: str) -> Agent:
        agent = self.get(agent_id)
        if agent.state in ("ringing", "on_call"):
            raise Conflict("agent-busy", "finish the call before logging out", agent_id=agent_id)
        self._set_state(agent, "logged_out", "")
        seat = self._seats.get(agent.seat)
        if seat is not None and seat.agent_id == agent_id:
            seat.agent_id = ""
            seat.alarm = False
        agent.seat = ""
        return agent

    def set_ready(self, agent_id: str) -> Agent:
        agent = self.get(agent_id)
        if agent.state in ("ringing", "on_call"):
            agent.after_wrapup, agent.after_wrapup_reason = "ready", ""
            return agent
        seat = self._seats.get(agent.seat)
        if seat is not None and not seat.usable:
            raise ApiError(
                409,
                "phone-unusable",
                f"the phone of seat {seat.id} is not reachable",
                {"seat": seat.id, "contact": seat.contact, "device": seat.device},
            )
        self._set_state(agent, "ready", "")
        return agent

    def set_not_ready(self, agent_id: str, reason: str) -> Agent:
        agent = self.get(agent_id)
        if reason not in self.reasons:
            raise Invalid(
                "bad-reason", f"unknown not-ready reason {reason!r}", allowed=sorted(self.reasons)
            )
        if agent.state in ("ringing", "on_call"):
            # Takes effect after the call: the agent keeps talking.
            agent.after_wrapup, agent.after_wrapup_reason = "not_ready", reason
            return agent
        self._set_state(agent, "not_ready", reason)
        return agent

    def end_wrapup(self, agent_id: str) -> Agent:
        agent = self.get(agent_id)
        if agent.state == "wrap_up":
            self._finish_wrapup(agent)
        return agent

    # --- facts from the calls ------------------------------------------------------------

    def ringing(self, extension: str) -> None:
        agent = self.at_seat(extension)
        if agent is not None and agent.state in ("ready", "not_ready", "wrap_up"):
            self._set_state(agent, "ringing", "")

    def answered(self, extension: str) -> Agent | None:
        agent = self.at_seat(extension)
        if agent is not None and agent.state != "on_call":
            self._set_state(agent, "on_call", "")
        return agent

    def ring_failed(self, extension: str) -> None:
        """The seat was offered a call and did not answer: not ready, so the next call does
        not ring an empty seat again (RONA)."""
        agent = self.at_seat(extension)
        if agent is not None and agent.state in ("ringing", "ready"):
            self._set_state(agent, "not_ready", RING_NO_ANSWER)

    def hung_up(self, extension: str) -> None:
        agent = self.at_seat(extension)
        if agent is None:
            return
        if agent.state == "on_call":
            agent.calls += 1
            self._set_state(agent, "wrap_up", "")
            self._arm_wrapup(agent)
        elif agent.state == "ringing":
            self._set_state(agent, "ready", "")

    def phone_unusable(self, extension: str) -> None:
        agent = self.at_seat(extension)
        if agent is not None and agent.state in ("ready", "wrap_up"):
            self._set_state(agent, "not_ready", PHONE_GONE)

    def phone_usable(self, extension: str) -> None:
        """The phone is back within ``PHONE_BACK_S``: an agent the CTI itself took out for
        it is ready again (after an Asterisk restart every phone is unusable until its first
        qualify; a network blip or a phone reboot is the same: nobody should have to click
        "ready" for that). After longer the agent may have left the seat: they choose. A
        reason the agent chose is kept."""
        agent = self.at_seat(extension)
        if (
            agent is not None
            and agent.state == "not_ready"
            and agent.reason == PHONE_GONE
            and time.monotonic() - agent.since_mono <= PHONE_BACK_S
        ):
            self._set_state(agent, "ready", "")

    # --- internals -------------------------------------------------------------------

    def _arm_wrapup(self, agent: Agent) -> None:
        self._cancel_wrapup(agent)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        agent._wrapup = loop.call_later(self.wrapup_s, self._finish_wrapup, agent)

    def _cancel_wrapup(self, agent: Agent) -> None:
        if agent._wrapup is not None:
            agent._wrapup.cancel()
            agent._wrapup = None

    def _finish_wrapup(self, agent: Agent) -> None:
        agent._wrapup = None
        if agent.state != "wrap_up":
            return
        target, reason = agent.after_wrapup, agent.after_wrapup_reason
        agent.after_wrapup, agent.after_wrapup_reason = "ready", ""
        seat = self._seats.get(agent.seat)
        if target == "ready" and seat is not None and not seat.usable:
            target, reason = "not_ready", PHONE_GONE
        self._set_state(agent, target, reason)

    def stop(self) -> None:
        for agent in self._agents.values():
            self._cancel_wrapup(agent)

    def _set_state(self, agent: Agent, new: str, reason: str) -> None:
        old = agent.state
        if new == old and reason == agent.reason:
            return
        if new != old and new not in AGENT_TRANSITIONS[old]:
            raise IllegalAgentTransition(agent.id, old, new)
        if old == "wrap_up" and new != "wrap_up":
            self._cancel_wrapup(agent)
        now = self._now()
        agent.state = new
        agent.reason = reason
        agent.since = now
        agent.since_mono = time.monotonic()
        log.info("agent %s: %s -> %s %s", agent.id, old, new, reason)
        self._bus.publish(
            AgentStateChanged(
                agent_id=agent.id, seat=agent.seat, old=old, new=new, reason=reason, at=now
            )
        )
        for hook in self.hooks:
            try:
                hook(agent, old, new)
            except Exception:
                log.exception("agent hook failed")
