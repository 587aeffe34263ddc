"""Fact 7 of in_loop/README.md and the dialplan's answer to it: the routing question is asked
from a helper Local channel that the caller Dials for CTI_ROUTE_TIMEOUT seconds with music,
so a stalled CTI holds only the helper; the answer is copied onto the caller only with a
ticket number."""

from __future__ import annotations

import asyncio

from cti.testing.clients import FastAgiStub, RawAmiClient
from cti.testing.frames import Pairs, header
from tests.testing.conftest import MakeSim, fresh_heartbeat, login


def of(client: RawAmiClient, event: str, channel: str) -> list[Pairs]:
    return [m for m in client.events(event) if header(m, "Channel") == channel]


def names(client: RawAmiClient, start: int = 0) -> list[str]:
    return [header(m, "Event") or "" for m in client.messages[start:] if header(m, "Event")]


async def test_route_is_asked_from_a_local_channel(make_sim: MakeSim, agi: FastAgiStub) -> None:
    sim = await make_sim()
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    call = sim.place_call("13800000001", "张三", "12345", talk_s=2)
    assert await call.wait(5) == "answered"
    caller = call.channel
    one = "Local/12345@cti-route-00000001;1"
    two = "Local/12345@cti-route-00000001;2"
    (new_one,) = of(client, "Newchannel", one)
    (new_two,) = of(client, "Newchannel", two)
    for new, state in ((new_one, "0"), (new_two, "4")):
        assert header(new, "Linkedid") == caller.uniqueid
        assert (header(new, "Context"), header(new, "Exten")) == ("cti-route", "12345")
        assert header(new, "ChannelState") == state
    (bridge,) = client.events("LocalBridge")
    assert (header(bridge, "LocalOneChannel"), header(bridge, "LocalTwoChannel")) == (one, two)
    assert header(bridge, "LocalOptimization") == "No"  # the /n of the dial string
    begin = next(m for m in client.events("DialBegin") if header(m, "DestChannel") == one)
    assert header(begin, "Channel") == caller.name
    assert header(begin, "DialString") == "12345@cti-route/n"
    route = [
        header(m, "AppData")
        for m in of(client, "Newexten", caller.name)
        if header(m, "Application") == "Dial"
    ][0]
    assert route == "Local/12345@cti-route/n,2,m"
    # The citizen hears music while the CTI answers.
    (moh,) = [m for m in of(client, "MusicOnHoldStart", caller.name)]
    assert header(moh, "Context") == "from-citizen"
    # The AGI ran on ;2 with the citizen's caller id and its uniqueid and channel as args.
    env = agi.sessions[0]
    assert env["agi_channel"] == two and env["agi_type"] == "Local"
    assert env["agi_uniqueid"] == header(new_two, "Uniqueid")
    assert (env["agi_callerid"], env["agi_calleridname"]) == ("13800000001", "张三")
    assert (env["agi_arg_1"], env["agi_arg_2"], env["agi_arg_3"]) == (
        "12345",
        caller.uniqueid,
        caller.name,
    )
    assert (env["agi_context"], env["agi_extension"], env["agi_priority"]) == (
        "cti-route",
        "12345",
        "1",
    )
    assert env["agi_dnid"] == "unknown"
    assert all(header(m, "Channel") == two for m in client.events("AGIExecStart"))
    # [cti-route] left the answer in the citizen's SHARED() area, found by the channel's name,
    # then hung up: the Dial reads that as no answer. The citizen's channel splits the answer
    # onto its variables, and the call goes on to the chosen seat.
    (answer,) = [
        header(m, "Value") or ""
        for m in of(client, "VarSet", two)
        if header(m, "Variable") == "HOTLINE_ROUTE"
    ]
    assert answer.split("|")[:3] == ["T-1", "0", "PJSIP/8001"]
    apps = [(header(m, "Application"), header(m, "AppData")) for m in of(client, "Newexten", two)]
    assert apps[3] == ("Set", f"SHARED(HOTLINE_ROUTE,{caller.name})={answer}")
    after = [
        (header(m, "Application"), header(m, "AppData"))
        for m in of(client, "Newexten", caller.name)
    ]
    route_at = after.index(("Dial", "Local/12345@cti-route/n,2,m"))
    assert after[route_at + 1] == ("Set", f"HOTLINE_ROUTE={answer}")
    assert after[route_at + 2][0] == "ExecIf"
    assert (after[route_at + 2][1] or "").startswith("1?MSet(HOTLINE_TICKET=T-1,")
    copied = {
        header(m, "Variable"): header(m, "Value")
        for m in of(client, "VarSet", caller.name)
        if header(m, "Variable") in ("ROUTE_TARGET", "HOTLINE_TICKET")
    }
    assert copied == {"ROUTE_TARGET": "PJSIP/8001", "HOTLINE_TICKET": "T-1"}
    (end,) = [m for m in client.events("DialEnd") if header(m, "DestChannel") == one]
    assert header(end, "DialStatus") == "NOANSWER"
    order = names(client)
    tail = order.index("LocalBridge")
    assert order[tail:].index("DialEnd") < order[tail:].index("MusicOnHoldStop")
    assert of(client, "HangupRequest", one) and of(client, "Hangup", two)
    (mix,) = of(client, "MixMonitorStart", caller.name)
    assert header(mix, "Priority") == "15"  # (routed)
    await client.close()


