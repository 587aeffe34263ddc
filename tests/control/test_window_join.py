"""A window's staff act within moments of their phone joining a three-way call: their page
and their answer must not depend on the write-behind queue having caught up. The console
runs on the simulator here, with the store held back while the window joins."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console import passwords
from console.app import create_app
from console.users import Users
from tests.control.harness import Pbx, running_pbx


@pytest.fixture
async def floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Pbx, httpx.AsyncClient]]:
    monkeypatch.setattr(passwords, "N", 2**10)
    console = {"secret_key": secrets.token_urlsafe(32), "port": 0, "plain_http_loopback": True}
    async with running_pbx(tmp_path, console=console) as pbx:
        Users(pbx.hotline.sessions).create(
            "clerk", "password-clerk", ["window"], window_id="shebao"
        )
        app = create_app(pbx.hotline)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = await http.get("/login")
            marker = '"csrf":"'
            start = page.text.index(marker) + len(marker)
            token = page.text[start : page.text.index('"', start)]
            r = await http.post(
                "/api/login",
                json={"username": "clerk", "password": "password-clerk"},
                headers={"X-CSRF-Token": token},
            )
            assert r.status_code == 200, r.text
            http.headers["X-CSRF-Token"] = r.json()["csrf"]
            yield pbx, http


def _hold_the_store(pbx: Pbx) -> threading.Event:
    """The writer blocks on a task until the event is set (a slow disk, a busy database)."""
    release = threading.Event()
    pbx.hotline.store.submit_task(lambda: release.wait(10), "held")
    return release


async def _joined_while_the_store_is_held(pbx: Pbx) -> tuple[str, threading.Event]:
    pbx.login()
    _handle, call = await pbx.answered_call()
    assert await pbx.hotline.store.flush()  # the ticket is written; the window's call is not
    release = _hold_the_store(pbx)
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "three_way")
    await pbx.until(lambda: len(pbx.control.session_of("li")["members"]) == 3)
    return call.ticket_id, release


async def _release_soon(release: threading.Event) -> None:
    await asyncio.sleep(0.3)
    release.set()


async def test_the_window_page_and_answer_right_after_joining(
    floor: tuple[Pbx, httpx.AsyncClient],
) -> None:
    pbx, http = floor
    ticket_id, release = await _joined_while_the_store_is_held(pbx)

    releasing = asyncio.create_task(_release_soon(release))
    current = (await http.get("/api/window/current")).json()
    assert current["ticket_id"] == ticket_id, current
    assert current["call"]["ticket_id"] == ticket_id

    text = "社保窗口：补缴可在线办理。"
    r = await http.post(
        f"/api/tickets/{ticket_id}/window-outcomes", json={"window_id": "shebao", "text": text}
    )
    assert r.status_code == 200, r.text
    assert [o["text"] for o in r.json()["window_outcomes"]] == [text]
    await releasing


async def test_the_answer_through_call_control_right_after_joining(
    floor: tuple[Pbx, httpx.AsyncClient],
) -> None:
    pbx, http = floor
    ticket_id, release = await _joined_while_the_store_is_held(pbx)

    releasing = asyncio.create_task(_release_soon(release))
    text = "已核实缴费记录。"
    r = await http.post("/api/control/window-outcome", json={"ticket_id": ticket_id, "text": text})
    assert r.status_code == 200, r.text
    assert r.json()["ticket"]["window_outcomes"][0]["text"] == text
    await releasing


async def test_a_ticket_the_window_never_joined_is_still_missing_to_it(
    floor: tuple[Pbx, httpx.AsyncClient],
) -> None:
    """The wait is only for the window's own call in progress: another ticket answers 404 at
    once, and a window that did not answer was in no call."""
    pbx, http = floor
    pbx.sim.set_phone_behaviour("9001", answer="busy")
    pbx.login()
    _handle, call = await pbx.answered_call()
    assert await pbx.hotline.store.flush()
    await pbx.control.three_way("li", "shebao")
    await pbx.until(lambda: pbx.control.session_of("li")["state"] == "conference")
    body: dict[str, Any] = {"ticket_id": call.ticket_id, "text": "x"}
    r = await http.post("/api/control/window-outcome", json=body)
    assert r.status_code == 404 and r.json()["message"] == f"no ticket {call.ticket_id}"
    assert pbx.control._window_joins == {}
    current = (await http.get("/api/window/current")).json()
    assert current["ticket_id"] == "" and current["call"] is None
