"""What the AMI client logs about its connection, against real sockets: each reason in plain
words with the node and its address, once per change and not once per retry, a reminder while
a node stays down, the recovery, and none of panoramisk's own lines above DEBUG."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cti.ami import outage
from cti.ami.client import AmiNode
from cti.testing.model import SimConfig
from cti.testing.pbx import AsteriskSimulator
from tests.cti.ami_peers import (
    BANNER,
    ClosingPeer,
    FakeAsterisk,
    FullBacklog,
    SilentPeer,
    unused_port,
)

CLIENT = "cti.ami.client"


@pytest.fixture(autouse=True)
def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT)
    caplog.set_level(logging.DEBUG, logger="panoramisk")


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[..., AmiNode]]:
    made: list[AmiNode] = []

    def make(port: int, **kw: Any) -> AmiNode:
        kw.setdefault("backoff_max", 0.05)
        node = AmiNode(
            "pbx-a",
            "127.0.0.1",
            port,
            "cti",
            kw.pop("secret", "cti-secret"),
            on_event=lambda n, m: None,
            **kw,
        )
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    simulator = AsteriskSimulator(SimConfig(scale=0.01))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def said(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CLIENT and r.levelno >= level]


def noise(caplog: pytest.LogCaptureFixture) -> list[str]:
    """panoramisk's lines above DEBUG (its per-retry 'Not able to reconnect' was one)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("panoramisk") and r.levelno > logging.DEBUG
    ]


async def test_refused_is_said_once_with_the_node_its_address_and_what_to_check(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    port = unused_port()
    node = nodes(port)
    await node.start()
    await until(lambda: node.outage.failures >= 5)
    assert said(caplog, logging.WARNING) == [
        f"AMI node pbx-a (127.0.0.1:{port}): connection refused, retrying at intervals up to"
        f" 0.05 s; is Asterisk running, with the manager enabled on port {port}"
        " (manager.conf: enabled = yes, port, bindaddr)?"
    ]
    assert node.state == "disconnected" and node.state_detail == "connection refused"
    assert noise(caplog) == []
    # panoramisk still said it, on every retry, where it does no harm.
    debug = [r.getMessage() for r in caplog.records if r.name == "panoramisk.manager"]
    assert debug.count("Not able to reconnect") >= 4


async def test_auth_failed_says_which_settings_to_check_once(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode], sim: AsteriskSimulator
) -> None:
    states: list[str] = []
    node = nodes(sim.ami_port, secret="not-the-secret", on_state=lambda n, s, d: states.append(s))
    await node.start()
    await until(lambda: sim.ami.action_counts["Login"] >= 3 and node.outage.failures >= 3)
    errors = said(caplog, logging.ERROR)
    assert errors == [
        f"AMI node pbx-a (127.0.0.1:{sim.ami_port}): login refused (Authentication failed),"
        " retrying at intervals up to 0.05 s; check username and secret in the [[asterisk]]"
        " entry of this node against manager.conf on the PBX (and that user's permit/deny)"
    ]
    # Asterisk closes the socket after the refusal: that close is not another reason.
    assert said(caplog, logging.WARNING) == errors
    assert states == ["connecting", "auth-failed"]
    assert noise(caplog) == []


