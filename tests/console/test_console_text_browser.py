"""Every console page, in headless Chromium, as each role that may open it, in each language
with a catalogue, with data on it (calls live and finished, tickets, recordings in every
status, audit entries of every kind): no catalogue key may show instead of its text.

The console runs with HOTLINE_I18N_MARK_MISSING=1, so a key the language lacks shows as
``⟦missing:key⟧`` (no fallback to zh-CN, on the server or in the scripts); a key-shaped word
of one of the catalogue's namespaces (``recording.status.recording``) fails the test as well.
The KPIs of the reports page and the wallboard must carry their definition and period, and
today's 接通率 must read the same in the counters and in the period table's hotline row."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from console import i18n
from console.pages import NAV
from console.security import ROLES
from console.users import Users
from cti.models import CallerFlagEvent, CallerFlagRow, CallRow
from recordings.models import Recording, ReplayAudit
from tests.console.browser import Stack, running_stack, shot
from tests.console.test_console_browser import seed_history
from tests.console.test_i18n_keys import DYNAMIC

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CALLER = "13800000001"
# One login per role (the demo users: password "demo-<username>").
PEOPLE = {
    "agent": "li",
    "leader": "mayor",
    "window": "window-shebao",
    "supervisor": "supervisor",
    "admin": "admin",
    "department": "dept-rsj",
}
# What shows that a page has its data, by path.
READY = {
    "/agent": "#conn[data-state=live]",
    "/window": "#conn[data-state=live]",
    "/wallboard": "#kpis [data-period=today][title]",
    "/reports": "#kpi-head th[data-kpi][title]",
    "/audit": "#replay-audit tr",
    "/callers": "#flag-history tr",
    "/home": "#home-links li",
    "/docs": "#docs table",
}

# Every text node outside scripts, and the attributes a person reads.
SHOWN_TEXT = """() => {
  const out = [document.title];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const parent = walk.currentNode.parentElement;
    if (parent && !parent.closest("script, style")) out.push(walk.currentNode.nodeValue);
  }
  for (const node of document.querySelectorAll("[title], [placeholder], [aria-label], [alt]")) {
    for (const name of ["title", "placeholder", "aria-label", "alt"]) {
      if (node.hasAttribute(name)) out.push(node.getAttribute(name));
    }
  }
  return out.join("\\n");
}"""


def pages_of(role: str) -> list[str]:
    """The pages a role may open: its entries of the navigation, home and the API docs."""
    return [href for href, _, roles in NAV if role in roles] + ["/home", "/docs"]


def untranslated(text: str) -> list[str]:
    namespaces = sorted({k.split(".")[0] for k in i18n.own_catalogue(i18n.DEFAULT)})
    key = r"\b(?:" + "|".join(namespaces) + r")\.[a-z0-9_-]+(?:[./][a-z0-9_-]+)*"
    return sorted(set(re.findall(r"⟦missing:[^⟧]*⟧", text)) | set(re.findall(key, text)))


def seed(stack: Stack) -> None:
    """Finished calls of today in every direction, a recording in every status, replay and
    login audit entries of every kind, on top of an earlier ticket and a missed call."""
    h = stack.hotline
    seed_history(stack)
    now = datetime.now(UTC)
    tz = ZoneInfo(h.settings.site.timezone)
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    at = max(now - timedelta(minutes=5), midnight.astimezone(UTC) + timedelta(seconds=1))
    ended = at + timedelta(minutes=1)
    with h.sessions.begin() as s:
        for n, (direction, answered, wait) in enumerate(
            [("inbound", True, 4.0), ("inbound", True, 25.0), ("inbound", False, 40.0)]
            + [("callback", False, 0.0), ("internal", False, 0.0)]
        ):
            s.add(
                CallRow(
                    node="pbx1",
                    linkedid=f"seed-{n}",
                    direction=direction,
                    caller=CALLER,
                    started_at=at,
                    answered_at=at + timedelta(seconds=wait) if answered else None,
                    ended_at=ended,
                    answered=answered,
                    abandoned=direction == "inbound" and not answered,
                    wait_s=wait,
                    agent_id="li" if answered else "",
                    state="ended",
                )
            )
        for n, status in enumerate(sorted(DYNAMIC["recording.status."]())):
            s.add(
                Recording(
                    call_id=f"seed-rec-{n}",
                    agent_id="li",
                    path=f"/var/spool/asterisk/monitor/seed-{n}.wav",
                    started_at=at,
                    ended_at=ended,
                    duration_s=60.0,
                    status=status,
                )
            )
        for action in sorted(DYNAMIC["audit.action."]()):
            s.add(ReplayAudit(user_id=1, username="supervisor", action=action, recording_id=1))
        for n, kind in enumerate(sorted(DYNAMIC["callers.kind."]())):
            caller = f"1370000000{n}"
            s.add(CallerFlagRow(caller=caller, kind=kind, note="核实", updated_by="supervisor"))
            for action in sorted(DYNAMIC["callers.action."]()):
                s.add(
                    CallerFlagEvent(
                        caller=caller, action=action, kind=kind, reason="核实", actor="supervisor"
                    )
                )
    users = Users(h.sessions)
    for outcome in sorted(DYNAMIC["audit.outcome."]()):
        users.record_login("li", outcome, remote_addr="127.0.0.1")


async def read_page(page: Any, path: str) -> str:
    """The text a person sees on ``path`` (opened already), once its data is there."""
    await page.wait_for_selector(READY[path], state="attached")
    if path == "/reports":
        await page.wait_for_selector("#hourly-chart[data-drawn='24']")
        await page.wait_for_selector("#today-kpis [data-kpi][title]")
        await page.wait_for_selector("#recordings tr")  # a leader sees only their own
    if path == "/wallboard":
        await page.wait_for_selector("#calls tr")
    if path == "/audit":
        await page.wait_for_selector("#login-audit tr")
    if path == "/callers":
        await page.wait_for_selector("#flags tr")
    return str(await page.evaluate(SHOWN_TEXT))


async def check_kpis_explained(page: Any, language: str) -> None:
    """Each KPI tile or column names its definition (kpi.def.<name>) and its period."""
    messages = i18n.own_catalogue(language)
    found = await page.eval_on_selector_all(
        "[data-kpi]", "nodes => nodes.map(n => [n.getAttribute('data-kpi'), n.title])"
    )
    assert found
    for name, title in found:
        definition, _, period = title.partition("\n")
        assert definition == messages[f"kpi.def.{name}"], name
        assert period.strip(), name


async def visit(stack: Stack, language: str, role: str, page: Any) -> None:
    for path in pages_of(role):
        if page.url != stack.url + path:  # the agent's desk is open already, with its call
            await page.goto(stack.url + path)
        text = await read_page(page, path)
        assert untranslated(text) == [], (language, role, path)
        if path in ("/reports", "/wallboard"):
            await check_kpis_explained(page, language)
        if path == "/reports" and role == "supervisor":
            statuses = await page.eval_on_selector_all(
                "#recordings tr[data-recording]", "rows => rows.map(r => r.children[5].textContent)"
            )
            messages = i18n.own_catalogue(language)
            names = DYNAMIC["recording.status."]()
            assert set(statuses) == {messages[f"recording.status.{n}"] for n in names}
        await shot(page, f"text-{language}-{role}-{path.strip('/')}", full_page=True)


@pytest.mark.parametrize("language", i18n.languages())
async def test_no_page_shows_a_catalogue_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    monkeypatch.setenv(i18n.MARK_ENV, "1")
    async with running_stack(tmp_path, language=language) as stack:
        await asyncio.to_thread(seed, stack)

        # The agent takes a live call: call control, the ticket form and the history show.
        desk = await stack.person(PEOPLE["agent"], "demo-" + PEOPLE["agent"])
        await desk.wait_for_selector("#conn[data-state=live]")
        await desk.select_option("#seat-select", "A01")
        await desk.click("#btn-seat-login")
        await desk.wait_for_selector('#state-badge[data-state="ready"]')
        stack.sim.place_call(CALLER, "张三", "12345", talk_s=None)
        await desk.wait_for_selector("#ticket-form:not([hidden])", timeout=10_000)
        await desk.click("#btn-mute")  # its notice is a key built from the action's name
        toast = desk.locator(".toast").first
        await toast.wait_for()
        assert untranslated(await toast.text_content() or "") == []

        assert set(PEOPLE) == set(ROLES)
        for role in ROLES:
            user = PEOPLE[role]
            page = desk if role == "agent" else await stack.person(user, "demo-" + user)
            await visit(stack, language, role, page)

        # A page a role may not open, and one that does not exist.
        for path in ("/audit", "/no-such-page"):
            await desk.goto(stack.url + path)
            await desk.wait_for_selector("body.page-error")
            assert untranslated(str(await desk.evaluate(SHOWN_TEXT))) == [], path
        login = await stack.browser.new_page()
        await login.goto(stack.url + "/login")
        await login.wait_for_selector("#username")
        assert untranslated(str(await login.evaluate(SHOWN_TEXT))) == []
        await login.close()


async def test_today_and_the_period_table_show_the_same_connection_rate(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await asyncio.to_thread(seed, stack)
        page = await stack.person("supervisor", "demo-supervisor")
        await page.goto(stack.url + "/reports")
        await page.wait_for_selector("#today-kpis [data-kpi=connection_rate]")
        await page.wait_for_selector("#kpi-body tr")
        today = await page.text_content("#today-kpis [data-kpi=connection_rate] .v")
        column = await page.eval_on_selector_all(
            "#kpi-head th", "ths => ths.findIndex(th => th.dataset.kpi === 'connection_rate')"
        )
        table = await page.eval_on_selector(
            "#kpi-body tr", f"tr => tr.children[{column}].textContent"
        )
        # 2 of the 3 citizens' calls with an outcome were answered
        assert today == table == "66.7%"
