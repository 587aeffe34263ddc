"""A standby CTI takes over: two real ``hotline serve`` processes on one PostgreSQL, the
simulator's nodes asking both FastAGI addresses (CTI_AGI, then CTI_AGI_2 when refused), calls
arriving all along while the leader is killed with SIGKILL halfway.

What must hold: the standby leads (a new term of the lease), every caller is answered (by
the CTI's routes, or by the fallback queue of the caller's node while no CTI leads), every
call has exactly one ticket of its own, every SLA timer fires once whichever process runs it,
and the agents' desktops go on at the new leader's console with the session they had. The
takeover time, from the SIGKILL to the new leader answering its first route, is measured and
recorded (artifacts/takeover.json, one entry per floor), not asserted.

Two floors go through it: one node; and two nodes joined by the inter-node trunk, half the
seats' phones registered on each and most calls arriving on the first, so that the CTIs
answer some of its calls at seats of the other node, before the takeover and after it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from console import passwords
from console.users import Users
from cti.config import parse
from cti.db import create_schema, make_engine, session_factory
from cti.models import JobClaim
from cti.testing.internode import link
from cti.testing.pbx import AsteriskSimulator, CallHandle
from tests.conftest import PG_URL
from tests.reliability.cti_process import Desktop, ServeProcess, health
from tests.reliability.helpers import free_port, ledger, sim_for, site_data, until
from tickets.models import Ticket, TicketCall, TicketEvent

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TALK_S = 10.0  # simulated seconds (1 s at scale 0.1)
TOPIC = "话题00"
CTIS = ("cti-a", "cti-b")  # the first leads, the second waits on standby
# A seat of another node answers through the trunk: the caller's node bridges the caller
# with its outgoing leg PJSIP/node-<name>-... (cti.testing.internode).
TRUNK_LEG = "PJSIP/node-"

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="two CTIs on one database need PostgreSQL (HOTLINE_TEST_PG_URL)"
)


@dataclass(frozen=True, slots=True)
class Floor:
    """The nodes, the seats and the calls of one run."""

    key: str  # the run's entry in artifacts/takeover.json
    seats: dict[str, int]  # node name -> how many seats' phones register on it
    arrivals: tuple[str, ...]  # the nodes the stream's calls arrive on, in turn
    calls: int  # all of them: one per seat on the first node, then the stream
    kill_after: int  # calls placed when the leader is killed
    gap_s: float = 0.15  # between two arrivals of the stream

    @property
    def seat_count(self) -> int:
        return sum(self.seats.values())


ONE_NODE = Floor("one_node", {"pbx1": 6}, ("pbx1",), calls=46, kill_after=26)
# Three calls in four arrive on node a, more than its five seats can take: the rest of its
# callers are answered at node b's seats.
TWO_NODES = Floor("two_nodes", {"a": 5, "b": 5}, ("a", "a", "a", "b"), calls=200, kill_after=100)


def book(sessions: Any, nodes: list[str]) -> dict[str, Any]:
    """The ledger of every node: the calls' rows and ticket calls by Linkedid (the nodes'
    systemnames keep them apart), and the tickets."""
    merged: dict[str, Any] = {"rows": {}, "ticket_calls": {}, "tickets": 0}
    for node in nodes:
        part = ledger(sessions, node)
        merged["rows"].update(part["rows"])
        merged["ticket_calls"].update(part["ticket_calls"])
        merged["tickets"] = part["tickets"]
    return merged


def record(key: str, figure: dict[str, Any]) -> None:
    """artifacts/takeover.json keeps each floor's last run."""
    path = ARTIFACTS / "takeover.json"
    try:
        runs = json.loads(path.read_text())
    except (OSError, ValueError):
        runs = {}
    if not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values()):
        runs = {}  # not one entry per floor
    runs[key] = figure
    ARTIFACTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")


