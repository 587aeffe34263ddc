"""The ACD: live agent states, the waiting line, and the pairing of the two.

Pure and clock-free: every method takes ``now`` (POSIX seconds, the clock of the leader
shifts) and returns what the CTI must do. Every method that can free an agent or release a
call returns the offers it made, so the caller never has to ask twice.

Reservations. An offer (or a decision naming an agent) reserves both the agent and the call:
neither is offered again until the CTI ends the reservation with ``confirm`` (the seat
answered) or ``release`` (the move failed), or the caller hangs up (``call_gone``). Agent-side
events that arrive meanwhile (not ready, busy, logout, seat unreachable) are kept pending and
take effect when the reservation is released, because the seat may already be ringing. This
is what makes the races safe: one agent never holds two calls and one call never goes to two
agents.

Invariant kept by every method: no call on the floor has a ready agent who could take it.
So a new offer can only arise from an event (agent ready, call arriving, a timer firing) and
each event looks at the few heaps it touches, never at the whole floor.

Nodes. With several Asterisk nodes a seat belongs to the node its phone is registered on
(``seat_node``) and a call to the node it arrived on (``new_call(node=...)``). A call takes a
ready agent of its own node before an equally entitled one of another node (who is reached
through the trunk between the nodes); an agent who becomes ready takes the call that has
waited longest, whatever its node.
"""

from __future__ import annotations

import heapq
from collections import Counter
from itertools import count
from operator import attrgetter
from typing import Any

from routing.heap import IndexedHeap, Key
from routing.plan import CallerInfo, RoutingPlan
from routing.state import AGENT_TRANSITIONS, AgentRecord, CallRecord
from routing.types import AgentState, CallState, Decision, Offer

_BY_KEY = attrgetter("key")  # a call's place in the line


