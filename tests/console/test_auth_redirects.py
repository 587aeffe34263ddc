"""After login the browser goes only to a page of this site: ``next`` is checked by the
server (the login page and its redirect for a logged-in user) and again by ``login.js`` in a
real browser, which is what parses the URL in the end (it drops tabs and newlines, reads ``\\``
as ``/``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from console.pages import _safe_next
from console.users import Users
from cti.app import Hotline
from cti.db import create_schema
from tests.console.conftest import TestClient, console_settings, login

FOREIGN = [
    "//evil.example/x",
    "/\t/evil.example/",  # /%09/evil.example/ once the query is decoded
    "/\n/evil.example/",
    "/\r/evil.example/",
    "\t//evil.example/",
    " //evil.example/",
    "/\\evil.example/",
    "\\/evil.example/",
    "/\t\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/%2F/evil.example",  # harmless as a path, but no need to let it through
    "/\x00/evil.example",
    "/\u3000/evil.example",
    "",
]
LOCAL = ["/reports", "/agent?ticket=20261201-0001", "/replay/12#t=30", "/"]


@pytest.mark.parametrize("value", FOREIGN)
def test_foreign_next_is_dropped(value: str) -> None:
    assert _safe_next(value) == ""


@pytest.mark.parametrize("value", LOCAL)
def test_local_next_is_kept(value: str) -> None:
    assert _safe_next(value) == value


def test_login_page_and_its_redirect_keep_to_the_site(client: TestClient) -> None:
    page = client.get("/login?next=/%09/evil.example/")
    assert '"next":""' in page.text
    page = client.get("/login?next=%2F%5Cevil.example%2F")
    assert '"next":""' in page.text
    login(client, "boss")
    r = client.get("/login?next=/%09/evil.example/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/wallboard"
    r = client.get("/login?next=/reports", follow_redirects=False)
    assert r.headers["location"] == "/reports"


# --- login.js in Chromium ---------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
async def test_login_js_goes_only_to_this_site(any_db_url: str, tmp_path: Path) -> None:
    """The page's ``next`` is forced to a foreign value on its way to the browser, as if the
    server had let it through: the script must still stay on the site."""
    from playwright.async_api import async_playwright

    from tests.console.browser import CHROMIUM, CHROMIUM_ARGS

    hotline = Hotline(console_settings(any_db_url, tmp_path), console=False)
    create_schema(hotline.engine)
    Users(hotline.sessions).create("boss", "password-boss", ["supervisor"])
    await hotline._start_console()
    base = f"http://127.0.0.1:{hotline.console_port}"
    landed: dict[str, str] = {}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for value in ("/\t/evil.example/", "/\\evil.example/", "//evil.example/"):
                    context = await browser.new_context()
                    page = await context.new_page()
                    await page.route("**/login", _forging(value))
                    # Requests to the foreign host are answered here: nothing leaves the machine.
                    await page.route("http://evil.example/**", _foreign)
                    await page.goto(base + "/login")
                    await page.fill("#username", "boss")
                    await page.fill("#password", "password-boss")
                    await page.click("#login-submit")
                    await page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
                    await asyncio.sleep(0.2)
                    landed[value] = page.url
                    await context.close()
            finally:
                await browser.close()
    finally:
        hotline._console_server.should_exit = True
        await asyncio.gather(hotline._console_task, return_exceptions=True)
        hotline.agents.stop()
        hotline.engine.dispose()
    assert landed == {value: base + "/wallboard" for value in landed}


def _forging(value: str) -> Any:
    async def forge(route: Any) -> None:
        response = await route.fetch()
        body = (await response.text()).replace('"next":""', '"next":' + json.dumps(value))
        await route.fulfill(response=response, body=body)

    return forge


async def _foreign(route: Any) -> None:
    await route.fulfill(status=200, content_type="text/html", body="<h1>evil</h1>")