async def take_over(floor: Floor, db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``floor`` through a takeover, check what must hold, and return (and record) the
    figures."""
    started = time.monotonic()
    data = site_data(floor.seat_count, skills=1)
    template = data["asterisk"][0]
    ami_secret = secrets.token_urlsafe(16)
    # Timers that fall due around the takeover: 3 per dispatched ticket.
    kill_s = (floor.kill_after - floor.seat_count) * floor.gap_s
    data["tickets"] = {
        "rules": [
            {
                "category": TOPIC,
                "limit": f"{round(kill_s + 4)}s",
                "response_limit": f"{round(kill_s + 2)}s",
                "remind_before": 0.5,
            }
        ]
    }
    agi = {address: free_port() for address in CTIS}
    consoles = {address: free_port() for address in CTIS}
    cdr = {name: tmp_path / f"cdr-{name}.csv" for name in floor.seats}
    several = len(floor.seats) > 1
    nodes: dict[str, AsteriskSimulator] = {
        name: sim_for(
            parse(data),
            tmp_path,
            secret=ami_secret,
            scale=0.1,
            cdr_path=str(cdr[name]),
            agi_port=agi[CTIS[0]],
            agi_port_2=agi[CTIS[1]],
            # asterisk.conf systemname: the nodes' Uniqueids (and so Linkedids) never meet.
            system_name=name if several else "",
        )
        for name in floor.seats
    }
    for (x, sim_x), (y, sim_y) in itertools.combinations(nodes.items(), 2):
        link(sim_x, x, sim_y, y)
    for sim in nodes.values():
        await sim.start()
    data["asterisk"] = [
        {
            **template,
            "name": name,
            "secret": ami_secret,
            "port": sim.ami_port,
            "backoff_max_s": 1.0,
            "ping_interval_s": 1.0,
            "cdr_path": str(cdr[name]),
        }
        for name, sim in nodes.items()
    ]
    data["database"] = {"url": db_url}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data["control"] = {"wrapup_s": 0}
    engine = make_engine(db_url)
    create_schema(engine)
    sessions = session_factory(engine)
    users = Users(sessions)
    seats = {f"a{i:05d}": str(8001 + i) for i in range(floor.seat_count)}
    for agent in seats:
        users.create(agent, f"pw-{agent}", ["agent"], agent_id=agent, display_name=agent)
    extensions = iter(seats.values())
    for name, count in floor.seats.items():
        for ext in itertools.islice(extensions, count):
            nodes[name].register_phone(ext, ip=f"127.0.0.{int(ext) - 7990}", answer_delay=0.02)
    cti: dict[str, ServeProcess] = {}
    for address in CTIS:
        workdir = tmp_path / address
        workdir.mkdir()
        own = json.loads(json.dumps(data))
        own["agi"] = {"port": agi[address]}
        own["console"].update(port=consoles[address])
        own["ha"] = {"address": address, "standby": True}
        cti[address] = ServeProcess(own, workdir)
    leader, standby = (cti[address] for address in CTIS)
    base = {address: f"http://127.0.0.1:{port}" for address, port in consoles.items()}
    desktops = [Desktop(agent, ext) for agent, ext in seats.items()]
    calls: list[CallHandle] = []
    arrived_on: dict[str, str] = {}
    placed_at: dict[str, float] = {}
    connected_at: dict[str, float] = {}
    watchers: set[asyncio.Task[None]] = set()
    arrivals = itertools.cycle(floor.arrivals)

    async def note_answer(handle: CallHandle) -> None:
        await handle.connected.wait()
        connected_at[handle.uniqueid] = time.monotonic()

    def call(node: str) -> CallHandle:
        handle = nodes[node].place_call(
            caller=str(13700000000 + len(calls)), name="市民", did="12300", talk_s=TALK_S
        )
        calls.append(handle)
        arrived_on[handle.uniqueid] = node
        placed_at[handle.uniqueid] = time.monotonic()
        watchers.add(asyncio.create_task(note_answer(handle)))
        return handle

    try:
        # --- one CTI leads, the other waits on standby --------------------------------
        leader.launch()
        await until(lambda: leader.leading_at is not None, 30)
        standby.launch()
        await until(lambda: standby.logged("leadership: standby"), 30)
        assert standby.leading_at is None
        await until(lambda: not any(sim.heartbeat_stale() for sim in nodes.values()), 10)
        for desk in desktops:
            await desk.login(base[CTIS[0]])
        before = await health(base[CTIS[0]])
        assert before["leadership"]["role"] == "leader"
        assert before["leadership"]["leader_address"] == CTIS[0]

        # --- tickets with timers due around the takeover -------------------------------
        # One call per seat, all on the first node: with several nodes, the seats of the
        # others answer some of them through the trunk.
        first = [call(floor.arrivals[0]) for _ in seats]
        for handle in first:
            await asyncio.wait_for(handle.connected.wait(), 10)

        def first_ticketed() -> bool:
            ticket_calls = book(sessions, list(nodes))["ticket_calls"]
            return all(h.uniqueid in ticket_calls for h in first)

        await until(first_ticketed, 10, step=0.1)
        dispatched = []
        ticket_calls = book(sessions, list(nodes))["ticket_calls"]
        for handle in first:
            (ticket,) = ticket_calls[handle.uniqueid]
            r = await desktops[0].post(
                base[CTIS[0]],
                f"/api/tickets/{ticket}/transitions",
                {"action": "dispatch", "data": {"department": "zjj"}},
            )
            assert r.status_code == 200, r.text
            dispatched.append(ticket)

        # --- the stream, and SIGKILL halfway -------------------------------------------
        killed_at = 0.0
        while len(calls) < floor.calls:
            if len(calls) == floor.kill_after:
                killed_at = time.monotonic()
                leader.kill()
            call(next(arrivals))
            await asyncio.sleep(floor.gap_s)
        await until(lambda: standby.leading_at is not None, 15)
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
            after_kill.append(call(next(arrivals)))
            await asyncio.sleep(floor.gap_s)
        for handle in calls:
            assert await handle.wait(60) == "answered", handle.uniqueid

        # --- the record ----------------------------------------------------------------
        def settled() -> bool:
            rows = book(sessions, list(nodes))["rows"]
            return all(h.uniqueid in rows and rows[h.uniqueid].ended_at is not None for h in calls)

        try:
            await until(settled, 30, step=0.2)
        except AssertionError:
            rows = book(sessions, list(nodes))["rows"]
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
        ledgers = book(sessions, list(nodes))
        rows, ticket_calls = ledgers["rows"], ledgers["ticket_calls"]
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
        assert len(set(tickets)) == len(calls) == ledgers["tickets"]
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
        after = await health(base[CTIS[1]])
        assert after["leadership"]["role"] == "leader"
        assert after["leadership"]["leader_address"] == CTIS[1]
        assert after["leadership"]["term"] == before["leadership"]["term"] + 1
        for desk in desktops:
            me = await desk.client.get(f"{base[CTIS[1]]}/api/me")
            assert me.status_code == 200, me.text
        route_at = first_route()
        assert route_at is not None and standby.leading_at is not None
        across = [h.uniqueid for h in calls if h.answered_by.startswith(TRUNK_LEG)]
        figure = {
            "calls": len(calls),
            "answered": sum(1 for h in calls if h.outcome == "answered"),
            "tickets": ledgers["tickets"],
            "timers": 3 * len(dispatched),
            "routed_by": dict(Counter(rows[h.uniqueid].routed_by for h in calls)),
            "nodes": {
                name: {"seats": count, "calls": sum(n == name for n in arrived_on.values())}
                for name, count in floor.seats.items()
            },
            "answered_across_nodes": {
                "all": len(across),
                "before_sigkill": sum(connected_at[u] < killed_at for u in across),
                "after_takeover": sum(connected_at[u] > standby.leading_at for u in across),
            },
            "sigkill_to_standby_leading_s": round(standby.leading_at - killed_at, 3),
            "sigkill_to_first_route_s": round(route_at - killed_at, 3),
            "route_resolution_s": floor.gap_s,
            "run_s": round(time.monotonic() - started, 1),
        }
        print(f"takeover ({floor.key}):", json.dumps(figure))
        record(floor.key, figure)
        return figure
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for desk in desktops:
            await desk.client.aclose()
        for proc in cti.values():
            if proc.proc is not None:
                proc.stop()
        for sim in nodes.values():
            await sim.stop()
        engine.dispose()


@pytest.mark.slow
async def test_standby_takes_over_when_the_leader_is_killed(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "N", 2**10)  # the hash records its cost: cheap logins
    await take_over(ONE_NODE, any_db_url, tmp_path)


@pytest.mark.slow
async def test_two_nodes_a_standby_takes_over_200_calls_some_answered_across_the_trunk(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both CTIs name both nodes; a call arriving on node a is answered at a seat registered
    on node b, routed by the first leader and by the second."""
    monkeypatch.setattr(passwords, "N", 2**10)
    figure = await take_over(TWO_NODES, any_db_url, tmp_path)
    assert figure["calls"] == TWO_NODES.calls
    across = figure["answered_across_nodes"]
    assert across["before_sigkill"] >= 1 and across["after_takeover"] >= 1, across


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