async def test_a_stalled_cti_holds_only_the_helper(make_sim: MakeSim, agi: FastAgiStub) -> None:
    """The CTI accepts and says nothing: after CTI_ROUTE_TIMEOUT the caller goes on to the
    fallback queue; ;2 gets HANGUP and stays (dead AGI) until the CTI closes."""
    sim = await make_sim(route_timeout_s=0.3)
    client = await login(sim)
    fresh_heartbeat(sim)
    agi.silent = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = sim.place_call(talk_s=1, patience_s=500)
    join = await client.wait_event("QueueCallerJoin", timeout=5)
    assert 0.3 <= loop.time() - started < 1.5
    assert header(join, "Channel") == call.channel.name
    one, two = "Local/12345@cti-route-00000001;1", "Local/12345@cti-route-00000001;2"
    (end,) = [m for m in client.events("DialEnd") if header(m, "DestChannel") == one]
    assert header(end, "DialStatus") == "NOANSWER"
    assert of(client, "HangupRequest", two) and of(client, "Hangup", one)
    await asyncio.sleep(0.1)
    assert agi.heard == ["HANGUP"]
    assert two in sim.channels  # its AGI runs on, dead, until the CTI closes
    # Defaults were kept: the recording path of [from-citizen], no target.
    assert call.channel.variables["ROUTE_TARGET"] == ""
    await agi.stop()
    await client.wait_event("Hangup", Channel=two)
    status = [m for m in of(client, "VarSet", two) if header(m, "Variable") == "AGISTATUS"]
    assert header(status[-1], "Value") == "HANGUP"
    sim.hangup(call.channel)
    await call.wait(5)
    await client.close()


async def test_no_ticket_no_copy(make_sim: MakeSim, agi: FastAgiStub) -> None:
    """A CTI answer without a ticket number is not copied: the caller keeps the defaults."""
    sim = await make_sim()
    client = await login(sim)
    sim.register_phone("8001")
    fresh_heartbeat(sim)
    agi.route = lambda env: "PJSIP/8001"
    agi.ticket = False
    call = sim.place_call(talk_s=1, patience_s=50)
    await client.wait_event("QueueCallerJoin", timeout=5)
    two = "Local/12345@cti-route-00000001;2"
    apps = [(header(m, "Application"), header(m, "AppData")) for m in of(client, "Newexten", two)]
    assert [a for a, _ in apps] == ["AGI", "GotoIf", "GotoIf", "Hangup"]
    assert apps[1][1] == "1?asked"  # answered: CTI_AGI_2 is not asked
    assert apps[2][1] == "1?end"
    assert call.channel.variables["ROUTE_TARGET"] == ""
    assert await call.wait(5) == "abandoned"
    await client.close()


async def test_refused_cti_falls_through_at_once(make_sim: MakeSim, agi: FastAgiStub) -> None:
    sim = await make_sim(route_timeout_s=5)
    await agi.stop()  # nothing listens: AGI() returns FAILURE at once
    client = await login(sim)
    fresh_heartbeat(sim)
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = sim.place_call(talk_s=1, patience_s=50)
    await client.wait_event("QueueCallerJoin", timeout=5)
    assert loop.time() - started < 1.0
    two = "Local/12345@cti-route-00000001;2"
    status = [m for m in of(client, "VarSet", two) if header(m, "Variable") == "AGISTATUS"]
    assert header(status[0], "Value") == "FAILURE"
    await call.wait(5)
    await client.close()


async def test_caller_gone_while_routing(make_sim: MakeSim, agi: FastAgiStub) -> None:
    sim = await make_sim(route_timeout_s=5)
    client = await login(sim)
    fresh_heartbeat(sim)
    agi.silent = True
    call = sim.place_call(talk_s=1)
    await client.wait_event("MusicOnHoldStart", timeout=5)
    sim.hangup(call.channel)
    assert await call.wait(5) == "abandoned"
    one = "Local/12345@cti-route-00000001;1"
    (end,) = [m for m in client.events("DialEnd") if header(m, "DestChannel") == one]
    assert header(end, "DialStatus") == "CANCEL"
    assert not client.events("MixMonitorStart")
    await client.close()
