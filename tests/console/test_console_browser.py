"""End to end in headless Chromium against the real stack (simulated Asterisk, the CTI, the
console): the agent desktop, the wallboard, the window page, the leader seat, replay and
audit. Screenshots at 1366x768 go to artifacts/screenshots/."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cti.models import CallbackTaskRow
from tests.console.browser import Stack, running_stack, shot
from tickets.statemachine import Actor

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CALLER = "13800000001"


def seed_history(stack: Stack) -> str:
    """An earlier ticket of the caller (answered on the spot), and another citizen's missed
    call waiting for a callback."""
    h = stack.hotline
    old = h.ticket_numbers.next()
    h.tickets.open_for_call(
        old,
        call_id="earlier-call",
        node="pbx1",
        caller=CALLER,
        caller_name="张三",
        did="12345",
        topic="综合咨询",
        agent_id="wang",
        answered_at=datetime.now(UTC) - timedelta(days=3),
    )
    h.tickets.update_fields(old, Actor("wang", frozenset({"agent"})), location="幸福路12号")
    h.tickets.transition(
        old, "answer", Actor("wang", frozenset({"agent"})), text="已告知社保缴费渠道"
    )
    first = datetime.now(UTC) - timedelta(hours=2)
    with h.sessions.begin() as s:
        s.add(
            CallbackTaskRow(
                caller="13900000009", topic="消费维权", first_call_at=first, last_call_at=first
            )
        )
    return old


PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def test_agent_takes_a_call_while_the_supervisor_watches_then_replays(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        h = stack.hotline
        old = await asyncio.to_thread(seed_history, stack)

        wall = await stack.person("supervisor", "demo-supervisor")
        assert wall.url.endswith("/wallboard")
        await wall.wait_for_selector("#conn[data-state=live]")
        await wall.wait_for_selector('[data-seat="A01"].s-empty')

        desk = await stack.person("li", "demo-li")
        assert desk.url.endswith("/agent")
        await desk.wait_for_selector("#conn[data-state=live]")
        await desk.wait_for_selector("#callbacks li:has-text('13900000009')")
        await desk.select_option("#seat-select", "A01")
        await desk.click("#btn-seat-login")
        await desk.wait_for_selector('#state-badge[data-state="ready"]')
        # The wallboard sees the agent's state change live.
        await wall.wait_for_selector('[data-seat="A01"].s-ready:has-text("李娜")')
        await shot(desk, "01-agent-desktop-ready")
        await shot(wall, "02-wallboard-agent-ready")

        # A citizen calls; the desktop pops the ticket with the caller's history.
        handle = stack.sim.place_call(CALLER, "张三", "12345", talk_s=None)
        await desk.wait_for_selector(f"#call-caller:has-text('{CALLER}')")
        await desk.wait_for_selector("#ticket-form:not([hidden])", timeout=10_000)
        ticket_id = (await desk.text_content("#ticket-id") or "").strip()
        assert ticket_id and ticket_id != old
        await desk.wait_for_selector(f"#history li:has-text('{old}')")
        await desk.wait_for_selector("#history li:has-text('幸福路12号')")
        # The screen pop's caller line: no open request (the earlier one was answered), and
        # when the caller last called.
        await desk.wait_for_selector('#caller-summary[data-open="0"]:not([data-last-contact=""])')
        await wall.wait_for_selector(f"#calls tr:has-text('{CALLER}')")
        await wall.wait_for_selector('[data-seat="A01"].s-on_call')
        await shot(desk, "03-agent-desktop-call-pop")
        await shot(wall, "04-wallboard-live-call")

        # She fills the five elements, looks up the knowledge base, and dispatches.
        await desk.fill("#f-citizen_name", "张三")
        await desk.fill("#f-occurred", "最近一周每晚22点后")
        await desk.fill("#f-location", "和平区幸福路18号工地")
        await desk.fill("#f-category", "投诉")
        await desk.fill("#f-description", "工地夜间施工噪音扰民，影响休息，要求查处。")
        await desk.fill("#kb-q", "夜间施工噪音")
        await desk.press("#kb-q", "Enter")
        await desk.wait_for_selector("#kb-results li:has-text('夜间施工噪音扰民投诉')")
        await desk.select_option("#dept-select", "zjj")
        await desk.click("#btn-dispatch")
        await desk.wait_for_selector('#ticket-state[data-state="dispatched"]')
        await shot(desk, "05-agent-ticket-dispatched")
        # A photo the citizen sent is attached to the ticket.
        await desk.set_input_files(
            "#attach-file",
            files=[{"name": "工地照片.png", "mimeType": "image/png", "buffer": PHOTO}],
        )
        await desk.wait_for_selector("#attachment-list li a:has-text('工地照片.png')")
        view = await asyncio.to_thread(h.tickets.get, ticket_id)
        assert view.state == "dispatched" and view.lead_department_id == "zjj"
        assert (view.citizen_name, view.location, view.category) == (
            "张三",
            "和平区幸福路18号工地",
            "投诉",
        )
        assert [(a["name"], a["size"]) for a in view.attachments] == [("工地照片.png", len(PHOTO))]

        # She hangs up from the desktop: wrap-up, seen live on the wallboard too.
        await desk.click("#btn-hangup")
        await handle.wait(10)
        await desk.wait_for_selector('#state-badge[data-state="wrap_up"]')
        await desk.wait_for_selector("#wrapup:not([hidden])")
        await wall.wait_for_selector('[data-seat="A01"].s-wrap_up')
        await wall.wait_for_selector(f"#calls tr:has-text('{CALLER}')", state="detached")
        await shot(wall, "06-wallboard-wrap-up")
        await desk.click("#btn-wrapup-done")
        await desk.wait_for_selector('#state-badge[data-state="ready"]')
        await wall.wait_for_selector('[data-seat="A01"].s-ready')

        # The same wallboard on a wall display: type scales with the screen.
        await wall.set_viewport_size({"width": 1920, "height": 1080})
        await wall.goto(stack.url + "/wallboard?wall=1")
        await wall.wait_for_selector('body.tv [data-seat="A01"].s-ready')
        await wall.wait_for_selector("#k-answered:has-text('1')")
        await shot(wall, "07-wallboard-wall-display")
        await wall.set_viewport_size({"width": 1366, "height": 768})

        # The supervisor finds the call's recording on the reports page and replays it.
        recording = await stack.until(lambda: h.recordings.find(ticket_id=ticket_id))
        rec_id = recording[0].id
        await wall.goto(stack.url + "/reports")
        await wall.wait_for_selector("#hourly-chart[data-drawn='24']")
        await wall.fill("#rec-ticket", ticket_id)
        await wall.click("#rec-form button[type=submit]")
        await wall.wait_for_selector(f'tr[data-recording="{rec_id}"]')
        await shot(wall, "08-reports", full_page=True)
        await wall.click(f'tr[data-recording="{rec_id}"] a.replay-link')
        await wall.wait_for_url(f"**/replay/{rec_id}")
        await stack.until(lambda: h.recordings.audit_log(recording_id=rec_id))
        await shot(wall, "09-replay")

        # The administrator's audit page has the entry.
        admin = await stack.person("admin", "demo-admin")
        await admin.goto(stack.url + "/audit")
        row = admin.locator("#replay-audit tr", has_text="supervisor")
        await row.first.wait_for()
        assert f"#{rec_id}" in (await row.first.text_content() or "")
        assert "回放" in (await row.first.text_content() or "")
        await admin.wait_for_selector("#login-audit tr:has-text('li')")
        await shot(admin, "10-audit")
        entry = h.recordings.audit_log(recording_id=rec_id)[0]
        assert (entry.username, entry.action) == ("supervisor", "play")


async def test_leader_takes_a_call_and_brings_the_window_in(tmp_path: Path) -> None:
    async with running_stack(tmp_path, leader_shift=True) as stack:
        h = stack.hotline
        clerk = await stack.person("window-shebao", "demo-window-shebao")
        assert clerk.url.endswith("/window")
        await clerk.wait_for_selector("#conn[data-state=live]")
        await clerk.wait_for_selector("#window-name:has-text('社保窗口')")

        leader = await stack.person("mayor", "demo-mayor")
        await leader.wait_for_selector("body.leader")
        await leader.wait_for_selector("#leader-banner:not([hidden]):has-text('市长')")
        await leader.select_option("#seat-select", "A02")
        await leader.click("#btn-seat-login")
        await leader.wait_for_selector('#state-badge[data-state="ready"]')

        handle = stack.sim.place_call("13700000002", "李四", "12345", talk_s=None)
        await leader.wait_for_selector("#leader-badge:not([hidden])")
        await leader.wait_for_selector("#ticket-form:not([hidden])", timeout=10_000)
        ticket_id = (await leader.text_content("#ticket-id") or "").strip()
        await shot(leader, "11-leader-desktop-call")

        await leader.select_option("#window-select", "shebao")
        await leader.click("#btn-three-way")
        await clerk.wait_for_selector(f"#w-ticket-id:has-text('{ticket_id}')", timeout=10_000)
        await leader.wait_for_selector("#btn-leave:not([hidden])")  # told live: window joined
        await clerk.fill("#outcome-text", "养老保险可在社保窗口或线上补缴，需带身份证。")
        await clerk.click("#btn-outcome")
        await clerk.wait_for_selector("#outcome-msg:has-text('答复已写入工单')")
        await clerk.wait_for_selector("#w-outcomes li:has-text('线上补缴')")
        await shot(clerk, "12-window-page")
        view: Any = await asyncio.to_thread(h.tickets.get, ticket_id)
        assert [o["window_id"] for o in view.window_outcomes] == ["shebao"]
        # The leader's desktop shows the window's answer as it is written (TicketUpdated).
        await leader.wait_for_selector("#window-outcome-list li:has-text('线上补缴')")
        # The leader leaves; the citizen stays with the clerk until the clerk hangs up.
        await leader.click("#btn-hangup")
        await leader.wait_for_selector('#state-badge[data-state="wrap_up"]')
        assert not handle.done.is_set()
        for channel in stack.sim.channels_of("9001"):
            stack.sim.hangup(channel)
        assert await handle.wait(10) == "answered"
        await clerk.wait_for_selector("#window-status:has-text('当前没有三方通话')")
