"""The ticket drafted from the call: description, category with its reason, location from
the site's places, repeats of open requests, and what the agents did with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.tickets.support import AGENT, Clock, open_ticket, ticket_in
from tickets import suggest
from tickets.models import Ticket
from tickets.service import TicketService

CATEGORIES = ["咨询", "求助", "投诉", "举报"]
KEYWORDS = {"求助": ["坏了", "路灯", "停水"], "投诉": ["噪音", "扰民"], "咨询": ["请问"]}
PLACES = ["吴兴区", "人民路", "人民公园", "爱山街道"]


def test_the_description_is_the_citizens_words_without_fillers_and_masked() -> None:
    said = [
        "嗯 那个 我 家 门口 的 路灯 坏 了",
        "就是说 好 几 天 了 我 的 电话 是 一三八 零零 一二 三四 五六",
        "啊",
    ]
    assert suggest.clean_description(said) == "我家门口的路灯坏了，好几天了我的电话是138****3456。"
    # Other scripts keep their spaces, and a filler letter inside a word stays.
    assert suggest.clean_description(["음 우리 집 앞 가로등 고장 났어요"]) == (
        "우리 집 앞 가로등 고장 났어요"
    )
    assert suggest.clean_description(["嗯", "那个"]) == ""


def test_the_category_is_the_one_whose_words_were_said_with_the_words() -> None:
    found = suggest.suggest_category("我 家 门口 的 路灯 坏了 晚上 太 黑", CATEGORIES, KEYWORDS)
    assert found is not None and found.value == "求助"
    assert set(found.reason) == {"路灯", "坏了"}
    # 投诉 said as a word counts for its own category, and more words win.
    found = suggest.suggest_category("我 要 投诉 工地 噪音 扰民", CATEGORIES, KEYWORDS)
    assert found is not None and (found.value, set(found.reason)) == (
        "投诉",
        {"投诉", "噪音", "扰民"},
    )
    # A keyword is a word, not any substring: 马路灯光 holds 路灯 but says no such thing.
    assert suggest.suggest_category("马路灯光 很 亮", ["求助"], {"求助": ["路灯"]}) is None
    assert suggest.suggest_category("今天 天气 不错", CATEGORIES, KEYWORDS) is None


def test_the_location_is_the_most_specific_place_named_with_its_number() -> None:
    found = suggest.suggest_location("就 在 吴兴区 人民路 12号 门口", PLACES)
    assert found is not None
    assert (found.value, found.reason) == ("吴兴区人民路12号", ("吴兴区", "人民路"))
    # 人民公园 is not 人民路; the longer name wins over a shorter one inside it.
    found = suggest.suggest_location("人民公园 里面 有人 钓鱼", [*PLACES, "人民"])
    assert found is not None and found.value == "人民公园"
    assert suggest.suggest_location("我 也 不 知道 在 哪", PLACES) is None


def test_repeats_are_the_callers_open_requests_and_the_same_place_this_week(
    service: TicketService, sessions: sessionmaker[Session], clock: Clock
) -> None:
    mine = open_ticket(service, caller="13700000001")
    closed_own = ticket_in(service, "closed", caller="13700000001")
    earlier = open_ticket(service, caller="13700000001")
    neighbour = open_ticket(service, caller="13900000002")
    service.update_fields(neighbour.id, AGENT, category="求助", location="吴兴区人民路12号")
    far = open_ticket(service, caller="13900000003")
    service.update_fields(far.id, AGENT, category="投诉", location="吴兴区人民路12号")
    with sessions() as session:
        found = suggest.find_repeats(
            session,
            ticket_id=mine.id,
            caller="13700000001",
            category="求助",
            location="人民路",
            now=clock(),
        )
    assert {(r.ticket_id, r.why) for r in found} == {
        (earlier.id, "caller"),
        (neighbour.id, "place"),
    }
    assert closed_own.id not in {r.ticket_id for r in found}
    # A week later the neighbour's request no longer counts as the same matter.
    clock.advance(days=8)
    with sessions() as session:
        found = suggest.find_repeats(
            session,
            ticket_id=mine.id,
            caller="",
            category="求助",
            location="人民路",
            now=clock(),
        )
    assert found == []


def test_suggest_puts_it_together(
    service: TicketService, sessions: sessionmaker[Session], clock: Clock
) -> None:
    earlier = open_ticket(service, caller="13700000009")
    draft = open_ticket(service, caller="13700000009")
    with sessions() as session:
        ticket = session.get(Ticket, draft.id)
        assert ticket is not None
        found = suggest.suggest(
            session,
            ticket,
            ["喂 你好", "人民路 的 路灯 坏了"],
            categories=CATEGORIES,
            keywords=KEYWORDS,
            places=PLACES,
            now=clock(),
        ).to_dict()
    assert found["description"]["value"] == "人民路的路灯坏了。"
    assert found["category"] == {"value": "求助", "reason": ["坏了", "路灯"]}
    assert found["location"] == {"value": "人民路", "reason": ["人民路"]}
    assert [r["ticket_id"] for r in found["repeats"]] == [earlier.id]


def test_outcomes_are_recorded_once_per_field_and_measured(
    service: TicketService, sessions: sessionmaker[Session], clock: Clock
) -> None:
    a, b = open_ticket(service), open_ticket(service)

    def record(ticket_id: str, field: str, outcome: str, final: str = "x") -> None:
        with sessions() as session:
            suggest.record(
                session,
                ticket_id,
                field,
                suggested="x",
                final=final,
                outcome=outcome,
                actor="li",
                now=clock(),
            )
            session.commit()

    record(a.id, "category", "accepted")
    record(a.id, "category", "edited", "y")  # accepted, then changed before saving
    record(a.id, "location", "ignored", "")
    record(b.id, "category", "accepted")
    with sessions() as session:
        q = suggest.quality(session, clock() - timedelta(days=1), clock() + timedelta(days=1))
    assert q["category"] == {"accepted": 1, "edited": 1, "ignored": 0, "taken_rate": 1.0}
    assert q["location"] == {"accepted": 0, "edited": 0, "ignored": 1, "taken_rate": 0.0}
    with sessions() as session, pytest.raises(ValueError, match="outcome must be"):
        suggest.record(
            session,
            a.id,
            "category",
            suggested="",
            final="",
            outcome="maybe",
            actor="",
            now=clock(),
        )
