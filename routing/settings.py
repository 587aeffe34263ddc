"""Configuration sections read by the routing engine.

The central configuration (``cti/config.py``) includes these models as fields: ``[routing]``,
``[[hotlines]]``, ``[[agents]]`` and ``[[leader_shifts]]``. Unknown keys are refused so that a
misspelt option fails at start-up instead of being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Fairness = Literal["longest_idle", "least_calls", "highest_skill"]
SkillLevel = Annotated[int, Field(ge=1, le=10)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverflowRule(_Section):
    """After ``after_s`` seconds in line, calls of ``skill`` may also go to agents of ``to``."""

    skill: str
    after_s: float = Field(ge=0)
    to: list[str] = Field(min_length=1)


class RoutingSettings(_Section):
    """``[routing]``: the rules of the automatic call distribution.

    Priority and its bound: each caller gets a class (0 normal, 1 open ticket, 2 enterprise,
    3 flagged by a supervisor) and the waiting line is ordered by
    ``arrival_time - class * priority_aging_s``. A call is therefore never passed by a call
    that arrived more than ``(3 - its class) * priority_aging_s`` seconds after it: with the
    default of 15 s, a normal caller waits behind at most 45 s worth of later arrivals.
    ``priority_aging_s = 0`` turns priorities off (plain first come, first served).

    Fairness among agents who could all take a call: ``longest_idle`` (ready the longest
    since their last call), ``least_calls`` (fewest calls answered since login, then longest
    idle) or ``highest_skill`` (highest level in the call's skill, then longest idle).
    """

    fairness: Fairness = "longest_idle"
    sticky_wait_s: float = Field(default=20.0, ge=0)
    leader_wait_s: float = Field(default=15.0, ge=0)
    priority_aging_s: float = Field(default=15.0, ge=0)
    enterprise_callers: list[str] = Field(default_factory=list)
    flagged_callers: list[str] = Field(default_factory=list)
    overflow: list[OverflowRule] = Field(default_factory=list)
    default_skill: str = "general"
    hold_when_busy: bool = True


class HotlineNumber(_Section):
    """``[[hotlines]]``: one of the old hotlines merged into 12345, told apart by its DID."""

    did: str = Field(min_length=1)
    name: str
    topic: str = Field(min_length=1)
    skill: str = Field(min_length=1)
    # 110 puts calls through on this number (110 -> 12345): the incident number its INVITE
    # carries (X-Incident-Id) links the call's ticket to 110's record (tickets.police_calls).
    # Not honoured on other numbers, where a caller's header would be anyone's.
    police110: bool = False


class AgentSettings(_Section):
    """``[[agents]]``: a person who logs in at a seat; skill levels run from 1 to 10."""

    id: str = Field(min_length=1)
    name: str
    skills: dict[str, SkillLevel] = Field(default_factory=dict)
    leader: bool = False
    title: str = ""


class LeaderShift(_Section):
    """``[[leader_shifts]]``: a leader (市长, 局长, …) on duty at a seat for a time window."""

    agent: str = Field(min_length=1)
    seat: str
    start: AwareDatetime
    end: AwareDatetime
    topics: list[str] = Field(min_length=1)
    title: str = ""

    @model_validator(mode="after")
    def _end_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"leader shift of {self.agent!r} ends before it starts")
        return self
