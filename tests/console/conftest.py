"""Fixtures of the console tests: a ``Hotline`` built from settings (not started: no AMI, no
FastAGI), its schema, the console app in a TestClient, and users to log in as."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package on import of its test client; httpx works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

from console import passwords
from console.app import create_app
from console.users import Users
from cti.app import Hotline
from cti.config import Settings, default_data, parse
from cti.db import create_schema

DEPARTMENTS = [
    {"id": "rsj", "name": "市人社局", "contact_phone": "13900000001"},
    {"id": "scjg", "name": "市市场监管局", "contact_phone": "13900000002"},
]


def console_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    data = default_data()
    data["database"] = {"url": db_url}
    # A new key per test, as a site has its own; the TestClient talks plain HTTP.
    data["console"] = {
        "secret_key": secrets.token_urlsafe(32),
        "port": 0,
        "plain_http_loopback": True,
    }
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp_path / "recordings")}
    data["departments"] = DEPARTMENTS
    data["control"] = {"wrapup_s": 5}
    for key, value in overrides.items():
        data[key] = value
    return parse(data)


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at a 16th of the production cost: the same code, fast enough for many logins."""
    monkeypatch.setattr(passwords, "N", 2**10)


@pytest.fixture
def settings(any_db_url: str, tmp_path: Path) -> Settings:
    return console_settings(any_db_url, tmp_path)


@pytest.fixture
def hotline(settings: Settings) -> Iterator[Hotline]:
    h = Hotline(settings, console=False)
    create_schema(h.engine)
    h._sync_reference_data()
    yield h
    h.agents.stop()
    h.engine.dispose()


@pytest.fixture
def users(hotline: Hotline) -> Users:
    u = Users(hotline.sessions)
    u.create("li", "password-li", ["agent"], agent_id="li", display_name="李娜")
    u.create("mayor", "password-mayor", ["leader"], agent_id="mayor", display_name="陈市长")
    u.create("boss", "password-boss", ["supervisor"], display_name="值班长")
    u.create("root", "password-root", ["admin"])
    u.create("clerk", "password-clerk", ["window"], window_id="shebao")
    return u


@pytest.fixture
def app(hotline: Hotline, users: Users) -> Any:
    return create_app(hotline)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def clients(client: TestClient, app: Any) -> Callable[[], TestClient]:
    """More browsers on the same event loop as ``client`` (as in production, where every
    request and websocket runs on the CTI's one loop)."""

    def make() -> TestClient:
        other = TestClient(app, base_url="http://testserver")
        other.portal = client.portal
        return other

    return make


def csrf_of(client: TestClient) -> str:
    """Open the login page (which issues the anonymous session) and read its token."""
    page = client.get("/login")
    assert page.status_code == 200
    marker = '"csrf":"'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def login(client: TestClient, username: str, password: str | None = None) -> str:
    """Log in; returns the session's CSRF token (also set as the client's default header)."""
    token = csrf_of(client)
    r = client.post(
        "/api/login",
        json={"username": username, "password": password or f"password-{username}"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return str(csrf)


LoginFn = Callable[[TestClient, str], str]
