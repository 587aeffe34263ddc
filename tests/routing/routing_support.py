"""Shared builders for the routing tests (a module, not a conftest, so tests import it)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from routing import (
    AgentSettings,
    HotlineNumber,
    LeaderShift,
    Router,
    RoutingPlan,
    RoutingSettings,
)

CST = timezone(timedelta(hours=8))
DAY = datetime(2024, 6, 3, tzinfo=CST)
T0 = (DAY + timedelta(hours=8)).timestamp()  # 08:00 China time, as POSIX seconds

HOTLINES = [
    HotlineNumber(did="12345", name="市民热线", topic="general", skill="general"),
    HotlineNumber(did="12315", name="消费维权", topic="consumer", skill="consumer"),
    HotlineNumber(did="12333", name="社保", topic="social", skill="social"),
    HotlineNumber(did="96128", name="为企服务", topic="enterprise", skill="enterprise"),
]


def agent(agent_id: str, leader: bool = False, **skills: int) -> AgentSettings:
    return AgentSettings(id=agent_id, name=agent_id, skills=skills, leader=leader)


def shift(agent_id: str, start_h: float, end_h: float, *topics: str) -> LeaderShift:
    return LeaderShift(
        agent=agent_id,
        seat=f"seat-{agent_id}",
        start=DAY + timedelta(hours=start_h),
        end=DAY + timedelta(hours=end_h),
        topics=list(topics),
        title="市长",
    )


def make_router(
    agents: list[AgentSettings], shifts: list[LeaderShift] | None = None, **routing: Any
) -> Router:
    plan = RoutingPlan.from_settings(RoutingSettings(**routing), HOTLINES, agents, shifts or [])
    return Router(plan)


def ready(router: Router, *agent_ids: str, now: float = T0) -> None:
    """Log agents in at seat-<id> and make them ready, each a millisecond apart."""
    for i, agent_id in enumerate(agent_ids):
        router.agent_login(agent_id, f"seat-{agent_id}", now + i * 0.001)
        assert router.agent_ready(agent_id, now + i * 0.001) == []
