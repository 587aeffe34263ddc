"""A standby CTI takes over: two real ``hotline serve`` processes on one PostgreSQL, the
simulator asking both FastAGI addresses (CTI_AGI, then CTI_AGI_2 when refused), calls
arriving all along while the leader is killed with SIGKILL halfway.

What must hold: the standby leads (a new term of the lease), every caller is answered (by
the CTI's routes, or by the fallback queue while no CTI leads), every call has exactly one
ticket of its own, every SLA timer fires once whichever process runs it, and the agents'
desktops go on at the new leader's console with the session they had. The takeover time,
from the SIGKILL to the new leader answering its first route, is measured and recorded
(artifacts/takeover.json), not asserted.

The simulator nodes are a list: the floor is one node here; a second node takes its place
in ``nodes`` with its own seats.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from console import passwords
from console.users import Users
from cti.config import parse
from cti.db import create_schema, make_engine, session_factory
from cti.models import JobClaim
from cti.testing.pbx import AsteriskSimulator, CallHandle
from tests.conftest import PG_URL
from tests.reliability.cti_process import ROOT, CtiProcess
from tests.reliability.helpers import free_port, ledger, sim_for, site_data, until
from tickets.models import Ticket, TicketCall, TicketEvent

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SEATS = 6
CALLS = 40  # the stream; the leader is killed when half of it has arrived
GAP_S = 0.15  # between two arrivals
TALK_S = 10.0  # simulated seconds (1 s at scale 0.1)
TOPIC = "话题00"

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="two CTIs on one database need PostgreSQL (HOTLINE_TEST_PG_URL)"
)


class ServeProcess(CtiProcess):
    """``hotline serve`` started without waiting for it to lead: its stdout's first line
    says when it does (a standby prints it at its takeover)."""

    def launch(self) -> None:
        cmd = self.command()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("HOTLINE_CONFIG", None)
        self.leading_at: float | None = None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=log
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                if line.startswith(b"hotline: console on") and self.leading_at is None:
                    self.leading_at = time.monotonic()
        except (ValueError, OSError):
            pass  # the pipe was closed by stop()

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")


class Desktop:
    """An agent's browser: one cookie jar, whichever console URL it talks to."""

    def __init__(self, agent: str, seat: str) -> None:
        self.agent, self.seat = agent, seat
        self.client = httpx.AsyncClient(timeout=10)
        self.csrf = ""

    async def login(self, base: str) -> None:
        page = await self.client.get(f"{base}/login")
        page.raise_for_status()
        marker = '"csrf":"'
        start = page.text.index(marker) + len(marker)
        token = page.text[start : page.text.index('"', start)]
        r = await self.client.post(
            f"{base}/api/login",
            json={"username": self.agent, "password": f"pw-{self.agent}"},
            headers={"X-CSRF-Token": token},
        )
        r.raise_for_status()
        self.csrf = r.json()["csrf"]
        r = await self.client.post(
            f"{base}/api/agents/me/login",
            json={"seat": self.seat, "ready": True},
            headers={"X-CSRF-Token": self.csrf},
        )
        r.raise_for_status()

    async def post(self, base: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"{base}{path}", json=body, headers={"X-CSRF-Token": self.csrf}
        )


