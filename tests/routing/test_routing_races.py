"""Reservations under races: the data structure never double-books an agent or a call."""

from __future__ import annotations

import random

import pytest
from routing_support import T0, agent, make_router, ready

from routing import AgentState, CallerInfo, Offer, Router

NOBODY = CallerInfo(caller="13800000000")


def waiting_ids(router: Router) -> list[str]:
    return [c["call_id"] for c in router.snapshot()["waiting"]]


def test_two_seats_freeing_at_once_take_different_calls() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    router.agent_login("a1", "seat-a1", T0)
    router.agent_login("a2", "seat-a2", T0)
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    first = router.agent_ready("a1", T0 + 2)
    second = router.agent_ready("a2", T0 + 2)
    assert first == [Offer("c1", "a1", "seat-a1", "skill", False)]
    assert second == []
    assert router.agent_state("a2") is AgentState.READY
    router.new_call("c2", "12345", NOBODY, T0 + 3)
    assert router.snapshot()["reserved"][-1]["agent_id"] == "a2"


def test_a_reserved_agent_is_not_offered_a_second_call() -> None:
    router = make_router([agent("a1", general=5)])
    ready(router, "a1")
    assert router.new_call("c1", "12345", NOBODY, T0 + 1).agent_id == "a1"
    assert router.new_call("c2", "12345", NOBODY, T0 + 1).agent_id is None
    assert router.agent_ready("a1", T0 + 2) == []  # still reserved: no second offer
    router.confirm("c1", "a1", T0 + 3)
    assert router.agent_ready("a1", T0 + 60) == [Offer("c2", "a1", "seat-a1", "skill", False)]


def test_caller_hangs_up_while_being_moved() -> None:
    router = make_router([agent("a1", general=5)])
    ready(router, "a1")
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    router.new_call("c2", "12345", NOBODY, T0 + 2)
    # c1 hung up while its seat rang: a1 is free again and takes c2 at once.
    assert router.call_gone("c1", T0 + 3) == [Offer("c2", "a1", "seat-a1", "skill", False)]
    # The CTI's failed move arrives late: harmless.
    assert router.release("c1", "a1", T0 + 4, agent_ok=True) == []
    with pytest.raises(ValueError, match="not reserved"):
        router.confirm("c1", "a1", T0 + 4)


def test_agent_goes_not_ready_while_reserved() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1")
    router.agent_login("a2", "seat-a2", T0)
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    assert router.agent_not_ready("a1", T0 + 2, "break") == []
    # The reservation stands (the seat may be ringing): a2 cannot take c1 meanwhile.
    assert router.agent_ready("a2", T0 + 3) == []
    offers = router.release("c1", "a1", T0 + 4, agent_ok=True)
    assert offers == [Offer("c1", "a2", "seat-a2", "skill", False)]
    assert router.agent_state("a1") is AgentState.NOT_READY


def test_not_ready_while_reserved_then_the_seat_answers() -> None:
    router = make_router([agent("a1", general=5)])
    ready(router, "a1")
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    router.agent_not_ready("a1", T0 + 2, "break")
    router.confirm("c1", "a1", T0 + 3)
    assert router.agent_state("a1") is AgentState.BUSY


def test_release_puts_the_call_back_in_its_original_place() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1")
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    router.new_call("c2", "12345", NOBODY, T0 + 2)
    router.new_call("c3", "12345", NOBODY, T0 + 3)
    assert waiting_ids(router) == ["c2", "c3"]
    assert router.release("c1", "a1", T0 + 10, agent_ok=False) == []
    assert waiting_ids(router) == ["c1", "c2", "c3"]
    assert router.snapshot()["waiting"][0]["arrived"] == T0 + 1
    assert router.agent_state("a1") is AgentState.NOT_READY
    router.agent_login("a2", "seat-a2", T0 + 11)
    assert router.agent_ready("a2", T0 + 11)[0].call_id == "c1"


def test_release_with_agent_ok_prefers_another_agent() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1", "a2")
    router.new_call("c1", "12345", NOBODY, T0 + 1)  # to a1, the longest idle
    offers = router.release("c1", "a1", T0 + 2, agent_ok=True)
    assert offers == [Offer("c1", "a2", "seat-a2", "skill", False)]
    assert router.agent_state("a1") is AgentState.READY


def test_logout_while_reserved_takes_effect_on_release() -> None:
    router = make_router([agent("a1", general=5)])
    ready(router, "a1")
    router.new_call("c1", "12345", NOBODY, T0 + 1)
    router.agent_logout("a1", T0 + 2)
    assert router.agent_state("a1") is AgentState.RESERVED
    router.release("c1", "a1", T0 + 3, agent_ok=True)
    assert router.agent_state("a1") is AgentState.LOGGED_OUT
    assert waiting_ids(router) == ["c1"]
    router.agent_login("a1", "seat-9", T0 + 4)  # the seat is free again too


def test_unreachable_seat_gets_no_offers_until_it_is_back() -> None:
    router = make_router([agent("a1", general=5)])
    ready(router, "a1")
    assert router.seat_unreachable("seat-a1", T0 + 1) == []
    assert router.new_call("c1", "12345", NOBODY, T0 + 2).agent_id is None
    assert router.seat_reachable("seat-a1", T0 + 3) == [
        Offer("c1", "a1", "seat-a1", "skill", False)
    ]


