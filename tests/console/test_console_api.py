"""The console's REST routes on a real (not started) Hotline: agent state, KPIs from the
calls table, callbacks, the knowledge base, the window page's data, /healthz and /metrics,
and the users CLI."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from console.api import today_kpis
from console.kb import KnowledgeBase
from console.users import Users, add_commands, ensure_demo_users
from cti.app import Hotline
from cti.models import CallbackTaskRow, CallRow
from tests.console.conftest import TestClient, login

TZ = ZoneInfo("Asia/Shanghai")


def test_agent_state_buttons(client: TestClient) -> None:
    login(client, "li")
    r = client.post("/api/agents/me/login", json={"seat": "A01"})
    assert r.status_code == 200
    me = r.json()
    assert (me["state"], me["reason"], me["seat"]) == ("not_ready", "login", "8001")
    r = client.post("/api/agents/me/not-ready", json={"reason": "lunch"})
    assert (r.json()["state"], r.json()["reason"]) == ("not_ready", "lunch")
    r = client.post("/api/agents/me/not-ready", json={"reason": "nap"})
    assert r.status_code == 422 and r.json()["error"] == "bad-reason"
    r = client.post("/api/agents/me/not-ready", json={"reason": "lunch\u0000"})
    assert r.status_code == 422 and r.json()["error"] == "invalid-request"
    # The seat's phone is not registered (nothing is started here): "ready" is refused.
    r = client.post("/api/agents/me/ready")
    assert r.status_code == 409 and r.json()["error"] == "phone-unusable"
    r = client.post("/api/agents/me/logout")
    assert r.json()["state"] == "logged_out"


def test_a_seat_taken_by_another_agent(client: TestClient, app: Any, clients: Any) -> None:
    other = clients()
    login(other, "mayor")
    assert other.post("/api/agents/me/login", json={"seat": "A01"}).status_code == 200
    login(client, "li")
    r = client.post("/api/agents/me/login", json={"seat": "A01"})
    assert r.status_code == 409 and r.json()["error"] == "seat-taken"
    r = client.post("/api/agents/me/login", json={"seat": "W01"})  # a window, not a seat
    assert r.status_code == 422


def _call(at: datetime, *, answered: bool, wait: float, abandoned: bool = False, n: int) -> CallRow:
    return CallRow(
        node="pbx1",
        linkedid=f"call-{n}",
        caller="13800000001",
        started_at=at,
        answered_at=at + timedelta(seconds=wait) if answered else None,
        ended_at=at + timedelta(seconds=wait + 60),
        answered=answered,
        abandoned=abandoned,
        wait_s=wait,
    )


def test_kpis_of_today_from_the_calls_table(hotline: Hotline) -> None:
    now = datetime(2026, 9, 15, 10, 30, tzinfo=TZ)
    nine, ten = now.replace(hour=9), now.replace(hour=10)
    yesterday = now - timedelta(days=1)
    with hotline.sessions.begin() as s:
        s.add_all(
            [
                _call(nine, answered=True, wait=5, n=1),
                _call(nine, answered=True, wait=20, n=2),
                _call(ten, answered=False, wait=40, abandoned=True, n=3),
                _call(ten, answered=True, wait=8, n=4),
                _call(yesterday, answered=True, wait=3, n=5),
            ]
        )
        s.add(CallRow(node="pbx1", linkedid="live", started_at=now, caller="1"))  # still waiting
    k = today_kpis(hotline.sessions, TZ, now.astimezone(UTC))
    assert (k["day"], k["offered"], k["answered"], k["answered_15s"], k["abandoned"]) == (
        "2026-09-15",
        4,
        3,
        2,
        1,
    )
    assert k["connection_rate"] == 0.75
    assert k["service_level_15s"] == round(2 / 3, 6)
    assert k["asa_s"] == 11.0 and k["longest_answer_s"] == 20.0
    assert (k["hours"][9]["offered"], k["hours"][9]["answered"]) == (2, 2)
    assert (k["hours"][10]["offered"], k["hours"][10]["answered"]) == (2, 1)


def test_the_waiting_line_counts_agents_and_lists_them_on_request(client: TestClient) -> None:
    login(client, "li")
    assert client.post("/api/agents/me/login", json={"seat": "A01"}).status_code == 200
    login(client, "boss")
    line = client.get("/api/calls/waiting").json()
    assert line["waiting"] == [] and line["agents"] == []
    assert line["agents_by_state"].get("not_ready") == 1
    listed = client.get("/api/calls/waiting?agents=1").json()["agents"]
    assert [(a["agent_id"], a["state"]) for a in listed if a["state"] != "logged_out"] == [
        ("li", "not_ready")
    ]
    assert line["waiting_total"] == 0
    assert client.get("/api/calls/waiting?limit=0").status_code == 422


def test_kpis_route_is_for_supervisors_and_leaders(client: TestClient) -> None:
    login(client, "li")
    assert client.get("/api/kpi/today").status_code == 403
    login(client, "boss")
    body = client.get("/api/kpi/today").json()
    assert body["offered"] == 0 and body["connection_rate"] is None and len(body["hours"]) == 24


def test_callbacks_listed_by_first_call(client: TestClient, hotline: Hotline) -> None:
    base = datetime(2026, 9, 15, 1, 0, tzinfo=UTC)
    with hotline.sessions.begin() as s:
        for i, (caller, status) in enumerate(
            [("13800000003", "open"), ("13800000001", "open"), ("13800000002", "done")]
        ):
            at = base + timedelta(minutes=[30, 10, 0][i])
            s.add(
                CallbackTaskRow(
                    caller=caller, first_call_at=at, last_call_at=at, status=status, topic="社保"
                )
            )
    login(client, "li")
    rows = client.get("/api/callbacks").json()
    assert [r["caller"] for r in rows] == ["13800000001", "13800000003"]
    assert [r["caller"] for r in client.get("/api/callbacks?caller=13800000003").json()] == [
        "13800000003"
    ]
    assert client.get("/api/callbacks?caller=not-a-number").status_code == 422
    # Calling back needs the agent at a seat first.
    r = client.post(f"/api/callbacks/{rows[0]['id']}/call", json={})
    assert r.status_code == 409 and r.json()["error"] == "not-at-seat"
    client.post("/api/agents/me/login", json={"seat": "A01"})
    r = client.post("/api/callbacks/999/call", json={})
    assert r.status_code == 404 and r.json()["error"] == "no-such-callback"


def test_knowledge_base_search_in_chinese(client: TestClient) -> None:
    login(client, "li")
    r = client.get("/api/kb/search", params={"q": "楼下工地晚上施工太吵了怎么办"})
    results = r.json()["results"]
    assert results[0]["id"] == "kb-004" and "噪音" in results[0]["title"]
    r = client.get("/api/kb/search", params={"q": "公积金租房提取"})
    assert r.json()["results"][0]["id"] == "kb-002"
    assert client.get("/api/kb/search", params={"q": ""}).status_code == 422
    assert client.get("/api/kb/search", params={"q": "x" * 101}).status_code == 422


def test_knowledge_base_from_a_configured_file(tmp_path: Path) -> None:
    path = tmp_path / "kb.json"
    path.write_text(
        '[{"id": "a", "title": "垃圾分类投放时间", "body": "每天早7点至9点、晚6点至8点定时投放。"},'
        ' {"id": "b", "title": "犬只登记", "body": "养犬须办理登记并接种狂犬疫苗。"}]',
        "utf-8",
    )
    kb = KnowledgeBase.load(path)
    assert [r["id"] for r in kb.search("狗狗要办登记吗")] == ["b"]
    assert kb.search("几点可以扔垃圾")[0]["id"] == "a"
    assert kb.search("的了吗") == []
    path.write_text('[{"title": "no id"}]', "utf-8")
    with pytest.raises(ValueError, match="article 0"):
        KnowledgeBase.load(path)


def test_window_staff_see_their_window(client: TestClient) -> None:
    login(client, "clerk")
    body = client.get("/api/window/current").json()
    assert body["window"] == {"id": "shebao", "name": "社保窗口", "extension": "9001"}
    assert body["call"] is None and body["recent"] == []
    login(client, "li")
    assert client.get("/api/window/current").status_code == 403


def test_healthz_is_open_and_keeps_secrets(client: TestClient, settings: Any) -> None:
    r = client.get("/healthz")
    assert r.status_code == 503  # the Asterisk node is not connected in this test
    body = r.json()
    assert body["asterisk"] == {"pbx1": {"state": "new", "connected": False}}
    assert body["database"]["ok"] is True
    for secret in (
        settings.console.secret_key.get_secret_value(),
        settings.asterisk[0].secret.get_secret_value(),
        settings.database.url,
        settings.asterisk[0].username,
    ):
        assert secret not in r.text


def test_metrics_on_loopback_or_with_a_token(app: Any, client: TestClient) -> None:
    assert client.get("/metrics").status_code == 403  # the test client is not on loopback
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        r = local.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for line in (
        "# TYPE hotline_calls_waiting gauge",
        'hotline_agents{state="logged_out"} 4',
        'hotline_ami_up{node="pbx1"} 0',
        "# TYPE hotline_ami_events_received_total counter",
        "hotline_store_pending ",
        'hotline_agi_sessions_total{outcome="completed"} 0',
        'hotline_seat_phone_usable{extension="8001",seat="A01"} 0',
    ):
        assert line in text, line
    for raw in text.splitlines():
        assert raw.startswith("#") or len(raw.rsplit(" ", 1)) == 2


def test_metrics_token(settings: Any, hotline: Hotline, monkeypatch: pytest.MonkeyPatch) -> None:
    """``console.metrics_token`` (read when ConsoleSettings has it) admits remote scrapers."""
    from console.app import create_app

    class Console:
        def __init__(self, base: Any) -> None:
            self._base = base
            self.metrics_token = "scrape-me-0123456789"

        def __getattr__(self, name: str) -> Any:
            return getattr(self._base, name)

    with_token = settings.model_copy(update={"console": Console(settings.console)})
    monkeypatch.setattr(hotline, "settings", with_token)
    app = create_app(hotline)
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 403
        bad = {"Authorization": "Bearer nope"}
        assert c.get("/metrics", headers=bad).status_code == 403
        good = {"Authorization": "Bearer scrape-me-0123456789"}
        assert c.get("/metrics", headers=good).status_code == 200


def test_demo_users(hotline: Hotline, settings: Any) -> None:
    made = ensure_demo_users(hotline.sessions, settings)
    assert set(made) >= {"li", "wang", "zhao", "mayor", "window-shebao", "supervisor", "admin"}
    assert "dept-rsj" in made
    users = Users(hotline.sessions)
    mayor = users.by_username("mayor")
    assert mayor is not None and mayor.roles == {"leader"} and mayor.agent_id == "mayor"
    clerk, _epoch, outcome = users.authenticate("window-shebao", "demo-window-shebao")
    assert outcome == "ok" and clerk is not None and clerk.window_id == "shebao"
    assert ensure_demo_users(hotline.sessions, settings) == []  # idempotent


def test_users_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import argparse

    db = tmp_path / "cli.db"
    config = tmp_path / "hotline.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n[[asterisk]]\nname = "pbx1"\nusername = "cti"\n'
        'secret = "s"\n\n[[hotlines]]\ndid = "12345"\nname = "12345"\ntopic = "综合"\n'
        'skill = "general"\n\n[[agents]]\nid = "li"\nname = "李娜"\n',
        "utf-8",
    )
    config.chmod(0o600)
    parser = argparse.ArgumentParser(prog="hotline")
    add_commands(parser.add_subparsers(dest="command"))

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        args = parser.parse_args([*argv, "--config", str(config)])
        return int(args.func(args))

    assert (
        run(
            "users",
            "add",
            "li",
            "--role",
            "agent",
            "--agent-id",
            "li",
            "--password-stdin",
            stdin="long-enough-pw\n",
        )
        == 0
    )
    assert "user li (agent) created" in capsys.readouterr().out
    assert (
        run(
            "users",
            "add",
            "li",
            "--role",
            "agent",
            "--agent-id",
            "li",
            "--password-stdin",
            stdin="long-enough-pw\n",
        )
        == 2
    )
    assert "exists" in capsys.readouterr().err
    assert run("users", "add", "bob", "--role", "agent", "--password-stdin", stdin="x" * 9) == 2
    assert "agent-id" in capsys.readouterr().err
    assert run("users", "add", "w", "--role", "supervisor", "--password-stdin", stdin="short") == 2
    assert run("users", "disable", "li") == 0
    assert run("users", "list") == 0
    out = capsys.readouterr().out
    assert "li\tagent\tli" in out and "(disabled)" in out