async def health(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{base}/healthz")).json()  # type: ignore[no-any-return]


@pytest.mark.slow
async def test_standby_takes_over_when_the_leader_is_killed(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "N", 2**10)  # the hash records its cost: cheap logins
    cdr = tmp_path / "cdr.csv"
    data = site_data(SEATS, skills=1)
    ami_secret = data["asterisk"][0]["secret"] = secrets.token_urlsafe(16)
    # Timers that fall due around the takeover: 3 per dispatched ticket.
    data["tickets"] = {
        "rules": [{"category": TOPIC, "limit": "7s", "response_limit": "5s", "remind_before": 0.5}]
    }
    agi = {"a": free_port(), "b": free_port()}
    consoles = {"a": free_port(), "b": free_port()}
    nodes: list[AsteriskSimulator] = [
        sim_for(
            parse(data),
            tmp_path,
            secret=ami_secret,
            scale=0.1,
            cdr_path=str(cdr),
            agi_port=agi["a"],
            agi_port_2=agi["b"],
        )
    ]
    sim = nodes[0]
    await sim.start()
    data["asterisk"][0].update(port=sim.ami_port, backoff_max_s=1.0, ping_interval_s=1.0)
    data["database"] = {"url": any_db_url}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data["control"] = {"wrapup_s": 0}
    engine = make_engine(any_db_url)
    create_schema(engine)
    sessions = session_factory(engine)
    users = Users(sessions)
    seats = {f"a{i:05d}": str(8001 + i) for i in range(SEATS)}
    for agent in seats:
        users.create(agent, f"pw-{agent}", ["agent"], agent_id=agent, display_name=agent)
    for ext in seats.values():
        sim.register_phone(ext, ip=f"127.0.0.{int(ext) - 7990}", answer_delay=0.02)
    cti: dict[str, ServeProcess] = {}
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        own = json.loads(json.dumps(data))
        own["agi"] = {"port": agi[name]}
        own["console"].update(port=consoles[name])
        own["ha"] = {"address": f"cti-{name}", "standby": True}
        cti[name] = ServeProcess(own, workdir, cdr_path=str(cdr))
    base = {name: f"http://127.0.0.1:{port}" for name, port in consoles.items()}
    desktops = [Desktop(agent, ext) for agent, ext in seats.items()]
    calls: list[CallHandle] = []
    placed_at: dict[str, float] = {}

    def call() -> CallHandle:
        handle = sim.place_call(
            caller=str(13700000000 + len(calls)), name="市民", did="12300", talk_s=TALK_S
        )
        calls.append(handle)
        placed_at[handle.uniqueid] = time.monotonic()
        return handle

    try:
        # --- a leads, b waits on standby ----------------------------------------------
        cti["a"].launch()
        await until(lambda: cti["a"].leading_at is not None, 30)
        cti["b"].launch()
        await until(lambda: cti["b"].logged("leadership: standby"), 30)
        assert cti["b"].leading_at is None
        await until(lambda: not sim.heartbeat_stale(), 10)
        for desk in desktops:
            await desk.login(base["a"])
        before = await health(base["a"])
        assert before["leadership"]["role"] == "leader"
        assert before["leadership"]["leader_address"] == "cti-a"

        # --- tickets with timers due around the takeover -------------------------------
        first = [call() for _ in range(SEATS)]
        for handle in first:
            await asyncio.wait_for(handle.connected.wait(), 10)
        await until(lambda: all(h.uniqueid in ledger(sessions)["ticket_calls"] for h in first), 10)
        dispatched = []
        for handle in first:
            (ticket,) = ledger(sessions)["ticket_calls"][handle.uniqueid]
            r = await desktops[0].post(
                base["a"],
                f"/api/tickets/{ticket}/transitions",
                {"action": "dispatch", "data": {"department": "zjj"}},
            )
            assert r.status_code == 200, r.text
            dispatched.append(ticket)

        # --- the stream, and SIGKILL halfway -------------------------------------------
        killed_at = 0.0
        for i in range(CALLS):
            if i == CALLS // 2:
                killed_at = time.monotonic()
                cti["a"].kill()
            call()
            await asyncio.sleep(GAP_S)
        await until(lambda: cti["b"].leading_at is not None, 15)
        # The first call the new leader routed: its answer carries a ticket number.
        after_kill = [h for h in calls if placed_at[h.uniqueid] > killed_at]

        def first_route() -> float | None:
            routed = [
                placed_at[h.uniqueid]
                for h in after_kill
                if h.channel.variables.get("HOTLINE_TICKET")
            ]
            return min(routed) if routed else None

        while first_route() is None:
            call()
            after_kill.append(calls[-1])
            await asyncio.sleep(GAP_S)
        for handle in calls:
            assert await handle.wait(60) == "answered", handle.uniqueid

        # --- the record ----------------------------------------------------------------
        def settled() -> bool:
            rows = ledger(sessions)["rows"]
            return all(h.uniqueid in rows and rows[h.uniqueid].ended_at is not None for h in calls)

        try:
            await until(settled, 30)
        except AssertionError:
            rows = ledger(sessions)["rows"]
            missing = {
                h.uniqueid: (rows[h.uniqueid].state if h.uniqueid in rows else "no row")
                for h in calls
                if h.uniqueid not in rows or rows[h.uniqueid].ended_at is None
            }
            raise AssertionError(f"calls not recorded as ended: {missing}") from None

        def timers_fired() -> bool:
            with sessions() as s:
                levels = dict(
                    s.execute(
                        select(Ticket.id, Ticket.supervision_level).where(Ticket.id.in_(dispatched))
                    ).all()
                )
            return all(levels.get(t) == 2 for t in dispatched)

        await until(timers_fired, 30, step=0.2)
        book = ledger(sessions)
        rows, ticket_calls = book["rows"], book["ticket_calls"]
        for handle in calls:
            row = rows[handle.uniqueid]
            assert row.answered, (handle.uniqueid, row.routed_by, row.state, row.agent_id)
            assert len(ticket_calls.get(handle.uniqueid, [])) == 1, (
                handle.uniqueid,
                ticket_calls.get(handle.uniqueid),
                row.ticket_id,
                row.routed_by,
                row.state,
            )
        tickets = [ticket_calls[h.uniqueid][0] for h in calls]
        assert len(set(tickets)) == len(calls) == book["tickets"]
        with sessions() as s:
            callers: dict[str, set[str]] = {}
            for tc in s.scalars(select(TicketCall)):
                callers.setdefault(tc.ticket_id, set()).add(rows[tc.call_id].caller)
            fired = Counter(
                s.execute(
                    select(TicketEvent.ticket_id, TicketEvent.action).where(
                        TicketEvent.action.in_(["response_overdue", "due_overdue"])
                    )
                ).all()
            )
            claims = Counter(
                job.split(":")[1]
                for job in s.scalars(select(JobClaim.job))
                if job.startswith("ticket:")
            )
        assert all(len(who) == 1 for who in callers.values())
        for ticket in dispatched:
            assert fired[(ticket, "response_overdue")] == 1, ticket
            assert fired[(ticket, "due_overdue")] == 1, ticket
            assert claims[ticket] == 3, ticket  # response overdue, due reminder, due overdue

        # --- the new leader, and the desktops at its console ---------------------------
        after = await health(base["b"])
        assert after["leadership"]["role"] == "leader"
        assert after["leadership"]["leader_address"] == "cti-b"
        assert after["leadership"]["term"] == before["leadership"]["term"] + 1
        for desk in desktops:
            me = await desk.client.get(f"{base['b']}/api/me")
            assert me.status_code == 200, me.text
        routed_by = Counter(rows[h.uniqueid].routed_by for h in calls)
        route_at = first_route()
        assert route_at is not None and cti["b"].leading_at is not None
        figure = {
            "calls": len(calls),
            "answered": sum(1 for h in calls if h.outcome == "answered"),
            "tickets": book["tickets"],
            "timers": 3 * len(dispatched),
            "routed_by": dict(routed_by),
            "sigkill_to_standby_leading_s": round(cti["b"].leading_at - killed_at, 3),
            "sigkill_to_first_route_s": round(route_at - killed_at, 3),
            "route_resolution_s": GAP_S,
        }
        print("takeover:", json.dumps(figure))
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "takeover.json").write_text(json.dumps(figure, indent=2) + "\n")
    finally:
        for desk in desktops:
            await desk.client.aclose()
        for proc in cti.values():
            if proc.proc is not None:
                proc.stop()
        for node in nodes:
            await node.stop()
        engine.dispose()


