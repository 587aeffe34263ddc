"""Each routing rule on its own: DID, priority, sticky agent, leaders, overflow, fairness."""

from __future__ import annotations

from routing_support import T0, agent, make_router, ready, shift

from routing import CallerInfo, Offer, Priority, Router

NOBODY = CallerInfo(caller="13800000000")


def caller(number: str = "13800000000", **flags: object) -> CallerInfo:
    return CallerInfo(caller=number, **flags)


# --- dialled number -> topic and skill --------------------------------------------------


def test_dialled_number_chooses_topic_and_skill() -> None:
    router = make_router([agent("a1", social=5), agent("a2", general=5)])
    ready(router, "a1", "a2")
    decision = router.new_call("c1", "12333", NOBODY, T0 + 1)
    assert (decision.topic, decision.skill) == ("social", "social")
    assert (decision.agent_id, decision.seat, decision.reason) == ("a1", "seat-a1", "skill")
    assert not decision.hold and not decision.leader


def test_unknown_number_goes_to_the_default_skill() -> None:
    router = make_router([agent("a1", hotline=5)], default_skill="hotline")
    ready(router, "a1")
    decision = router.new_call("c1", "0898-1234", NOBODY, T0 + 1)
    assert (decision.topic, decision.skill, decision.agent_id) == ("hotline", "hotline", "a1")


def test_no_agent_ready_holds_the_call_in_line() -> None:
    router = make_router([agent("a1", general=5)])
    decision = router.new_call("c1", "12345", NOBODY, T0)
    assert decision.agent_id is None and decision.hold and decision.reason == "queued"
    router.agent_login("a1", "seat-a1", T0 + 1)
    assert router.agent_ready("a1", T0 + 2) == [Offer("c1", "a1", "seat-a1", "skill", False)]


def test_without_hold_the_call_is_left_to_the_plain_queue() -> None:
    router = make_router([agent("a1", general=5)], hold_when_busy=False)
    decision = router.new_call("c1", "12345", NOBODY, T0)
    assert decision.agent_id is None and not decision.hold and decision.reason == "queued"
    router.agent_login("a1", "seat-a1", T0 + 1)
    assert router.agent_ready("a1", T0 + 2) == []  # the router does not hold it


# --- priority ---------------------------------------------------------------------------


def test_priority_classes() -> None:
    router = make_router([], enterprise_callers=["0898-66"], flagged_callers=["139"])
    plan = router.plan
    assert plan.priority(caller()) is Priority.NORMAL
    assert plan.priority(caller(open_ticket=True)) is Priority.OPEN_TICKET
    assert plan.priority(caller(enterprise=True)) is Priority.ENTERPRISE
    assert plan.priority(caller("0898-66")) is Priority.ENTERPRISE
    assert plan.priority(caller(flagged=True, enterprise=True)) is Priority.FLAGGED
    assert plan.priority(caller("139", open_ticket=True)) is Priority.FLAGGED


def test_priority_orders_the_wait() -> None:
    router = make_router([agent("a1", general=5)])
    router.new_call("normal", "12345", caller(), T0)
    router.new_call("ticket", "12345", caller(open_ticket=True), T0 + 1)
    router.new_call("firm", "12345", caller(enterprise=True), T0 + 2)
    router.new_call("flag", "12345", caller(flagged=True), T0 + 3)
    router.agent_login("a1", "seat-a1", T0 + 4)
    served = []
    for i in range(4):
        (offer,) = router.agent_ready("a1", T0 + 5 + i)
        router.confirm(offer.call_id, "a1", T0 + 5 + i)
        served.append(offer.call_id)
    assert served == ["flag", "firm", "ticket", "normal"]


def test_priority_never_starves_a_normal_call() -> None:
    """A stream of flagged calls, one a second, cannot hold back a normal call for ever: the
    normal call is served before any flagged call that arrived more than 3 x 15 s after it."""
    router = make_router([agent("a1", general=5)], priority_aging_s=15)
    router.new_call("normal", "12345", caller(), T0)
    for i in range(1, 120):
        router.new_call(f"flag{i}", "12345", caller(flagged=True), T0 + i)
    router.agent_login("a1", "seat-a1", T0 + 120)
    served = []
    for i in range(120):
        (offer,) = router.agent_ready("a1", T0 + 121 + i)
        router.confirm(offer.call_id, "a1", T0 + 121 + i)
        served.append(offer.call_id)
    # flag45 arrived exactly 45 s later and ties: the earlier arrival goes first.
    assert served[: served.index("normal")] == [f"flag{i}" for i in range(1, 45)]


