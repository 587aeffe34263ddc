"""The CDR import with two nodes: a call of node a answered at a seat of node b, through the
inter-node trunk, is an answered call (a ticket, no callback task), and its seat is read from
node b's record of the call that came in over the trunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cti.app import Hotline
from cti.cdr import import_missed_calls
from cti.config import parse
from cti.db import create_schema
from cti.models import AgentStateLogRow
from cti.testing.internode import link
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.cti.live import Floor
from tests.reliability.helpers import ledger, site_data, until
from tests.reliability.test_cdr import T0, line

CITIZEN = {"src": "13900000021", "clid": '"钱七" <13900000021>'}


def two_node_data(db_url: str, tmp_path: Path, ports: tuple[int, int] = (5038, 5039)) -> Any:
    data = site_data(3, skills=2)
    template = data["asterisk"][0]
    data["asterisk"] = [
        {**template, "name": name, "port": port, "cdr_path": str(tmp_path / f"cdr-{name}.csv")}
        for name, port in zip(("a", "b"), ports, strict=True)
    ]
    data["database"] = {"url": db_url}
    data["agi"] = {"port": 0}
    data["recordings"] = {"dir": str(tmp_path / "rec")}
    data.setdefault("control", {})["wrapup_s"] = 0
    return data


@pytest.fixture
def hotline(any_db_url: str, tmp_path: Path) -> Iterator[Hotline]:
    h = Hotline(parse(two_node_data(any_db_url, tmp_path)), console=False)
    create_schema(h.engine)
    h._sync_reference_data()
    yield h
    h.store.stop()
    h.agents.stop()
    h.engine.dispose()


async def test_a_call_answered_through_the_trunk_is_answered_at_the_seat_there(
    hotline: Hotline, tmp_path: Path
) -> None:
    h = hotline
    with h.sessions.begin() as s:
        s.add(
            AgentStateLogRow(agent_id="a00001", seat="8002", old="logged_out", new="ready", at=T0)
        )
    # On a: the citizen's channel talked with the trunk leg to b. On b: the call came in on
    # the endpoint node-a ([from-node]) with the citizen's number and seat 8002 answered it.
    (tmp_path / "cdr-a.csv").write_text(
        line("200.1", dstchannel="PJSIP/node-b-00000003", lastapp="Dial", **CITIZEN) + "\n",
        encoding="utf-8",
    )
    from_a = {"channel": "PJSIP/node-a-00000004", "dcontext": "from-node", "dst": "8002"}
    (tmp_path / "cdr-b.csv").write_text(
        line("300.2", seat="8002", lastapp="Dial", **from_a, **CITIZEN) + "\n", encoding="utf-8"
    )

    result = await import_missed_calls(h.settings, h.sessions, h.persistence)

    # b's record is no citizen call of b's own.
    assert (result.calls, result.new, result.tickets, result.callbacks) == (1, 1, 1, 0)
    h.store.start()
    assert await h.store.flush(10)
    book = ledger(h.sessions, node="a")
    row = book["rows"]["200.1"]
    assert (row.answered, row.abandoned, row.seat, row.agent_id) == (True, False, "8002", "a00001")
    assert book["ticket_calls"]["200.1"] == [row.ticket_id]
    assert book["callbacks"] == {}


async def test_a_call_answered_through_the_trunk_without_the_other_nodes_file(
    hotline: Hotline, tmp_path: Path
) -> None:
    h = hotline
    (tmp_path / "cdr-a.csv").write_text(
        line("200.1", dstchannel="PJSIP/node-b-00000003", lastapp="Dial", **CITIZEN) + "\n",
        encoding="utf-8",
    )
    result = await import_missed_calls(h.settings, h.sessions, h.persistence)
    assert (result.tickets, result.callbacks) == (1, 0)
    h.store.start()
    assert await h.store.flush(10)
    book = ledger(h.sessions, node="a")
    row = book["rows"]["200.1"]
    # Answered, by a seat this import cannot name.
    assert (row.answered, row.seat, row.agent_id) == (True, "", "")
    assert book["callbacks"] == {}


async def test_the_simulators_record_of_a_call_answered_across_nodes(
    any_db_url: str, tmp_path: Path
) -> None:
    """A CTI routes a call of node a to wang's seat on node b; the CDR lines the two nodes
    wrote are then imported into a database that never saw the call."""
    sims = {
        name: AsteriskSimulator(
            SimConfig(
                scale=0.05,
                system_name=name,
                rec_dir=str(tmp_path / "rec"),
                cdr_path=str(tmp_path / f"cdr-{name}.csv"),
                endpoints={"8001": "Seat 8001", "8002": "Seat 8002", "8003": "Seat 8003"},
            )
        )
        for name in ("a", "b")
    }
    a, b = sims["a"], sims["b"]
    link(a, "a", b, "b")
    ports = (await a.start(), await b.start())
    live = Hotline(parse(two_node_data(any_db_url, tmp_path, ports)), console=False)
    try:
        await live.start()
        for sim in (a, b):
            sim.config.agi_port = live.agi.port
        b.register_phone("8002", ip="127.0.0.4", answer_delay=0.02)
        assert await live.wait_connected(15)
        await until(lambda: not a.heartbeat_stale(), 15)
        await Floor(a, live).ready(("a00001", "8002"))
        handle = a.place_call(caller="13900000022", name="孙八", did="12300", talk_s=1)
        assert await handle.wait(10) == "answered"
        assert handle.answered_by.startswith("PJSIP/node-b-")
        await until(lambda: (tmp_path / "cdr-a.csv").exists())
    finally:
        await live.stop()
        for sim in (a, b):
            await sim.stop()

    fresh = Hotline(
        parse(two_node_data(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)), console=False
    )
    create_schema(fresh.engine)
    fresh._sync_reference_data()
    try:
        result = await import_missed_calls(fresh.settings, fresh.sessions, fresh.persistence)
        assert (result.calls, result.tickets, result.callbacks) == (1, 1, 0)
        fresh.store.start()
        assert await fresh.store.flush(10)
        book = ledger(fresh.sessions, node="a")
        (row,) = book["rows"].values()
        assert row.answered and not row.abandoned
        assert book["callbacks"] == {}
    finally:
        fresh.store.stop()
        fresh.agents.stop()
        fresh.engine.dispose()
