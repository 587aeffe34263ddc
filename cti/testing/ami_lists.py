"""AMI list actions (EventList: start ... Complete) used to resync a CTI after a reconnect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cti.testing.ami_actions import action, aid, channel_or_error, send_list
from cti.testing.ami_server import AmiSession
from cti.testing.frames import Pairs, header
from cti.testing.model import DEVICE_STATE_TEXT, Channel

if TYPE_CHECKING:
    from cti.testing.pbx import AsteriskSimulator


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
    send_list(session, request, "Queue status will follow", items, "QueueStatusComplete")


@action("QueueSummary")
async def _queue_summary(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = [[("Event", "QueueSummary"), *sim.queue.summary_fields(aid(request))]]
    send_list(session, request, "Queue summary will follow", items, "QueueSummaryComplete")


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
    send_list(session, request, "Channels will follow", items, "CoreShowChannelsComplete")


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
            ("Type", "PJSIP"),
            ("DNID", c.exten if c.role == "citizen" else ""),
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
    send_list(
        session,
        request,
        "Channel status will follow",
        items,
        "StatusComplete",
        [("Items", str(len(items)))],
    )


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
            ("Status", "Reachable" if p.reachable else "Unreachable"),
            ("RoundtripUsec", str(p.roundtrip_usec if p.reachable else 0)),
        ])  # fmt: skip
    send_list(
        session,
        request,
        "A listing of Contacts follows, presented as ContactList events",
        items,
        "ContactListComplete",
    )


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
        active = sum(1 for c in sim.channels.values() if c.device == f"PJSIP/{ext}")
        items.append([
            ("Event", "EndpointList"), *aid(request), ("ObjectType", "endpoint"),
            ("ObjectName", ext), ("Transport", ""), ("Aor", ext),
            ("Auths", "" if ext == "trunk" else ext), ("OutboundAuths", ""),
            ("Contacts", contacts), ("DeviceState", DEVICE_STATE_TEXT.get(state, state)),
            ("ActiveChannels", str(active)),
        ])  # fmt: skip
    send_list(
        session,
        request,
        "A listing of Endpoints follows, presented as EndpointList events",
        items,
        "EndpointListComplete",
    )


@action("DeviceStateList")
async def _device_states(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    items = [
        [("Event", "DeviceStateChange"), *aid(request), ("Device", d), ("State", s)]
        for d, s in sim.devices.items()
    ]
    send_list(
        session, request, "Device State Changes will follow", items, "DeviceStateListComplete"
    )


@action("ConfbridgeList")
async def _confbridge_list(sim: AsteriskSimulator, session: AmiSession, request: Pairs) -> None:
    name = header(request, "Conference")
    if not name:
        session.error(request, "No Conference name provided.")
        return
    conf = sim.conferences.get(name)
    if conf is None:
        session.error(request, "No active conferences.")
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
    send_list(session, request, "Confbridge user list will follow", items, "ConfbridgeListComplete")
