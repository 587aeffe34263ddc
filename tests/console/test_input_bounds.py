"""Ids, offsets and dates out of range are a 422 naming the parameter, on every route (issue
15: integers of 2^63 and dates near year 9999 gave 500s and reset connections: SQLite's
``OverflowError``, "date value out of range")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.app import create_app
from console.users import Users
from cti.app import Hotline
from cti.db import create_schema
from tests.console.conftest import TestClient, console_settings, login

HUGE = str(2**63)  # one past SQLite's and PostgreSQL's largest integer
FAR_DATES = {"date": "9999-12-31", "date-time": "9999-12-31T23:59:59-12:00"}
SMS = {
    "enabled": True,
    "account_sid": "AC" + "0" * 32,
    "auth_token": "test-token",
    "from_number": "+8610000000000",
}


@pytest.fixture
def site(any_db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The console with every slice, the SMS routes included."""
    h = Hotline(console_settings(any_db_url, tmp_path, sms=SMS), console=False)
    create_schema(h.engine)
    h._sync_reference_data()
    users = Users(h.sessions)
    users.create("li", "password-li", ["agent"], agent_id="li")
    users.create("boss", "password-boss", ["supervisor"])
    users.create("root", "password-root", ["admin"])
    with TestClient(create_app(h), base_url="http://testserver") as client:
        yield client
    h.agents.stop()
    h.engine.dispose()


def refused(r: Any, name: str) -> bool:
    """A 422 whose details name the parameter ``name``."""
    if r.status_code != 422:
        return False
    errors = r.json()["details"].get("errors", [])
    return any(e["loc"][-1] == name for e in errors) or r.json()["error"] == f"invalid-{name}"


# The routes of the issue, as the role that reaches them.
ISSUE_ROUTES = [
    ("li", "GET", f"/api/recordings/{HUGE}", "recording_id"),
    ("li", "GET", f"/api/recordings/{HUGE}/waveform", "recording_id"),
    ("li", "GET", f"/api/recordings/{HUGE}/audio", "recording_id"),
    ("li", "GET", f"/api/recordings?offset={HUGE}", "offset"),
    ("li", "GET", f"/api/tickets?offset={HUGE}", "offset"),
    ("li", "GET", "/api/windows?at=9999-12-31T23:59:59-12:00", "at"),
    ("li", "GET", f"/replay/{HUGE}", "recording_id"),
    ("root", "GET", f"/api/audit/replay?recording_id={HUGE}", "recording_id"),
    ("root", "GET", "/api/audit/replay?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("li", "POST", f"/api/callbacks/{HUGE}/call", "task_id"),
    ("boss", "GET", "/api/recordings?date=9999-12-31", "date"),
    ("boss", "GET", f"/api/tickets/20260915000001/attachments/{HUGE}", "attachment_id"),
    ("boss", "POST", f"/api/sms/{HUGE}/retry", "message_id"),
    ("boss", "GET", "/api/reports/kpi?period=9999-W52", "period"),
    ("boss", "GET", "/api/reports/hotspots?period=0001-01", "period"),
]


@pytest.mark.parametrize(("who", "method", "url", "name"), ISSUE_ROUTES, ids=lambda x: str(x))
def test_the_routes_of_the_issue_answer_422(
    site: TestClient, who: str, method: str, url: str, name: str
) -> None:
    login(site, who)
    r = site.request(method, url, json={} if method == "POST" else None)
    assert refused(r, name), (r.status_code, r.text[:300])
    assert "out of range" in r.text or "less than or equal" in r.text or "year" in r.text


def _fill(path: str, params: list[dict[str, Any]], skip: str) -> str:
    """``path`` with its parameters other than ``skip`` filled with a plausible value."""
    for p in params:
        if p["in"] == "path" and p["name"] != skip:
            value = "1" if _schema(p).get("type") == "integer" else "20260915000001"
            path = path.replace("{" + p["name"] + "}", value)
    return path


def _schema(param: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = param.get("schema", {})
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return {**schema, **option}
    return schema


def test_every_integer_and_date_parameter_of_every_route_is_bounded(site: TestClient) -> None:
    """Walk the OpenAPI document: every integer parameter declares a maximum that fits an
    INTEGER column (2^31-1 on PostgreSQL) and refuses 2^63; every date refuses year 9999;
    every text parameter declares a pattern or a length and refuses a NUL. As an
    administrator, whom every role check admits."""
    login(site, "root")
    spec = site.get("/openapi.json").json()
    seen: dict[str, int] = {"integer": 0, "date": 0, "string": 0}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])
            for p in params:
                if p["in"] not in ("path", "query"):
                    continue
                schema, name = _schema(p), p["name"]
                kind, fmt = schema.get("type"), schema.get("format", "")
                where = f"{method.upper()} {path} {name}"
                if kind == "integer":
                    assert schema.get("maximum", 2**63) <= 2**31 - 1, where
                    value, key = HUGE, "integer"
                elif fmt in FAR_DATES:
                    value, key = FAR_DATES[fmt], "date"
                elif kind == "string":
                    assert {"pattern", "maxLength", "enum"} & set(schema), where
                    value, key = "\x00", "string"
                else:
                    continue
                url = _fill(path, params, name)
                if p["in"] == "path":
                    url = url.replace("{" + name + "}", value.replace("\x00", "%00"))
                    query = {}
                else:
                    query = {name: value}
                body = {} if method in ("post", "patch", "put") else None
                r = site.request(method.upper(), url, params=query, json=body)
                seen[key] += 1
                if key == "string":
                    assert r.status_code < 500, (where, r.status_code, r.text[:200])
                else:
                    assert refused(r, name) or (
                        # a period is text, checked by its parser
                        name == "period" and r.status_code == 422
                    ), (where, r.status_code, r.text[:200])
    print(f"parameters probed: {seen}")
    assert seen["integer"] >= 8 and seen["date"] >= 3, seen


def test_a_bounded_id_in_range_still_answers_normally(site: TestClient) -> None:
    login(site, "li")
    r = site.get(f"/api/recordings/{2**31 - 1}")  # PostgreSQL's largest INTEGER
    assert r.status_code == 404 and r.json()["error"] == "no-such-recording"
    assert site.get("/api/tickets?offset=1000000").json() == []
    assert site.get("/api/windows?at=2026-09-15T10:00:00").status_code == 200
    assert re.fullmatch(r"\d+", HUGE)
