"""Sessions live on the server: a cookie names its session, and logging out, an administrator's
revocation, a password change or a deactivation ends it at once, even for a copy of the
cookie. Cookies are ``Secure`` unless the site says it serves plain HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from console.app import create_app
from console.sessions import COOKIE
from console.users import Users
from cti import preflight
from cti.app import Hotline
from cti.db import create_schema
from tests.console.conftest import TestClient, console_settings, csrf_of, login


def me(client: TestClient, cookie: str) -> int:
    """The status of ``/api/me`` with ``cookie`` as the session cookie."""
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie)
    return client.get("/api/me").status_code


def test_logout_revokes_the_session_on_the_server(client: TestClient) -> None:
    token = login(client, "li")
    copied = client.cookies[COOKIE]  # what an attacker kept, or a browser that missed logout
    assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert me(client, copied) == 401
    # unsafe requests with the old cookie and its token are refused too
    r = client.post("/api/agents/me/login", json={"seat": "A01"}, headers={"X-CSRF-Token": token})
    assert r.status_code in (401, 403)


def test_a_websocket_opened_before_logout_carries_nothing_after_it(
    client: TestClient, clients: Callable[[], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    import console.app

    monkeypatch.setattr(console.app, "WS_SESSION_CHECK_S", 0.0)  # ask at every message
    boss, agent = client, clients()
    token = login(boss, "boss")
    login(agent, "li")
    with boss.websocket_connect("/ws") as wall:
        assert wall.receive_json()["type"] == "Snapshot"
        assert boss.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
        r = agent.post("/api/agents/me/login", json={"seat": "A01"})  # an event for the wall
        assert r.status_code == 200
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(20):
                message = wall.receive_json()
                assert message["type"] == "Snapshot", message  # nothing after the logout
        assert closed.value.code == 1008


def test_an_administrator_lists_and_revokes_sessions(
    client: TestClient, clients: Callable[[], TestClient]
) -> None:
    agent = clients()
    login(agent, "li")
    kept = agent.cookies[COOKIE]
    admin = client
    login(admin, "root")
    listed = admin.get("/api/sessions")
    assert listed.status_code == 200
    sessions = listed.json()
    mine = [s for s in sessions if s["username"] == "li"]
    assert len(mine) == 1
    entry = mine[0]
    assert {"id", "username", "display_name", "created_at", "last_seen_at", "expires_at",
            "remote_addr", "user_agent", "current"} <= set(entry)  # fmt: skip
    assert entry["current"] is False
    assert [s["current"] for s in sessions if s["username"] == "root"] == [True]
    assert kept not in listed.text  # the list never shows what a cookie holds
    assert admin.get("/api/sessions", params={"username": "li"}).json() == mine

    assert admin.delete(f"/api/sessions/{entry['id']}").status_code == 204
    assert agent.get("/api/me").status_code == 401
    assert [s for s in admin.get("/api/sessions").json() if s["username"] == "li"] == []
    assert admin.delete(f"/api/sessions/{entry['id']}").status_code == 404
    assert admin.delete("/api/sessions/99999999999999999999999").status_code == 422
    outcomes = [(e["username"], e["outcome"]) for e in admin.get("/api/audit/logins").json()]
    assert ("li", "revoked") in outcomes


def test_an_administrator_logs_out_every_session_of_a_user(
    client: TestClient, clients: Callable[[], TestClient]
) -> None:
    first, second = clients(), clients()
    login(first, "li")
    login(second, "li")
    login(client, "root")
    r = client.delete("/api/users/li/sessions")
    assert r.status_code == 200 and r.json() == {"revoked": 2}
    assert first.get("/api/me").status_code == 401
    assert second.get("/api/me").status_code == 401
    assert client.get("/api/me").status_code == 200  # the administrator's own is left alone
    assert client.delete("/api/users/nobody/sessions").status_code == 404


def test_only_administrators_see_sessions(client: TestClient) -> None:
    assert client.get("/api/sessions").status_code == 401
    for username in ("li", "boss", "mayor", "clerk"):
        login(client, username)
        assert client.get("/api/sessions").status_code == 403
        assert client.delete("/api/sessions/1").status_code == 403
        assert client.delete("/api/users/li/sessions").status_code == 403


def test_password_change_and_deactivation_revoke_listed_sessions(
    client: TestClient, clients: Callable[[], TestClient], app: Any
) -> None:
    agent = clients()
    login(agent, "li")
    login(client, "root")
    users: Users = app.state.users
    users.set_password("li", "another-password")
    assert agent.get("/api/me").status_code == 401
    assert [s for s in client.get("/api/sessions").json() if s["username"] == "li"] == []
    login(agent, "li", "another-password")
    users.set_active("li", False)
    assert agent.get("/api/me").status_code == 401
    assert [s for s in client.get("/api/sessions").json() if s["username"] == "li"] == []


def test_a_signed_cookie_without_a_server_session_is_no_session(
    client: TestClient, app: Any
) -> None:
    """A cookie signed with the right key but naming no session (issued before sessions were
    kept on the server, or made by someone who has the key): nobody."""
    login(client, "root")
    codec = app.state.codec
    user_id = client.get("/api/me").json()["id"]
    forged = codec.dumps({"u": user_id, "e": 0, "c": "token"})
    assert me(client, forged) == 401
    forged = codec.dumps({"u": user_id, "e": 0, "c": "token", "s": "made-up-session"})
    assert me(client, forged) == 401


# --- the Secure flag --------------------------------------------------------------------------


def app_with(any_db_url: str, tmp_path: Path, **console: Any) -> tuple[Any, Hotline]:
    settings = console_settings(any_db_url, tmp_path)
    settings = settings.model_copy(update={"console": settings.console.model_copy(update=console)})
    hotline = Hotline(settings, console=False)
    create_schema(hotline.engine)
    Users(hotline.sessions).create("li", "password-li", ["agent"], agent_id="li")
    return create_app(hotline), hotline


def cookies_of(app: Any, base_url: str) -> list[str]:
    """The Set-Cookie headers of the login page and of a login."""
    with TestClient(app, base_url=base_url) as c:
        page = c.get("/login")
        token = csrf_of(c)
        r = c.post(
            "/api/login",
            json={"username": "li", "password": "password-li"},
            headers={"X-CSRF-Token": token},
        )
        assert r.status_code == 200, r.text
        assert c.get("/api/me").status_code == 200
        return [page.headers["set-cookie"], r.headers["set-cookie"]]


@pytest.mark.parametrize(
    ("console", "secure"),
    [
        ({"plain_http_loopback": False, "public_url": ""}, True),  # behind a TLS proxy
        ({"plain_http_loopback": False, "public_url": "https://hotline.example"}, True),
        ({"plain_http_loopback": True, "host": "127.0.0.1"}, False),
        ({"plain_http_loopback": True, "host": "::1"}, False),
        ({"plain_http_loopback": True, "host": "0.0.0.0"}, True),  # not loopback: ignored
    ],
)
def test_cookies_are_secure_unless_plain_http_on_loopback(
    any_db_url: str, tmp_path: Path, console: dict[str, Any], secure: bool
) -> None:
    app, hotline = app_with(any_db_url, tmp_path, **console)
    try:
        headers = cookies_of(app, "https://testserver" if secure else "http://testserver")
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()
    for header in headers:
        assert ("; Secure" in header) is secure, header


def test_plain_http_off_loopback_is_a_configuration_problem(
    any_db_url: str, tmp_path: Path
) -> None:
    settings = console_settings(any_db_url, tmp_path)
    console = settings.console.model_copy(update={"plain_http_loopback": True, "host": "0.0.0.0"})
    problems = preflight.check(settings.model_copy(update={"console": console})).problems
    assert [p for p in problems if p.startswith("console.plain_http_loopback: ")] == [
        "console.plain_http_loopback: only honoured when console.host is a loopback address"
        " (127.0.0.1, ::1): the console on 0.0.0.0 sends Secure cookies, which browsers send"
        " back only over HTTPS; serve it through a TLS proxy and remove the key, or listen on"
        " 127.0.0.1."
    ]


# --- the administrator's page ------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
async def test_the_audit_page_ends_a_session(any_db_url: str, tmp_path: Path) -> None:
    import asyncio

    from playwright.async_api import async_playwright

    from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, shot

    hotline = Hotline(console_settings(any_db_url, tmp_path), console=False)
    create_schema(hotline.engine)
    users = Users(hotline.sessions)
    users.create("li", "password-li", ["agent"], agent_id="li", display_name="李娜")
    users.create("root", "password-root", ["admin"], display_name="系统管理员")
    await hotline._start_console()
    base = f"http://127.0.0.1:{hotline.console_port}"

    async def person(browser: Any, username: str) -> Any:
        context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        page = await context.new_page()
        await page.goto(base + "/login")
        await page.fill("#username", username)
        await page.fill("#password", f"password-{username}")
        await page.click("#login-submit")
        await page.wait_for_url(lambda url: "/login" not in url)
        return page

    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                agent = await person(browser, "li")
                admin = await person(browser, "root")
                await admin.goto(base + "/audit")
                row = admin.locator("#sessions tr", has_text="李娜 (li)")
                await row.wait_for()
                own = admin.locator("#sessions tr", has_text="(root)")
                assert await own.locator("button").count() == 0  # not one's own
                await shot(admin, "11-audit-sessions")
                await row.locator("button").click()
                await row.wait_for(state="detached")
                status = await agent.evaluate("fetch('/api/me').then(r => r.status)")
                assert status == 401
            finally:
                await browser.close()
    finally:
        hotline._console_server.should_exit = True
        await asyncio.gather(hotline._console_task, return_exceptions=True)
        hotline.agents.stop()
        hotline.engine.dispose()
