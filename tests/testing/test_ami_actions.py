"""Fact 5 of in_loop/README.md: dynamic queue members live in app_queue, not in the AMI
session that added them. They outlive the CTI's connection but not Asterisk."""

from __future__ import annotations

import asyncio

from cti.testing.frames import header
from tests.testing.conftest import MakeSim, login


async def test_members_outlive_the_connection_not_asterisk(make_sim: MakeSim) -> None:
    sim = await make_sim(shutdown_s=0, restart_delay_s=0.01, boot_delay_s=0.05)
    sim.register_phone("8001")
    first = await login(sim)
    r = await first.action(
        Action="QueueAdd",
        Queue="hotline",
        Interface="PJSIP/8001",
        MemberName="李娜",
        Paused="true",
        Reason="login",
        StateInterface="PJSIP/8001",
    )
    assert header(r, "Message") == "Added interface to queue"
    await first.action(Action="Logoff")
    await first.close()

    # A CTI that comes back finds its member; adding it again is an error.
    second = await login(sim)
    r = await second.action(Action="QueueAdd", Queue="hotline", Interface="PJSIP/8001")
    assert [(k, v) for k, v in r if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "Unable to add interface: Already there"),
    ]
    r = await second.action(
        Action="QueuePause", Queue="hotline", Interface="PJSIP/8001", Paused="0"
    )
    assert header(r, "Message") == "Interface unpaused successfully"
    assert sim.queue.members["PJSIP/8001"].paused is False

    # Asterisk restarts: the queue is empty (persistentmembers=no).
    await sim.restart()
    await asyncio.wait_for(second.closed.wait(), 5)
    third = await login(sim)
    await third.wait_event("FullyBooted", timeout=5)
    r = await third.action(Action="QueuePause", Queue="hotline", Interface="PJSIP/8001", Paused="1")
    assert [(k, v) for k, v in r if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "Interface not found"),
    ]
    r = await third.action(Action="QueueRemove", Queue="hotline", Interface="PJSIP/8001")
    assert header(r, "Message") == "Unable to remove interface: Not there"
    for client in (second, third):
        await client.close()


async def test_queue_action_messages(make_sim: MakeSim) -> None:
    sim = await make_sim()
    client = await login(sim)
    cases = [
        ({"Action": "QueueAdd", "Interface": "PJSIP/8001"}, "'Queue' not specified."),
        ({"Action": "QueueAdd", "Queue": "hotline"}, "'Interface' not specified."),
        (
            {"Action": "QueueAdd", "Queue": "nope", "Interface": "PJSIP/8001"},
            "Unable to add interface to queue: No such queue",
        ),
        ({"Action": "QueueRemove", "Queue": "hotline"}, "Need 'Queue' and 'Interface' parameters."),
        (
            {"Action": "QueueRemove", "Queue": "nope", "Interface": "PJSIP/8001"},
            "Unable to remove interface from queue: No such queue",
        ),
        (
            {"Action": "QueuePause", "Interface": "PJSIP/8001"},
            "Need 'Interface' and 'Paused' parameters.",
        ),
        ({"Action": "QueuePause", "Interface": "PJSIP/8001", "Paused": "1"}, "Interface not found"),
    ]
    for headers, message in cases:
        r = await client.action(**headers)
        assert (header(r, "Response"), header(r, "Message")) == ("Error", message), headers
    r = await client.action(Action="QueueAdd", Queue="hotline", Interface="PJSIP/8001")
    assert header(r, "Message") == "Added interface to queue"
    # Without Queue, QueuePause acts on every queue the interface is in.
    r = await client.action(Action="QueuePause", Interface="PJSIP/8001", Paused="yes")
    assert header(r, "Message") == "Interface paused successfully"
    r = await client.action(Action="QueueRemove", Queue="hotline", Interface="PJSIP/8001")
    assert header(r, "Message") == "Removed interface from queue"
    await client.close()
