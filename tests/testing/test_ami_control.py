"""Fact 6 of in_loop/README.md: ``Redirect`` of a channel that is hanging up answers
"Redirect failed, channel not up." (manager.c checks ast_check_hangup, not the state)."""

from __future__ import annotations

import asyncio

from cti.testing.clients import FastAgiStub
from cti.testing.frames import format_message, header
from tests.testing.conftest import MakeSim, fresh_heartbeat, login


async def held_call(make_sim: MakeSim, agi: FastAgiStub, **config: float):  # noqa: ANN201
    sim = await make_sim(**config)
    client = await login(sim)
    fresh_heartbeat(sim)
    agi.hold = True
    call = sim.place_call(talk_s=1, patience_s=500)
    await client.wait_event("MusicOnHoldStart", Context="cti-hold", timeout=5)
    return sim, client, call


async def test_redirect_of_a_hanging_up_channel(make_sim: MakeSim, agi: FastAgiStub) -> None:
    sim, client, call = await held_call(make_sim, agi)
    name = call.channel.name
    redirect = [
        ("Action", "Redirect"),
        ("Channel", name),
        ("Context", "cti-deliver"),
        ("Exten", "8001"),
        ("Priority", "1"),
        ("ActionID", "r-1"),
    ]
    # Hangup and Redirect in one write: the channel is hanging up, not gone yet.
    assert client._writer is not None
    client._writer.write(
        format_message([("Action", "Hangup"), ("Channel", name), ("ActionID", "h-1")])
        + format_message(redirect)
    )
    r = await client.wait_for(lambda m: header(m, "ActionID") == "r-1")
    assert [(k, v) for k, v in r if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "Redirect failed, channel not up."),
    ]
    await call.wait(5)
    # Once it is gone, it does not exist at all.
    r = await client.action(
        Action="Redirect", Channel=name, Context="cti-deliver", Exten="8001", Priority="1"
    )
    assert header(r, "Message") == f"Channel does not exist: {name}"
    await client.close()


async def test_a_slow_channel_stays_not_up_for_a_while(make_sim: MakeSim, agi: FastAgiStub) -> None:
    """``hangup_notice_s``: the window the real PBX shows under load (and a CTI retrying at
    once fills with failed Redirects)."""
    sim, client, call = await held_call(make_sim, agi, hangup_notice_s=0.3)
    sim.hangup(call.channel)
    for _ in range(3):
        r = await client.action(
            Action="Redirect",
            Channel=call.channel.name,
            Context="cti-deliver",
            Exten="8001",
            Priority="1",
        )
        assert header(r, "Message") == "Redirect failed, channel not up."
        await asyncio.sleep(0.05)
    assert sim.ami.action_counts["Redirect"] == 3
    await call.wait(5)
    await client.close()


async def test_redirect_checks_in_manager_order(make_sim: MakeSim, agi: FastAgiStub) -> None:
    sim, client, call = await held_call(make_sim, agi)
    name = call.channel.name
    cases = [
        ({}, "Channel not specified"),
        ({"Channel": name}, "Context not specified"),
        ({"Channel": name, "Context": "cti-deliver"}, "Exten not specified"),
        ({"Channel": name, "Context": "cti-deliver", "Exten": "8001"}, "Priority not specified"),
        (
            {"Channel": name, "Context": "cti-deliver", "Exten": "8001", "Priority": "0"},
            "Priority is invalid",
        ),
        (
            {"Channel": "PJSIP/x-1", "Context": "cti-deliver", "Exten": "8001", "Priority": "1"},
            "Channel does not exist: PJSIP/x-1",
        ),
        (
            {
                "Channel": name,
                "Context": "cti-deliver",
                "Exten": "8001",
                "Priority": "1",
                "ExtraChannel": "PJSIP/x-1",
                "ExtraContext": "cti-deliver",
            },
            "ExtraExten not specified",
        ),
        (
            {
                "Channel": name,
                "Context": "cti-deliver",
                "Exten": "8001",
                "Priority": "1",
                "ExtraChannel": "PJSIP/x-1",
            },
            "ExtraChannel does not exist: PJSIP/x-1",
        ),
    ]
    for headers, message in cases:
        r = await client.action(Action="Redirect", **headers)
        assert (header(r, "Response"), header(r, "Message")) == ("Error", message), headers
    assert call.channel.alive
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()
