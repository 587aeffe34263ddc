"""``AGI(agi://host:port/script,args)`` for a simulated channel: a real FastAGI TCP client.

res_agi behaviour that matters to a CTI (res/res_agi.c, run_agi):

- a refused connection returns at once with AGISTATUS=FAILURE;
- an accepted connection has no timeout at all: a silent server holds the channel until it
  closes the socket;
- commands run one per readiness of the socket: Asterisk polls the socket, reads ONE line
  with fgets() from a buffered FILE*, runs it, answers, and polls again. Lines that arrived
  together with it wait in the stdio buffer, unseen by poll, until more bytes come or the
  server closes (then they all run). A server that writes its commands back to back gets the
  first answer and then nothing (``StdioLineReader``);
- if the channel hangs up meanwhile, ``HANGUP`` is sent and the session goes on in dead mode
  (commands that need a live channel answer 511) until the server closes; ``HANGUP`` is sent
  once more at the end.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import TYPE_CHECKING

from cti.testing.agi_protocol import AgiResponder, StdioLineReader, env_block
from cti.testing.bridging import wait_any

if TYPE_CHECKING:
    from cti.testing.model import Channel
    from cti.testing.pbx import AsteriskSimulator


class SimAgiChannel:
    """The channel as AGI commands see it (variables, CALLERID(), AstDB)."""

    def __init__(self, sim: AsteriskSimulator, channel: Channel) -> None:
        self.sim = sim
        self.channel = channel

    def agi_get(self, name: str) -> str | None:
        return channel_value(self.sim, self.channel, name)

    def agi_set(self, name: str, value: str) -> None:
        self.sim.setvar(self.channel, name, value)

    def agi_db_get(self, family: str, key: str) -> str | None:
        return self.sim.astdb.get((family, key))

    def agi_db_put(self, family: str, key: str, value: str) -> None:
        self.sim.astdb[(family, key)] = value

    def agi_db_del(self, family: str, key: str) -> bool:
        return self.sim.astdb.pop((family, key), None) is not None

    def agi_hangup(self) -> None:
        self.sim.request_hangup(self.channel, 16, with_cause=True)

    @property
    def agi_alive(self) -> bool:
        return self.channel.alive


def channel_value(sim: AsteriskSimulator, channel: Channel, name: str) -> str | None:
    """A variable or the few dialplan functions a CTI reads."""
    functions = {
        "CALLERID(name)": channel.cid_name,
        "CALLERID(num)": channel.cid_num,
        "CALLERID(all)": f'"{channel.cid_name}" <{channel.cid_num}>',
        "CONNECTEDLINE(num)": channel.connected_num,
        "CONNECTEDLINE(name)": channel.connected_name,
        "CHANNEL": channel.name,
        "UNIQUEID": channel.uniqueid,
        "LINKEDID": channel.linkedid,
        "CHANNEL(linkedid)": channel.linkedid,
        "EXTEN": channel.exten,
        "CONTEXT": channel.context,
    }
    if name in functions:
        return functions[name]
    if name.startswith("DB(") and name.endswith(")"):
        family, _, key = name[3:-1].partition("/")
        return sim.astdb.get((family, key))
    if name in channel.variables:
        return channel.variables[name]
    return sim.globals.get(name)


class AgiSocket(asyncio.Protocol):
    """The FastAGI socket as res_agi sees it: bytes go to a ``StdioLineReader``; the peer's
    close is an end of input but replies may still be written (a half-closed peer reads
    them)."""

    def __init__(self) -> None:
        self.lines = StdioLineReader()
        self.changed = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)
        self.changed.set()

    def eof_received(self) -> bool:
        self.lines.feed_eof()
        self.changed.set()
        return True  # keep the write side: Asterisk still answers the buffered commands

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.feed_eof()
        self.changed.set()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_readable(self, hangup: asyncio.Event | None) -> None:
        """poll() on the socket (and on the channel while it is alive)."""
        while not self.lines.readable and not (hangup is not None and hangup.is_set()):
            self.changed.clear()
            await wait_any(self.changed, *([hangup] if hangup is not None else []))


def agi_env(
    sim: AsteriskSimulator,
    channel: Channel,
    script: str,
    address: tuple[str, int] | None = None,
) -> dict[str, str]:
    """The ``agi_*`` block res_agi sends for ``channel`` (setup_env)."""
    host, port = address or (sim.config.agi_host, sim.config.agi_port)

    def known(value: str) -> str:
        return "unknown" if value in ("", "<unknown>") else value

    return {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://{host}:{port}/{script}",
        "agi_channel": channel.name,
        "agi_language": "en",
        "agi_type": channel.name.split("/", 1)[0],
        "agi_uniqueid": channel.uniqueid,
        "agi_version": "UNKNOWN__and_probably_unsupported",
        "agi_callerid": known(channel.cid_num),
        "agi_calleridname": known(channel.cid_name),
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        # The dialled number: the trunk's request URI; a Local channel has none.
        "agi_dnid": channel.dnid or "unknown",
        "agi_rdnis": "unknown",
        "agi_context": channel.context,
        "agi_extension": channel.exten,
        "agi_priority": str(channel.priority),
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": str(threading.get_ident()),
    }


async def run_agi(
    sim: AsteriskSimulator,
    channel: Channel,
    script: str,
    args: list[str],
    address: tuple[str, int] | None = None,
) -> str:
    """Run one FastAGI session (on CTI_AGI, or ``address``); return AGISTATUS (SUCCESS,
    FAILURE or HANGUP)."""
    loop = asyncio.get_running_loop()
    sock = AgiSocket()
    host, port = address or (sim.config.agi_host, sim.config.agi_port)
    try:
        await loop.create_connection(lambda: sock, host, port)
    except OSError:
        return "FAILURE"
    responder = AgiResponder(SimAgiChannel(sim, channel))
    dead = False
    status = "SUCCESS"
    try:
        sock.write(env_block(agi_env(sim, channel, script, (host, port)), args))
        while True:
            if not dead and channel.hangup_requested.is_set():
                # The channel hung up: tell the server (AGISIGHUP is on by default) and go on
                # in dead mode, reading the socket only.
                dead, status = True, "HANGUP"
                sock.write(b"HANGUP\n")
            await sock.wait_readable(None if dead else channel.hangup_requested)
            if not sock.lines.readable:
                continue  # the hangup woke us up
            line = sock.lines.fgets()
            while line is None:  # half a line: fgets blocks in read() for the rest
                await sock.wait_readable(None)
                line = sock.lines.fgets()
            if not line:
                break  # the server closed and every buffered command has run
            command = line.decode("utf-8", errors="replace").rstrip("\n")
            run_command(sim, channel, responder, sock, command, dead)
    finally:
        # res_agi says HANGUP once more as it leaves (lost if the server is gone).
        sock.write(b"HANGUP\n")
        sock.close()
    return status


def run_command(
    sim: AsteriskSimulator,
    channel: Channel,
    responder: AgiResponder,
    sock: AgiSocket,
    command: str,
    dead: bool,
) -> None:
    """agi_handle_command: AGIExecStart, the command, its answer, AGIExecEnd."""
    command_id = str(random.randint(1, 2**31 - 1))
    ids = [("CommandId", command_id), ("Command", command)]
    sim.channel_event("AGIExecStart", channel, ids, "agi,all")
    reply = responder.reply(command, dead=dead)
    sim.channel_event(
        "AGIExecEnd",
        channel,
        [*ids, ("ResultCode", reply.code), ("Result", reply.result)],
        "agi,all",
    )
    sock.write(reply.text.encode("utf-8") + b"\n")
