"""Routing for the hotline: pure decisions (no I/O, no asyncio) driven by the CTI.

``RoutingPlan`` checks the configuration once; ``Router`` keeps the live state of agents and
waiting calls and answers every event with a ``Decision`` or a list of ``Offer``.
"""

from routing.plan import CallerInfo, Priority, RoutingPlan, Shift
from routing.router import Router
from routing.settings import (
    AgentSettings,
    HotlineNumber,
    LeaderShift,
    OverflowRule,
    RoutingSettings,
)
from routing.types import WRAPUP, AgentState, CallState, Decision, Offer

__all__ = [
    "WRAPUP",
    "AgentSettings",
    "AgentState",
    "CallState",
    "CallerInfo",
    "Decision",
    "HotlineNumber",
    "LeaderShift",
    "Offer",
    "OverflowRule",
    "Priority",
    "Router",
    "RoutingPlan",
    "RoutingSettings",
    "Shift",
]
