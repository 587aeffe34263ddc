"""Two simulators joined by the inter-node trunk (cti.testing.internode), seen from each
node's AMI: the caller's node dials PJSIP/<seat>@node-b, the other node rings the seat in
[from-node], and answers, failures and hangups cross over."""

from __future__ import annotations

from cti.testing.frames import header
from cti.testing.internode import link
from tests.testing.conftest import MakeSim, login


async def move(client, channel: str, seat: str) -> None:  # noqa: ANN001
    """What the CTI's ACD does for a seat of node b: Setvar, then Redirect."""
    r = await client.action(
        Action="Setvar", Channel=channel, Variable="HOTLINE_VIA", Value="node-b"
    )
    assert header(r, "Response") == "Success"
    r = await client.action(
        Action="Redirect", Channel=channel, Context="cti-deliver-remote", Exten=seat, Priority="1"
    )
    assert header(r, "Response") == "Success"


async def test_a_caller_on_node_a_talks_to_a_seat_on_node_b(make_sim: MakeSim) -> None:
    a = await make_sim(system_name="a")
    b = await make_sim(system_name="b")
    link(a, "a", b, "b")
    b.register_phone("8002")
    on_a, on_b = await login(a), await login(b)
    # No CTI heartbeat: the call waits in the fallback queue, from where it is moved.
    handle = a.place_call(caller="13800000021", name="张三", talk_s=1)
    await on_a.wait_event("QueueCallerJoin")
    await move(on_a, handle.channel.name, "8002")
    begin = await on_a.wait_event("DialBegin")
    assert header(begin, "DialString") == "8002@node-b"
    trunk_leg = header(begin, "DestChannel") or ""
    assert trunk_leg.startswith("PJSIP/node-b-")
    incoming = await on_b.wait_event("Newchannel", Context="from-node")
    assert (header(incoming, "Exten"), header(incoming, "CallerIDNum")) == ("8002", "13800000021")
    assert (header(incoming, "Channel") or "").startswith("PJSIP/node-a-")
    assert (header(incoming, "Uniqueid") or "").startswith("b-")  # systemname b
    seat = await on_b.wait_event("DialBegin", DialString="8002")
    assert header(seat, "Linkedid") == header(incoming, "Uniqueid")
    await on_a.wait_event("DialState", DestChannel=trunk_leg, DialStatus="RINGING")
    await on_a.wait_event("DialEnd", DestChannel=trunk_leg, DialStatus="ANSWER")
    assert await handle.wait(5) == "answered"
    assert handle.answered_by == trunk_leg
    # The citizen hung up on node a: the BYE ends node b's legs too.
    await on_b.wait_event("Hangup", Channel=header(incoming, "Channel") or "")
    await on_b.wait_event("Hangup", Channel=header(seat, "DestChannel") or "")
    assert not b.channels
    for client in (on_a, on_b):
        await client.close()


async def test_busy_seat_and_lost_node(make_sim: MakeSim) -> None:
    a = await make_sim(system_name="a")
    b = await make_sim(system_name="b")
    link(a, "a", b, "b")
    b.register_phone("8003", on_ring=lambda _channel: "busy")
    on_a, on_b = await login(a), await login(b)
    handle = a.place_call(caller="13800000022", name="李四", talk_s=1)
    await on_a.wait_event("QueueCallerJoin")
    await move(on_a, handle.channel.name, "8003")
    # Node b's Dial is BUSY: its [from-node] hangs up with 17 (486), node a's Dial ends BUSY
    # and the caller goes back to the CTI's line.
    incoming = await on_b.wait_event("Newchannel", Context="from-node")
    gone = await on_b.wait_event("Hangup", Channel=header(incoming, "Channel") or "")
    assert header(gone, "Cause") == "17"
    end = await on_a.wait_event("DialEnd", DialStatus="BUSY")
    assert (header(end, "DestChannel") or "").startswith("PJSIP/node-b-")
    await on_a.wait_event("MusicOnHoldStart", Channel=handle.channel.name)
    # Node b stops: the trunk's contact is unavailable, no channel is made (CHANUNAVAIL).
    await on_b.close()
    await b.stop()
    await move(on_a, handle.channel.name, "8003")
    await on_a.wait_event("VarSet", Variable="DIALSTATUS", Value="CHANUNAVAIL")
    assert len(on_a.events("DialBegin")) == 1
    a.hangup(handle.channel)
    await handle.wait(5)
    await on_a.close()
