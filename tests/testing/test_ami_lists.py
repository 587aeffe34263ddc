"""Fact 2 of in_loop/README.md: a list action with nothing to list may answer
``Response: Error`` and no EventList at all, byte for byte as Asterisk writes it."""

from __future__ import annotations

import asyncio
import re

import pytest

from cti.testing.frames import header
from cti.testing.list_actions import LIST_ACTIONS, empty_answer
from cti.testing.transcript import load_transcript
from tests.testing.conftest import MakeSim, login

START = "in_loop/cti_session_start_and_call.ami.jsonl"


async def raw_answer(port: int, action: str, **headers: str) -> bytes:
    """Log in on a raw socket, send one action, return the bytes of its first answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # banner
        writer.write(b"Action: Login\r\nUsername: cti\r\nSecret: cti-secret\r\nEvents: off\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"Action: {action}\r\nActionID: q-1\r\n{extra}\r\n".encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


async def test_no_contacts_is_an_error_byte_for_byte(make_sim: MakeSim) -> None:
    sim = await make_sim()
    got = await raw_answer(sim.ami_port, "PJSIPShowContacts")
    (recorded,) = [
        e.data
        for e in load_transcript(START).entries
        if e.data.startswith("Response: Error") and "No Contacts" in e.data
    ]
    want = re.sub(r"ActionID: [^\r]*", "ActionID: q-1", recorded).encode()
    assert (
        got == want == b"Response: Error\r\nActionID: q-1\r\nMessage: No Contacts found\n\r\n\r\n"
    )
    assert empty_answer("PJSIPShowContacts", "q-1") == [want]


async def test_contacts_once_a_phone_registered(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.register_phone("8001")
    client = await login(sim)
    r = await client.action(Action="PJSIPShowContacts")
    assert header(r, "EventList") == "start"
    done = await client.wait_event("ContactListComplete")
    assert header(done, "ListItems") == "1"
    await client.close()


async def test_conference_list_errors(make_sim: MakeSim) -> None:
    sim = await make_sim()
    client = await login(sim)
    r = await client.action(Action="ConfbridgeList", Conference="3w-x")
    assert header(r, "Message") == "No active conferences."
    r = await client.action(Action="ConfbridgeList")
    assert header(r, "Message") == "No Conference name provided."
    sim.register_phone("9001")
    await client.action(
        Action="Originate", Channel="PJSIP/9001", Context="cti-conf", Exten="other", Async="true"
    )
    await client.wait_event("ConfbridgeJoin")
    r = await client.action(Action="ConfbridgeList", Conference="3w-x")
    assert header(r, "Message") == "No Conference by that name found."
    r = await client.action(Action="ConfbridgeList", Conference="other")
    assert header(r, "EventList") == "start"
    await client.close()


@pytest.mark.parametrize("name", sorted(LIST_ACTIONS))
def test_empty_answers_are_one_error_or_a_whole_list(name: str) -> None:
    frames = empty_answer(name, "a")
    item = LIST_ACTIONS[name]
    if item.empty_error is None:
        assert len(frames) == 2
        assert b"EventList: start" in frames[0]
        assert frames[1].startswith(f"Event: {item.complete}\r\n".encode())
    else:
        (frame,) = frames
        assert b"EventList" not in frame and frame.startswith(b"Response: Error\r\n")


async def test_status_of_a_missing_channel(make_sim: MakeSim) -> None:
    sim = await make_sim()
    client = await login(sim)
    r = await client.action(Action="Status", Channel="PJSIP/8001-00000001")
    assert [(k, v) for k, v in r if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "No such channel"),
    ]
    r = await client.action(Action="Status")
    assert header(r, "EventList") == "start"
    assert header(await client.wait_event("StatusComplete"), "Items") == "0"
    r = await client.action(Action="DBGet", Family="cti", Key="nope")
    assert header(r, "Message") == "Database entry not found"
    r = await client.action(Action="DBGet", Family="cti")
    assert header(r, "Message") == "No key specified."
    await client.close()
