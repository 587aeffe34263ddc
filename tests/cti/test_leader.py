"""The lease row (cti.leader) on the test database: one holder at a time, taken over when it
runs out or is released, the term raised at each change; a leader whose lease another
process took stops leading."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.db import create_schema, make_engine
from cti.leader import Leadership, Lease


def test_one_holder_until_the_lease_runs_out(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    create_schema(engine)
    try:
        a = Lease(engine, holder="a", lease_s=1.0, address="agi://a:4573")
        b = Lease(engine, holder="b", lease_s=1.0)
        first = a.take()
        assert first is not None and first.holder == "a" and first.live
        assert b.take() is None
        again = a.take()  # a renewal keeps the term and the start
        assert again is not None and (again.term, again.since) == (first.term, first.since)
        assert again.expires_at >= first.expires_at
        time.sleep(1.1)
        taken = b.take()
        assert taken is not None and taken.holder == "b" and taken.term == first.term + 1
        assert a.take() is None
        b.release()
        back = a.take()
        assert back is not None and back.term == first.term + 2
        seen = b.read()
        assert seen is not None and (seen.holder, seen.address) == ("a", "agi://a:4573")
        forced = b.take(force=True)
        assert forced is not None and forced.holder == "b"
    finally:
        engine.dispose()


async def test_a_leader_whose_lease_was_taken_steps_down(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    create_schema(engine)
    lost: list[str] = []
    leader = Leadership(
        Lease(engine, holder="a", lease_s=2.0), renew_s=0.1, poll_s=0.05, on_lost=lost.append
    )
    standby = Leadership(Lease(engine, holder="b", lease_s=2.0), renew_s=0.1, poll_s=0.05)
    try:
        assert await leader.acquire()
        assert leader.leading and leader.info()["role"] == "leader"
        stop = asyncio.Event()
        waiting = asyncio.create_task(standby.acquire(stop))
        await asyncio.sleep(0.3)
        assert not waiting.done() and leader.leading
        await asyncio.to_thread(Lease(engine, holder="c", lease_s=2.0).take, force=True)
        for _ in range(100):
            if lost:
                break
            await asyncio.sleep(0.02)
        assert lost == ["another process holds the lease"]
        assert not leader.leading
        stop.set()
        assert await waiting is False
    finally:
        await leader.stop()
        await standby.stop()
        engine.dispose()


async def test_a_node_sends_no_action_once_this_process_may_not_lead() -> None:
    from cti.ami.actions import AmiUnavailable
    from cti.leader import FencedNode

    leading = [False]
    node = FencedNode(
        "pbx1", "127.0.0.1", 1, "cti", "x", on_event=lambda *a: None, may_act=lambda: leading[0]
    )
    for send in (node.send, node.send_list):
        with pytest.raises(AmiUnavailable, match="does not lead"):
            await send({"Action": "Redirect"})
    leading[0] = True
    with pytest.raises(AmiUnavailable, match="not connected"):  # past the fence: the link
        await node.send({"Action": "Redirect"})
