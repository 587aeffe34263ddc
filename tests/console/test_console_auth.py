"""Passwords, login, sessions, CSRF, rate limiting and role checks of the console."""

from __future__ import annotations

from typing import Any

from console import passwords
from console.ratelimit import LoginLimiter
from console.sessions import COOKIE, SessionCodec
from console.users import Users
from tests.console.conftest import TestClient, csrf_of, login


def test_password_hashes_are_salted_and_verified() -> None:
    first = passwords.hash_password("correct horse")
    second = passwords.hash_password("correct horse")
    assert first != second  # per-user salt
    assert first.startswith(f"scrypt${passwords.N}$8$1$")
    assert "correct horse" not in first
    assert passwords.verify_password("correct horse", first)
    assert passwords.verify_password("correct horse", second)
    assert not passwords.verify_password("correct horsE", first)
    assert not passwords.verify_password("x", "not-a-hash")
    assert not passwords.verify_password("x", "pbkdf2$1$2$3$4$5")
    assert not passwords.needs_rehash(first)
    assert passwords.needs_rehash("scrypt$512$8$1$abc$def")


def test_login_sets_a_strict_httponly_session_and_logout_ends_it(client: TestClient) -> None:
    token = csrf_of(client)
    r = client.post(
        "/api/login",
        json={"username": "li", "password": "password-li"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=43200" in cookie
    new_token = r.json()["csrf"]
    assert new_token != token  # a new session on login: no fixation
    me = client.get("/api/me").json()
    assert me["username"] == "li" and me["roles"] == ["agent"] and me["home"] == "/agent"
    r = client.post("/api/logout", headers={"X-CSRF-Token": new_token})
    assert r.status_code == 200
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/api/me").status_code == 401


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient, app: Any) -> None:
    token = csrf_of(client)
    answers = [
        client.post(
            "/api/login",
            json={"username": name, "password": "nope-nope"},
            headers={"X-CSRF-Token": token},
        )
        for name in ("li", "nobody")
    ]
    assert [r.status_code for r in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    log = app.state.users.login_log()
    assert [(e["username"], e["outcome"]) for e in log[:2]] == [
        ("nobody", "no-such-user"),
        ("li", "bad-password"),
    ]


def test_login_is_rate_limited_per_username_and_address(client: TestClient, app: Any) -> None:
    token = csrf_of(client)

    def attempt(username: str, password: str) -> Any:
        return client.post(
            "/api/login",
            json={"username": username, "password": password},
            headers={"X-CSRF-Token": token},
        )

    for _ in range(5):  # login_attempts_per_minute = 5
        assert attempt("li", "guess-guess").status_code == 401
    r = attempt("li", "password-li")  # even the right password waits now
    assert r.status_code == 429
    assert r.json()["error"] == "too-many-attempts"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert attempt("boss", "password-boss").status_code == 200  # other usernames are not locked
    outcomes = [e["outcome"] for e in app.state.users.login_log()]
    assert "rate-limited" in outcomes


def test_limiter_address_window_slides_and_stops_spraying() -> None:
    """The per-address limit; the per-user-name lockout is in test_auth_limits.py."""
    now = [1000.0]
    limiter = LoginLimiter(3, clock=lambda: now[0])
    for i in range(12):  # 3 x SPRAY_FACTOR failures over many usernames from one address
        limiter.failed(f"user{i}", "10.0.0.9")
    assert limiter.retry_after("fresh-name", "10.0.0.9") == 60
    assert limiter.retry_after("fresh-name", "10.0.0.2") == 0  # another address
    now[0] += 30
    assert limiter.retry_after("fresh-name", "10.0.0.9") == 30
    now[0] += 30
    assert limiter.retry_after("fresh-name", "10.0.0.9") == 0


def test_unsafe_requests_need_the_session_csrf_token(client: TestClient) -> None:
    login(client, "li")
    token = client.headers.pop("X-CSRF-Token")
    body = {"seat": "A01"}
    assert client.post("/api/agents/me/login", json=body).json()["error"] == "csrf"
    r = client.post("/api/agents/me/login", json=body, headers={"X-CSRF-Token": "x" + token})
    assert r.status_code == 403
    r = client.post("/api/agents/me/login", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 200


def test_login_needs_the_anonymous_session_token(client: TestClient) -> None:
    r = client.post("/api/login", json={"username": "li", "password": "password-li"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"


def test_a_token_belongs_to_its_own_session(app: Any) -> None:
    with TestClient(app) as a, TestClient(app) as b:
        token_a = login(a, "li")
        login(b, "boss")
        r = b.post("/api/logout", headers={"X-CSRF-Token": token_a})
        assert r.status_code == 403


def test_a_tampered_or_expired_cookie_is_no_session(client: TestClient) -> None:
    login(client, "boss")
    value = client.cookies[COOKIE]
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/api/me").status_code == 401
    codec = SessionCodec("k" * 32, max_age_s=-1)
    assert codec.loads(codec.dumps(codec.new(1))) is None
    assert (
        SessionCodec("other-key" * 4, 60).loads(SessionCodec("k" * 32, 60).dumps({"c": "x"}))
        is None
    )


def test_password_change_and_deactivation_end_sessions(client: TestClient, app: Any) -> None:
    login(client, "boss")
    assert client.get("/api/me").status_code == 200
    users: Users = app.state.users
    users.set_password("boss", "a-new-password")
    assert client.get("/api/me").status_code == 401
    login(client, "boss", "a-new-password")
    users.set_active("boss", False)
    assert client.get("/api/me").status_code == 401
    token = csrf_of(client)
    r = client.post(
        "/api/login",
        json={"username": "boss", "password": "a-new-password"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 401


def test_roles_are_enforced_on_api_and_pages(client: TestClient) -> None:
    assert client.get("/api/calls").status_code == 401
    r = client.get("/wallboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fwallboard"
    login(client, "li")
    assert client.get("/api/calls").json()["error"] == "forbidden"
    r = client.get("/wallboard")
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert client.get("/agent").status_code == 200
    login(client, "boss")
    assert client.post("/api/agents/me/ready").status_code == 403  # not an agent
    assert client.get("/api/calls").status_code == 200
    login(client, "root")  # administrators pass every role check
    assert client.get("/api/calls").status_code == 200
    assert client.get("/audit").status_code == 200


def test_validation_errors_do_not_echo_the_password(client: TestClient) -> None:
    token = csrf_of(client)
    secret = "s3cret-" * 200
    r = client.post(
        "/api/login",
        json={"username": "li", "password": secret},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 422
    assert r.json()["error"] == "invalid-request"
    assert "s3cret" not in r.text


def test_login_page_redirects_only_to_local_paths(client: TestClient) -> None:
    page = client.get("/login", params={"next": "//evil.example/x"})
    assert '"next":""' in page.text
    page = client.get("/login", params={"next": "/reports"})
    assert '"next":"/reports"' in page.text
    login(client, "boss")
    r = client.get("/login", params={"next": "https://evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/wallboard"