def test_zero_aging_is_first_come_first_served() -> None:
    router = make_router([agent("a1", general=5)], priority_aging_s=0)
    router.new_call("normal", "12345", caller(), T0)
    router.new_call("flag", "12345", caller(flagged=True), T0 + 1)
    router.agent_login("a1", "seat-a1", T0 + 2)
    assert [o.call_id for o in router.agent_ready("a1", T0 + 2)] == ["normal"]


# --- sticky agent -----------------------------------------------------------------------

TICKET = caller(open_ticket=True, last_agent_id="a2")


def test_sticky_agent_ready_gets_the_call_before_longer_idle_agents() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1", "a2")
    decision = router.new_call("c1", "12345", TICKET, T0 + 10)
    assert (decision.agent_id, decision.reason) == ("a2", "sticky")


def test_sticky_call_waits_for_the_busy_agent_within_the_wait() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)], sticky_wait_s=20)
    ready(router, "a1", "a2")
    router.agent_busy("a2", T0 + 1)
    decision = router.new_call("c1", "12345", TICKET, T0 + 2)
    assert decision.hold and decision.reason == "sticky_wait" and decision.agent_id is None
    assert router.tick(T0 + 10) == []  # a1 is ready but the call waits for a2
    assert router.agent_ready("a2", T0 + 15) == [Offer("c1", "a2", "seat-a2", "sticky", False)]


def test_sticky_wait_runs_out_and_the_floor_takes_the_call() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)], sticky_wait_s=20)
    ready(router, "a1", "a2")
    router.agent_busy("a2", T0 + 1)
    router.new_call("c1", "12345", TICKET, T0 + 2)
    assert router.next_due() == T0 + 22
    assert router.tick(T0 + 21.9) == []
    assert router.tick(T0 + 22) == [Offer("c1", "a1", "seat-a1", "skill", False)]


def test_sticky_agent_in_wrapup_is_waited_for_but_not_one_on_a_break() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1", "a2")
    router.agent_not_ready("a2", T0 + 1, "wrapup")
    assert router.new_call("c1", "12345", TICKET, T0 + 2).reason == "sticky_wait"
    router.agent_not_ready("a2", T0 + 3, "lunch")  # the wait is pointless now
    assert router.snapshot()["reserved"] == [{"call_id": "c1", "agent_id": "a1", "arrived": T0 + 2}]


def test_sticky_agent_logged_out_means_no_wait() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1")
    decision = router.new_call("c1", "12345", TICKET, T0 + 2)
    assert (decision.agent_id, decision.reason) == ("a1", "skill")


def test_sticky_applies_only_with_an_open_ticket() -> None:
    router = make_router([agent("a1", general=5), agent("a2", general=5)])
    ready(router, "a1", "a2")
    decision = router.new_call("c1", "12345", caller(last_agent_id="a2"), T0 + 2)
    assert decision.agent_id == "a1"


# --- leader shifts ----------------------------------------------------------------------


def leader_router(**routing: object) -> Router:
    return make_router(
        [agent("a1", general=5, social=5), agent("mayor", leader=True)],
        [shift("mayor", 9, 11, "social")],
        **routing,
    )


NINE = T0 + 3600  # 09:00 China time


def test_leader_on_duty_gets_calls_of_their_topics_first() -> None:
    router = leader_router()
    ready(router, "a1", "mayor", now=NINE)
    decision = router.new_call("c1", "12333", NOBODY, NINE + 5)
    assert (decision.agent_id, decision.seat, decision.reason) == ("mayor", "seat-mayor", "leader")
    assert decision.leader
    other = router.new_call("c2", "12345", NOBODY, NINE + 6)
    assert (other.agent_id, other.leader) == ("a1", False)


def test_leader_busy_the_call_waits_then_overflows_to_the_floor() -> None:
    router = leader_router(leader_wait_s=15)
    ready(router, "a1", "mayor", now=NINE)
    router.agent_busy("mayor", NINE + 1)
    decision = router.new_call("c1", "12333", NOBODY, NINE + 5)
    assert decision.reason == "leader_wait" and decision.leader and decision.hold
    assert router.tick(NINE + 20) == [Offer("c1", "a1", "seat-a1", "skill", False)]


def test_leader_coming_back_within_the_wait_gets_the_call() -> None:
    router = leader_router(leader_wait_s=15)
    ready(router, "a1", "mayor", now=NINE)
    router.agent_busy("mayor", NINE + 1)
    router.new_call("c1", "12333", NOBODY, NINE + 5)
    offers = router.agent_ready("mayor", NINE + 10)
    assert offers == [Offer("c1", "mayor", "seat-mayor", "leader", True)]


def test_outside_the_shift_the_floor_takes_the_topic() -> None:
    router = leader_router()
    ready(router, "a1", "mayor", now=T0)
    decision = router.new_call("c1", "12333", NOBODY, T0 + 5)
    assert (decision.agent_id, decision.leader) == ("a1", False)


