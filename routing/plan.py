"""The routing plan: configuration checked once and turned into lookup tables.

The plan is immutable; the live state (who is logged in, who waits) lives in ``Router``.
Times are POSIX seconds, the clock the router is driven with, because leader shifts are
wall-clock windows.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

from routing.settings import (
    AgentSettings,
    HotlineNumber,
    LeaderShift,
    OverflowRule,
    RoutingSettings,
)


class Priority(IntEnum):
    """Priority classes; a caller in several classes gets the highest."""

    NORMAL = 0
    OPEN_TICKET = 1
    ENTERPRISE = 2
    FLAGGED = 3


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """What the CTI knows about the caller from its database cache."""

    caller: str
    enterprise: bool = False
    flagged: bool = False
    open_ticket: bool = False
    last_agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    """A leader shift with its window in POSIX seconds."""

    agent_id: str
    seat: str
    start: float
    end: float
    topics: frozenset[str]
    title: str

    def covers(self, now: float) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True, slots=True)
class Schedule:
    """Shifts sorted by start, for the shifts covering an instant in O(log n + overlap)."""

    shifts: tuple[Shift, ...]
    starts: tuple[float, ...]
    longest: float

    @classmethod
    def of(cls, shifts: list[Shift]) -> Schedule:
        ordered = tuple(sorted(shifts, key=lambda s: s.start))
        return cls(
            shifts=ordered,
            starts=tuple(s.start for s in ordered),
            longest=max((s.end - s.start for s in ordered), default=0.0),
        )

    def active(self, now: float) -> list[Shift]:
        # Shifts starting after now are past the bisection point; those starting more than
        # the longest shift before now have ended, so the backward scan stops there.
        found = []
        i = bisect_right(self.starts, now) - 1
        while i >= 0 and self.starts[i] > now - self.longest - 1.0:
            if self.shifts[i].covers(now):
                found.append(self.shifts[i])
            i -= 1
        found.reverse()
        return found


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    settings: RoutingSettings
    hotlines: Mapping[str, HotlineNumber]
    agents: Mapping[str, AgentSettings]
    overflow: Mapping[str, tuple[OverflowRule, ...]]
    shifts_by_topic: Mapping[str, Schedule]
    shifts_by_agent: Mapping[str, Schedule]
    shift_starts: tuple[float, ...]
    enterprise_callers: frozenset[str]
    flagged_callers: frozenset[str]

    @classmethod
    def from_settings(
        cls,
        routing: RoutingSettings,
        hotlines: list[HotlineNumber],
        agents: list[AgentSettings],
        shifts: list[LeaderShift],
    ) -> RoutingPlan:
        """Check the configuration as a whole; raise ValueError on the first contradiction."""
        by_did: dict[str, HotlineNumber] = {}
        for hotline in hotlines:
            if hotline.did in by_did:
                raise ValueError(f"DID {hotline.did!r} is configured twice")
            by_did[hotline.did] = hotline

        by_id: dict[str, AgentSettings] = {}
        for agent in agents:
            if agent.id in by_id:
                raise ValueError(f"agent {agent.id!r} is configured twice")
            by_id[agent.id] = agent

        overflow: dict[str, list[OverflowRule]] = {}
        for rule in routing.overflow:
            if rule.skill in rule.to:
                raise ValueError(f"overflow rule of {rule.skill!r} overflows to itself")
            overflow.setdefault(rule.skill, []).append(rule)

        by_topic: dict[str, list[Shift]] = {}
        by_agent: dict[str, list[Shift]] = {}
        for conf in shifts:
            leader = by_id.get(conf.agent)
            if leader is None:
                raise ValueError(f"leader shift names unknown agent {conf.agent!r}")
            if not leader.leader:
                raise ValueError(f"agent {conf.agent!r} has a leader shift but leader = false")
            shift = Shift(
                agent_id=conf.agent,
                seat=conf.seat,
                start=conf.start.timestamp(),
                end=conf.end.timestamp(),
                topics=frozenset(conf.topics),
                title=conf.title or leader.title,
            )
            for other in by_agent.get(conf.agent, ()):
                if shift.start < other.end and other.start < shift.end:
                    raise ValueError(f"leader shifts of {conf.agent!r} overlap")
            by_agent.setdefault(conf.agent, []).append(shift)
            for topic in shift.topics:
                by_topic.setdefault(topic, []).append(shift)

        return cls(
            settings=routing,
            hotlines=MappingProxyType(by_did),
            agents=MappingProxyType(by_id),
            overflow=MappingProxyType(
                {k: tuple(sorted(v, key=lambda r: r.after_s)) for k, v in overflow.items()}
            ),
            shifts_by_topic=MappingProxyType({k: Schedule.of(v) for k, v in by_topic.items()}),
            shifts_by_agent=MappingProxyType({k: Schedule.of(v) for k, v in by_agent.items()}),
            shift_starts=tuple(sorted({s.start for v in by_agent.values() for s in v})),
            enterprise_callers=frozenset(routing.enterprise_callers),
            flagged_callers=frozenset(routing.flagged_callers),
        )

    def route(self, did: str) -> tuple[str, str]:
        """(topic, skill) of a dialled number; unknown numbers go to the default skill."""
        hotline = self.hotlines.get(did)
        if hotline is None:
            return self.settings.default_skill, self.settings.default_skill
        return hotline.topic, hotline.skill

    def priority(self, info: CallerInfo) -> Priority:
        if info.flagged or info.caller in self.flagged_callers:
            return Priority.FLAGGED
        if info.enterprise or info.caller in self.enterprise_callers:
            return Priority.ENTERPRISE
        if info.open_ticket:
            return Priority.OPEN_TICKET
        return Priority.NORMAL

    def leaders_on_duty(self, topic: str, now: float) -> list[Shift]:
        schedule = self.shifts_by_topic.get(topic)
        return schedule.active(now) if schedule is not None else []

    def duty_topics(self, agent_id: str, now: float) -> frozenset[str]:
        schedule = self.shifts_by_agent.get(agent_id)
        if schedule is None:
            return frozenset()
        # A leader's own shifts never overlap (checked in from_settings): at most one is active.
        active = schedule.active(now)
        return active[0].topics if active else frozenset()

    @property
    def leader_topics(self) -> frozenset[str]:
        return frozenset(self.shifts_by_topic)
