"""Shared by the reliability tests: site configurations of any size, the CDR setting, a floor
of simulator + CTI in this process, and polling."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from cti.app import Hotline
from cti.config import Settings, default_data, parse
from cti.models import CallbackTaskRow, CallRow
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.cti.live import Floor
from tickets.models import Ticket, TicketCall


def site_data(seats: int, skills: int = 4, first_extension: int = 8001) -> dict[str, Any]:
    """A site with ``seats`` seats and as many agents over ``skills`` skills, one hotline
    number per skill (DIDs 12300, 12301, ...), every agent with two skills."""
    data = default_data()
    names = [f"skill{k:02d}" for k in range(skills)]
    data["hotlines"] = [
        {"did": str(12300 + k), "name": f"热线{k:02d}", "topic": f"话题{k:02d}", "skill": name}
        for k, name in enumerate(names)
    ]
    data["routing"] = {"default_skill": names[0]}
    data["seats"] = [
        {"id": f"S{i:05d}", "extension": str(first_extension + i), "room": "受理大厅"}
        for i in range(seats)
    ]
    data["agents"] = [
        {
            "id": f"a{i:05d}",
            "name": f"坐席{i:05d}",
            "skills": {names[i % skills]: 8, names[(i + 1) % skills]: 5},
        }
        for i in range(seats)
    ]
    data["windows"] = []
    # Its own console key, as a site has (a known one is refused); the tests talk plain HTTP
    # to 127.0.0.1.
    data["console"] = {"secret_key": secrets.token_urlsafe(32), "plain_http_loopback": True}
    return data


def extensions(settings: Settings) -> list[str]:
    return [s.extension for s in settings.seats if s.kind == "seat"]


def with_cdr_path(settings: Settings, path: str) -> Settings:
    """``[[asterisk]] cdr_path`` on every node (a copy: settings are frozen)."""
    nodes = [n.model_copy(update={"cdr_path": path}) for n in settings.asterisk]
    return settings.model_copy(update={"asterisk": nodes})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def sim_for(settings: Settings, tmp: Path, **config: Any) -> AsteriskSimulator:
    endpoints = {s.extension: f"Seat {s.extension}" for s in settings.seats}
    return AsteriskSimulator(SimConfig(endpoints=endpoints, rec_dir=str(tmp / "rec"), **config))


async def open_site(
    data: dict[str, Any],
    db_url: str,
    tmp: Path,
    *,
    sim_config: dict[str, Any] | None = None,
    ready: bool = True,
    console: bool = False,
    cdr_path: str = "",
) -> Floor:
    """Simulator and CTI in this process, every seat's phone registered, every agent logged
    in at the seat of the same index (ready unless ``ready`` is false). With ``cdr_path``
    the simulator writes CDR lines there and the CTI reads them."""
    settings = parse(data)
    sim = sim_for(settings, tmp, **{**(sim_config or {}), "cdr_path": cdr_path})
    port = await sim.start()
    data["asterisk"][0].update(port=port)
    data["database"] = {"url": db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp / "rec")}
    data.setdefault("control", {})["wrapup_s"] = 0
    settings = parse(data)
    hotline = Hotline(with_cdr_path(settings, cdr_path) if cdr_path else settings, console=console)
    floor = Floor(sim, hotline)
    await hotline.start()
    sim.config.agi_port = hotline.agi.port
    for i, ext in enumerate(extensions(hotline.settings)):
        sim.register_phone(ext, ip=f"127.0.{1 + i // 250}.{1 + i % 250}", answer_delay=0.02)
    # Generous waits: on a loaded machine a start takes seconds, and a slow start is not
    # what these tests are about.
    assert await hotline.wait_connected(15)
    await until(lambda: not sim.heartbeat_stale(), 15)
    for agent, ext in zip(hotline.settings.agents, extensions(hotline.settings), strict=False):
        await until(lambda e=ext: hotline.seats.get(e).usable, 15)
        hotline.agents.login(agent.id, ext, ready=ready)
    return floor


def ledger(sessions: Any, node: str = "pbx1") -> dict[str, Any]:
    """What the database holds about calls: rows by Linkedid, ticket calls by call id,
    tickets, callback tasks by caller."""
    with sessions() as s:
        rows = {r.linkedid: r for r in s.scalars(select(CallRow).where(CallRow.node == node))}
        ticket_calls: dict[str, list[str]] = {}
        for tc in s.scalars(select(TicketCall).where(TicketCall.node == node)):
            ticket_calls.setdefault(tc.call_id, []).append(tc.ticket_id)
        tickets = int(s.scalar(select(func.count()).select_from(Ticket)) or 0)
        callbacks = {t.caller: t for t in s.scalars(select(CallbackTaskRow))}
        for obj in (*rows.values(), *callbacks.values()):
            s.expunge(obj)
    return {"rows": rows, "ticket_calls": ticket_calls, "tickets": tickets, "callbacks": callbacks}
