"""Facts 3 and 4 of in_loop/README.md: a restart from the console refuses every action with
"Asterisk is shutting down" until the sockets close; the manager then accepts logins while
the PBX still boots (no FullyBooted at login, the actions of modules not loaded yet do not
exist), and FullyBooted (Uptime 0) goes out when the boot ends."""

from __future__ import annotations

import asyncio

from cti.testing.clients import RawAmiClient
from cti.testing.frames import header
from cti.testing.transcript import load_transcript
from tests.testing.conftest import MakeSim, login

AFTER = "in_loop/cti_session_after_restart.ami.jsonl"
DURING = "in_loop/cti_session_asterisk_restart.ami.jsonl"


def recorded(path: str, start: str) -> list[str]:
    """The raw messages of a transcript that start with ``start``."""
    return [e.data for e in load_transcript(path).entries if e.data.startswith(start)]


async def login_when_listening(port: int) -> RawAmiClient:
    for _ in range(200):
        client = RawAmiClient("127.0.0.1", port)
        try:
            await client.login()
            return client
        except OSError:
            await asyncio.sleep(0.01)
    raise AssertionError("the manager did not come back")


async def test_actions_during_shutdown_are_refused(make_sim: MakeSim) -> None:
    sim = await make_sim(shutdown_s=0.3, restart_delay_s=0.05)
    client = await login(sim)
    restart = asyncio.ensure_future(sim.restart())
    shutdown = await client.wait_event("Shutdown")
    assert [k for k, _ in shutdown] == ["Event", "Privilege", "Shutdown", "Restart"]
    assert (header(shutdown, "Shutdown"), header(shutdown, "Restart")) == ("Cleanly", "True")
    r = await client.action(Action="DBPut", Family="cti", Key="heartbeat", Val="1")
    (want,) = [
        m for m in recorded(DURING, "Response: Error") if "shutting down" in m
    ]  # the recorded answer
    assert [(k, v) for k, v in r if k != "ActionID"] == [
        ("Response", "Error"),
        ("Message", "Asterisk is shutting down"),
    ]
    assert "Message: Asterisk is shutting down\r\n" in want
    # Even a login is refused then.
    other = RawAmiClient("127.0.0.1", sim.ami_port)
    r = await other.login()
    assert header(r, "Message") == "Asterisk is shutting down"
    await asyncio.wait_for(client.closed.wait(), 5)
    await restart
    for c in (client, other):
        await c.close()


async def test_login_while_booting(make_sim: MakeSim) -> None:
    sim = await make_sim(shutdown_s=0, restart_delay_s=0.05, boot_delay_s=0.6)
    sim.register_phone("8001")
    first = await login(sim)
    await sim.restart()
    client = await login_when_listening(sim.ami_port)
    # No FullyBooted after this login: the PBX is not up yet.
    await asyncio.sleep(0.05)
    assert client.events("FullyBooted") == []
    r = await client.action(Action="PJSIPShowContacts")
    (want,) = [m for m in recorded(AFTER, "Response: Error") if "PJSIPShowContacts" in m]
    assert header(r, "Message") == (
        "Invalid/unknown command: PJSIPShowContacts. "
        "Use Action: ListCommands to show available commands."
    )
    assert f"Message: {header(r, 'Message')}\r\n" in want
    # The core's actions work meanwhile.
    r = await client.action(Action="CoreShowChannels")
    assert header(r, "EventList") == "start"
    r = await client.action(Action="DBPut", Family="cti", Key="heartbeat", Val="1")
    assert header(r, "Message") == "Updated database successfully"
    # res_pjsip comes up and remembers the registered phone, then the boot ends.
    contact = await client.wait_event("ContactStatus", ContactStatus="NonQualified", timeout=5)
    assert header(contact, "AOR") == "8001"
    booted = await client.wait_event("FullyBooted", timeout=5)
    (want,) = [m for m in recorded(AFTER, "Event: FullyBooted")]
    assert [k for k, _ in booted] == [
        line.split(":")[0] for line in want.split("\r\n") if line
    ]  # Status, Uptime, LastReload: the core's order, not the login's
    assert (header(booted, "Uptime"), header(booted, "LastReload")) == ("0", "0")
    r = await client.action(Action="PJSIPShowContacts")
    assert header(r, "EventList") == "start"
    # Then the phone answers its first qualify.
    await client.wait_event("ContactStatus", ContactStatus="Reachable", timeout=5)
    await client.wait_event("DeviceStateChange", Device="PJSIP/8001", State="NOT_INUSE")
    # A login once the PBX is up gets FullyBooted at once, in the login's order.
    late = await login(sim)
    at_login = await late.wait_event("FullyBooted")
    assert [k for k, _ in at_login] == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
    for c in (first, client, late):
        await c.close()


async def test_restart_starts_counting_again(make_sim: MakeSim) -> None:
    sim = await make_sim(shutdown_s=0, restart_delay_s=0.01, boot_delay_s=0.05)
    await sim.restart()
    call = sim.place_call(talk_s=1, patience_s=1)
    assert call.channel.name == "PJSIP/trunk-00000000"
    assert call.uniqueid.endswith(".0")
    await call.wait(5)
