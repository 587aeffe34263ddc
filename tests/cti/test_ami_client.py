"""The AMI client against real sockets: each panoramisk defect reproduced, and fixed."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.ami.actions import AmiError, AmiUnavailable, UnsafeValue, build
from cti.ami.client import AmiNode
from cti.testing import fixture_path
from tests.cti.ami_peers import FakeAsterisk
from tests.cti.streamer import TranscriptStreamer


def node_for(port: int, events: list | None = None, states: list | None = None, **kw) -> AmiNode:
    return AmiNode(
        "pbx1",
        "127.0.0.1",
        port,
        "cti",
        kw.pop("secret", "cti-secret"),
        on_event=lambda n, m: events.append(m) if events is not None else None,
        on_state=lambda n, s, d: states.append(s) if states is not None else None,
        **kw,
    )


async def test_utf8_split_across_reads_keeps_names() -> None:
    streamer = TranscriptStreamer(fixture_path("direct_to_seat.ami.jsonl"), split=5)
    port = await streamer.start()
    events: list[dict] = []
    node = node_for(port, events)
    await node.start()
    await asyncio.wait_for(streamer.done.wait(), 5)
    await asyncio.sleep(0.05)
    names = {m.get("CallerIDName") for m in events if m.get("Event") == "Newchannel"}
    assert "张三" in names
    await node.stop()
    await streamer.stop()


async def test_dead_peer_is_detected_and_reconnected() -> None:
    """panoramisk's Ping has no timeout: a silent peer is never noticed. Ours aborts."""
    fake = FakeAsterisk(answer=False)
    port = await fake.start()
    states: list[str] = []
    node = node_for(port, states=states, ping_interval=0.1, ping_timeout=0.2)
    await node.start()
    for _ in range(100):
        if fake.logins >= 2:
            break
        await asyncio.sleep(0.05)
    assert fake.logins >= 2
    assert "disconnected" in states
    await node.stop()
    await fake.stop()


async def test_actions_during_an_outage_fail_at_once() -> None:
    node = node_for(1)  # nothing listens on port 1
    await node.start()
    with pytest.raises(AmiUnavailable):
        await asyncio.wait_for(node.send(build("Ping")), 1)
    await node.stop()


async def test_pending_action_fails_when_the_connection_drops() -> None:
    """panoramisk would keep it and replay it after the reconnect (a Redirect minutes late)."""
    fake = FakeAsterisk(answer=False)
    port = await fake.start()
    node = node_for(port, ping_interval=60)
    await node.start()
    assert await node.wait_ready(2)
    task = asyncio.create_task(
        node.send(
            build("Redirect", Channel="PJSIP/8001-1", Context="c", Exten="1", Priority=1), timeout=5
        )
    )
    await asyncio.sleep(0.1)
    for w in fake.writers:
        w.close()
    with pytest.raises(AmiUnavailable):
        await asyncio.wait_for(task, 2)
    await node.stop()
    await fake.stop()


async def test_wrong_secret_is_reported() -> None:
    fake = FakeAsterisk()
    port = await fake.start()
    states: list[str] = []
    node = node_for(port, states=states, secret="wrong")
    await node.start()
    for _ in range(40):
        if "auth-failed" in states:
            break
        await asyncio.sleep(0.05)
    assert "auth-failed" in states
    assert not node.connected
    await node.stop()
    await fake.stop()


async def test_queue_add_resolves() -> None:
    """'Added interface to queue' made panoramisk treat QueueAdd as a list: it never resolved."""
    fake = FakeAsterisk()
    fake.extra["queueadd"] = (
        b"Response: Success\r\nActionID: {aid}\r\nMessage: Added interface to queue\r\n\r\n"
    )
    port = await fake.start()
    node = node_for(port)
    await node.start()
    assert await node.wait_ready(2)
    resp = await node.send(build("QueueAdd", Queue="hotline", Interface="PJSIP/8001"), timeout=2)
    assert resp["Message"] == "Added interface to queue"
    await node.stop()
    await fake.stop()


async def test_error_response_is_typed_and_keeps_the_raw_message() -> None:
    fake = FakeAsterisk()
    port = await fake.start()
    node = node_for(port)
    await node.start()
    assert await node.wait_ready(2)
    with pytest.raises(AmiError) as err:
        await node.send(build("Nonsense"))
    assert "Invalid/unknown command" in err.value.raw["Message"]
    await node.stop()
    await fake.stop()


async def test_crlf_never_reaches_the_socket() -> None:
    fake = FakeAsterisk()
    port = await fake.start()
    node = node_for(port)
    await node.start()
    assert await node.wait_ready(2)
    before = len(fake.actions)
    with pytest.raises(UnsafeValue):
        await node.send(
            build(
                "Originate",
                Channel="PJSIP/8001",
                CallerID="张三\r\nAction: Hangup\r\nChannel: PJSIP/8002",
            )
        )
    with pytest.raises(UnsafeValue):
        build("Setvar", Variable="X", Value="a\x00b")
    await asyncio.sleep(0.05)
    assert len(fake.actions) == before
    await node.stop()
    await fake.stop()


