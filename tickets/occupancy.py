"""Occupancy (坐席占用率) from the agent state log the CTI keeps (``agent_state_log``).

The usual call-centre definition: the time agents spent handling calls (talking and wrapping
up) over the time they were logged in and available for calls (idle and ready, a phone
ringing, talking, wrapping up). Not-ready time (breaks, training, a phone gone) is in neither:
an agent on a break is not available, and counting the break would make a busy floor look
idle. An occupancy near 1 means agents go from call to call; a floor above about 0.85 for
long burns its agents out, one well below it has more seats staffed than calls.

Each row of the log is a change ``old -> new`` at ``at``; the state an agent is in at the
start of the period is the ``new`` of its last row before it. A state still going on counts
up to ``as_of`` (now), never past the period's end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, func, inspect, select
from sqlalchemy.engine import Connection

from tickets.kpi import Period

HANDLING = frozenset({"on_call", "wrap_up"})
AVAILABLE = HANDLING | {"ready", "ringing"}


@dataclass(frozen=True, slots=True)
class Change:
    agent_id: str
    new: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Seconds handling calls and seconds available, and their ratio (None: never available)."""

    handling_s: float
    available_s: float

    @property
    def value(self) -> float | None:
        return self.handling_s / self.available_s if self.available_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        return {
            "occupancy": None if value is None else round(value, 4),
            "handling_s": round(self.handling_s, 1),
            "available_s": round(self.available_s, 1),
        }


@dataclass(frozen=True, slots=True)
class FloorOccupancy:
    floor: Occupancy
    agents: dict[str, Occupancy]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.floor.to_dict(),
            "agents": [{"agent_id": a, **o.to_dict()} for a, o in sorted(self.agents.items())],
        }


def occupancy(changes: Iterable[Change], start: datetime, end: datetime) -> FloorOccupancy:
    """Occupancy per agent and for the floor over [start, end), from each agent's changes in
    time order (the first may be before ``start``: the state the agent was in then)."""
    handling: dict[str, float] = defaultdict(float)
    available: dict[str, float] = defaultdict(float)
    current: dict[str, tuple[str, datetime]] = {}

    def close(agent_id: str, until: datetime) -> None:
        state, since = current[agent_id]
        seconds = (min(until, end) - max(since, start)).total_seconds()
        if seconds <= 0:
            return
        if state in AVAILABLE:
            available[agent_id] += seconds
        if state in HANDLING:
            handling[agent_id] += seconds

    for change in sorted(changes, key=lambda c: (c.agent_id, c.at)):
        if change.agent_id in current:
            close(change.agent_id, change.at)
        current[change.agent_id] = (change.new, change.at)
    for agent_id in list(current):
        close(agent_id, end)
    agents = {
        a: Occupancy(handling[a], available[a]) for a in sorted(available) if available[a] > 0
    }
    floor = Occupancy(
        sum(o.handling_s for o in agents.values()), sum(o.available_s for o in agents.values())
    )
    return FloorOccupancy(floor, agents)


def load_changes(conn: Connection, start: datetime, end: datetime) -> list[Change] | None:
    """The log's rows in [start, end) and each agent's last row before ``start``, read by
    reflection (the CTI slice owns the table); None when there is no such table."""
    if not inspect(conn).has_table("agent_state_log"):
        return None
    log = Table("agent_state_log", MetaData(), autoload_with=conn)
    # The reflected column is a plain DATETIME: bind UTC, as the CTI stores it.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    last_before = (
        select(func.max(log.c.id)).where(log.c.at < start).group_by(log.c.agent_id)
    ).scalar_subquery()
    rows = conn.execute(
        select(log.c.agent_id, log.c.new, log.c.at).where(
            ((log.c.at >= start) & (log.c.at < end)) | log.c.id.in_(last_before)
        )
    )
    return [Change(agent_id, new, _utc(at)) for agent_id, new, at in rows]


def floor_occupancy(
    conn: Connection, start: datetime, end: datetime, as_of: datetime | None = None
) -> FloorOccupancy:
    """Occupancy over [start, end), counted up to ``as_of`` when that is earlier."""
    until = min(end, as_of) if as_of is not None else end
    changes = load_changes(conn, start, until) or []
    return occupancy(changes, start, until)


def period_occupancy(conn: Connection, period: Period, as_of: datetime | None) -> FloorOccupancy:
    return floor_occupancy(conn, period.start, period.end, as_of)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