class DatabaseLink:
    """A TCP relay between one CTI and PostgreSQL that can be cut: every connection closed
    and new ones refused, as when that machine's network to the database is gone."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()


def refused(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
async def test_a_leader_cut_off_from_the_database_steps_down_before_the_standby_leads(
    any_db_url: str, tmp_path: Path
) -> None:
    """The leader's network to the database is cut: it cannot renew, closes its FastAGI port
    before its lease runs out, and the standby leads once it has; never both at once. With
    the database back, the old leader waits on standby."""
    from sqlalchemy.engine import make_url

    url = make_url(any_db_url)
    link = DatabaseLink(url.host or "127.0.0.1", url.port or 5432)
    await link.open()
    data = site_data(2, skills=1)
    ami_secret = data["asterisk"][0]["secret"] = secrets.token_urlsafe(16)
    agi = {"a": free_port(), "b": free_port()}
    sim = sim_for(
        parse(data), tmp_path, secret=ami_secret, scale=0.1, agi_port=agi["a"], agi_port_2=agi["b"]
    )
    await sim.start()
    data["asterisk"][0].update(port=sim.ami_port, backoff_max_s=1.0, ping_interval_s=1.0)
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    engine = make_engine(any_db_url)
    create_schema(engine)
    engine.dispose()
    cti: dict[str, ServeProcess] = {}
    for name, db in (("a", url.set(port=link.port)), ("b", url)):
        workdir = tmp_path / name
        workdir.mkdir()
        own = json.loads(json.dumps(data))
        own["database"] = {"url": db.render_as_string(hide_password=False)}
        own["agi"] = {"port": agi[name]}
        own["console"].update(port=free_port())
        own["ha"] = {"address": f"cti-{name}", "standby": True}
        cti[name] = ServeProcess(own, workdir)
    try:
        cti["a"].launch()
        await until(lambda: cti["a"].leading_at is not None, 30)
        cti["b"].launch()
        await until(lambda: cti["b"].logged("leadership: standby"), 30)
        assert not refused(agi["a"]) and refused(agi["b"])

        cut_at = time.monotonic()
        await link.cut()
        a_closed_at = b_open_at = 0.0
        while not (a_closed_at and b_open_at):
            now = time.monotonic()
            if not a_closed_at and refused(agi["a"]):
                a_closed_at = now
            if not b_open_at and not refused(agi["b"]):
                b_open_at = now
            assert now - cut_at < 30, "no takeover"
            await asyncio.sleep(0.01)
        # Fencing: the cut-off leader stopped answering before the standby began.
        assert a_closed_at < b_open_at
        assert cti["a"].logged("stepped down")
        await until(lambda: cti["b"].leading_at is not None, 10)

        await link.open()
        await until(lambda: cti["a"].logged("it waits on standby again"), 30)
        await until(lambda: cti["a"].log.read_text().count("leadership: standby") >= 1, 30)
        assert refused(agi["a"]) and not refused(agi["b"])
        print(
            "cut off:",
            json.dumps(
                {
                    "cut_to_old_leader_fenced_s": round(a_closed_at - cut_at, 3),
                    "cut_to_new_leader_listening_s": round(b_open_at - cut_at, 3),
                }
            ),
        )
    finally:
        for proc in cti.values():
            if proc.proc is not None:
                proc.stop()
        await link.cut()
        await sim.stop()