async def test_a_connect_that_hangs_is_given_up_and_retried(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    peer = FullBacklog()
    port = peer.start()
    try:
        node = nodes(port, login_timeout=0.1)
        await node.start()
        await until(lambda: node.outage.failures >= 3)
        assert said(caplog, logging.WARNING) == [
            f"AMI node pbx-a (127.0.0.1:{port}): no answer to the TCP connect within 0.1 s,"
            " retrying at intervals up to 0.05 s; check the host in the [[asterisk]] entry of"
            " this node, the network and any firewall between"
        ]
        await node.stop()
    finally:
        peer.stop()


async def test_a_port_that_accepts_and_says_nothing_times_out(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    peer = SilentPeer()
    port = await peer.start()
    node = nodes(port, login_timeout=0.1)
    await node.start()
    await until(lambda: peer.accepted >= 3)
    assert said(caplog, logging.WARNING) == [
        f"AMI node pbx-a (127.0.0.1:{port}): connected, but no AMI banner within 0.1 s,"
        f" retrying at intervals up to 0.05 s; is port {port} Asterisk's manager port, and is"
        " Asterisk responding (not hung)?"
    ]
    await node.stop()
    await peer.stop()


async def test_a_banner_and_then_silence_is_a_login_timeout(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    peer = SilentPeer(banner=BANNER)
    port = await peer.start()
    node = nodes(port, login_timeout=0.1)
    await node.start()
    await until(lambda: peer.accepted >= 3)
    lines = said(caplog, logging.WARNING)
    assert len(lines) == 1 and "no answer to Login within 0.1 s" in lines[0]
    await node.stop()
    await peer.stop()


async def test_another_service_on_the_port_is_not_taken_for_asterisk(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    peer = SilentPeer(banner=b"SSH-2.0-OpenSSH_9.2\r\n")
    port = await peer.start()
    node = nodes(port, login_timeout=0.1)
    await node.start()
    await until(lambda: peer.accepted >= 2)
    lines = said(caplog, logging.WARNING)
    assert len(lines) == 1
    assert "what answered is not Asterisk's manager, retrying" in lines[0]
    assert lines[0].endswith(f"; check the port in the [[asterisk]] entry of this node ({port})")
    await node.stop()
    await peer.stop()


async def test_unanswered_ping_drops_the_connection_and_says_why(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    fake = FakeAsterisk(answer=False)  # logs in, then answers nothing
    port = await fake.start()
    node = nodes(port, ping_interval=0.05, ping_timeout=0.1)
    await node.start()
    await until(lambda: fake.logins >= 2 and node.connected)
    lines = said(caplog)
    label = f"AMI node pbx-a (127.0.0.1:{port})"
    assert lines[0] == f"{label}: logged in (AMI 11.0.0)"
    assert lines[1].startswith(f"{label}: connection lost after ")
    assert lines[1].endswith(
        " up: no answer to Ping within 0.1 s, retrying at intervals up to 0.05 s; Asterisk"
        " hung, or the network between lost the connection"
    )
    assert lines[2].startswith(f"{label}: logged in after ")
    assert "last reason: no answer to Ping within 0.1 s" in lines[2]
    await node.stop()
    await fake.stop()


async def test_a_peer_closing_before_login_is_said_once(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    peer = ClosingPeer()
    port = await peer.start()
    node = nodes(port)
    await node.start()
    await until(lambda: peer.accepted >= 4)
    assert said(caplog, logging.WARNING) == [
        f"AMI node pbx-a (127.0.0.1:{port}): closed by the PBX before the login answer,"
        " retrying at intervals up to 0.05 s; is this Asterisk's manager port, and is the"
        " manager's connection limit reached?"
    ]
    await node.stop()
    await peer.stop()


async def test_closed_by_peer_then_refused_then_back(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode], sim: AsteriskSimulator
) -> None:
    port = sim.ami_port
    node = nodes(port)
    await node.start()
    assert await node.wait_ready(5)
    await sim.ami.close_listener_and_sessions()  # Asterisk gone, its port closed
    await until(lambda: node.outage.failures >= 4)
    await sim.ami.start("127.0.0.1", port)
    assert await node.wait_ready(5)
    label = f"AMI node pbx-a (127.0.0.1:{port})"
    lines = said(caplog)
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"{label}: logged in (AMI ")
    assert lines[1].startswith(f"{label}: connection lost after ")
    assert " up: closed by the PBX (Asterisk stopped, restarted or reloaded?)" in lines[1]
    assert lines[2].startswith(
        f"{label}: now connection refused (before: closed by the PBX (Asterisk stopped,"
        " restarted or reloaded?); down for "
    )
    assert "); is Asterisk running, with the manager enabled" in lines[2]
    assert lines[3].startswith(f"{label}: logged in after ")
    assert "down (last reason: connection refused; " in lines[3]
    assert noise(caplog) == []


async def test_an_announced_restart_is_the_reason(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode], sim: AsteriskSimulator
) -> None:
    node = nodes(sim.ami_port)
    await node.start()
    assert await node.wait_ready(5)
    await sim.restart()  # the Shutdown event, then the sockets close
    assert await node.wait_ready(5)
    lost = [line for line in said(caplog) if "connection lost" in line]
    assert len(lost) == 1
    assert "up: Asterisk announced it is restarting, retrying" in lost[0]
    assert "logged in after " in said(caplog)[-1]


async def test_a_long_outage_is_one_line_and_a_reminder_per_interval(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode]
) -> None:
    port = unused_port()
    node = nodes(port, backoff_max=0.01, down_reminder_s=0.3)
    await node.start()
    await until(lambda: node.outage.reminders >= 3)
    records = [r for r in caplog.records if r.name == CLIENT and r.levelno >= logging.INFO]
    first, reminders = records[0], records[1:]
    assert "connection refused, retrying at intervals up to 0.01 s" in first.getMessage()
    assert len(reminders) == node.outage.reminders
    assert node.outage.failures > 3 * len(records)  # many retries, few lines
    label = f"AMI node pbx-a (127.0.0.1:{port})"
    for line in (r.getMessage() for r in reminders):
        assert line.startswith(f"{label}: still down after ")
        assert " failed attempts): connection refused; is Asterisk running" in line
    # Not sooner than the interval (a loaded machine may make them later, never earlier).
    starts = [first.created] + [r.created for r in reminders]
    assert all(b - a >= 0.3 * 0.9 for a, b in zip(starts, starts[1:], strict=False))


async def test_the_reminder_stops_when_the_node_is_back(
    caplog: pytest.LogCaptureFixture, nodes: Callable[..., AmiNode], sim: AsteriskSimulator
) -> None:
    port = sim.ami_port
    await sim.ami.close_listener_and_sessions()
    node = nodes(port, down_reminder_s=0.1)
    await node.start()
    await until(lambda: node.outage.reminders >= 1)
    await sim.ami.start("127.0.0.1", port)
    assert await node.wait_ready(5)
    reminders = [line for line in said(caplog) if "still down" in line]
    assert reminders
    await asyncio.sleep(0.3)  # three intervals: no reminder while the node is up
    assert [line for line in said(caplog) if "still down" in line] == reminders
    assert node.outage.reminders == 0


# --- reasons the loopback cannot produce --------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (OSError(errno.EHOSTUNREACH, "Connect call failed"), "unreachable", "no route to the host"),
        (OSError(errno.ENETUNREACH, "Connect call failed"), "unreachable", "network unreachable"),
        (OSError(errno.ETIMEDOUT, "Connect call failed"), "timed-out", "the connection timed out"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "reset", "connection reset by the PBX"),
        (OSError("Multiple exceptions: [Errno 111] a, [Errno 111] b"), "refused", "connection"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "unresolved", "cannot"),
        (OSError(errno.EMFILE, "Too many open files"), "os-error", "too many open files"),
    ],
)
def test_os_errors_in_plain_words(exc: OSError, kind: str, text: str) -> None:
    reason = outage.from_error(exc, "pbx-a.example", 5038, logged_in=False)
    assert reason.kind == kind
    assert reason.text.startswith(text)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.004, "0 s"),
        (0.05, "0.05 s"),
        (0.25, "0.25 s"),
        (2.0, "2 s"),
        (2.54, "2.5 s"),
        (12.4, "12 s"),
        (192, "3 min 12 s"),
        (7500, "2 h 5 min"),
        (273600, "3 d 4 h"),
    ],
)
def test_durations_read_as_words(seconds: float, words: str) -> None:
    assert outage.duration(seconds) == words


def test_an_ipv6_address_is_bracketed() -> None:
    assert outage.address("fd00::5", 5038) == "[fd00::5]:5038"
    assert outage.address("pbx-a.example", 5038) == "pbx-a.example:5038"
