"""AMI actions with Asterisk 22's responses (messages copied from the transcripts/manager.c)."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from cti.testing.agi_client import channel_value
from cti.testing.ami_server import AmiSession, event_mask
from cti.testing.boot import available
from cti.testing.frames import Pairs, header
from cti.testing.model import Channel
from cti.testing.phones import event_tv

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
    return [("ActionID", value)] if value else []


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
    """manager.c's process_message, in its order of checks."""
    name = header(request, "Action")
    if not name:
        session.error(request, "Missing action in request")
        return
    if sim.shutting_down:
        # Every action, even a login, until the sockets close.
        session.error(request, "Asterisk is shutting down")
        return
    lowered = name.lower()
    if not session.authenticated and lowered not in ("login", "challenge", "logoff"):
        session.error(request, "Permission denied")
        return
    # While the PBX boots, the actions of modules not loaded yet do not exist at all.
    handler = HANDLERS.get(lowered) if available(sim, name) else None
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
    # Only once the PBX is up; a login during the boot gets the broadcast one later.
    if sim.booted and session.accepts("system,all"):
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
        sim.spawn(sim.restart(announce=False), name="core-restart")
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
        # db.c's manager_dbget ends these two with a period, manager_dbput does not.
        session.error(request, "No family specified." if not family else "No key specified.")
        return
    value = sim.astdb.get((family, key))
    if value is None:
        session.error(request, "Database entry not found")
        return
    item = [("Event", "DBGetResponse"), ("Family", family), ("Key", key), ("Val", value)]
    item += aid(request)
    send_list(session, request, "Result will follow", [item], "DBGetComplete")


@action("DBDel")
async def _dbdel(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    family, key = header(request, "Family") or "", header(request, "Key") or ""
    if not family or not key:
        session.error(request, "No family specified." if not family else "No key specified.")
        return
    if sim.astdb.pop((family, key), None) is None:
        session.error(request, "Database entry could not be deleted")
        return
    session.success(request, "Key deleted successfully")


def ast_true(value: str | None) -> bool:
    """Asterisk's ast_true: yes, true, y, t, 1, on."""
    return (value or "").strip().lower() in ("yes", "true", "y", "t", "1", "on")


@action("QueueAdd")
async def _queue_add(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    queue, iface = header(request, "Queue"), header(request, "Interface")
    if not queue:
        session.error(request, "'Queue' not specified.")
        return
    if not iface:
        session.error(request, "'Interface' not specified.")
        return
    if queue != sim.queue.name:
        session.error(request, "Unable to add interface to queue: No such queue")
        return
    if iface in sim.queue.members:
        # Members live in app_queue, not in the AMI session that added them: a CTI that
        # reconnects finds its agents still there.
        session.error(request, "Unable to add interface: Already there")
        return
    paused = ast_true(header(request, "Paused"))
    name = header(request, "MemberName") or iface
    state_iface = header(request, "StateInterface") or iface
    session.success(request, "Added interface to queue")
    sim.queue.add_member(iface, name, state_iface, paused, header(request, "Reason") or "")


@action("QueueRemove")
async def _queue_remove(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    queue, iface = header(request, "Queue"), header(request, "Interface")
    if not queue or not iface:
        session.error(request, "Need 'Queue' and 'Interface' parameters.")
        return
    if queue != sim.queue.name:
        session.error(request, "Unable to remove interface from queue: No such queue")
        return
    if iface not in sim.queue.members:
        session.error(request, "Unable to remove interface: Not there")
        return
    session.success(request, "Removed interface from queue")
    sim.queue.remove_member(iface)


@action("QueuePause")
async def _queue_pause(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    iface, paused_raw = header(request, "Interface"), header(request, "Paused")
    if not iface or not paused_raw:
        session.error(request, "Need 'Interface' and 'Paused' parameters.")
        return
    queue = header(request, "Queue")  # optional: every queue
    if (queue and queue != sim.queue.name) or iface not in sim.queue.members:
        session.error(request, "Interface not found")
        return
    paused = ast_true(paused_raw)
    session.success(request, f"Interface {'paused' if paused else 'unpaused'} successfully")
    sim.queue.pause(iface, paused, header(request, "Reason") or "")


# The list and call-control actions live in their own modules; importing them registers them.
from cti.testing import ami_control, ami_lists  # noqa: E402,F401
