"""The real stack for the browser tests: the Asterisk simulator on loopback, a ``Hotline``
wired to it with the console on a free port, and headless Chromium (Debian's, through
Playwright's Python package) with one context per person at 1366x768."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.users import ensure_demo_users
from cti.app import Hotline
from cti.config import default_data, parse
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 768}
DEPARTMENTS = [
    {"id": "rsj", "name": "市人社局", "contact_phone": "13900000001"},
    {"id": "zjj", "name": "市住建局", "contact_phone": "13900000002"},
]


def stack_settings(
    ami_port: int,
    tmp: Path,
    *,
    leader_shift: bool = False,
    language: str | None = None,
    sections: dict[str, Any] | None = None,
) -> Any:
    data = default_data()
    if language is not None:
        data["site"]["language"] = language
    data["asterisk"][0].update(port=ami_port, backoff_max_s=0.5, ping_interval_s=60)
    data["database"] = {"url": f"sqlite:///{tmp / 'hotline.db'}"}
    data["agi"] = {"port": 0}
    data["console"] = {
        "port": 0,
        "secret_key": secrets.token_urlsafe(32),
        "plain_http_loopback": True,  # Chromium on http://127.0.0.1
    }
    data["recordings"] = {"dir": str(tmp / "rec"), "settle_s": 0}
    data.setdefault("tickets", {})["attachments_dir"] = str(tmp / "attachments")
    data["control"] = {"wrapup_s": 120}
    data["departments"] = DEPARTMENTS
    # A window that is always staffed, so that the test does not depend on the clock.
    data["windows"][0]["hours"] = []
    if leader_shift:
        now = datetime.now(UTC)
        data["leader_shifts"] = [
            {
                "agent": "mayor",
                "seat": "A02",
                "start": now - timedelta(hours=1),
                "end": now + timedelta(hours=2),
                "topics": ["综合咨询"],
                "title": "市长",
            }
        ]
    data.update(sections or {})  # whole sections a test sets (SMS, intake)
    return parse(data)


@dataclass
class Stack:
    sim: AsteriskSimulator
    hotline: Hotline
    browser: Any
    contexts: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.hotline.console_port}"

    async def person(self, username: str, password: str) -> Any:
        """A browser context (its own cookies) logged in through the login page."""
        context = await self.browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        self.contexts.append(context)
        page = await context.new_page()
        await page.goto(self.url + "/login")
        await page.fill("#username", username)
        await page.fill("#password", password)
        await page.click("#login-submit")
        await page.wait_for_url(lambda url: "/login" not in url)
        return page

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.05)


async def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@contextlib.asynccontextmanager
async def running_stack(
    tmp: Path,
    *,
    leader_shift: bool = False,
    language: str | None = None,
    sections: dict[str, Any] | None = None,
    write_recordings: bool = True,
) -> AsyncIterator[Stack]:
    """``write_recordings=False``: the test writes the MixMonitor files itself (real speech
    at the pace it is spoken, where the simulator's clock runs faster)."""
    from playwright.async_api import async_playwright

    sim = AsteriskSimulator(
        SimConfig(scale=0.05, write_recordings=write_recordings, rec_dir=str(tmp / "sim-rec"))
    )
    port = await sim.start()
    settings = stack_settings(
        port, tmp, leader_shift=leader_shift, language=language, sections=sections
    )
    hotline = Hotline(settings)
    try:
        await hotline.start()
        sim.config.agi_port = hotline.agi.port
        assert await hotline.wait_connected(5)
        for i, ext in enumerate(("8001", "8002", "8003", "9001")):
            sim.register_phone(ext, ip=f"127.0.0.{3 + i}", answer_delay=0.05)
        await asyncio.to_thread(ensure_demo_users, hotline.sessions, settings)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stack = Stack(sim, hotline, browser)
            try:
                await stack.until(lambda: not sim.heartbeat_stale(), 5)
                yield stack
            finally:
                for context in stack.contexts:
                    await context.close()
                await browser.close()
    finally:
        await hotline.stop()
        await sim.stop()
