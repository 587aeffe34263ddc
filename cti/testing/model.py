"""Objects of the PBX model: configuration, channels, bridges, phones, and their AMI field blocks.

Field names and their order are those of Asterisk 22 in the recorded transcripts.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Fields = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
DOWN, RING, RINGING, UP = 0, 4, 5, 6

CAUSE_TEXT = {
    0: "Unknown",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}

# Device states: AMI names and the numbers used in queue member Status fields.
DEVICE_STATE_NUM = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}
# Spelling used by PJSIPShowEndpoints (ast_devstate_str).
DEVICE_STATE_TEXT = {
    "UNKNOWN": "Unknown",
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "INVALID": "Invalid",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
}

RingAnswer = Literal["answer", "busy", "reject", "ignore"]


@dataclass(slots=True)
class SimConfig:
    """Everything a test may want to change about the simulated PBX.

    Durations are in simulated seconds; ``scale`` turns them into real seconds (0.01 makes a
    6 s call last 60 ms). Values Asterisk reports (HoldTime, TalkTime, Duration) stay in
    simulated seconds, so they look like the recorded ones.
    """

    host: str = "127.0.0.1"
    ami_port: int = 0
    username: str = "cti"
    secret: str = "cti-secret"
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # CTI_AGI_2: the other CTI's FastAGI, asked when CTI_AGI refuses (0: none, as the
    # shipped dialplan's empty CTI_AGI_2).
    agi_host_2: str = "127.0.0.1"
    agi_port_2: int = 0
    scale: float = 1.0
    queue_name: str = "hotline"
    queue_timeout_s: float = 600.0
    member_timeout_s: float = 15.0
    member_retry_s: float = 2.0
    dial_timeout_s: float = 20.0
    hold_check_s: float = 5.0
    # Real seconds: the CTI writes time.time() as its heartbeat, whatever the scale.
    heartbeat_stale_s: float = 3.0
    rec_dir: str = "/var/spool/asterisk/monitor/hotline"
    write_recordings: bool = False
    max_recording_s: float = 30.0
    restart_delay_s: float = 0.2
    # Real seconds, as recorded on a restart from the console: Shutdown event to the sockets
    # closing (actions refused meanwhile), and manager up to FullyBooted (modules loading).
    shutdown_s: float = 0.7
    boot_delay_s: float = 0.3
    qualify_timeout_s: float = 6.5
    # Real seconds a caller waits for the CTI's routing answer: Dial(Local/...@cti-route,
    # ${CTI_ROUTE_TIMEOUT}) in [from-citizen]. Real time, like the heartbeat: it guards
    # against the CTI process stalling, which has nothing to do with simulated time.
    route_timeout_s: float = 2.0
    # Real seconds between a hangup request and the channel's thread acting on it (0: at
    # once). Meanwhile the channel exists but is hanging up: Redirect refuses it.
    hangup_notice_s: float = 0.0
    # qualify_frequency on the trunk's AOR (config/asterisk/pjsip.conf has it) and whether
    # the carrier answers those OPTIONS: if not, chan_pjsip refuses to dial out (CHANUNAVAIL).
    trunk_qualify: bool = True
    carrier_answers_options: bool = True
    callback_answer_delay_s: float = 0.05
    atxfer_code: str | None = "*2"
    # features.conf transferdigittimeout: an Atxfer number without "#" waits this long.
    transfer_digit_timeout_s: float = 3.0
    local_optimize_delay_s: float = 0.45
    channel_seq_start: int = 0x19
    uniqueid_seq_start: int = 29
    # asterisk.conf ``systemname``: with it Asterisk writes Uniqueids as
    # ``<systemname>-<epoch>.<n>`` (main/channel_internal_api.c), which is what keeps the
    # ids of several nodes apart. Empty: ``<epoch>.<n>``, as in the recorded transcripts.
    system_name: str = ""
    endpoints: dict[str, str] = field(
        default_factory=lambda: {
            "8001": "Seat 8001",
            "8002": "Seat 8002",
            "8003": "Seat 8003",
            "9001": "Window 9001",
        }
    )
    trunk_contact: str = "sip:127.0.0.2:5070"
    emit_dialplan_events: bool = True
    # Append a CDR line (config/asterisk/cdr_custom.conf) at the end of each citizen call.
    cdr_path: str = ""

    def rec_path(self, uniqueid: str, epoch: float) -> str:
        import time

        day = time.strftime("%Y/%m/%d", time.localtime(epoch))
        return str(Path(self.rec_dir) / day / f"{uniqueid}.wav")


@dataclass(eq=False, slots=True)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    device: str
    cid_num: str
    cid_name: str
    context: str
    exten: str
    priority: int = 1
    state: int = DOWN
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    created: float = 0.0
    answered_at: float | None = None
    variables: dict[str, str] = field(default_factory=dict)
    app: str = ""
    app_data: str = ""
    bridge: Bridge | None = None
    has_pbx: bool = False
    originated: bool = False
    in_queue: bool = False
    features: str = ""  # Dial options t/T granted to this leg: the Atxfer feature
    mixmonitor: dict[str, str] | None = None
    mixmonitor_started: float = 0.0
    mixmonitor_mute: dict[str, bool] = field(default_factory=dict)
    hungup: bool = False
    soft_sent: bool = False
    hangup_cause: int = 16
    # A hangup was requested (ast_check_hangup) / the channel's thread has noticed it.
    hangup_pending: bool = False
    hangup_requested: asyncio.Event = field(default_factory=asyncio.Event)
    pbx_task: asyncio.Task[None] | None = None
    peer: Channel | None = None
    role: str = ""
    dnid: str = ""  # the number dialled to reach us (the trunk's request URI), if any
    # Headers of the INVITE that made the channel (read by PJSIP_HEADER(read,...)).
    sip_headers: dict[str, str] = field(default_factory=dict)
    inherit: dict[str, str] = field(default_factory=dict)  # _X / __X variables, as written
    # SHARED(): variables other channels leave on this one (read by SHARED(name) on it).
    shared: dict[str, str] = field(default_factory=dict)
    local_peer: Channel | None = None  # the other half of a Local channel pair
    # A leg of an inter-node trunk call (cti.testing.internode): the matching channel on the
    # other node's simulator, what that node signalled back (ringing, answer), and a wake-up.
    twin: Channel | None = None
    twin_sim: object | None = None
    remote: str = ""
    remote_changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Ringing at a phone that does not answer by itself: set when its agent picks up.
    picked_up: asyncio.Event | None = None

    def snapshot(self, prefix: str = "") -> Fields:
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{p}CallerIDNum", self.cid_num),
            (f"{p}CallerIDName", self.cid_name),
            (f"{p}ConnectedLineNum", self.connected_num),
            (f"{p}ConnectedLineName", self.connected_name),
            (f"{p}Language", "en"),
            (f"{p}AccountCode", ""),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]

    @property
    def alive(self) -> bool:
        return not self.hungup and not self.hangup_requested.is_set()


@dataclass(eq=False, slots=True)
class Bridge:
    uniqueid: str = field(default_factory=lambda: str(uuid.uuid4()))
    type: str = "basic"
    technology: str = "simple_bridge"
    creator: str = "<unknown>"
    name: str = "<unknown>"
    channels: list[Channel] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    destroyed: bool = False
    # An attended transfer in progress keeps the caller's bridge open while it is alone.
    hold_open: bool = False

    def fields(self, prefix: str = "") -> Fields:
        p = prefix
        return [
            (f"{p}BridgeUniqueid", self.uniqueid),
            (f"{p}BridgeType", self.type),
            (f"{p}BridgeTechnology", self.technology),
            (f"{p}BridgeCreator", self.creator),
            (f"{p}BridgeName", self.name),
            (f"{p}BridgeNumChannels", str(len(self.channels))),
            (f"{p}BridgeVideoSourceMode", "none"),
        ]


@dataclass(eq=False, slots=True)
class Phone:
    """A registering SIP phone (baresip with auto-answer in the rig)."""

    ext: str
    ip: str = "127.0.0.3"
    port: int = 5060
    answer_delay: float = 0.05
    # seconds (simulated) from the INVITE to the phone's 180 Ringing
    ring_delay: float = 0.0
    auto_answer: bool = True
    on_ring: Callable[[Channel], RingAnswer] | None = None
    registered: bool = False
    reachable: bool = False
    qualified: bool = False  # has answered (or failed) an OPTIONS since the PBX started
    uri: str = ""
    call_id: str = field(default_factory=lambda: secrets.token_hex(8))
    object_hash: str = field(default_factory=lambda: secrets.token_hex(16))
    user_agent: str = "baresip v1.0.0 (x86_64/linux)"
    expires_at: int = 0
    roundtrip_usec: int = 303

    def __post_init__(self) -> None:
        if not self.uri:
            self.uri = f"sip:{self.ext}-0x{secrets.token_hex(6)}@{self.ip}:{self.port}"

    @property
    def status(self) -> str:
        """res_pjsip's label for the contact (PJSIPShowContacts ``Status``)."""
        if self.reachable:
            return "Reachable"
        return "Unreachable" if self.qualified else "NonQualified"

    def decide(self, channel: Channel) -> RingAnswer:
        if self.on_ring is not None:
            return self.on_ring(channel)
        return "answer" if self.auto_answer else "ignore"


def hangup_fields(channel: Channel, cause: int) -> Fields:
    return [*channel.snapshot(), ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, ""))]


def dial_fields(caller: Channel | None, callee: Channel) -> Fields:
    """DialBegin/DialState/DialEnd: an originated leg has no caller block."""
    head = caller.snapshot() if caller is not None else []
    return head + callee.snapshot("Dest")


def local_pair_fields(one: Channel, two: Channel) -> Fields:
    return one.snapshot("LocalOne") + two.snapshot("LocalTwo")