def test_illegal_operations_raise() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    with pytest.raises(ValueError, match="unknown agent"):
        router.agent_login("zz", "seat-1", T0)
    with pytest.raises(ValueError, match="not logged in"):
        router.agent_ready("a1", T0)
    router.agent_login("a1", "seat-1", T0)
    with pytest.raises(ValueError, match="already logged in"):
        router.agent_login("a1", "seat-2", T0)
    with pytest.raises(ValueError, match="taken"):
        router.agent_login("a2", "seat-1", T0)
    router.new_call("c1", "12345", NOBODY, T0)
    with pytest.raises(ValueError, match="already known"):
        router.new_call("c1", "12345", NOBODY, T0)
    with pytest.raises(ValueError, match="not reserved"):
        router.confirm("c1", "a1", T0)
    with pytest.raises(ValueError, match="not reserved"):
        router.release("c1", "a1", T0, agent_ok=True)
    (offer,) = router.agent_ready("a1", T0 + 1)
    with pytest.raises(ValueError, match="not reserved"):
        router.confirm(offer.call_id, "a2", T0 + 1)
    router.confirm(offer.call_id, "a1", T0 + 1)
    with pytest.raises(ValueError, match="not reserved"):
        router.confirm(offer.call_id, "a1", T0 + 1)


# --- random interleavings ----------------------------------------------------------------


def check_invariants(router: Router, reserved: dict[str, str]) -> None:
    snap = router.snapshot()
    agents = {a["agent_id"]: a for a in snap["agents"]}
    held = {r["call_id"]: r["agent_id"] for r in snap["reserved"]}
    assert held == reserved
    # One call per agent and one agent per call.
    assert len(set(held.values())) == len(held)
    for call_id, agent_id in held.items():
        assert agents[agent_id]["state"] == "reserved"
        assert agents[agent_id]["call_id"] == call_id
    for a in agents.values():
        assert (a["state"] == "reserved") == (a["call_id"] is not None)
    # Nobody waits on the floor while a ready agent of one of its skills is free.
    ready_skills = {
        skill
        for a in agents.values()
        if a["state"] == "ready" and a["reachable"]
        for skill in router.plan.agents[a["agent_id"]].skills
    }
    for call in snap["waiting"]:
        if call["state"] == "waiting":
            assert not ready_skills & set(call["skills"]), call
        # A targeted call waits only for agents who are coming back soon.
        for target in call["targets"]:
            a = agents[target]
            assert a["reachable"], call
            assert a["state"] in ("busy", "reserved") or a["reason"] == "wrapup", (call, a)


@pytest.mark.parametrize("seed", range(12))
def test_random_event_orders_never_double_book(seed: int) -> None:
    rng = random.Random(seed)
    skills = ["general", "consumer", "social"]
    agents = [
        agent(f"a{i}", **{s: rng.randint(1, 10) for s in rng.sample(skills, rng.randint(1, 2))})
        for i in range(8)
    ]
    router = make_router(
        agents,
        sticky_wait_s=5,
        overflow=[{"skill": "consumer", "after_s": 4, "to": ["general"]}],
        fairness=rng.choice(["longest_idle", "least_calls", "highest_skill"]),
    )
    reserved: dict[str, str] = {}
    live: set[str] = set()
    now = T0

    def take(offers: list[Offer]) -> None:
        for offer in offers:
            assert offer.call_id not in reserved
            assert offer.agent_id not in reserved.values()
            reserved[offer.call_id] = offer.agent_id

    for step in range(400):
        now += rng.random()
        op = rng.random()
        agent_id = f"a{rng.randrange(8)}"
        state = router.agent_state(agent_id)
        if op < 0.25:
            call_id = f"c{step}"
            info = CallerInfo(
                caller=str(step),
                open_ticket=rng.random() < 0.3,
                last_agent_id=agent_id,
                flagged=rng.random() < 0.1,
            )
            decision = router.new_call(call_id, rng.choice(["12345", "12315", "12333"]), info, now)
            live.add(call_id)
            if decision.agent_id is not None:
                take([Offer(call_id, decision.agent_id, decision.seat or "", "", False)])
        elif op < 0.40 and state is AgentState.LOGGED_OUT:
            router.agent_login(agent_id, f"seat-{agent_id}", now)
        elif op < 0.55 and state is not AgentState.LOGGED_OUT:
            take(router.agent_ready(agent_id, now))
        elif op < 0.60 and state is not AgentState.LOGGED_OUT:
            take(router.agent_not_ready(agent_id, now, rng.choice(["wrapup", "break"])))
        elif op < 0.63 and state is not AgentState.LOGGED_OUT:
            take(router.agent_logout(agent_id, now))
        elif op < 0.66:
            seat = f"seat-{agent_id}"
            take(router.seat_unreachable(seat, now) if rng.random() < 0.5 else [])
            take(router.seat_reachable(seat, now) if rng.random() < 0.7 else [])
        elif op < 0.72 and live:
            call_id = rng.choice(sorted(live))
            live.discard(call_id)
            reserved.pop(call_id, None)
            take(router.call_gone(call_id, now))
        elif op < 0.88 and reserved:
            call_id = rng.choice(sorted(reserved))
            holder = reserved.pop(call_id)
            if rng.random() < 0.6:
                router.confirm(call_id, holder, now)
                live.discard(call_id)
            else:
                take(router.release(call_id, holder, now, agent_ok=rng.random() < 0.5))
        else:
            take(router.tick(now))
        check_invariants(router, reserved)


def test_the_snapshot_lists_the_head_of_a_long_line_and_counts_all_of_it() -> None:
    router = make_router([agent("a1", general=5)])
    for i in range(50):
        router.new_call(f"c{i}", "12345", NOBODY, T0 + i)
    whole = router.snapshot()
    head = router.snapshot(limit=10)
    assert [c["call_id"] for c in head["waiting"]] == waiting_ids(router)[:10]
    assert head["waiting_total"] == whole["waiting_total"] == 50
    assert head["waiting_by_skill"] == whole["waiting_by_skill"]
    assert sum(head["waiting_by_skill"].values()) == 50
    assert router.snapshot(limit=500)["waiting"] == whole["waiting"]
