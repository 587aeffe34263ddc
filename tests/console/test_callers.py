"""Caller flags set by supervisors (console.callers): who may set them, the audit trail of
every change, and the route of the flagged caller's next call."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from agi_scripts.route import RouteRequest
from cti.app import Hotline
from cti.models import CallerFlagEvent, CallerFlagRow
from routing.plan import Priority
from tests.console.conftest import login

CALLER = "13700002222"


def _route(hotline: Hotline, uniqueid: str) -> int:
    """The priority the CTI's route gives the caller's next call."""
    answer = hotline.acd.route(
        RouteRequest(uniqueid, f"PJSIP/trunk-{uniqueid}", CALLER, "", "12345")
    )
    return answer.priority


def test_agents_and_leaders_cannot_flag_a_caller(
    client: TestClient, clients: Callable[[], TestClient], hotline: Hotline
) -> None:
    for name in ("li", "mayor"):
        browser = client if name == "li" else clients()
        login(browser, name)
        r = browser.put(f"/api/caller-flags/{CALLER}", json={"kind": "priority", "reason": "x" * 5})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert browser.get("/api/caller-flags").status_code == 403
    with hotline.sessions() as s:
        assert s.scalars(select(CallerFlagRow)).all() == []
        assert s.scalars(select(CallerFlagEvent)).all() == []
    assert _route(hotline, "1.1") == Priority.NORMAL


def test_a_supervisor_flags_a_caller_the_change_is_audited_and_routed(
    client: TestClient, hotline: Hotline, settings: object
) -> None:
    assert _route(hotline, "2.1") == Priority.NORMAL
    login(client, "boss")
    r = client.put(
        f"/api/caller-flags/{CALLER}", json={"kind": "priority", "reason": "独居老人，听力不好"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["updated_by"]) == ("priority", "boss")
    assert _route(hotline, "2.2") == Priority.FLAGGED
    (listed,) = client.get("/api/caller-flags").json()
    assert listed["caller"] == CALLER and listed["reason"] == "独居老人，听力不好"

    # A CTI that starts to lead later reads the flag from the table.
    again = Hotline(hotline.settings, console=False)
    try:
        again._warm_caller_cache()
        assert again.callers.info(CALLER).flagged
    finally:
        again.agents.stop()
        again.engine.dispose()

    # Another kind replaces it: shown to the agent, not ahead in the line.
    r = client.put(f"/api/caller-flags/{CALLER}", json={"kind": "abusive", "reason": "辱骂坐席"})
    assert r.status_code == 200
    assert _route(hotline, "2.3") == Priority.NORMAL
    r = client.post(f"/api/caller-flags/{CALLER}/clear", json={"reason": "已核实"})
    assert r.status_code == 204
    assert client.get("/api/caller-flags").json() == []
    r = client.post(f"/api/caller-flags/{CALLER}/clear", json={"reason": "已核实"})
    assert r.status_code == 404 and r.json()["error"] == "no-such-flag"

    trail = client.get(f"/api/audit/caller-flags?caller={CALLER}").json()
    assert [(e["action"], e["kind"], e["reason"], e["actor"]) for e in reversed(trail)] == [
        ("set", "priority", "独居老人，听力不好", "boss"),
        ("set", "abusive", "辱骂坐席", "boss"),
        ("clear", "abusive", "已核实", "boss"),
    ]
    page = client.get("/callers")
    assert page.status_code == 200 and 'id="flag-form"' in page.text


def test_bad_flags_are_refused_with_a_sentence(client: TestClient, hotline: Hotline) -> None:
    login(client, "boss")
    for path, body in (
        ("/api/caller-flags/not-a-number", {"kind": "priority", "reason": "原因原因"}),
        (f"/api/caller-flags/{CALLER}", {"kind": "vip", "reason": "原因原因"}),
        (f"/api/caller-flags/{CALLER}", {"kind": "priority", "reason": ""}),
        (f"/api/caller-flags/{CALLER}", {"kind": "priority", "reason": "a\x1bb"}),
    ):
        r = client.put(path, json=body)
        assert r.status_code == 422 and r.json()["message"], r.text
    with hotline.sessions() as s:
        assert s.scalars(select(CallerFlagEvent)).all() == []
