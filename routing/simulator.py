"""A discrete-event simulation of the floor, with ``Router`` making every decision.

One simulated day of a ``Profile``: Poisson arrivals at the hourly rates, each call with its
dialled number, caller class, handle time and patience drawn up front; agents of each skill
group log in and out at the hour boundaries to follow the staffing; leaders log in for their
shifts. The router sees exactly the events the CTI would send it (new call, agent ready,
confirm, caller gone, tick), so what is measured here is the routing code itself.

Simplifications, stated: the seat answers an offer after ``answer_delay_s`` (0 by default, as
in Erlang's model); handle time includes after-call work, so an agent is ready again when it
ends; an agent leaving at the end of an hour finishes their call first. Calls are counted in
the hour they arrived; the day is run until the last caller is answered or gives up.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np

from routing.plan import CallerInfo, RoutingPlan
from routing.profiles import Profile
from routing.router import Router
from routing.settings import AgentSettings
from routing.types import AgentState, Offer

# Event kinds, in the order they are handled at the same instant: staffing changes first,
# then calls ending (agents freed), answers, abandonments, arrivals, and router timers.
_STAFF, _LEADER_IN, _LEADER_OUT, _END, _ANSWER, _ABANDON, _ARRIVAL, _TICK = range(8)
SKILL_LEVEL = 8


@dataclass(slots=True)
class HourStats:
    hour: int
    agents: int = 0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_15s: int = 0
    wait_answered_s: float = 0.0
    wait_abandoned_s: float = 0.0
    leader_calls: int = 0
    busy_s: float = 0.0  # agent-seconds on calls (floor agents)
    staffed_s: float = 0.0  # agent-seconds logged in (floor agents)

    def merge(self, other: HourStats) -> None:
        for name in (
            "offered",
            "answered",
            "abandoned",
            "answered_15s",
            "wait_answered_s",
            "wait_abandoned_s",
            "leader_calls",
            "busy_s",
            "staffed_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "hour": self.hour,
            "agents": self.agents,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "answer_rate": _ratio(self.answered, self.offered, 1.0),
            "service_level_15s": _ratio(self.answered_15s, self.answered, 1.0),
            "asa_s": _ratio(self.wait_answered_s, self.answered, 0.0),
            "avg_abandon_s": _ratio(self.wait_abandoned_s, self.abandoned, 0.0),
            "occupancy": _ratio(self.busy_s, self.staffed_s, 0.0),
            "leader_calls": self.leader_calls,
        }


@dataclass(frozen=True, slots=True)
class SimReport:
    profile: str
    seed: int
    hours: tuple[HourStats, ...]
    reasons: dict[str, int] = field(default_factory=dict)  # offers by routing reason

    def to_dict(self) -> dict[str, Any]:
        day = HourStats(hour=-1)
        for h in self.hours:
            day.merge(h)
        result = day.to_dict()
        del result["hour"], result["agents"]
        result["agent_hours"] = sum(h.agents for h in self.hours)
        return {
            "profile": self.profile,
            "seed": self.seed,
            **result,
            "reasons": dict(sorted(self.reasons.items())),
            "hours": [h.to_dict() for h in self.hours],
        }


def _ratio(num: float, den: float, empty: float) -> float:
    return num / den if den else empty


@dataclass(slots=True, eq=False)
class _Call:
    call_id: str
    arrived: float
    hour: int
    handle_s: float
    state: str = "waiting"  # waiting, reserved, talking, done
    agent_id: str = ""


class Simulation:
    def __init__(
        self,
        profile: Profile,
        staffing: list[dict[str, int]],
        seed: int = 1,
        answer_delay_s: float = 0.0,
        threshold_s: float = 15.0,
    ) -> None:
        if len(staffing) != len(profile.hourly_calls):
            raise ValueError(
                f"staffing has {len(staffing)} intervals, the profile {len(profile.hourly_calls)}"
            )
        if not profile.routing.hold_when_busy:
            raise ValueError("the simulation needs hold_when_busy: it has no plain queue")
        self.profile = profile
        self.staffing = staffing
        self.seed = seed
        self.answer_delay_s = answer_delay_s
        self.threshold_s = threshold_s
        skills = profile.skill_shares()
        self.roster: dict[str, list[str]] = {
            skill: [f"{skill}-{i:03d}" for i in range(max(h.get(skill, 0) for h in staffing))]
            for skill in skills
        }
        agents = [
            AgentSettings(id=agent_id, name=agent_id, skills={skill: SKILL_LEVEL})
            for skill, ids in self.roster.items()
            for agent_id in ids
        ]
        self.floor = {a.id for a in agents}
        plan = RoutingPlan.from_settings(
            profile.routing,
            list(profile.hotlines),
            agents + list(profile.leaders),
            list(profile.leader_shifts),
        )
        self.router = Router(plan)
        self.t0 = profile.start.timestamp()
        self._events: list[tuple[float, int, int, str]] = []
        self._seq = count()
        self._calls: dict[str, _Call] = {}
        self._infos: dict[str, tuple[str, CallerInfo, float]] = {}
        self._stats = [HourStats(hour=h) for h in range(len(staffing))]
        self._reasons: dict[str, int] = {}
        self._staffed: dict[str, int] = {skill: 0 for skill in skills}
        self._leaving: set[str] = set()
        self._tick_at: float | None = None
        self._clock = self.t0
        self._busy = 0
        self._logged = 0

    # --- set-up ------------------------------------------------------------------------

    def _arrivals(self) -> None:
        p = self.profile
        rng = np.random.default_rng(self.seed)
        times: list[float] = []
        for hour, calls in enumerate(p.hourly_calls):
            n = int(rng.poisson(calls))
            times.extend(np.sort(rng.uniform(hour * 3600.0, (hour + 1) * 3600.0, n)).tolist())
        n = len(times)
        handle = p.handle.sample(rng, n)
        patience = p.patience.sample(rng, n)
        lines = rng.choice(len(p.hotlines), size=n, p=np.asarray(p.shares))
        draws = rng.random((n, 4))
        for i, t in enumerate(times):
            hotline = p.hotlines[int(lines[i])]
            call_id = f"call-{i:06d}"
            last_agent = None
            if draws[i, 0] < p.open_ticket:
                group = self.roster.get(hotline.skill) or []
                if group:
                    last_agent = group[int(draws[i, 3] * len(group))]
            info = CallerInfo(
                caller=f"1380000{i:04d}",
                open_ticket=last_agent is not None,
                last_agent_id=last_agent,
                enterprise=bool(draws[i, 1] < p.enterprise),
                flagged=bool(draws[i, 2] < p.flagged),
            )
            self._infos[call_id] = (hotline.did, info, float(patience[i]))
            self._calls[call_id] = _Call(call_id, self.t0 + t, int(t // 3600), float(handle[i]))
            self._push(self.t0 + t, _ARRIVAL, call_id)

    def _schedule(self) -> None:
        for hour in range(len(self.staffing)):
            self._push(self.t0 + hour * 3600.0, _STAFF, str(hour))
        for shift in self.profile.leader_shifts:
            self._push(shift.start.timestamp(), _LEADER_IN, shift.agent)
            self._push(shift.end.timestamp(), _LEADER_OUT, shift.agent)

    # --- the run -----------------------------------------------------------------------

    def run(self) -> SimReport:
        self._schedule()
        self._arrivals()
        events = self._events
        handlers = {
            _STAFF: self._on_staff,
            _LEADER_IN: self._on_leader_in,
            _LEADER_OUT: self._on_leader_out,
            _END: self._on_end,
            _ANSWER: self._on_answer,
            _ABANDON: self._on_abandon,
            _ARRIVAL: self._on_arrival,
            _TICK: self._on_tick,
        }
        while events:
            t, kind, _, subject = heapq.heappop(events)
            self._advance(t)
            handlers[kind](t, subject)
            self._schedule_tick()
        for h, stats in enumerate(self._stats):
            stats.agents = sum(self.staffing[h].values())
        return SimReport(self.profile.name, self.seed, tuple(self._stats), dict(self._reasons))

    def _push(self, t: float, kind: int, subject: str) -> None:
        heapq.heappush(self._events, (t, kind, next(self._seq), subject))

    def _advance(self, t: float) -> None:
        """Integrate logged-in and busy floor agents over time, split at hour boundaries."""
        last = self._clock
        while last < t:
            hour = int((last - self.t0) // 3600)
            end = min(t, self.t0 + (hour + 1) * 3600.0)
            stats = self._stats[min(hour, len(self._stats) - 1)]
            stats.staffed_s += self._logged * (end - last)
            stats.busy_s += self._busy * (end - last)
            last = end
        self._clock = t

    def _schedule_tick(self) -> None:
        due = self.router.next_due()
        if due is None:
            return
        t = max(due, self._clock)
        if self._tick_at is None or t < self._tick_at:
            self._tick_at = t
            self._push(t, _TICK, "")

    # --- handlers ----------------------------------------------------------------------

    def _on_arrival(self, t: float, call_id: str) -> None:
        did, info, patience = self._infos.pop(call_id)
        decision = self.router.new_call(call_id, did, info, t)
        call = self._calls[call_id]
        self._stats[call.hour].offered += 1
        if decision.agent_id is not None:
            self._offered(t, Offer(call_id, decision.agent_id, "", decision.reason, False))
        if call.state != "talking":
            self._push(t + patience, _ABANDON, call_id)

    def _on_abandon(self, t: float, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None or call.state != "waiting" and call.state != "reserved":
            return  # answered meanwhile
        del self._calls[call_id]
        if call.state == "reserved":
            self._busy -= call.agent_id in self.floor
        call.state = "done"
        stats = self._stats[call.hour]
        stats.abandoned += 1
        stats.wait_abandoned_s += t - call.arrived
        agent_id = call.agent_id
        self._take(t, self.router.call_gone(call_id, t))
        if agent_id in self._leaving:
            self._leave_if_idle(t, agent_id)

    def _on_answer(self, t: float, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None or call.state != "reserved":
            return  # the caller hung up while the seat rang
        self.router.confirm(call_id, call.agent_id, t)
        call.state = "talking"
        wait = t - call.arrived
        stats = self._stats[call.hour]
        stats.answered += 1
        stats.wait_answered_s += wait
        stats.answered_15s += wait <= self.threshold_s
        stats.leader_calls += call.agent_id not in self.floor
        self._push(t + call.handle_s, _END, call_id)

    def _on_end(self, t: float, call_id: str) -> None:
        call = self._calls.pop(call_id)
        call.state = "done"
        agent_id = call.agent_id
        self._busy -= agent_id in self.floor
        if agent_id in self._leaving:
            self._leave(t, agent_id)
        else:
            self._take(t, self.router.agent_ready(agent_id, t))

    def _on_tick(self, t: float, _: str) -> None:
        self._tick_at = None
        self._take(t, self.router.tick(t))

    def _on_staff(self, t: float, hour_s: str) -> None:
        wanted = self.staffing[int(hour_s)]
        for skill, ids in self.roster.items():
            have, want = self._staffed[skill], wanted.get(skill, 0)
            for agent_id in ids[have:want]:
                self._join(t, agent_id)
            for agent_id in ids[want:have]:
                self._leaving.add(agent_id)
                self._leave_if_idle(t, agent_id)
            self._staffed[skill] = want

    def _on_leader_in(self, t: float, agent_id: str) -> None:
        self._join(t, agent_id)

    def _on_leader_out(self, t: float, agent_id: str) -> None:
        self._leaving.add(agent_id)
        self._leave_if_idle(t, agent_id)

    # --- agents ------------------------------------------------------------------------

    def _join(self, t: float, agent_id: str) -> None:
        if agent_id in self._leaving:
            # Told to leave but still on a call or ringing: simply stays on.
            self._leaving.discard(agent_id)
            if self.router.agent_state(agent_id) is AgentState.RESERVED:
                self.router.agent_ready(agent_id, t)  # drops the pending not-ready
            return
        self.router.agent_login(agent_id, f"seat-{agent_id}", t)
        self._logged += agent_id in self.floor
        self._take(t, self.router.agent_ready(agent_id, t))

    def _leave_if_idle(self, t: float, agent_id: str) -> None:
        state = self.router.agent_state(agent_id)
        if state in (AgentState.READY, AgentState.NOT_READY):
            self._leave(t, agent_id)
        elif state is AgentState.RESERVED:
            # The seat is ringing: no further offers; leaves after this call or its release.
            self.router.agent_not_ready(agent_id, t, "end of shift")

    def _leave(self, t: float, agent_id: str) -> None:
        self._leaving.discard(agent_id)
        self.router.agent_logout(agent_id, t)
        self._logged -= agent_id in self.floor

    def _take(self, t: float, offers: list[Offer]) -> None:
        for offer in offers:
            self._offered(t, offer)

    def _offered(self, t: float, offer: Offer) -> None:
        call = self._calls[offer.call_id]
        call.state = "reserved"
        call.agent_id = offer.agent_id
        self._busy += offer.agent_id in self.floor
        self._reasons[offer.reason] = self._reasons.get(offer.reason, 0) + 1
        if self.answer_delay_s > 0:
            self._push(t + self.answer_delay_s, _ANSWER, offer.call_id)
        else:
            self._on_answer(t, offer.call_id)


def simulate(
    profile: Profile,
    staffing: list[dict[str, int]],
    seed: int = 1,
    answer_delay_s: float = 0.0,
) -> SimReport:
    return Simulation(profile, staffing, seed=seed, answer_delay_s=answer_delay_s).run()