async def test_malformed_frame_from_asterisk_is_survived() -> None:
    fake = FakeAsterisk()
    port = await fake.start()
    events: list[dict] = []
    node = node_for(port, events)
    await node.start()
    assert await node.wait_ready(2)
    w = fake.writers[-1]
    w.write(b"this is not AMI\r\n\x00\xff\r\n\r\nEvent: FullyBooted\r\nStatus: ok\r\n\r\n")
    await w.drain()
    await asyncio.sleep(0.1)
    assert [e["Event"] for e in events] == ["FullyBooted"]
    assert node.connected
    await node.send(build("Ping"))
    await node.stop()
    await fake.stop()


async def test_asterisk_restart_closes_socket_and_client_reconnects() -> None:
    streamer = TranscriptStreamer(fixture_path("asterisk_restart.ami.jsonl"))
    port = await streamer.start()
    states: list[str] = []
    node = node_for(port, states=states, backoff_max=0.2)
    await node.start()
    for _ in range(100):
        if streamer.connections >= 2 and node.connected:
            break
        await asyncio.sleep(0.05)
    assert streamer.connections >= 2
    assert states.count("connected") >= 2
    await node.stop()
    await streamer.stop()


async def test_a_burst_of_events_is_delivered_in_turns_of_the_loop() -> None:
    """Thousands of events in one read (a surge starting, a resync's lists) are delivered in
    order, a few at a time between the loop's other work (FastAGI questions), not in one
    callback that holds the loop until the last."""
    fake = FakeAsterisk()
    port = await fake.start()
    events: list[dict] = []

    def slow_handler(node: object, msg: dict) -> None:  # 0.2 ms of state updates an event
        began = time.perf_counter()
        while time.perf_counter() - began < 0.0002:
            pass
        events.append(msg)

    node = AmiNode("pbx1", "127.0.0.1", port, "cti", "cti-secret", on_event=slow_handler)
    await node.start()
    for _ in range(200):
        if fake.logins and node.connected:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the login's own traffic delivered
    base = len(events)
    burst = 2000
    frame = "Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: Burst\r\nSeq: {}\r\n\r\n"
    fake.writers[-1].write("".join(frame.format(i) for i in range(burst)).encode())
    seen: list[int] = []  # events delivered, as seen by other work in the loop
    while len(events) < base + burst:
        seen.append(len(events) - base)
        await asyncio.sleep(0)
    got = [int(m["Seq"]) for m in events[base:] if m.get("UserEvent") == "Burst"]
    assert got == list(range(burst))
    steps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert max(steps) <= 100, max(steps)  # one read of ~100 KB held the loop for all of it
    await node.stop()
    await fake.stop()


# A list and, in the same read, an event about one of its channels (the seat answers).
LIST_THEN_EVENT = (
    b"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
    b"Message: Channels will follow\r\n\r\n"
    b"Event: CoreShowChannel\r\nActionID: {aid}\r\nChannel: PJSIP/8001-00000001\r\n"
    b"Uniqueid: 1796658156.180\r\nChannelStateDesc: Ringing\r\n\r\n"
    b"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
    b"ListItems: 1\r\n\r\n"
    b"Event: BridgeEnter\r\nPrivilege: call,all\r\nUniqueid: 1796658156.180\r\n"
    b"BridgeUniqueid: b-1\r\n\r\n"
)


async def test_a_lists_hook_runs_before_the_events_read_after_it() -> None:
    """The caller of send_list resumes a turn of the loop later, when the event that came
    in the same read as the list's end has been delivered already; on_complete runs before
    it, with the list's items."""
    fake = FakeAsterisk()
    fake.extra["coreshowchannels"] = LIST_THEN_EVENT
    port = await fake.start()
    events: list[dict] = []
    node = node_for(port, events)
    await node.start()
    assert await node.wait_ready(2)
    seen: list[tuple[list[str], list[str]]] = []

    def hook(items: list[dict[str, str]]) -> None:
        seen.append(([i["Uniqueid"] for i in items], [e["Event"] for e in events]))

    before = len(events)
    items = await node.send_list(build("CoreShowChannels"), timeout=2, on_complete=hook)
    assert [i["Channel"] for i in items] == ["PJSIP/8001-00000001"]
    assert seen == [(["1796658156.180"], [e["Event"] for e in events[:before]])]
    assert [e["Event"] for e in events[before:]] == ["BridgeEnter"]
    await node.stop()
    await fake.stop()


async def test_a_lists_hook_gets_an_empty_list_and_its_error_is_raised() -> None:
    fake = FakeAsterisk()
    fake.extra["pjsipshowcontacts"] = (
        b"Response: Error\r\nActionID: {aid}\r\nMessage: No Contacts found\r\n\r\n"
    )
    port = await fake.start()
    node = node_for(port)
    await node.start()
    assert await node.wait_ready(2)
    got: list[list[dict[str, str]]] = []
    contacts = await node.send_list(build("PJSIPShowContacts"), timeout=2, on_complete=got.append)
    assert contacts == [] and got == [[]]

    def broken(items: list[dict[str, str]]) -> None:
        raise ValueError("the hook failed")

    fake.extra["coreshowchannels"] = LIST_THEN_EVENT
    with pytest.raises(ValueError, match="the hook failed"):
        await node.send_list(build("CoreShowChannels"), timeout=2, on_complete=broken)
    # the connection is fine: the next action is answered
    assert (await node.send(build("Ping"), timeout=2))["Response"] == "Success"
    await node.stop()
    await fake.stop()
