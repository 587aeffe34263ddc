"""Calling a citizen back (回拨) from two desktops at once: the task is claimed in the
database, so only one of the agents' phones dials the citizen. The CTI, its console and the
Asterisk simulator run for real; the requests go over HTTP."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import cti.testing.ami_actions as sim_actions
from console.users import ensure_demo_users
from cti.app import Hotline
from cti.config import default_data, parse
from cti.models import CallbackTaskRow
from cti.testing.frames import Pairs, header
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator

SLOW_ORIGINATE_S = [0.0]


@pytest.fixture
async def floor(any_db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Hotline, list[Pairs]]]:
    received: list[Pairs] = []
    original = sim_actions.dispatch

    async def recording(sim: AsteriskSimulator, session: Any, request: Pairs) -> None:
        received.append(request)
        if header(request, "Action") == "Originate" and SLOW_ORIGINATE_S[0]:
            await asyncio.sleep(SLOW_ORIGINATE_S[0])  # a PBX slow to take the Originate
        await original(sim, session, request)

    sim_actions.dispatch = recording  # type: ignore[assignment]
    sim = AsteriskSimulator(SimConfig(scale=0.05))
    data: dict[str, Any] = default_data()
    data["asterisk"][0].update(port=await sim.start(), backoff_max_s=0.5)
    data["database"] = {"url": any_db_url}
    data["agi"] = {"port": 0}
    data["console"] = {
        "port": 0,
        "secret_key": secrets.token_urlsafe(32),
        "plain_http_loopback": True,
    }
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    hotline = Hotline(parse(data))
    try:
        await hotline.start()
        assert await hotline.wait_connected(5)
        sim.register_phone("8001")
        sim.register_phone("8002")
        await asyncio.to_thread(ensure_demo_users, hotline.sessions, hotline.settings)
        yield hotline, received
    finally:
        await hotline.stop()
        await sim.stop()
        sim_actions.dispatch = original  # type: ignore[assignment]
        SLOW_ORIGINATE_S[0] = 0.0


async def desk(hotline: Hotline, agent: str, seat: str) -> httpx.AsyncClient:
    """A desktop: logged in as ``agent`` (the demo's password) and at ``seat``."""
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hotline.console_port}")
    page = (await client.get("/login")).text
    marker = '"csrf":"'
    start = page.index(marker) + len(marker)
    csrf = page[start : page.index('"', start)]
    r = await client.post(
        "/api/login",
        json={"username": agent, "password": f"demo-{agent}"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf"]
    r = await client.post("/api/agents/me/login", json={"seat": seat})
    assert r.status_code == 200, r.text
    return client


def open_task(hotline: Hotline, caller: str = "13800000011") -> int:
    at = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    with hotline.sessions.begin() as s:
        row = CallbackTaskRow(caller=caller, first_call_at=at, last_call_at=at, status="open")
        s.add(row)
        s.flush()
        return row.id


def originates(received: list[Pairs]) -> list[str]:
    return [
        header(r, "Exten") or "" for r in received if (header(r, "Action") or "") == "Originate"
    ]


async def test_two_desktops_calling_back_at_once_dial_the_citizen_once(
    floor: tuple[Hotline, list[Pairs]],
) -> None:
    hotline, received = floor
    li, wang = await desk(hotline, "li", "A01"), await desk(hotline, "wang", "A02")
    try:
        task_id = open_task(hotline)
        answers = await asyncio.gather(
            li.post(f"/api/callbacks/{task_id}/call", json={"note": "li"}),
            wang.post(f"/api/callbacks/{task_id}/call", json={"note": "wang"}),
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 409], [r.text for r in answers]
        refused = next(r for r in answers if r.status_code == 409)
        assert refused.json()["error"] == "callback-taken"
        # Each request returned after its Originate was answered: none is still on its way.
        assert originates(received) == ["13800000011"]
        with hotline.sessions() as s:
            row = s.get(CallbackTaskRow, task_id)
            assert row is not None
            winner = "li" if answers[0].status_code == 200 else "wang"
            # "done" once the simulated citizen answered the callback (it may, by now)
            assert row.status in ("calling", "done"), row.status
            assert (row.attempts, row.assigned_agent) == (1, winner)
            assert row.note == winner
    finally:
        await li.aclose()
        await wang.aclose()


async def test_a_click_while_anothers_dial_is_on_its_way_is_refused(
    floor: tuple[Hotline, list[Pairs]],
) -> None:
    """The first agent's claim is in the database, its Originate not yet answered, their seat
    not ringing: a second agent's click is refused, and so is one after the first returned."""
    hotline, received = floor
    li, wang = await desk(hotline, "li", "A01"), await desk(hotline, "wang", "A02")
    SLOW_ORIGINATE_S[0] = 0.5
    try:
        task_id = open_task(hotline)
        first = asyncio.create_task(li.post(f"/api/callbacks/{task_id}/call", json={}))
        for _ in range(200):
            with hotline.sessions() as s:
                row = s.get(CallbackTaskRow, task_id)
                if row is not None and row.status == "calling":
                    break
            await asyncio.sleep(0.01)
        assert hotline.agents.get("li").state not in ("ringing", "on_call")
        second = await wang.post(f"/api/callbacks/{task_id}/call", json={})
        assert second.status_code == 409, second.text
        assert second.json()["error"] == "callback-taken"
        assert (await first).status_code == 200
        third = await wang.post(f"/api/callbacks/{task_id}/call", json={})
        assert third.status_code == 409, third.text
        assert originates(received) == ["13800000011"]
    finally:
        await li.aclose()
        await wang.aclose()


async def test_a_refused_dial_gives_the_task_back(floor: tuple[Hotline, list[Pairs]]) -> None:
    hotline, received = floor
    li = await desk(hotline, "li", "A01")
    try:
        task_id = open_task(hotline, caller="12a45")  # not a number: control refuses to dial
        r = await li.post(f"/api/callbacks/{task_id}/call", json={})
        assert r.status_code == 422, r.text
        assert originates(received) == []
        with hotline.sessions() as s:
            row = s.get(CallbackTaskRow, task_id)
            assert row is not None
            assert (row.status, row.attempts, row.assigned_agent) == ("open", 0, "")
    finally:
        await li.aclose()
