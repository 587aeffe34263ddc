"""The service against a real database: every transition, every illegal one, the audit trail,
intake idempotency, 并单, field validation and what routing asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cti.errors import Conflict, Forbidden, Invalid, NotFound
from cti.events import Alarm, TicketChanged, TicketOpened
from tests.tickets.support import (
    AGENT,
    CGJ,
    LEADER,
    PATHS,
    SUPERVISOR,
    WINDOW,
    ZJJ,
    Clock,
    RecordingBus,
    do,
    open_ticket,
    ticket_in,
)
from tickets.notify import NullNotifier
from tickets.service import TicketService
from tickets.statemachine import TRANSITIONS, IllegalTransition, State

LEGAL = sorted(TRANSITIONS)


@pytest.mark.parametrize(("state", "action"), LEGAL, ids=str)
def test_transition(service: TicketService, bus: RecordingBus, state: State, action: str) -> None:
    ticket = ticket_in(service, state.value)
    before = len(service.get(ticket.id).events)
    do(service, ticket.id, action)
    after = service.get(ticket.id)
    expected = TRANSITIONS[(state, action)].new
    assert after.state == expected
    new_events = after.events[before:]
    record = [e for e in new_events if e.action == action][-1]
    assert (record.old_state, record.new_state) == (state.value, expected.value)
    assert record.actor  # who
    changed = [e for e in bus.events if isinstance(e, TicketChanged) and e.ticket_id == ticket.id]
    assert (changed[-1].old, changed[-1].new) == (state.value, expected.value)


@pytest.mark.parametrize("state", list(PATHS), ids=str)
def test_illegal_transitions_raise_and_change_nothing(service: TicketService, state: str) -> None:
    ticket = ticket_in(service, state)
    events = len(ticket.events)
    actions = sorted({a for _, a in TRANSITIONS} - {a for s, a in TRANSITIONS if s == state})
    for action in actions:
        with pytest.raises(IllegalTransition) as info:
            do(service, ticket.id, action)
        assert info.value.error_id == "illegal-transition"
    after = service.get(ticket.id)
    assert after.state.value == state and len(after.events) == events


def test_full_lifecycle_audit_trail(service: TicketService, clock: Clock) -> None:
    ticket = open_ticket(service, topic="投诉")
    service.transition(ticket.id, "dispatch", AGENT, department="zjj", co_handlers=["cgj"])
    clock.advance(minutes=3)
    service.transition(ticket.id, "sign_off", ZJJ)
    service.transition(ticket.id, "contact_citizen", ZJJ)
    service.transition(ticket.id, "reply", ZJJ, text="已处理")
    service.transition(ticket.id, "reject_reply", SUPERVISOR, "答复不完整")
    service.transition(ticket.id, "reply", ZJJ, text="已处理并回访")
    service.transition(ticket.id, "approve_reply", SUPERVISOR)
    service.transition(ticket.id, "survey", AGENT, rating="basically_satisfied")
    view = service.transition(ticket.id, "archive", SUPERVISOR)
    trail = [(e.action, e.old_state, e.new_state, e.actor) for e in view.events]
    assert trail == [
        ("open", "", "intake", "a1001"),
        ("dispatch", "intake", "dispatched", "a1001"),
        ("sign_off", "dispatched", "handling", "zjj-clerk"),
        ("contact_citizen", "handling", "handling", "zjj-clerk"),
        ("reply", "handling", "reply_review", "zjj-clerk"),
        ("reject_reply", "reply_review", "handling", "sup1"),
        ("reply", "handling", "reply_review", "zjj-clerk"),
        ("approve_reply", "reply_review", "survey", "sup1"),
        ("survey_satisfied", "survey", "closed", "a1001"),
        ("archive", "closed", "archived", "sup1"),
    ]
    assert view.events[5].reason == "答复不完整"
    assert view.events[2].at == clock.now
    assert view.surveys[0]["rating"] == "basically_satisfied"
    assert view.co_handlers == ()  # assignments ended at close
    assert [(a.department_id, a.role) for a in view.assignments] == [("zjj", "lead"), ("cgj", "co")]


def test_open_for_call_is_idempotent(service: TicketService, bus: RecordingBus) -> None:
    first = open_ticket(service, call_id="linked-1")
    again = service.open_for_call(
        "20260915999999", call_id="linked-1", node="pbx1", caller="13812345678"
    )
    assert again.id == first.id and len(again.calls) == 1
    assert sum(isinstance(e, TicketOpened) for e in bus.events) == 1
    # The same call id on another Asterisk node is another call.
    other = service.open_for_call("20260915999998", call_id="linked-1", node="pbx2")
    assert other.id == "20260915999998"


def test_open_with_known_ticket_id_attaches_the_call(service: TicketService) -> None:
    first = open_ticket(service, call_id="c-a")
    view = service.open_for_call(first.id, call_id="c-b", node="pbx1", caller="13812345678")
    assert [c.call_id for c in view.calls] == ["c-a", "c-b"]
    assert [c.kind for c in view.calls] == ["origin", "attached"]
    again = service.attach_call(first.id, "c-b", node="pbx1")
    assert len(again.calls) == 2
    with pytest.raises(Conflict):
        service.attach_call(open_ticket(service).id, "c-b", node="pbx1")


def test_merge_moves_calls_and_is_audited(service: TicketService) -> None:
    target = ticket_in(service, "dispatched")
    dup = open_ticket(service, call_id="dup-call")
    view = service.merge(dup.id, target.id, AGENT, "同一诉求")
    assert view.state == State.MERGED and view.merged_into == target.id and view.calls == ()
    target_view = service.get(target.id)
    assert "dup-call" in [c.call_id for c in target_view.calls]
    assert target_view.events[-1].action == "merged_in"
    # A replay of the merged call finds the ticket that now holds it.
    assert service.open_for_call("x", call_id="dup-call", node="pbx1").id == target.id
    closed = ticket_in(service, "closed")
    with pytest.raises(Conflict):
        service.merge(open_ticket(service).id, closed.id, AGENT)
    with pytest.raises(Invalid):
        service.merge(target.id, target.id, AGENT)


def test_update_fields_validates_phones(service: TicketService) -> None:
    ticket = open_ticket(service)
    view = service.update_fields(
        ticket.id,
        AGENT,
        citizen_name="李四",
        occurred="昨晚十点",
        location="谯城区薛阁街道花戏楼社区",
        description="路灯不亮",
        contact_phone="+86 139 0000 1111",
        category="求助",
    )
    assert view.contact_phone == "13900001111" and view.category == "求助"
    assert view.events[-1].action == "update"
    assert view.events[-1].data["category"] == ["咨询", "求助"]
    assert service.update_fields(ticket.id, AGENT, contact_phone="0558 5123456").contact_phone == (
        "0558-5123456"
    )
    for bad in ("12345", "5123456", "2345678901", "abc"):
        with pytest.raises(Invalid) as info:
            service.update_fields(ticket.id, AGENT, contact_phone=bad)
        assert info.value.error_id == "invalid-phone" and info.value.details["field"] == (
            "contact_phone"
        )
    with pytest.raises(Invalid):
        service.update_fields(ticket.id, AGENT, state="closed")
    with pytest.raises(Forbidden):
        service.update_fields(ticket.id, ZJJ, description="x")


def test_department_acts_only_on_its_own_tickets(service: TicketService) -> None:
    ticket = ticket_in(service, "dispatched")
    with pytest.raises(Forbidden) as info:
        service.transition(ticket.id, "sign_off", CGJ)
    assert info.value.error_id == "not-your-ticket"
    with pytest.raises(Forbidden):
        service.transition(ticket.id, "sign_off", AGENT)


def test_return_needs_legal_basis_and_granted_return_redispatches(
    service: TicketService, notifier: NullNotifier
) -> None:
    ticket = ticket_in(service, "handling")
    with pytest.raises(Invalid) as info:
        service.transition(ticket.id, "return", ZJJ, "不是我们的")
    assert info.value.error_id == "legal-basis-required"
    service.transition(ticket.id, "return", ZJJ, "不是我们的", legal_basis="三定方案")
    with pytest.raises(Invalid):
        service.transition(ticket.id, "grant_return", SUPERVISOR, department="zjj")
    view = service.transition(ticket.id, "grant_return", SUPERVISOR, department="cgj")
    assert view.lead_department_id == "cgj" and view.return_count == 1
    assert [(a.department_id, a.active, a.end_reason) for a in view.assignments] == [
        ("zjj", False, "returned"),
        ("cgj", True, ""),
    ]
    assert notifier.sent[-1][:2] == ("department_dispatch", "13900000002")
    service.transition(ticket.id, "sign_off", CGJ)  # the new unit signs


def test_extension_replaces_due_and_keeps_the_old(service: TicketService) -> None:
    ticket = ticket_in(service, "handling")
    old_due = ticket.due_at
    assert old_due is not None
    with pytest.raises(Invalid):
        service.transition(ticket.id, "request_extension", ZJJ, "需要时间", until="2026-09-01")
    service.transition(ticket.id, "request_extension", ZJJ, "需要时间", until="2026-10-20T18:00:00")
    view = service.transition(ticket.id, "approve_extension", SUPERVISOR)
    assert view.due_at == datetime(2026, 10, 20, 10, 0, tzinfo=UTC)  # 18:00 Shanghai
    assert view.original_due_at == old_due
    assert view.extensions[0]["old_due_at"] == old_due and view.extensions[0]["approved"]
    assert view.events[-1].data["old_due"] == old_due.isoformat()
    # A refused extension leaves the due date alone.
    service.transition(ticket.id, "request_extension", ZJJ, "再延", until="2026-11-30T18:00")
    view = service.transition(ticket.id, "reject_extension", SUPERVISOR, "不同意")
    assert view.due_at == datetime(2026, 10, 20, 10, 0, tzinfo=UTC)
    assert view.extensions[1]["approved"] is False


def test_unsatisfied_twice_escalates(service: TicketService, bus: RecordingBus) -> None:
    ticket = ticket_in(service, "rehandling")
    assert ticket.rehandling_count == 1 and ticket.supervision_level == 0
    for action in ("sign_off", "reply", "approve_reply", "survey_unsatisfied"):
        do(service, ticket.id, action)
    view = service.get(ticket.id)
    assert view.state == State.REHANDLING and view.rehandling_count == 2
    assert view.supervision_level == 1 and view.supervision_reason == "unsatisfied"
    assert any(isinstance(e, Alarm) and e.kind == "ticket_unsatisfied" for e in bus.events)


def test_escalate_overlay(service: TicketService, bus: RecordingBus) -> None:
    ticket = ticket_in(service, "handling")
    view = service.transition(ticket.id, "escalate", LEADER, "领导批示", kind="leader_instruction")
    assert view.state == State.HANDLING and view.supervision_level == 1
    view = service.transition(ticket.id, "escalate", SUPERVISOR, "媒体关注", kind="media", level=3)
    assert view.supervision_level == 3 and view.events[-1].data["old_level"] == 1
    with pytest.raises(Forbidden):
        service.transition(ticket.id, "escalate", AGENT, kind="other")
    with pytest.raises(Invalid):
        service.transition(ticket.id, "escalate", SUPERVISOR, level=9)
    closed = ticket_in(service, "closed")
    with pytest.raises(IllegalTransition):
        service.transition(closed.id, "escalate", SUPERVISOR)


def test_unknown_data_and_bad_rating_are_invalid(service: TicketService) -> None:
    ticket = ticket_in(service, "survey")
    with pytest.raises(Invalid) as info:
        service.transition(ticket.id, "survey", AGENT, rating="meh")
    assert info.value.error_id == "invalid-rating"
    with pytest.raises(Invalid):
        service.transition(ticket.id, "survey", AGENT, rating="satisfied", stars=5)
    with pytest.raises(NotFound):
        service.transition("nope", "answer", AGENT)
    with pytest.raises(Invalid):
        service.transition(open_ticket(service).id, "dispatch", AGENT, department="nobody")
    with pytest.raises(Invalid) as info:
        service.transition(
            open_ticket(service).id, "dispatch", AGENT, department="zjj", co_handlers=["gaj"]
        )
    assert info.value.error_id == "no-co-handling"


def test_citizen_and_department_messages(service: TicketService, notifier: NullNotifier) -> None:
    ticket = open_ticket(service)
    service.transition(ticket.id, "dispatch", AGENT, department="zjj")
    for action in ("sign_off", "reply", "approve_reply"):
        do(service, ticket.id, action)
    purposes = [(p, to) for p, to, tid, _ in notifier.sent if tid == ticket.id]
    assert purposes == [
        ("citizen_opened", "13812345678"),
        ("department_dispatch", "13900000001"),
        ("citizen_reply", "13812345678"),
    ]
    assert notifier.sent[-1][3]["reply"] == "已派人修复路灯"


def test_caller_summary_and_history(service: TicketService, clock: Clock, sessions: object) -> None:
    assert service.caller_summary("13600000000") == (False, None, False)
    answered = ticket_in(service, "answered", caller="13600000000")
    assert service.caller_summary("13600000000") == (False, "a1001", False)
    ticket_in(service, "dispatched", caller="13600000000")
    assert service.caller_summary("13600000000") == (True, "a1001", False)
    history = service.history_for_caller("13600000000")
    assert [t.id for t in history][-1] == answered.id and len(history) == 2
    assert service.history_for_caller("13600000000", limit=1)[0].id != answered.id


def test_repeat_caller_flag(
    sessions: object, bus: RecordingBus, clock: Clock, notifier: NullNotifier
) -> None:
    from tests.tickets.support import DEPARTMENTS, SETTINGS

    settings = SETTINGS.model_copy(update={"repeat_caller_threshold": 3})
    service = TicketService(sessions, bus, settings, DEPARTMENTS, notifier, None, clock)  # type: ignore[arg-type]
    for _ in range(2):
        open_ticket(service, caller="13500000000", topic="噪音")
    open_ticket(service, caller="13500000000", topic="路灯")
    assert service.caller_summary("13500000000")[2] is False
    open_ticket(service, caller="13500000000", topic="噪音")
    assert service.caller_summary("13500000000")[2] is True
    clock.advance(days=400)  # a year later the old calls no longer count
    assert service.caller_summary("13500000000")[2] is False


def test_window_outcome_and_transcript(service: TicketService) -> None:
    ticket = open_ticket(service)
    view = service.add_window_outcome(ticket.id, "w12", "可在政务中心3号窗口办理", WINDOW)
    assert view.window_outcomes[0]["text"] == "可在政务中心3号窗口办理"
    with pytest.raises(Forbidden):
        service.add_window_outcome(ticket.id, "w12", "x", ZJJ)
    service.set_transcript(ticket.id, "你好 路灯坏了", [{"start": 0.0, "end": 1.2, "text": "你好"}])
    view = service.get(ticket.id)
    assert view.transcript == "你好 路灯坏了"
    assert view.transcript_segments["segments"][0]["end"] == 1.2


def test_clock_anchor_sign_off(service: TicketService, clock: Clock) -> None:
    ticket = open_ticket(service, topic="签收计时")
    view = service.transition(ticket.id, "dispatch", AGENT, department="zjj")
    assert view.due_at is None and view.response_due_at == clock.now + timedelta(minutes=30)
    clock.advance(hours=1)
    view = service.transition(ticket.id, "sign_off", ZJJ)
    # Tuesday 11:00 + 2 working days = Thursday 11:00 (Shanghai)
    assert view.due_at == datetime(2026, 9, 17, 3, 0, tzinfo=UTC)
    assert view.signed_at == clock.now


def test_additions_without_a_state_change_are_published(
    service: TicketService, bus: RecordingBus
) -> None:
    from cti.events import TicketUpdated

    view = open_ticket(service)
    service.add_window_outcome(view.id, "shebao", "可线上补缴", AGENT)
    service.add_attachment(
        view.id, AGENT, name="a.png", path="/x/a.png", content_type="image/png", size=3
    )
    updates = [(e.ticket_id, e.what, e.actor) for e in bus.events if isinstance(e, TicketUpdated)]
    who = AGENT.username
    assert updates == [(view.id, "window_outcome", who), (view.id, "attachment", who)]
