"""The transition table on its own: every legal pair, every illegal pair, roles, reasons."""

from __future__ import annotations

import itertools

import pytest

from cti.errors import Conflict, Forbidden, Invalid
from tickets.statemachine import (
    ACTIONS,
    OPEN_STATES,
    TRANSITIONS,
    Actor,
    IllegalTransition,
    State,
    allowed_actions,
    check,
)

ADMIN = Actor("root", frozenset({"admin"}))
TABLE_ACTIONS = sorted({action for _, action in TRANSITIONS})
ILLEGAL = [
    (state, action)
    for state, action in itertools.product(State, TABLE_ACTIONS)
    if (state, action) not in TRANSITIONS
]


@pytest.mark.parametrize(("state", "action"), sorted(TRANSITIONS), ids=str)
def test_legal_pair_gives_its_new_state(state: State, action: str) -> None:
    rule = check(state, action, ADMIN, reason="because")
    assert rule.new == TRANSITIONS[(state, action)].new


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=str)
def test_illegal_pair_raises(state: State, action: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        check(state, action, ADMIN, reason="because")
    error = info.value
    assert isinstance(error, Conflict)
    assert error.status == 409 and error.error_id == "illegal-transition"
    assert error.details["state"] == state.value and error.details["action"] == action
    assert action not in error.details["allowed"]


def test_domain_transitions_are_in_the_table() -> None:
    s = State
    expected = {
        (s.INTAKE, "answer"): s.ANSWERED,  # S0 -> S1
        (s.INTAKE, "queue_dispatch"): s.PENDING_DISPATCH,  # S0 -> S2
        (s.INTAKE, "dispatch"): s.DISPATCHED,  # S0 -> S3 (接交一体)
        (s.PENDING_DISPATCH, "dispatch"): s.DISPATCHED,  # S2 -> S3
        (s.DISPATCHED, "sign_off"): s.HANDLING,  # S3 -> S4
        (s.DISPATCHED, "return"): s.RETURN_REVIEW,  # S3 -> S5
        (s.HANDLING, "return"): s.RETURN_REVIEW,  # S4 -> S5
        (s.RETURN_REVIEW, "grant_return"): s.DISPATCHED,  # S5 -> S3
        (s.RETURN_REVIEW, "refuse_return"): s.HANDLING,  # S5 -> S4
        (s.HANDLING, "request_extension"): s.EXTENSION_REVIEW,  # S4 -> S6
        (s.EXTENSION_REVIEW, "approve_extension"): s.HANDLING,  # S6 -> S4
        (s.HANDLING, "reply"): s.REPLY_REVIEW,  # S4 -> S7
        (s.REPLY_REVIEW, "approve_reply"): s.SURVEY,  # S7 -> S8
        (s.REPLY_REVIEW, "reject_reply"): s.HANDLING,  # S7 -> S4
        (s.SURVEY, "survey_satisfied"): s.CLOSED,  # S8 -> S10
        (s.SURVEY, "survey_unsatisfied"): s.REHANDLING,  # S8 -> S9
        (s.REHANDLING, "sign_off"): s.HANDLING,  # S9 -> S4
        (s.CLOSED, "archive"): s.ARCHIVED,  # S10 -> S11
        (s.INTAKE, "not_accept"): s.NOT_ACCEPTED,
        (s.INTAKE, "merge"): s.MERGED,
        (s.INTAKE, "transfer_police"): s.POLICE,
    }
    for key, new in expected.items():
        assert TRANSITIONS[key].new == new, key


def test_terminal_states_allow_nothing_but_archive() -> None:
    for state in (State.ANSWERED, State.CLOSED, State.NOT_ACCEPTED, State.MERGED, State.POLICE):
        assert allowed_actions(state) == ["archive"]
    assert allowed_actions(State.ARCHIVED) == []
    assert "escalate" in allowed_actions(State.HANDLING)
    assert set(OPEN_STATES).isdisjoint({State.CLOSED, State.ARCHIVED, State.ANSWERED})
    assert "survey" in ACTIONS and "escalate" in ACTIONS


@pytest.mark.parametrize(("state", "action"), sorted(TRANSITIONS), ids=str)
def test_roles_decide(state: State, action: str) -> None:
    rule = TRANSITIONS[(state, action)]
    for role in ("agent", "leader", "window", "supervisor", "department"):
        actor = Actor("x", frozenset({role}), "zjj" if role == "department" else None)
        if role in rule.roles:
            check(state, action, actor, reason="because")
        else:
            with pytest.raises(Forbidden):
                check(state, action, actor, reason="because")


def test_reason_required_where_the_table_says() -> None:
    with pytest.raises(Invalid) as info:
        check(State.HANDLING, "return", Actor("d", frozenset({"department"}), "zjj"), "  ")
    assert info.value.error_id == "reason-required"
    check(State.HANDLING, "reply", Actor("d", frozenset({"department"}), "zjj"), "")


def test_actor_from_console_user() -> None:
    from console.security import User

    user = User(7, "clerk", "Clerk", frozenset({"department:zjj"}))
    actor = Actor.from_user(user)
    assert actor.roles == {"department"} and actor.department_id == "zjj" and actor.id == "clerk"
    assert State.HANDLING.code == "S4" and State.HANDLING.label == "办理中"
