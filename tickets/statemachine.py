"""The ticket lifecycle as a table: ``(state, action) -> new state`` and who may act.

States follow shared/docs/domain.md §2 (S0-S11 plus the side states); the database stores
the state's name (``"dispatched"``), the code (``"S3"``) is for people. A pair missing from
the table raises ``IllegalTransition``; an actor without a permitted role raises
``Forbidden``. ``escalate`` (督办) is an overlay on any open state, not a state change.

The callback survey is one user action (``survey`` with a rating) that the service maps to
one of three table actions, so that the table itself stays a plain lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cti.errors import Conflict, Forbidden, Invalid


class State(StrEnum):
    INTAKE = "intake"  # S0 受理中
    ANSWERED = "answered"  # S1 直接办结
    PENDING_DISPATCH = "pending_dispatch"  # S2 待派单
    DISPATCHED = "dispatched"  # S3 已派单/待签收
    HANDLING = "handling"  # S4 已签收/办理中
    RETURN_REVIEW = "return_review"  # S5 退单待复核
    EXTENSION_REVIEW = "extension_review"  # S6 延期待审批
    REPLY_REVIEW = "reply_review"  # S7 已答复待审核
    SURVEY = "survey"  # S8 待回访
    REHANDLING = "rehandling"  # S9 重办
    CLOSED = "closed"  # S10 办结
    ARCHIVED = "archived"  # S11 归档
    NOT_ACCEPTED = "not_accepted"  # 不予受理
    MERGED = "merged"  # 并单
    POLICE = "police"  # 转110

    @property
    def code(self) -> str:
        return STATE_CODES[self]

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_CODES: dict[State, str] = {
    State.INTAKE: "S0",
    State.ANSWERED: "S1",
    State.PENDING_DISPATCH: "S2",
    State.DISPATCHED: "S3",
    State.HANDLING: "S4",
    State.RETURN_REVIEW: "S5",
    State.EXTENSION_REVIEW: "S6",
    State.REPLY_REVIEW: "S7",
    State.SURVEY: "S8",
    State.REHANDLING: "S9",
    State.CLOSED: "S10",
    State.ARCHIVED: "S11",
    State.NOT_ACCEPTED: "side",
    State.MERGED: "side",
    State.POLICE: "side",
}

STATE_LABELS: dict[State, str] = {
    State.INTAKE: "受理中",
    State.ANSWERED: "直接办结",
    State.PENDING_DISPATCH: "待派单",
    State.DISPATCHED: "待签收",
    State.HANDLING: "办理中",
    State.RETURN_REVIEW: "退单待复核",
    State.EXTENSION_REVIEW: "延期待审批",
    State.REPLY_REVIEW: "已答复待审核",
    State.SURVEY: "待回访",
    State.REHANDLING: "重办",
    State.CLOSED: "办结",
    State.ARCHIVED: "归档",
    State.NOT_ACCEPTED: "不予受理",
    State.MERGED: "并单",
    State.POLICE: "转110",
}

# Roles. "department" is a user of a member unit: it acts only on tickets whose lead
# department is its own (``Actor.department_id``).
AGENT, LEADER, WINDOW, SUPERVISOR, ADMIN, DEPARTMENT = (
    "agent",
    "leader",
    "window",
    "supervisor",
    "admin",
    "department",
)
ROLES = (AGENT, LEADER, WINDOW, SUPERVISOR, ADMIN, DEPARTMENT)

HOTLINE_DESK = frozenset({AGENT, LEADER, SUPERVISOR})
REVIEWERS = frozenset({SUPERVISOR})
DEPARTMENT_ONLY = frozenset({DEPARTMENT})

S = State


@dataclass(frozen=True, slots=True)
class Rule:
    new: State
    roles: frozenset[str]
    needs_reason: bool = False


def _r(new: State, roles: frozenset[str], needs_reason: bool = False) -> Rule:
    return Rule(new, roles, needs_reason)


# fmt: off
TRANSITIONS: dict[tuple[State, str], Rule] = {
    # intake: answer on the spot, hold for dispatch, dispatch during the call (接交一体)
    (S.INTAKE, "answer"):                 _r(S.ANSWERED, frozenset({AGENT, LEADER})),
    (S.INTAKE, "queue_dispatch"):         _r(S.PENDING_DISPATCH, frozenset({AGENT, LEADER})),
    (S.INTAKE, "dispatch"):               _r(S.DISPATCHED, HOTLINE_DESK),
    (S.INTAKE, "not_accept"):             _r(S.NOT_ACCEPTED, HOTLINE_DESK, True),
    (S.INTAKE, "merge"):                  _r(S.MERGED, HOTLINE_DESK),
    (S.INTAKE, "transfer_police"):        _r(S.POLICE, HOTLINE_DESK),
    (S.PENDING_DISPATCH, "dispatch"):     _r(S.DISPATCHED, HOTLINE_DESK),
    (S.PENDING_DISPATCH, "not_accept"):   _r(S.NOT_ACCEPTED, HOTLINE_DESK, True),
    (S.PENDING_DISPATCH, "merge"):        _r(S.MERGED, HOTLINE_DESK),
    (S.PENDING_DISPATCH, "transfer_police"): _r(S.POLICE, HOTLINE_DESK),
    # the department
    (S.DISPATCHED, "sign_off"):           _r(S.HANDLING, DEPARTMENT_ONLY),
    (S.DISPATCHED, "return"):             _r(S.RETURN_REVIEW, DEPARTMENT_ONLY, True),
    (S.DISPATCHED, "merge"):              _r(S.MERGED, HOTLINE_DESK),
    (S.HANDLING, "contact_citizen"):      _r(S.HANDLING, DEPARTMENT_ONLY),
    (S.HANDLING, "return"):               _r(S.RETURN_REVIEW, DEPARTMENT_ONLY, True),
    (S.HANDLING, "request_extension"):    _r(S.EXTENSION_REVIEW, DEPARTMENT_ONLY, True),
    (S.HANDLING, "reply"):                _r(S.REPLY_REVIEW, DEPARTMENT_ONLY),
    (S.REHANDLING, "sign_off"):           _r(S.HANDLING, DEPARTMENT_ONLY),
    # the hotline reviews returns, extensions and replies
    (S.RETURN_REVIEW, "grant_return"):    _r(S.DISPATCHED, REVIEWERS),
    (S.RETURN_REVIEW, "refuse_return"):   _r(S.HANDLING, REVIEWERS, True),
    (S.EXTENSION_REVIEW, "approve_extension"): _r(S.HANDLING, REVIEWERS),
    (S.EXTENSION_REVIEW, "reject_extension"):  _r(S.HANDLING, REVIEWERS, True),
    (S.REPLY_REVIEW, "approve_reply"):    _r(S.SURVEY, REVIEWERS),
    (S.REPLY_REVIEW, "reject_reply"):     _r(S.HANDLING, REVIEWERS, True),
    # callback survey (回访); "survey" with a rating maps to one of these
    (S.SURVEY, "survey_satisfied"):       _r(S.CLOSED, HOTLINE_DESK),
    (S.SURVEY, "survey_unsatisfied"):     _r(S.REHANDLING, HOTLINE_DESK),
    (S.SURVEY, "survey_unreachable"):     _r(S.SURVEY, HOTLINE_DESK),
    # closing and archiving
    (S.SURVEY, "close"):                  _r(S.CLOSED, REVIEWERS, True),
    (S.REHANDLING, "close"):              _r(S.CLOSED, REVIEWERS, True),
    (S.CLOSED, "archive"):                _r(S.ARCHIVED, REVIEWERS),
    (S.ANSWERED, "archive"):              _r(S.ARCHIVED, REVIEWERS),
    (S.NOT_ACCEPTED, "archive"):          _r(S.ARCHIVED, REVIEWERS),
    (S.MERGED, "archive"):                _r(S.ARCHIVED, REVIEWERS),
    (S.POLICE, "archive"):                _r(S.ARCHIVED, REVIEWERS),
}
# fmt: on

# States in which the ticket is still being worked on: 督办 may be raised, timers run.
OPEN_STATES = frozenset(
    {
        S.INTAKE,
        S.PENDING_DISPATCH,
        S.DISPATCHED,
        S.HANDLING,
        S.RETURN_REVIEW,
        S.EXTENSION_REVIEW,
        S.REPLY_REVIEW,
        S.SURVEY,
        S.REHANDLING,
    }
)
# States in which a department is working on the ticket (its completion clock runs).
DEPARTMENT_STATES = frozenset(
    {S.DISPATCHED, S.HANDLING, S.RETURN_REVIEW, S.EXTENSION_REVIEW, S.REHANDLING}
)
ESCALATE_ROLES = frozenset({LEADER, SUPERVISOR})
SURVEY_RATINGS = {
    "satisfied": "survey_satisfied",
    "basically_satisfied": "survey_satisfied",
    "unsatisfied": "survey_unsatisfied",
    "unreachable": "survey_unreachable",
}

ACTIONS = sorted({action for _, action in TRANSITIONS} | {"escalate", "survey"})


class IllegalTransition(Conflict):
    def __init__(self, state: State, action: str, **details: Any) -> None:
        super().__init__(
            "illegal-transition",
            f"cannot {action} a ticket in state {state.value} ({state.code} {state.label})",
            state=state.value,
            action=action,
            allowed=allowed_actions(state),
            **details,
        )
        self.state = state
        self.action = action


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a console user reduced to what the state machine needs."""

    id: str
    roles: frozenset[str]
    department_id: str | None = None

    SYSTEM_ID = "system"

    @classmethod
    def system(cls) -> Actor:
        return cls(cls.SYSTEM_ID, frozenset({ADMIN}))

    @classmethod
    def from_user(cls, user: Any) -> Actor:
        """From ``console.security.User``. A department user carries the role
        ``"department"`` and its unit in ``user.department_id``; a role tag
        ``"department:<id>"`` is read the same way."""
        roles: set[str] = set()
        department_id: str | None = getattr(user, "department_id", None)
        for role in getattr(user, "roles", frozenset()):
            if role.startswith("department:"):
                roles.add(DEPARTMENT)
                department_id = department_id or role.split(":", 1)[1]
            else:
                roles.add(role)
        name = getattr(user, "username", None) or str(getattr(user, "id", "?"))
        return cls(str(name), frozenset(roles), department_id)

    def may(self, roles: frozenset[str]) -> bool:
        return ADMIN in self.roles or bool(self.roles & roles)


def rule_for(state: State, action: str) -> Rule:
    rule = TRANSITIONS.get((state, action))
    if rule is None:
        raise IllegalTransition(state, action)
    return rule


def allowed_actions(state: State) -> list[str]:
    actions = [action for (s, action) in TRANSITIONS if s == state]
    if state in OPEN_STATES:
        actions.append("escalate")
    if state == S.SURVEY:
        actions.append("survey")
    return sorted(actions)


def check(state: State, action: str, actor: Actor, reason: str = "") -> Rule:
    """The rule for ``action`` in ``state`` if ``actor`` may take it; raises otherwise."""
    rule = rule_for(state, action)
    if not actor.may(rule.roles):
        raise Forbidden(
            "role-not-allowed",
            f"{action} needs one of the roles {sorted(rule.roles)}",
            action=action,
            needs=sorted(rule.roles),
        )
    if rule.needs_reason and not reason.strip():
        raise Invalid("reason-required", f"{action} needs a reason", action=action)
    return rule