class Router:
    def __init__(self, plan: RoutingPlan) -> None:
        self.plan = plan
        self._settings = plan.settings
        self._agents: dict[str, AgentRecord] = {}
        self._seats: dict[str, str] = {}  # seat -> agent id
        self._unreachable: set[str] = set()
        self._calls: dict[str, CallRecord] = {}
        self._ready: dict[str, IndexedHeap] = {}  # skill -> ready agents, by fairness
        # (skill, node) -> the same agents, those whose seat is registered on that node
        self._ready_at: dict[tuple[str, str], IndexedHeap] = {}
        self._seat_nodes: dict[str, str] = {}  # seat -> node its phone is registered on
        self._line: dict[str, IndexedHeap] = {}  # skill -> waiting calls, by priority
        self._line_by_topic = {topic: IndexedHeap() for topic in plan.leader_topics}
        self._timers: list[tuple[float, int, str, str]] = []  # (due, seq, kind, call id)
        self._seq = count()
        self._shift_cursor = 0

    # --- agent side ------------------------------------------------------------------

    def agent_login(self, agent_id: str, seat: str, now: float) -> None:
        conf = self.plan.agents.get(agent_id)
        if conf is None:
            raise ValueError(f"unknown agent {agent_id!r}")
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} is already logged in")
        holder = self._seats.get(seat)
        if holder is not None:
            raise ValueError(f"seat {seat!r} is taken by agent {holder!r}")
        self._agents[agent_id] = AgentRecord(
            conf=conf,
            seat=seat,
            since=now,
            ready_since=now,
            reachable=seat not in self._unreachable,
        )
        self._seats[seat] = agent_id

    def agent_ready(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        if agent.state is AgentState.RESERVED:
            agent.pending = None  # changed their mind while the seat rings: nothing pending
            agent.reason = ""
            return []
        if agent.state is AgentState.READY:
            return []
        self._transition(agent, "ready", now)
        agent.ready_since = now
        return self._agent_available(agent, now)

    def agent_not_ready(self, agent_id: str, now: float, reason: str = "") -> list[Offer]:
        agent = self._agent(agent_id)
        if agent.state is AgentState.RESERVED:
            agent.pending = AgentState.NOT_READY
            agent.reason = reason
            return []
        self._transition(agent, "not_ready", now)
        agent.reason = reason
        return [] if agent.wrapup else self._drop_targets(agent, now)

    def agent_busy(self, agent_id: str, now: float) -> list[Offer]:
        """A call the ACD did not place (callback, transfer, outbound) occupies the agent."""
        agent = self._agent(agent_id)
        if agent.state is AgentState.RESERVED:
            agent.pending = AgentState.BUSY
            return []
        self._transition(agent, "busy", now)
        return []

    def agent_logout(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agent(agent_id)
        if agent.state is AgentState.RESERVED:
            agent.pending = AgentState.LOGGED_OUT
            return []
        self._transition(agent, "logout", now)
        return self._remove_agent(agent, now)

    def seat_node(self, seat: str, node: str) -> None:
        """The seat's phone is registered on ``node`` now ("" when unknown)."""
        if self._seat_nodes.get(seat, "") == node:
            return
        agent = self._agent_at(seat)
        indexed = agent is not None and any(
            agent.conf.id in heap
            for skill in agent.conf.skills
            if (heap := self._ready.get(skill)) is not None
        )
        if agent is not None and indexed:
            self._unindex_agent(agent)
        if node:
            self._seat_nodes[seat] = node
        else:
            self._seat_nodes.pop(seat, None)
        if agent is not None and indexed:
            self._index_agent(agent)

    def seat_unreachable(self, seat: str, now: float) -> list[Offer]:
        self._unreachable.add(seat)
        agent = self._agent_at(seat)
        if agent is None or not agent.reachable:
            return []
        agent.reachable = False
        self._unindex_agent(agent)
        return self._drop_targets(agent, now)

    def seat_reachable(self, seat: str, now: float) -> list[Offer]:
        self._unreachable.discard(seat)
        agent = self._agent_at(seat)
        if agent is None or agent.reachable:
            return []
        agent.reachable = True
        if agent.state is AgentState.READY:
            return self._agent_available(agent, now)
        return []

    # --- call side -------------------------------------------------------------------

    def new_call(
        self, call_id: str, did: str, info: CallerInfo, now: float, *, node: str = ""
    ) -> Decision:
        if call_id in self._calls:
            raise ValueError(f"call {call_id!r} is already known")
        plan, settings = self.plan, self._settings
        topic, skill = plan.route(did)
        priority = int(plan.priority(info))
        call = CallRecord(
            call_id=call_id,
            skill=skill,
            topic=topic,
            priority=priority,
            arrived=now,
            key=(now - priority * settings.priority_aging_s, float(next(self._seq))),
            skills=[skill],
            node=node,
        )
        hold = settings.hold_when_busy

        def decided(reason: str, agent: AgentRecord | None, leader: bool) -> Decision:
            return Decision(
                call_id=call_id,
                agent_id=agent.conf.id if agent else None,
                seat=agent.seat if agent else None,
                skill=skill,
                topic=topic,
                priority=priority,
                reason=reason,
                leader=leader,
                hold=hold and agent is None,
            )

        # 1. The agent who handled the caller's open ticket.
        sticky = self._agents.get(info.last_agent_id or "") if info.open_ticket else None
        if sticky is not None:
            if self._offerable(sticky):
                self._reserve(call, sticky, "sticky", now)
                return decided("sticky", sticky, sticky.conf.leader)
            if hold and settings.sticky_wait_s > 0 and self._coming_back(sticky):
                self._target(call, [sticky], "sticky", now + settings.sticky_wait_s)
                return decided("sticky_wait", None, False)

        # 2. A leader on duty for the topic.
        leaders = self._leaders_on_duty(topic, now)
        if leaders:
            leader = self._ready_leader(leaders)
            if leader is not None:
                self._reserve(call, leader, "leader", now)
                return decided("leader", leader, True)
            waiting_for = [a for a in leaders if self._coming_back(a)]
            if hold and settings.leader_wait_s > 0 and waiting_for:
                self._target(call, waiting_for, "leader", now + settings.leader_wait_s)
                return decided("leader_wait", None, True)

        # 3. The floor.
        offer = self._place(call, now)
        if offer is not None:
            return decided(offer.reason, self._agents[offer.agent_id], offer.leader)
        if hold:
            self._calls[call_id] = call
            self._enqueue(call, call.skills)
            self._schedule_overflow(call)
        return decided("queued", None, False)

    def call_gone(self, call_id: str, now: float) -> list[Offer]:
        """The caller hung up (or the call left otherwise). Unknown ids are ignored: answered
        calls are forgotten at ``confirm`` and their hangup is normal."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        if call.state is not CallState.RESERVED:
            self._unqueue(call)
            return []
        agent = self._agents[call.agent_id or ""]
        return self._end_reservation(agent, agent_ok=True, now=now)

    def confirm(self, call_id: str, agent_id: str, now: float) -> None:
        """The seat answered. A not-ready or logout pending from the ringing time is dropped:
        the agent is on the call, and the CTI sets their state again when it ends."""
        self._reserved(call_id, agent_id)
        agent = self._agents[agent_id]
        del self._calls[call_id]
        self._transition(agent, "confirm", now)
        agent.call_id = None
        agent.pending = None
        agent.calls += 1

    def release(self, call_id: str, agent_id: str, now: float, agent_ok: bool) -> list[Offer]:
        """The move failed. The call goes back to its place in line (original arrival); the
        agent goes back to ready if ``agent_ok`` and nothing is pending, else not ready. A
        release after ``call_gone`` already undid the reservation is a no-op."""
        if call_id not in self._calls:
            return []
        call = self._reserved(call_id, agent_id)
        agent = self._agents[agent_id]
        # The call re-enters while the agent is still reserved, so it is offered to another
        # ready agent first rather than straight back to the seat that just failed.
        call.state = CallState.WAITING
        call.agent_id = None
        offers = self._enter_floor(call, now)
        return offers + self._end_reservation(agent, agent_ok=agent_ok, now=now)

    # --- time ------------------------------------------------------------------------

    def tick(self, now: float) -> list[Offer]:
        """Fire what is due: sticky and leader waits that ran out, overflow thresholds, and
        leader shifts that began (a ready leader picks up their topics' waiting calls)."""
        offers: list[Offer] = []
        starts = self.plan.shift_starts
        while self._shift_cursor < len(starts) and starts[self._shift_cursor] <= now:
            self._shift_cursor += 1
            for agent_id in self.plan.shifts_by_agent:
                agent = self._agents.get(agent_id)
                if agent is not None and self._offerable(agent):
                    offers += self._agent_available(agent, now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, call_id = heapq.heappop(timers)
            call = self._calls.get(call_id)
            if call is None:
                continue
            if kind == "target":
                if call.state is CallState.TARGETED and call.target_until <= now:
                    offers += self._enter_floor(call, now)
            elif call.state is CallState.WAITING:
                added = self._apply_overflow(call, now)
                if added:
                    self._enqueue(call, added)
                    self._schedule_overflow(call)
                    found = self._find_agent(call, added)
                    if found is not None:
                        offers.append(self._reserve(call, found[0], found[1], now))
        return offers

    def next_due(self) -> float | None:
        """When ``tick`` next has work (it may find nothing left to do by then)."""
        due = self._timers[0][0] if self._timers else None
        starts = self.plan.shift_starts
        if self._shift_cursor < len(starts):
            start = starts[self._shift_cursor]
            due = start if due is None else min(due, start)
        return due

    # --- reading ---------------------------------------------------------------------

    def agent_state(self, agent_id: str) -> AgentState:
        agent = self._agents.get(agent_id)
        return agent.state if agent is not None else AgentState.LOGGED_OUT

    def snapshot(self, *, agents: bool = True, limit: int | None = None) -> dict[str, Any]:
        """The waiting line in service order and the agents, as plain dicts. Without
        ``agents``, their number per state instead: on a floor of two thousand the list costs
        milliseconds of the loop that answers FastAGI. With ``limit``, only the head of the
        line is listed (``waiting_total`` and ``waiting_by_skill`` count all of it): in a
        surge the line holds thousands of calls, and listing them all on every wallboard poll
        cost tens of milliseconds of that loop."""
        # One pass over the calls (a surge has thousands in line, and this runs on the loop).
        line: list[CallRecord] = []
        held: list[CallRecord] = []
        by_skill: dict[str, int] = {}
        reserved = CallState.RESERVED
        for c in self._calls.values():
            if c.state is reserved:
                held.append(c)
            else:
                line.append(c)
                by_skill[c.skill] = by_skill.get(c.skill, 0) + 1
        if limit is not None and limit < len(line):
            waiting = heapq.nsmallest(limit, line, key=_BY_KEY)
        else:
            waiting = sorted(line, key=_BY_KEY)
        return {
            "waiting_total": len(line),
            "waiting_by_skill": by_skill,
            "waiting": [
                {
                    "call_id": c.call_id,
                    "skill": c.skill,
                    "topic": c.topic,
                    "priority": c.priority,
                    "arrived": c.arrived,
                    "state": str(c.state),
                    "skills": list(c.skills),
                    "targets": list(c.targets),
                }
                for c in waiting
            ],
            "reserved": [
                {"call_id": c.call_id, "agent_id": c.agent_id, "arrived": c.arrived} for c in held
            ],
            "agents": [
                {
                    "agent_id": a.conf.id,
                    "seat": a.seat,
                    "state": str(a.state),
                    "pending": str(a.pending) if a.pending else None,
                    "reason": a.reason,
                    "since": a.since,
                    "reachable": a.reachable,
                    "calls": a.calls,
                    "leader": a.conf.leader,
                    "call_id": a.call_id,
                }
                for a in self._agents.values()
            ]
            if agents
            else [],
            "agents_by_state": dict(Counter(str(a.state) for a in self._agents.values())),
        }

    # --- internals -------------------------------------------------------------------

    def _agent(self, agent_id: str) -> AgentRecord:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ValueError(f"agent {agent_id!r} is not logged in")
        return agent

    def _agent_at(self, seat: str) -> AgentRecord | None:
        agent_id = self._seats.get(seat)
        return self._agents[agent_id] if agent_id is not None else None

    def _reserved(self, call_id: str, agent_id: str) -> CallRecord:
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.RESERVED or call.agent_id != agent_id:
            raise ValueError(f"call {call_id!r} is not reserved for agent {agent_id!r}")
        return call

    def _transition(self, agent: AgentRecord, event: str, now: float) -> None:
        new = AGENT_TRANSITIONS.get((agent.state, event))
        if new is None:
            raise ValueError(f"agent {agent.conf.id!r}: cannot {event} when {agent.state}")
        if new is not agent.state:
            if agent.state is AgentState.READY:
                self._unindex_agent(agent)
            agent.state = new
            agent.since = now
        if new is not AgentState.NOT_READY:
            agent.reason = ""

    def _offerable(self, agent: AgentRecord) -> bool:
        return agent.state is AgentState.READY and agent.reachable

    def _coming_back(self, agent: AgentRecord) -> bool:
        """Worth keeping a sticky or leader call waiting for: on a call or wrapping one up."""
        if not agent.reachable:
            return False
        state = agent.state
        if state is AgentState.RESERVED:
            # Judge by where the reservation leads: a call, unless something is pending.
            state = agent.pending or AgentState.BUSY
        return state is AgentState.BUSY or (state is AgentState.NOT_READY and agent.wrapup)

    def _fairness_key(self, agent: AgentRecord, skill: str) -> Key:
        fairness = self._settings.fairness
        if fairness == "least_calls":
            return (float(agent.calls), agent.ready_since)
        if fairness == "highest_skill":
            return (float(-agent.conf.skills.get(skill, 0)), agent.ready_since)
        return (agent.ready_since,)

    def _index_agent(self, agent: AgentRecord) -> None:
        node = self._seat_nodes.get(agent.seat, "")
        for skill in agent.conf.skills:
            key = self._fairness_key(agent, skill)
            heap = self._ready.get(skill)
            if heap is None:
                heap = self._ready[skill] = IndexedHeap()
            heap.push(agent.conf.id, key)
            if node:
                at = self._ready_at.get((skill, node))
                if at is None:
                    at = self._ready_at[(skill, node)] = IndexedHeap()
                at.push(agent.conf.id, key)

    def _unindex_agent(self, agent: AgentRecord) -> None:
        node = self._seat_nodes.get(agent.seat, "")
        for skill in agent.conf.skills:
            heap = self._ready.get(skill)
            if heap is not None:
                heap.remove(agent.conf.id)
            at = self._ready_at.get((skill, node)) if node else None
            if at is not None:
                at.remove(agent.conf.id)

    def _agent_available(self, agent: AgentRecord, now: float) -> list[Offer]:
        """A READY, reachable agent: take the best call they may have, else wait indexed."""
        if not self._offerable(agent):
            return []
        found = self._find_call(agent, now)
        if found is not None:
            call, reason = found
            return [self._reserve(call, agent, reason, now)]
        self._index_agent(agent)
        return []

    def _find_call(self, agent: AgentRecord, now: float) -> tuple[CallRecord, str] | None:
        calls = self._calls
        # Calls waiting for this very agent come first: that is the point of sticky and leader.
        top = agent.targeted.top()
        if top is not None:
            call = calls[top[1]]
            return call, call.target_reason
        best: tuple[Key, str] | None = None
        reason = ""
        for topic in self.plan.duty_topics(agent.conf.id, now):
            top = self._line_by_topic[topic].top()
            if top is not None and (best is None or top < best):
                best, reason = top, "leader"
        if best is None:
            for skill in agent.conf.skills:
                heap = self._line.get(skill)
                top = heap.top() if heap is not None else None
                if top is not None and (best is None or top < best):
                    best = top
            if best is not None:
                reason = "skill" if calls[best[1]].skill in agent.conf.skills else "overflow"
        return (calls[best[1]], reason) if best is not None else None

    def _leaders_on_duty(self, topic: str, now: float) -> list[AgentRecord]:
        return [
            agent
            for shift in self.plan.leaders_on_duty(topic, now)
            if (agent := self._agents.get(shift.agent_id)) is not None
        ]

    def _ready_leader(self, leaders: list[AgentRecord]) -> AgentRecord | None:
        ready = [a for a in leaders if self._offerable(a)]
        return min(ready, key=lambda a: a.ready_since) if ready else None

    def _find_agent(self, call: CallRecord, skills: list[str]) -> tuple[AgentRecord, str] | None:
        """The fairest ready agent of the first of ``skills`` that has one (primary first),
        of the call's own node if one is ready there."""
        for skill in skills:
            local = self._ready_at.get((skill, call.node)) if call.node else None
            top = local.top() if local is not None else None
            if top is not None:
                return self._agents[top[1]], "skill" if skill == call.skill else "overflow"
            heap = self._ready.get(skill)
            top = heap.top() if heap is not None else None
            if top is not None:
                return self._agents[top[1]], "skill" if skill == call.skill else "overflow"
        return None

    def _reserve(self, call: CallRecord, agent: AgentRecord, reason: str, now: float) -> Offer:
        self._unqueue(call)
        self._calls[call.call_id] = call
        self._transition(agent, "reserve", now)
        call.state = CallState.RESERVED
        call.agent_id = agent.conf.id
        call.targets = ()
        agent.call_id = call.call_id
        return Offer(call.call_id, agent.conf.id, agent.seat, reason, agent.conf.leader)

    def _end_reservation(self, agent: AgentRecord, agent_ok: bool, now: float) -> list[Offer]:
        pending = agent.pending
        agent.pending = None
        agent.call_id = None
        agent.since = now
        if pending is not AgentState.NOT_READY:
            agent.reason = ""
        if pending is None:
            pending = AgentState.READY if agent_ok else AgentState.NOT_READY
        agent.state = pending
        if pending is AgentState.READY:
            # Not idle since now: the agent kept their place while the move was tried.
            return self._agent_available(agent, now)
        if pending is AgentState.LOGGED_OUT:
            return self._remove_agent(agent, now)
        if pending is AgentState.NOT_READY and not agent.wrapup:
            return self._drop_targets(agent, now)
        return []

    def _remove_agent(self, agent: AgentRecord, now: float) -> list[Offer]:
        del self._agents[agent.conf.id]
        del self._seats[agent.seat]
        return self._drop_targets(agent, now)

    def _drop_targets(self, agent: AgentRecord, now: float) -> list[Offer]:
        """The agent will not be back soon: calls waiting only for them stop waiting."""
        offers: list[Offer] = []
        for call_id in agent.targeted.items():
            agent.targeted.remove(call_id)
            call = self._calls[call_id]
            call.targets = tuple(t for t in call.targets if t != agent.conf.id)
            if not call.targets:
                offers += self._enter_floor(call, now)
        return offers

    def _target(
        self, call: CallRecord, agents: list[AgentRecord], reason: str, until: float
    ) -> None:
        call.state = CallState.TARGETED
        call.targets = tuple(a.conf.id for a in agents)
        call.target_reason = reason
        call.target_until = until
        self._calls[call.call_id] = call
        for agent in agents:
            agent.targeted.push(call.call_id, call.key)
        self._push_timer(until, "target", call.call_id)

    def _enter_floor(self, call: CallRecord, now: float) -> list[Offer]:
        """Put a call back on the floor (wait ran out, move failed): offer it or queue it."""
        self._unqueue(call)
        call.state = CallState.WAITING
        call.targets = ()
        offer = self._place(call, now)
        if offer is not None:
            return [offer]
        self._enqueue(call, call.skills)
        self._schedule_overflow(call)
        return []

    def _place(self, call: CallRecord, now: float) -> Offer | None:
        """Offer a floor call to a ready leader on duty for its topic or to the fairest ready
        agent of its skills (overflow groups included once their threshold has passed)."""
        self._apply_overflow(call, now)
        # A leader without skills is in no ready heap, so ask the duty roster directly.
        leader = self._ready_leader(self._leaders_on_duty(call.topic, now))
        if leader is not None:
            return self._reserve(call, leader, "leader", now)
        found = self._find_agent(call, call.skills)
        if found is not None:
            return self._reserve(call, found[0], found[1], now)
        return None

    def _apply_overflow(self, call: CallRecord, now: float) -> list[str]:
        """Open the overflow groups whose threshold has passed; return the new skills."""
        rules = self.plan.overflow.get(call.skill, ())
        added: list[str] = []
        while call.overflow_stage < len(rules):
            rule = rules[call.overflow_stage]
            if call.arrived + rule.after_s > now:
                break
            call.overflow_stage += 1
            for skill in rule.to:
                if skill not in call.skills:
                    call.skills.append(skill)
                    added.append(skill)
        return added

    def _schedule_overflow(self, call: CallRecord) -> None:
        rules = self.plan.overflow.get(call.skill, ())
        if call.overflow_stage < len(rules):
            due = call.arrived + rules[call.overflow_stage].after_s
            self._push_timer(due, "overflow", call.call_id)

    def _push_timer(self, due: float, kind: str, call_id: str) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), kind, call_id))

    def _enqueue(self, call: CallRecord, skills: list[str]) -> None:
        for skill in skills:
            heap = self._line.get(skill)
            if heap is None:
                heap = self._line[skill] = IndexedHeap()
            heap.push(call.call_id, call.key)
        topic_heap = self._line_by_topic.get(call.topic)
        if topic_heap is not None and call.call_id not in topic_heap:
            topic_heap.push(call.call_id, call.key)

    def _unqueue(self, call: CallRecord) -> None:
        for skill in call.skills:
            heap = self._line.get(skill)
            if heap is not None:
                heap.remove(call.call_id)
        topic_heap = self._line_by_topic.get(call.topic)
        if topic_heap is not None:
            topic_heap.remove(call.call_id)
        for agent_id in call.targets:
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.targeted.remove(call.call_id)
