"""The desk's help through the console's routes: the caller line of the screen pop, the
ticket drafted from the citizen's words, and what the agent did with each suggestion."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cti.app import Hotline
from cti.config import Settings, default_data
from recordings import models as rec
from tests.console.conftest import TestClient, console_settings, login
from tickets.statemachine import Actor

CALLER = "13700001111"
AGENT = Actor("li", frozenset({"agent"}))


@pytest.fixture
def settings(any_db_url: str, tmp_path: Path) -> Settings:
    site = default_data()["site"] | {"places": ["吴兴区", "人民路", "爱山街道"]}
    return console_settings(any_db_url, tmp_path, site=site)


def open_call_ticket(hotline: Hotline, n: int, caller: str = CALLER) -> str:
    view = hotline.tickets.open_for_call(
        f"2026091500{n:04d}",
        call_id=f"call-{n}",
        node="pbx1",
        caller=caller,
        agent_id="li",
        answered_at=datetime.now(UTC),
    )
    return view.id


def heard(hotline: Hotline, ticket_id: str, *texts: str) -> None:
    """The stored transcript of the ticket's call: the citizen said ``texts``."""
    with hotline.sessions() as s:
        recording = rec.Recording(
            call_id=f"rec-{ticket_id}",
            ticket_id=ticket_id,
            path=f"/rec/{ticket_id}.wav",
            started_at=datetime.now(UTC),
            ended_at=datetime.now(UTC),
            status=rec.REGISTERED,
        )
        s.add(recording)
        s.flush()
        for seq, text in enumerate(texts):
            s.add(
                rec.TranscriptSegment(
                    recording_id=recording.id,
                    ticket_id=ticket_id,
                    seq=seq,
                    start=seq * 3.0,
                    end=seq * 3.0 + 2.5,
                    speaker="citizen",
                    text=text,
                    text_masked=text,
                    conf=0.9,
                )
            )
        s.commit()


def test_the_screen_pop_names_the_callers_open_requests_and_last_contact(
    hotline: Hotline, client: TestClient
) -> None:
    login(client, "li")
    r = client.get(f"/api/callers/{CALLER}/summary")
    assert r.status_code == 200
    assert r.json() | {"caller": CALLER} == {
        "caller": CALLER,
        "has_open": False,
        "open": [],
        "last_contact": None,
        "last_agent": None,
        "repeat_caller": False,
        "flag": None,
    }
    first = open_call_ticket(hotline, 1)
    hotline.tickets.transition(first, "dispatch", AGENT, department="rsj")
    second = open_call_ticket(hotline, 2)
    data = client.get(f"/api/callers/{CALLER}/summary").json()
    assert data["has_open"] is True and data["last_agent"] == "li"
    assert {o["id"] for o in data["open"]} == {first, second}
    assert data["last_contact"] is not None
    login(client, "clerk")
    assert client.get(f"/api/callers/{CALLER}/summary").status_code == 403


def test_the_screen_pop_tells_the_agent_of_a_supervisors_flag(client: TestClient) -> None:
    login(client, "boss")
    r = client.put(f"/api/caller-flags/{CALLER}", json={"kind": "abusive", "reason": "辱骂坐席"})
    assert r.status_code == 200, r.text
    login(client, "li")
    flag = client.get(f"/api/callers/{CALLER}/summary").json()["flag"]
    assert flag == {"kind": "abusive", "note": "辱骂坐席"}
    login(client, "boss")
    r = client.post(f"/api/caller-flags/{CALLER}/clear", json={"reason": "误标"})
    assert r.status_code == 204, r.text
    login(client, "li")
    assert client.get(f"/api/callers/{CALLER}/summary").json()["flag"] is None


def test_the_draft_comes_from_the_citizens_words_and_outcomes_are_recorded(
    hotline: Hotline, client: TestClient
) -> None:
    login(client, "li")
    earlier = open_call_ticket(hotline, 3)
    ticket = open_call_ticket(hotline, 4)
    heard(hotline, ticket, "喂 你好", "嗯 吴兴区 人民路 12号 的 路灯 坏了 好 几 天 了")
    r = client.get(f"/api/tickets/{ticket}/suggestions")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["description"]["value"] == "吴兴区人民路12号的路灯坏了好几天了。"
    assert data["category"] == {"value": "求助", "reason": ["坏了"]}
    assert data["location"] == {"value": "吴兴区人民路12号", "reason": ["吴兴区", "人民路"]}
    assert [(x["ticket_id"], x["why"]) for x in data["repeats"]] == [(earlier, "caller")]

    url = f"/api/tickets/{ticket}/suggestions"
    body = {"field": "category", "suggested": "求助", "final": "求助", "outcome": "accepted"}
    assert client.post(url, json=body).status_code == 200
    body = {"field": "location", "suggested": "吴兴区人民路12号", "outcome": "edited"}
    assert client.post(url, json=body | {"final": "吴兴区人民路14号"}).status_code == 200
    body = {"field": "description", "suggested": "x", "final": "", "outcome": "ignored"}
    assert client.post(url, json=body).status_code == 200
    # A word that is no outcome, or a field that has none, is refused and stores nothing.
    bad = client.post(url, json=body | {"outcome": "maybe"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid-request"
    assert client.post(url, json=body | {"field": "caller"}).status_code == 422
    assert client.post("/api/tickets/NOPE1/suggestions", json=body).status_code == 404

    login(client, "boss")
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    report = client.get(f"/api/reports/suggestions?period={year}")
    assert report.status_code == 200, report.text
    fields = report.json()["fields"]
    assert fields["category"]["accepted"] == 1 and fields["category"]["taken_rate"] == 1.0
    assert fields["location"]["edited"] == 1
    assert fields["description"] == {"accepted": 0, "edited": 0, "ignored": 1, "taken_rate": 0.0}
    refused = client.get("/api/reports/suggestions?period=x")
    assert refused.status_code == 422 and "is not a period" in refused.json()["message"]