def test_leader_not_logged_in_means_no_wait() -> None:
    router = leader_router()
    decision = router.new_call("c1", "12333", NOBODY, NINE + 5)
    assert decision.reason == "queued" and not decision.leader


def test_shift_start_hands_waiting_topic_calls_to_the_ready_leader() -> None:
    router = leader_router()
    ready(router, "mayor", now=T0)
    router.new_call("c1", "12333", NOBODY, NINE - 30)
    assert router.next_due() == NINE
    assert router.tick(NINE) == [Offer("c1", "mayor", "seat-mayor", "leader", True)]


# --- overflow ---------------------------------------------------------------------------

OVERFLOW = [
    {"skill": "consumer", "after_s": 30, "to": ["general"]},
    {"skill": "consumer", "after_s": 60, "to": ["social"]},
]


def test_overflow_opens_other_groups_as_the_wait_grows() -> None:
    router = make_router([agent("g", general=5), agent("s", social=5)], overflow=OVERFLOW)
    ready(router, "g", "s")
    decision = router.new_call("c1", "12315", NOBODY, T0)
    assert decision.reason == "queued"
    assert router.tick(T0 + 29) == []
    assert router.tick(T0 + 30) == [Offer("c1", "g", "seat-g", "overflow", False)]


def test_overflow_stages_follow_their_thresholds() -> None:
    router = make_router([agent("s", social=5)], overflow=OVERFLOW)
    ready(router, "s")
    router.new_call("c1", "12315", NOBODY, T0)
    assert router.tick(T0 + 30) == []  # general has nobody ready
    assert router.snapshot()["waiting"][0]["skills"] == ["consumer", "general"]
    assert router.tick(T0 + 60) == [Offer("c1", "s", "seat-s", "overflow", False)]


def test_agent_of_another_group_takes_the_call_only_after_the_threshold() -> None:
    router = make_router([agent("g", general=5)], overflow=OVERFLOW)
    router.agent_login("g", "seat-g", T0)
    router.new_call("c1", "12315", NOBODY, T0)
    router.tick(T0 + 30)  # overflow opens while g is not ready
    assert router.agent_ready("g", T0 + 31) == [Offer("c1", "g", "seat-g", "overflow", False)]
    router.confirm("c1", "g", T0 + 32)
    router.agent_ready("g", T0 + 40)
    router.new_call("c2", "12315", NOBODY, T0 + 41)
    router.agent_busy("g", T0 + 42)
    assert router.agent_ready("g", T0 + 50) == []  # c2 has waited 9 s only


def test_own_group_is_preferred_to_overflow_groups() -> None:
    router = make_router([agent("g", general=5), agent("c", consumer=5)], overflow=OVERFLOW)
    ready(router, "g")
    router.new_call("c1", "12315", NOBODY, T0)
    router.agent_login("c", "seat-c", T0 + 1)
    assert router.agent_ready("c", T0 + 2)[0].reason == "skill"


# --- fairness among equal agents ----------------------------------------------------------


def test_longest_idle_agent_is_chosen_by_default() -> None:
    router = make_router([agent(f"a{i}", general=5) for i in range(3)])
    ready(router, "a1", "a0", "a2")
    assert router.new_call("c1", "12345", NOBODY, T0 + 1).agent_id == "a1"
    assert router.new_call("c2", "12345", NOBODY, T0 + 1).agent_id == "a0"


def two_agents_a0_idle_longer_with_one_call(fairness: str) -> Router:
    router = make_router([agent(f"a{i}", general=5) for i in range(2)], fairness=fairness)
    ready(router, "a0", "a1")
    assert router.new_call("c1", "12345", NOBODY, T0 + 1).agent_id == "a0"
    router.confirm("c1", "a0", T0 + 1)
    router.agent_ready("a0", T0 + 2)
    router.agent_busy("a1", T0 + 3)  # an outbound callback: no call counted
    router.agent_ready("a1", T0 + 4)
    return router


def test_least_calls_fairness() -> None:
    router = two_agents_a0_idle_longer_with_one_call("least_calls")
    assert router.new_call("c2", "12345", NOBODY, T0 + 5).agent_id == "a1"
    router = two_agents_a0_idle_longer_with_one_call("longest_idle")
    assert router.new_call("c2", "12345", NOBODY, T0 + 5).agent_id == "a0"


def test_highest_skill_fairness() -> None:
    router = make_router(
        [agent("low", general=2), agent("high", general=9), agent("mid", general=5)],
        fairness="highest_skill",
    )
    ready(router, "low", "high", "mid")
    assert router.new_call("c1", "12345", NOBODY, T0 + 1).agent_id == "high"
    assert router.new_call("c2", "12345", NOBODY, T0 + 1).agent_id == "mid"
