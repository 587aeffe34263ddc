"""AMI actions with Asterisk 22's responses (messages copied from the transcripts/manager.c)."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from cti.testing.agi_client import channel_value
from cti.testing.ami_server import AmiSession, event_mask
from cti.testing.dialplan import redirect
from cti.testing.frames import Pairs, header, headers_all
from cti.testing.model import Channel
from cti.testing.phones import event_tv
from cti.testing.transfers import OriginateRequest, atxfer, blind_transfer, can_atxfer, originate

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator

Handler = Callable[["AsteriskSimulator", AmiSession, Pairs], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def action(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name.lower()] = fn
        return fn

    return register


def aid(request: Pairs) -> list[tuple[str, str]]:
    value = header(request, "ActionID")
    return [] if value is None else [("ActionID", value)]


def send_list(
    session: AmiSession,
    request: Pairs,
    message: str,
    events: list[Pairs],
    complete: str,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    """Response with EventList: start, the items, then the ...Complete event."""
    session.respond(request, "Success", ("EventList", "start"), ("Message", message))
    for item in events:
        session.send(item)
    session.send(
        [
            ("Event", complete),
            *aid(request),
            ("EventList", "Complete"),
            ("ListItems", str(len(events))),
            *extra,
        ]
    )


async def dispatch(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    name = header(request, "Action")
    if name is None:
        session.error(request, "Missing action in request")
        return
    lowered = name.lower()
    if not session.authenticated and lowered not in ("login", "challenge", "logoff"):
        session.error(request, "Permission denied")
        return
    handler = HANDLERS.get(lowered)
    if handler is None:
        session.error(
            request,
            f"Invalid/unknown command: {name}. "
            "Use Action: ListCommands to show available commands.",
        )
        sim.emit(
            "RequestBadFormat",
            "security,all",
            [
                ("EventTV", event_tv()),
                ("Severity", "Error"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("SessionID", session.session_id),
                ("LocalAddress", session.local),
                ("RemoteAddress", session.remote),
                ("RequestType", f"Action: {name}"),
                ("SessionTV", event_tv(session.started)),
                ("AccountID", session.username),
            ],
        )
        return
    await handler(sim, session, request)


def _security_common(session: AmiSession, severity: str) -> Pairs:
    return [
        ("EventTV", event_tv()),
        ("Severity", severity),
        ("Service", "AMI"),
        ("EventVersion", "1"),
    ]


@action("Login")
async def _login(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    user = header(request, "Username") or ""
    if user != sim.config.username or header(request, "Secret") != sim.config.secret:
        session.error(request, "Authentication failed")
        sim.emit(
            "InvalidPassword",
            "security,all",
            [
                *_security_common(session, "Error"),
                ("AccountID", user),
                ("SessionID", session.session_id),
                ("LocalAddress", session.local),
                ("RemoteAddress", session.remote),
            ],
        )
        # manager.c drops the connection after a failed login.
        session.close()
        return
    session.authenticated = True
    session.username = user
    session.mask = event_mask(header(request, "Events"))
    session.success(request, "Authentication accepted")
    if session.accepts("system,all"):
        uptime = int(time.time() - sim.started_at)
        reload_ = int(time.time() - sim.reloaded_at)
        session.send(
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", str(uptime)),
                ("LastReload", str(reload_)),
                ("Status", "Fully Booted"),
            ]
        )
    sim.emit(
        "SuccessfulAuth",
        "security,all",
        [
            *_security_common(session, "Informational"),
            ("AccountID", user),
            ("SessionID", session.session_id),
            ("LocalAddress", session.local),
            ("RemoteAddress", session.remote),
            ("UsingPassword", "0"),
            ("SessionTV", event_tv(session.started)),
        ],
    )


@action("Logoff")
async def _logoff(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    session.respond(request, "Goodbye", ("Message", "Thanks for all the fish."))
    session.close()


@action("Events")
async def _events(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    session.mask = event_mask(header(request, "EventMask"))
    session.respond(request, "Success", ("Events", "Off" if session.mask == frozenset() else "On"))


@action("Ping")
async def _ping(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    session.respond(request, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))


@action("CoreStatus")
async def _core_status(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    start, reload_ = time.localtime(sim.started_at), time.localtime(sim.reloaded_at)
    session.respond(
        request,
        "Success",
        ("CoreStartupDate", time.strftime("%Y-%m-%d", start)),
        ("CoreStartupTime", time.strftime("%H:%M:%S", start)),
        ("CoreReloadDate", time.strftime("%Y-%m-%d", reload_)),
        ("CoreReloadTime", time.strftime("%H:%M:%S", reload_)),
        ("CoreCurrentCalls", str(len({c.linkedid for c in sim.channels.values()}))),
        ("CoreProcessedCalls", str(sim.processed_calls)),
    )


@action("Command")
async def _command(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    command = (header(request, "Command") or "").strip()
    if re.fullmatch(r"core restart (now|gracefully|when convenient)", command):
        # The real PBX closes every AMI socket before any response goes out.
        sim.spawn(sim.restart(), name="core-restart")
        return
    if command == "core show version":
        session.respond(
            request,
            "Success",
            ("Message", "Command output follows"),
            ("Output", "Asterisk 22 (simulated)"),
        )
        return
    output = (
        f"No such command '{command}' (type 'core show help {command}' for other possible commands)"
    )
    session.respond(request, "Error", ("Message", "Command output follows"), ("Output", output))


def channel_or_error(
    sim: AsteriskSimulator,
    session: AmiSession,
    request: Pairs,
    missing: str,
    absent: str,
    key: str = "Channel",
) -> Channel | None:
    name = header(request, key)
    if not name:
        session.error(request, missing)
        return None
    channel = sim.find_channel(name)
    if channel is None:
        session.error(request, absent.format(name=name))
    return channel


@action("Getvar")
async def _getvar(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    variable = header(request, "Variable")
    if not variable:
        session.error(request, "No variable specified")
        return
    if header(request, "Channel"):
        channel = channel_or_error(sim, session, request, "", "No such channel")
        if channel is None:
            return
        value = channel_value(sim, channel, variable)
    else:
        value = sim.globals.get(variable)
        if variable.startswith("DB(") and variable.endswith(")"):
            family, _, key = variable[3:-1].partition("/")
            value = sim.astdb.get((family, key))
    session.respond(request, "Success", ("Variable", variable), ("Value", value or ""))


@action("Setvar")
async def _setvar(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    variable = header(request, "Variable")
    if not variable:
        session.error(request, "No variable specified")
        return
    value = header(request, "Value") or ""
    if header(request, "Channel"):
        channel = channel_or_error(sim, session, request, "", "No such channel")
        if channel is None:
            return
        sim.setvar(channel, variable, value)
    else:
        sim.globals[variable] = value
    session.success(request, "Variable Set")


@action("DBPut")
async def _dbput(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    family, key = header(request, "Family"), header(request, "Key")
    if not family:
        session.error(request, "No family specified")
        return
    if not key:
        session.error(request, "No key specified")
        return
    sim.astdb[(family, key)] = header(request, "Val") or ""
    session.success(request, "Updated database successfully")


@action("DBGet")
async def _dbget(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    family, key = header(request, "Family"), header(request, "Key")
    if not family or not key:
        session.error(request, "No family specified" if not family else "No key specified")
        return
    value = sim.astdb.get((family, key))
    if value is None:
        session.error(request, "Database entry not found")
        return
    item = [
        ("Event", "DBGetResponse"),
        *aid(request),
        ("Family", family),
        ("Key", key),
        ("Val", value),
    ]
    send_list(session, request, "Result will follow", [item], "DBGetComplete")


@action("DBDel")
async def _dbdel(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    family, key = header(request, "Family") or "", header(request, "Key") or ""
    if sim.astdb.pop((family, key), None) is None:
        session.error(request, "Database entry not found")
        return
    session.success(request, "Key deleted successfully")


@action("QueueAdd")
async def _queue_add(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    queue, iface = header(request, "Queue"), header(request, "Interface")
    if not queue or not iface:
        session.error(request, "'Queue' and 'Interface' not specified.")
        return
    if queue != sim.queue.name:
        session.error(request, "Unable to add interface to queue: No such queue")
        return
    paused = (header(request, "Paused") or "").lower() in ("true", "yes", "1", "on")
    name = header(request, "MemberName") or iface
    state_iface = header(request, "StateInterface") or iface
    if not sim.queue.members.get(iface):
        session.success(request, "Added interface to queue")
        sim.queue.add_member(iface, name, state_iface, paused, header(request, "Reason") or "")
    else:
        session.error(request, "Unable to add interface: Already there")


@action("QueueRemove")
async def _queue_remove(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    iface = header(request, "Interface") or ""
    if iface not in sim.queue.members or header(request, "Queue") != sim.queue.name:
        session.error(request, "Unable to remove interface: Not there")
        return
    session.success(request, "Removed interface from queue")
    sim.queue.remove_member(iface)


@action("QueuePause")
async def _queue_pause(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    iface = header(request, "Interface")
    paused_raw = header(request, "Paused")
    if not iface or paused_raw is None:
        session.error(request, "Need 'Interface' and 'Paused' parameters.")
        return
    if iface not in sim.queue.members:
        session.error(request, "Interface not found")
        return
    paused = paused_raw.lower() in ("true", "yes", "1", "on")
    session.success(request, f"Interface {'paused' if paused else 'unpaused'} successfully")
    sim.queue.pause(iface, paused, header(request, "Reason") or "")


@action("Hangup")
async def _hangup(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    name = header(request, "Channel")
    if not name:
        session.error(request, "No channel specified")
        return
    cause = int(header(request, "Cause") or 16)
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        # A /regex/ hangs up every match and lists them (ChannelHungup events).
        pattern = re.compile(name[1:-1])
        matches = [c for c in list(sim.channels.values()) if pattern.search(c.name)]
        items = [[("Event", "ChannelHungup"), ("Channel", c.name), *aid(request)] for c in matches]
        send_list(
            session, request, "Channels hung up will follow", items, "ChannelsHungupListComplete"
        )
    else:
        channel = sim.find_channel(name)
        if channel is None:
            session.error(request, "No such channel")
            return
        matches = [channel]
        session.success(request, "Channel Hungup")
    for channel in matches:
        channel.hangup_cause = cause
        channel.hangup_requested.set()
        if channel.bridge is not None:
            channel.bridge.changed.set()


@action("Redirect")
async def _redirect(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(
        sim, session, request, "Channel not specified", "Channel does not exist: {name}"
    )
    if channel is None:
        return
    exten, context = header(request, "Exten") or "", header(request, "Context") or ""
    if not exten:
        session.error(request, "Extension not specified")
        return
    targets = [(channel, context, exten, int(header(request, "Priority") or 1))]
    if header(request, "ExtraChannel"):
        extra = channel_or_error(
            sim, session, request, "", "ExtraChannel does not exist: {name}", "ExtraChannel"
        )
        if extra is None:
            return
        targets.append(
            (
                extra,
                header(request, "ExtraContext") or context,
                header(request, "ExtraExten") or exten,
                int(header(request, "ExtraPriority") or 1),
            )
        )
        session.success(request, "Dual Redirect successful")
    else:
        session.success(request, "Redirect successful")
    sim.spawn(redirect(sim, targets), name="redirect")


@action("Originate")
async def _originate(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = header(request, "Channel")
    if not channel:
        session.error(request, "Channel not specified")
        return
    variables = {}
    for raw in headers_all(request, "Variable"):
        for item in raw.split(","):
            key, _, value = item.partition("=")
            if key:
                variables[key.strip()] = value
    req = OriginateRequest(
        channel=channel,
        context=header(request, "Context") or "default",
        exten=header(request, "Exten") or "s",
        priority=int(header(request, "Priority") or 1),
        callerid=header(request, "CallerID") or "",
        timeout_s=int(header(request, "Timeout") or 30000) / 1000,
        variables=variables,
        action_id=header(request, "ActionID"),
    )
    session.success(request, "Originate successfully queued")
    sim.spawn(originate(sim, req), name=f"originate-{channel}")


@action("BlindTransfer")
async def _blind_transfer(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(
        sim, session, request, "No channel specified", "Channel specified does not exist"
    )
    if channel is None:
        return
    exten = header(request, "Exten")
    if not exten:
        session.error(request, "No extension specified")
        return
    if channel.bridge is None:
        session.error(request, "Transfer failed")
        return
    session.success(request, "Transfer succeeded")
    sim.spawn(
        blind_transfer(sim, channel, header(request, "Context") or channel.context, exten),
        name="blindxfer",
    )


@action("Atxfer")
async def _atxfer(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(
        sim, session, request, "Channel not specified", "Channel specified does not exist"
    )
    if channel is None:
        return
    exten = header(request, "Exten")
    if not exten:
        session.error(request, "Extension not specified")
        return
    if not can_atxfer(sim, channel):
        session.error(request, "No attended transfer feature code found")
        return
    session.success(request, "Atxfer successfully queued")
    sim.spawn(
        atxfer(sim, channel, header(request, "Context") or channel.context, exten), name="atxfer"
    )


@action("MixMonitorMute")
async def _mixmonitor_mute(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(sim, session, request, "No channel specified", "No such channel")
    if channel is None:
        return
    direction = (header(request, "Direction") or "both").lower()
    state = (header(request, "State") or "1").lower() in ("1", "true", "yes", "on")
    for leg in ("read", "write") if direction == "both" else (direction,):
        channel.mixmonitor_mute[leg] = state
    session.success(request)
    sim.channel_event(
        "MixMonitorMute", channel, [("Direction", direction), ("State", str(int(state)))]
    )


@action("StopMixMonitor")
async def _stop_mixmonitor(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channel = channel_or_error(sim, session, request, "No channel specified", "No such channel")
    if channel is None:
        return
    if channel.mixmonitor is None:
        session.error(request, "Could not stop MixMonitor")
        return
    channel.mixmonitor = None
    sim.stop_monitor(channel)
    session.success(request)
    sim.channel_event("MixMonitorStop", channel)


# The list actions live in their own module; importing it registers them.
from cti.testing import ami_lists  # noqa: E402,F401
