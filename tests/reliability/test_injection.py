"""Hostile values end to end: CR/LF, NUL and oversized text in caller names, ticket fields
and transfer targets never reach AMI or FastAGI as extra headers or commands; SQL only with
bound parameters; what the console serves as HTML is escaped."""

from __future__ import annotations

import ast
import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cti.errors import HotlineError
from cti.testing import ami_actions
from tests.cti.live import close_floor
from tests.reliability.helpers import ledger, open_site, site_data

ROOT = Path(__file__).resolve().parents[2]
SMUGGLED = "\r\nAction: Hangup\r\nChannel: PJSIP/8001"
HOSTILE_NAMES = [
    "张三" + SMUGGLED,
    "李\x00四\nAction: Originate",
    "王" * 2000,  # longer than every column that holds a name
    '"><script>alert(1)</script>',
]
# Variables the route's answer sets on the citizen's channel ([cti-route] splits HOTLINE_ROUTE)
ROUTE_VARIABLES = {"ROUTE_TARGET", "HOTLINE_HOLD", "HOTLINE_REC", "HOTLINE_TICKET"}


async def test_hostile_caller_names_and_targets_never_reach_ami_or_agi(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[list[tuple[str, str]]] = []
    real_dispatch = ami_actions.dispatch

    async def recording(sim: Any, session: Any, request: list[tuple[str, str]]) -> None:
        received.append(list(request))
        await real_dispatch(sim, session, request)

    monkeypatch.setattr(ami_actions, "dispatch", recording)
    floor = await open_site(site_data(2, skills=1), any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    refused: list[str] = []
    handles = []
    try:
        for i, name in enumerate(HOSTILE_NAMES):
            handle = sim.place_call(caller=f"1380000000{i}", name=name, did="12300", talk_s=None)
            handles.append(handle)
            await asyncio.wait_for(handle.connected.wait(), 5)
            call = hotline.tracker.find_call(handle.uniqueid, "pbx1")
            assert call is not None
            agent = call.agent_id
            for action, args in (
                ("blind_transfer", (agent, "9001" + SMUGGLED)),
                ("attended_transfer", (agent, "9001\x00")),
                ("callback", (agent, "13800000000" + SMUGGLED)),
                ("police", (agent, "T1" + SMUGGLED)),
                ("three_way", (agent, "shebao" + SMUGGLED)),
                ("blind_transfer", (agent, "9" * 5000)),
            ):
                with pytest.raises(HotlineError):
                    await getattr(hotline.control, action)(*args)
                refused.append(action)
            sim.hangup(handle.channel)
            assert await handle.wait(5) == "answered"
        # the name as stored: cut at the smuggled line, never carrying it
        assert await hotline.store.flush(10)
        (ticket,) = ledger(hotline.sessions)["ticket_calls"][handles[0].uniqueid]
        assert hotline.tickets.get(ticket).citizen_name == "张三"
    finally:
        await close_floor(floor)

    assert received and len(refused) == 6 * len(HOSTILE_NAMES)
    for message in received:
        keys = Counter(k for k, _ in message)
        assert keys["Action"] == 1, message
        assert all(n == 1 for k, n in keys.items() if k != "Variable"), message
        assert not any(re.search(r"[\r\n\x00]", v) for _, v in message), message
        action = dict(message)["Action"]
        assert action.lower() not in ("hangup", "originate", "redirect", "blindtransfer"), message
    for handle in handles:
        variables = handle.channel.variables
        for key, value in variables.items():
            assert not re.search(r"[\r\n\x00]", key + value), (key, value)
        assert ROUTE_VARIABLES <= set(variables)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("张三" + SMUGGLED, id="crlf"),
        pytest.param('"><script>alert(1)</script>', id="html"),
        pytest.param("李\x00四", id="nul"),
        pytest.param("王" * 200, id="oversized"),
    ],
)
async def test_hostile_caller_name_keeps_its_call_and_ticket(
    name: str, any_db_url: str, tmp_path: Path
) -> None:
    floor = await open_site(site_data(1, skills=1), any_db_url, tmp_path, sim_config={"scale": 0.1})
    sim, hotline = floor.sim, floor.hotline
    try:
        handle = sim.place_call(caller="13800000099", name=name, did="12300", talk_s=2)
        assert await handle.wait(5) == "answered"
        assert await hotline.store.flush(10)
        assert hotline.store.stats()["dead"] == 0
        book = ledger(hotline.sessions)
        assert book["rows"][handle.uniqueid].ended_at is not None
        assert len(book["ticket_calls"].get(handle.uniqueid, [])) == 1
    finally:
        await close_floor(floor)


# --- SQL: bound parameters only ----------------------------------------------------------

SQL_CALLS = {"text", "execute", "exec_driver_sql", "executescript", "executemany"}
PACKAGES = ("cti", "tickets", "recordings", "routing", "console", "agi_scripts")


def _dynamic(node: ast.AST, assigned: dict[str, ast.AST]) -> bool:
    """A string built at run time: f-string with fields, ``%``/``+`` on strings, ``.format``,
    or a local name assigned one of those."""
    if isinstance(node, ast.Name) and node.id in assigned:
        return _dynamic(assigned[node.id], {})
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join", "replace")
    )


def sql_formatting(source: str) -> list[str]:
    findings: set[str] = set()
    for scope in ast.walk(ast.parse(source)):
        if not isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assigned: dict[str, ast.AST] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    assigned[target.id] = node.value
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SQL_CALLS and _dynamic(node.args[0], assigned):
                findings.add(f"{node.lineno}: {ast.unparse(node)[:100]}")
    return sorted(findings)


def test_the_scan_finds_formatted_sql() -> None:
    planted = (
        "def f(session, name):\n"
        "    session.execute(text(f\"SELECT * FROM t WHERE a = '{name}'\"))\n"
        "    q = 'DELETE FROM t WHERE a = %s' % name\n"
        "    session.execute(q)\n"
        "    session.execute(text('SELECT 1 WHERE a = :a'), {'a': name})\n"
    )
    assert len(sql_formatting(planted)) == 2


def test_no_sql_is_built_from_strings() -> None:
    findings = {
        str(path.relative_to(ROOT)): hits
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (hits := sql_formatting(path.read_text(encoding="utf-8")))
    }
    assert findings == {}


# --- HTML ---------------------------------------------------------------------------------


def test_console_scripts_only_set_text() -> None:
    """The pages render every value from the API with textContent: no HTML sinks."""
    sinks = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(")
    found = {
        p.name: sinks.findall(p.read_text(encoding="utf-8"))
        for p in (ROOT / "console/static").glob("*.js")
    }
    assert {k: v for k, v in found.items() if v} == {}
