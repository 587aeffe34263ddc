"""AMI list actions (EventList: start ... Complete) used to resync a CTI after a reconnect.

What each answers when it has nothing to list is in ``cti.testing.list_actions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cti.testing.ami_actions import action, aid, channel_or_error, send_list
from cti.testing.ami_server import AmiSession
from cti.testing.frames import Pairs, header
from cti.testing.list_actions import LIST_ACTIONS, NO_SUCH_CONFERENCE
from cti.testing.model import DEVICE_STATE_TEXT, Channel

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator


def answer_list(
    session: AmiSession,
    request: Pairs,
    events: list[Pairs],
    extra: list[tuple[str, str]] | None = None,
) -> None:
    """Send a list, or the action's error when it is empty and Asterisk answers so."""
    item = LIST_ACTIONS[(header(request, "Action") or "").lower()]
    if not events and item.empty_error is not None:
        session.error(request, item.empty_error)
        return
    send_list(session, request, item.message, events, item.complete, extra or [])


@action("QueueStatus")
async def _queue_status(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    ids = aid(request)
    q = sim.queue
    items: list[Pairs] = []
    wanted = header(request, "Queue")
    if wanted in (None, "", q.name):
        items.append([("Event", "QueueParams"), *q.params_fields(ids)])
        for member in q.members.values():
            items.append([("Event", "QueueMember"), *q.status_member_fields(member, ids)])
        for position, caller in enumerate(q.callers, 1):
            items.append([("Event", "QueueEntry"), *q.entry_fields(position, caller, ids)])
    answer_list(session, request, items)


@action("QueueSummary")
async def _queue_summary(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    wanted = header(request, "Queue")
    items = []
    if wanted in (None, "", sim.queue.name):
        items = [[("Event", "QueueSummary"), *sim.queue.summary_fields(aid(request))]]
    answer_list(session, request, items)


def duration(sim: AsteriskSimulator, channel: Channel) -> str:
    seconds = int(sim.now() - channel.created)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@action("CoreShowChannels")
async def _core_show_channels(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = [
        [
            ("Event", "CoreShowChannel"),
            *aid(request),
            *c.snapshot(),
            ("Application", c.app),
            ("ApplicationData", c.app_data),
            ("Duration", duration(sim, c)),
            ("BridgeId", c.bridge.uniqueid if c.bridge else ""),
        ]
        for c in sim.channels.values()
    ]
    answer_list(session, request, items)


@action("Status")
async def _status(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    channels = list(sim.channels.values())
    if header(request, "Channel"):
        channel = channel_or_error(sim, session, request, "", "No such channel")
        if channel is None:
            return
        channels = [channel]
    items = [
        [
            ("Event", "Status"),
            *aid(request),
            *c.snapshot(),
            ("Type", c.name.split("/", 1)[0]),
            ("DNID", c.dnid),
            ("EffectiveConnectedLineNum", c.connected_num),
            ("EffectiveConnectedLineName", c.connected_name),
            ("TimeToHangup", "0"),
            ("BridgeID", c.bridge.uniqueid if c.bridge else ""),
            ("Application", c.app),
            ("Data", c.app_data),
            ("Nativeformats", "(ulaw)"),
            ("Readformat", "ulaw"),
            ("Readtrans", ""),
            ("Writeformat", "ulaw"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(sim.now() - c.created))),
        ]
        for c in channels
    ]
    answer_list(session, request, items, [("Items", str(len(items)))])


@action("PJSIPShowContacts")
async def _contacts(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = []
    for ext in sorted(sim.phones):
        p = sim.phones[ext]
        items.append([
            ("Event", "ContactList"), *aid(request), ("ObjectType", "contact"),
            ("ObjectName", f"{ext};@{p.object_hash}"), ("ViaAddr", p.ip),
            ("QualifyTimeout", "3.000000"), ("Qualify2xxOnly", "false"), ("CallId", p.call_id),
            ("RegServer", ""), ("PruneOnBoot", "no"), ("Path", ""), ("Endpoint", ext),
            ("ViaPort", str(p.port)), ("AuthenticateQualify", "no"), ("Uri", p.uri),
            ("QualifyFrequency", "5"), ("UserAgent", p.user_agent),
            ("ExpirationTime", str(p.expires_at)), ("OutboundProxy", ""),
            ("Status", p.status),
            # res_pjsip gives a round trip only for an available contact.
            ("RoundtripUsec", str(p.roundtrip_usec) if p.reachable else "N/A"),
        ])  # fmt: skip
    answer_list(session, request, items)


@action("PJSIPShowEndpoints")
async def _endpoints(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = []
    for ext in sorted([*sim.endpoints, "trunk"]):
        phone = sim.phones.get(ext)
        if ext == "trunk":
            contacts = f"trunk/{sim.config.trunk_contact},"
        else:
            contacts = f"{ext}/{phone.uri}," if phone is not None else ""
        state = sim.devices.get(f"PJSIP/{ext}", "UNAVAILABLE")
        active = len(sim.device_legs.get(f"PJSIP/{ext}", ()))
        items.append([
            ("Event", "EndpointList"), *aid(request), ("ObjectType", "endpoint"),
            ("ObjectName", ext), ("Transport", ""), ("Aor", ext),
            ("Auths", "" if ext == "trunk" else ext), ("OutboundAuths", ""),
            ("Contacts", contacts), ("DeviceState", DEVICE_STATE_TEXT.get(state, state)),
            ("ActiveChannels", str(active)),
        ])  # fmt: skip
    answer_list(session, request, items)


@action("DeviceStateList")
async def _device_states(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = [
        [("Event", "DeviceStateChange"), *aid(request), ("Device", d), ("State", s)]
        for d, s in sim.devices.items()
    ]
    answer_list(session, request, items)


@action("ConfbridgeList")
async def _confbridge_list(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    name = header(request, "Conference")
    if not name:
        session.error(request, "No Conference name provided.")
        return
    if not sim.conferences:
        session.error(request, LIST_ACTIONS["confbridgelist"].empty_error or "")
        return
    conf = sim.conferences.get(name)
    if conf is None:
        session.error(request, NO_SUCH_CONFERENCE)
        return
    items = []
    for c in conf.channels:
        flags = [
            (k, "No")
            for k in (
                "Admin",
                "MarkedUser",
                "WaitMarked",
                "EndMarked",
                "EndMarkedAny",
                "Waiting",
                "Muted",
                "Talking",
            )
        ]
        answered = int(sim.now() - (c.answered_at or sim.now()))
        items.append(
            [
                ("Event", "ConfbridgeList"),
                *aid(request),
                ("Conference", name),
                *flags,
                ("AnsweredTime", str(answered)),
                *c.snapshot(),
            ]
        )
    # A conference always has its members listed, even none (never an error here).
    send_list(
        session,
        request,
        LIST_ACTIONS["confbridgelist"].message,
        items,
        LIST_ACTIONS["confbridgelist"].complete,
    )
