"""Login limits that cannot be turned against the site: the lockout follows the user name
(with a doubling wait) wherever the guesses come from, the per-address limit stops spraying
but never counts a proxy's own address, ``X-Forwarded-For`` is believed only from the
configured proxies (uvicorn too), and ``/metrics`` is open only to loopback clients that come
straight, with no proxy in between."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.app import create_app
from console.ratelimit import LoginLimiter
from console.users import Users
from cti.app import Hotline
from cti.db import create_schema
from tests.console.conftest import TestClient, console_settings, csrf_of

PROXY_HEADERS = (
    {"X-Forwarded-For": "203.0.113.7"},
    {"Forwarded": "for=203.0.113.7"},
    {"X-Real-IP": "203.0.113.7"},
)


def attempt(client: TestClient, username: str, password: str) -> httpx.Response:
    token = csrf_of(client)
    return client.post(
        "/api/login",
        json={"username": username, "password": password},
        headers={"X-CSRF-Token": token},
    )


def from_address(app: Any, address: str) -> TestClient:
    return TestClient(app, base_url="http://testserver", client=(address, 40000))


def test_the_lockout_follows_the_user_name_across_addresses(app: Any) -> None:
    for i in range(5):  # login_attempts_per_minute = 5, each from another address
        with from_address(app, f"198.51.100.{i + 1}") as c:
            assert attempt(c, "li", "guess-guess").status_code == 401
    with from_address(app, "198.51.100.77") as c:
        r = attempt(c, "li", "password-li")  # a fresh address, even the right password
        assert r.status_code == 429
        assert r.json()["error"] == "too-many-attempts"
        assert int(r.headers["Retry-After"]) > 0
        assert attempt(c, "boss", "password-boss").status_code == 200  # others are not locked


def test_the_wait_doubles_with_each_failure_and_a_success_clears_it() -> None:
    now = [1000.0]
    limiter = LoginLimiter(3, clock=lambda: now[0])
    for i in range(3):
        assert limiter.retry_after("li", f"10.0.0.{i}") == 0
        limiter.failed("li", f"10.0.0.{i}")
    waits = []
    for _ in range(4):
        wait = limiter.retry_after("li", "10.9.9.9")
        waits.append(wait)
        now[0] += wait
        assert limiter.retry_after("li", "10.9.9.9") == 0
        limiter.failed("li", "10.9.9.9")
    assert waits[0] > 0 and waits[1:] == [waits[0] * 2, waits[0] * 4, waits[0] * 8]
    assert limiter.retry_after("LI", "10.1.1.1") > 0  # user names are not case-tricks
    now[0] += 10**6  # capped: never more than the limiter's ceiling
    for _ in range(30):
        limiter.failed("mayor", "10.2.2.2")
    assert 0 < limiter.retry_after("mayor", "10.2.2.2") <= LoginLimiter.MAX_WAIT_S
    now[0] += LoginLimiter.MAX_WAIT_S
    limiter.succeeded("li", "10.0.0.1")
    assert limiter.retry_after("li", "10.9.9.9") == 0


def test_spraying_from_one_address_is_stopped() -> None:
    limiter = LoginLimiter(3, clock=lambda: 1000.0)
    for i in range(12):  # 3 x SPRAY_FACTOR failures over many user names from one address
        limiter.failed(f"user{i}", "10.0.0.9")
    assert limiter.retry_after("fresh-name", "10.0.0.9") > 0
    assert limiter.retry_after("fresh-name", "10.0.0.10") == 0
    # an unknown address (a proxy's own) is not limited as one client
    for i in range(100):
        limiter.failed(f"other{i}", "")
    assert limiter.retry_after("fresh-name", "") == 0


@pytest.fixture
def proxied_app(any_db_url: str, tmp_path: Path) -> Iterator[Any]:
    """The console behind a proxy on the same host that sends no X-Forwarded-For."""
    settings = console_settings(any_db_url, tmp_path)
    console = settings.console.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    hotline = Hotline(settings.model_copy(update={"console": console}), console=False)
    create_schema(hotline.engine)
    users = Users(hotline.sessions)
    users.create("li", "password-li", ["agent"], agent_id="li")
    users.create("boss", "password-boss", ["supervisor"])
    yield create_app(hotline)
    hotline.agents.stop()
    hotline.engine.dispose()


def test_failures_through_a_proxy_do_not_lock_out_everyone(proxied_app: Any) -> None:
    with from_address(proxied_app, "127.0.0.1") as c:
        for i in range(30):  # a guesser trying many names; everyone is 127.0.0.1 here
            assert attempt(c, f"name{i}", "guess-guess").status_code == 401
        assert attempt(c, "boss", "password-boss").status_code == 200


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_open_only_straight_from_loopback(app: Any) -> None:
    with from_address(app, "127.0.0.1") as local:
        assert local.get("/metrics").status_code == 200
        for headers in PROXY_HEADERS:  # came through a proxy: not the machine's own client
            r = local.get("/metrics", headers=headers)
            assert r.status_code == 403, headers
            assert r.json()["error"] == "metrics-forbidden"
    with from_address(app, "198.51.100.1") as remote:
        assert remote.get("/metrics").status_code == 403


def test_metrics_from_a_trusted_proxy_need_the_token(proxied_app: Any) -> None:
    with from_address(proxied_app, "127.0.0.1") as via_proxy:
        assert via_proxy.get("/metrics").status_code == 403


def test_metrics_with_the_token(any_db_url: str, tmp_path: Path) -> None:
    settings = console_settings(any_db_url, tmp_path)
    console = settings.console.model_copy(
        update={"metrics_token": settings.console.secret_key}  # any SecretStr will do
    )
    hotline = Hotline(settings.model_copy(update={"console": console}), console=False)
    create_schema(hotline.engine)
    token = settings.console.secret_key
    assert token is not None
    try:
        with from_address(create_app(hotline), "198.51.100.1") as remote:
            auth = {"Authorization": f"Bearer {token.get_secret_value()}"}
            assert remote.get("/metrics", headers=auth).status_code == 200
            assert remote.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 403
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()


# --- uvicorn, as the CTI starts it ------------------------------------------------------------


async def served(hotline: Hotline, fn: Any) -> Any:
    await hotline._start_console()
    try:
        base = f"http://127.0.0.1:{hotline.console_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            return await fn(client)
    finally:
        hotline._console_server.should_exit = True
        await asyncio.gather(hotline._console_task, return_exceptions=True)


async def login_from(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    page = await client.get("/login")
    token = page.text.split('"csrf":"', 1)[1].split('"', 1)[0]
    r = await client.post(
        "/api/login",
        json={"username": "li", "password": "password-li"},
        headers={"X-CSRF-Token": token, **headers},
    )
    return r.status_code


def uvicorn_hotline(any_db_url: str, tmp_path: Path, proxies: list[str]) -> Hotline:
    settings = console_settings(any_db_url, tmp_path)
    console = settings.console.model_copy(update={"trusted_proxies": proxies})
    hotline = Hotline(settings.model_copy(update={"console": console}), console=False)
    create_schema(hotline.engine)
    Users(hotline.sessions).create("li", "password-li", ["agent"], agent_id="li")
    return hotline


@pytest.mark.parametrize(
    ("proxies", "seen"),
    [([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.7"), (["10.0.0.0/8"], "127.0.0.1")],
)
async def test_uvicorn_believes_forwarded_for_only_from_trusted_proxies(
    any_db_url: str, tmp_path: Path, proxies: list[str], seen: str
) -> None:
    hotline = uvicorn_hotline(any_db_url, tmp_path, proxies)
    try:
        xff = {"X-Forwarded-For": "203.0.113.7"}

        async def run(client: httpx.AsyncClient) -> tuple[int, int]:
            return await login_from(client, xff), (
                await client.get("/metrics", headers=xff)
            ).status_code

        login_status, metrics_status = await served(hotline, run)
        assert login_status == 200
        log = Users(hotline.sessions).login_log()
        assert [(e["username"], e["remote_addr"]) for e in log[:1]] == [("li", seen)]
        assert metrics_status == 403  # forwarded: not straight from loopback
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()


async def test_uvicorn_a_rotated_forwarded_for_does_not_escape_the_limiter(
    any_db_url: str, tmp_path: Path
) -> None:
    hotline = uvicorn_hotline(any_db_url, tmp_path, [])
    Users(hotline.sessions).create("boss", "password-boss", ["supervisor"])
    try:

        async def run(client: httpx.AsyncClient) -> list[int]:
            statuses = []
            for i in range(25):  # spraying, a new "address" each time
                page = await client.get("/login")
                token = page.text.split('"csrf":"', 1)[1].split('"', 1)[0]
                r = await client.post(
                    "/api/login",
                    json={"username": f"name{i}", "password": "guess-guess"},
                    headers={"X-CSRF-Token": token, "X-Forwarded-For": f"203.0.113.{i}"},
                )
                statuses.append(r.status_code)
            return statuses

        statuses = await served(hotline, run)
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
    finally:
        hotline.agents.stop()
        hotline.engine.dispose()
