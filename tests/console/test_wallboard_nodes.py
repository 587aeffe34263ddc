"""The wallboard with two Asterisk nodes, in headless Chromium: each node's health (its link,
the seats registered on it, its calls), and a node that is lost shown as such while the other
goes on."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

from console.users import ensure_demo_users
from cti.app import Hotline
from cti.config import default_data, parse
from cti.testing.internode import link
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, Stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_wallboard_shows_each_nodes_health(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    a, b = (AsteriskSimulator(SimConfig(scale=0.05, system_name=n)) for n in ("a", "b"))
    link(a, "a", b, "b")
    data: dict[str, Any] = default_data()
    node = data["asterisk"][0]
    data["asterisk"] = [
        {**node, "name": "a", "port": await a.start(), "backoff_max_s": 0.5},
        {**node, "name": "b", "port": await b.start(), "backoff_max_s": 0.5},
    ]
    data["database"] = {"url": f"sqlite:///{tmp_path / 'hotline.db'}"}
    data["agi"] = {"port": 0}
    data["console"] = {
        "port": 0,
        "secret_key": secrets.token_urlsafe(32),
        "plain_http_loopback": True,
    }
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    settings = parse(data)
    hotline = Hotline(settings)
    try:
        await hotline.start()
        assert await hotline.wait_connected(5)
        a.register_phone("8001", ip="127.0.0.3")
        b.register_phone("8002", ip="127.0.0.4")
        b.register_phone("8003", ip="127.0.0.5")
        await asyncio.to_thread(ensure_demo_users, hotline.sessions, settings)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stack = Stack(a, hotline, browser)
            try:
                wall = await stack.person("supervisor", "demo-supervisor")
                await wall.goto(stack.url + "/wallboard")
                node_a = wall.locator('#node-health [data-node="a"]')
                node_b = wall.locator('#node-health [data-node="b"]')
                await node_b.filter(has_text="已注册座席 2").wait_for()
                assert "正常" in await node_a.inner_text()
                assert "已注册座席 1" in await node_a.inner_text()
                await b.stop()
                await node_b.filter(has_text="连接中断").wait_for()
                assert "已注册座席 0" in await node_b.inner_text()
                assert "正常" in await node_a.inner_text()
            finally:
                for context in stack.contexts:
                    await context.close()
                await browser.close()
    finally:
        await hotline.stop()
        for sim in (a, b):
            if sim.running:
                await sim.stop()
