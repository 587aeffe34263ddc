"""``AGI(agi://host:port/script,args)`` for a simulated channel: a real FastAGI TCP client.

res_agi behaviour that matters to a CTI: a refused connection returns at once with
AGISTATUS=FAILURE; an accepted connection has no timeout at all, so a silent server holds the
call until it closes the socket; if the caller hangs up meanwhile, ``HANGUP`` is sent and the
session goes on in dead mode until the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from typing import TYPE_CHECKING

from cti.testing.agi_protocol import AgiResponder, env_block, split_args

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


async def run_agi(sim: AsteriskSimulator, channel: Channel, script: str, args: list[str]) -> str:
    """Run one FastAGI session; return AGISTATUS (SUCCESS, FAILURE or HANGUP)."""
    host, port = sim.config.agi_host, sim.config.agi_port
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return "FAILURE"
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://{host}:{port}/{script}",
        "agi_channel": channel.name,
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": channel.uniqueid,
        "agi_version": "UNKNOWN__and_probably_unsupported",
        "agi_callerid": channel.cid_num,
        "agi_calleridname": channel.cid_name,
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": channel.exten,
        "agi_rdnis": "unknown",
        "agi_context": channel.context,
        "agi_extension": channel.exten,
        "agi_priority": str(channel.priority),
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": str(threading.get_ident()),
    }
    responder = AgiResponder(SimAgiChannel(sim, channel))
    hangup_sent = False
    try:
        writer.write(env_block(env, args))
        await writer.drain()
        while True:
            line_task = asyncio.ensure_future(reader.readline())
            waiters: set[asyncio.Future[object]] = {line_task}  # type: ignore[arg-type]
            hangup_task = None
            if not hangup_sent:
                hangup_task = asyncio.ensure_future(channel.hangup_requested.wait())
                waiters.add(hangup_task)  # type: ignore[arg-type]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                line_task.cancel()
                raise
            finally:
                if hangup_task is not None and not hangup_task.done():
                    hangup_task.cancel()
            if not line_task.done():
                # The caller hung up: res_agi tells the server, then waits for it to close.
                hangup_sent = True
                writer.write(b"HANGUP\n")
                await writer.drain()
                try:
                    line = await line_task
                finally:
                    line_task.cancel()
            else:
                line = line_task.result()
            if not line:
                break
            command = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if not command:
                continue
            command_id = str(random.randint(1, 2**31 - 1))
            sim.channel_event(
                "AGIExecStart",
                channel,
                [("CommandId", command_id), ("Command", command)],
                "agi,all",
            )
            reply = responder.answer(command)
            code = reply.split(" ", 1)[0].split("-", 1)[0]
            sim.channel_event(
                "AGIExecEnd",
                channel,
                [
                    ("CommandId", command_id),
                    ("Command", command),
                    ("ResultCode", code),
                    ("Result", "Success" if code == "200" else "Failure"),
                ],
                "agi,all",
            )
            writer.write(reply.encode("utf-8"))
            await writer.drain()
            if split_args(command)[:1] == ["HANGUP"]:
                hangup_sent = True
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return "HANGUP" if not channel.alive else "SUCCESS"
