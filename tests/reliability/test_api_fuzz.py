"""The REST API's input models under hypothesis, through the console application: whatever
JSON a client sends (control characters, NUL, oversized text, wrong types, unknown keys),
the answer is a typed 2xx/4xx, never a 500; and what the console serves as HTML escapes the
values it shows."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from console import passwords
from console.app import create_app
from console.users import Users
from cti.app import Hotline
from cti.config import parse
from cti.db import create_schema
from tests.reliability.helpers import site_data

XSS = '"><script>alert(1)</script>'
# Text a hostile client sends: control characters, NUL, lone surrogates excluded (JSON can't).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=64) | st.sampled_from(
    ["", "\x00", "\r\nAction: Hangup", XSS, "王" * 300, "x" * 25_000]
)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def body(keys: list[str]) -> st.SearchStrategy[Any]:
    """Objects with the model's keys (and sometimes others), or any JSON at all."""
    values = TEXT | JSON
    known = st.fixed_dictionaries({}, optional={k: values for k in keys})
    extra = st.dictionaries(TEXT, values, max_size=2)
    return st.one_of(known, st.builds(lambda a, b: {**b, **a}, known, extra), JSON)


@pytest.fixture
def console(any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(passwords, "N", 2**10)
    data = site_data(2, skills=1)
    data["agents"][0]["name"] = "坐席" + XSS
    data["seats"][0]["position"] = XSS
    data["database"] = {"url": any_db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data["console"].update(port=0)
    h = Hotline(parse(data), console=False)
    create_schema(h.engine)
    h._sync_reference_data()
    users = Users(h.sessions)
    users.create("agent", "pw-agent-123", ["agent"], agent_id="a00000", display_name=XSS)
    users.create("boss", "pw-boss-123", ["supervisor"], display_name="值班长" + XSS)
    h.tickets.open_for_call("20990101000001", call_id="1.1", node="pbx1", caller="13800000001")
    app = create_app(h)
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
        yield h, client
    h.agents.stop()
    h.engine.dispose()


def login(client: TestClient, username: str, password: str) -> None:
    page = client.get("/login")
    token = re.search(r'"csrf":"([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/api/login",
        json={"username": username, "password": password},
        headers={"X-CSRF-Token": token[1]},
    )
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf"]


ENDPOINTS: list[tuple[str, str, list[str]]] = [
    ("PATCH", "/api/tickets/20990101000001", ["citizen_name", "occurred", "location",
        "description", "contact_phone", "category", "channel", "enterprise"]),
    ("POST", "/api/tickets/20990101000001/transitions", ["action", "reason", "data"]),
    ("POST", "/api/tickets/20990101000001/merge", ["into", "reason"]),
    ("POST", "/api/agents/me/login", ["seat", "ready"]),
    ("POST", "/api/agents/me/not-ready", ["reason"]),
    ("POST", "/api/control/blind-transfer", ["target", "agent_id"]),
    ("POST", "/api/control/callback", ["number", "ticket_id", "agent_id"]),
    ("POST", "/api/control/three-way", ["window_id", "ticket_id", "agent_id"]),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "keys"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_hostile_bodies_get_typed_answers(
    console: Any, method: str, path: str, keys: list[str]
) -> None:
    hotline, client = console
    login(client, "agent", "pw-agent-123")
    seen: list[int] = []

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body(keys))
    def run(payload: Any) -> None:
        r = client.request(method, path, json=payload)
        seen.append(r.status_code)
        assert r.status_code < 500, (payload, r.text[:300])
        assert r.headers["content-type"].startswith("application/json")
        if r.status_code >= 400:
            assert "error" in r.json()

    run()
    assert hotline.store.stats()["dead"] == 0
    assert seen


def test_pages_escape_names_from_configuration_and_users(console: Any) -> None:
    _hotline, client = console
    login(client, "agent", "pw-agent-123")
    agent_page = client.get("/agent")
    client.cookies.clear()
    login(client, "boss", "pw-boss-123")
    wallboard = client.get("/wallboard")
    for page in (agent_page, wallboard):
        assert page.status_code == 200
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;" in page.text or "\\u003cscript\\u003e" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
