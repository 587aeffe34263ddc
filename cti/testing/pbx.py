"""The live PBX model: channels, bridges, device states, AstDB, and the events they make.

``AsteriskSimulator`` owns every object and every background task; the dialplan, queue,
transfer and AMI modules act on it. All of it runs on one event loop, so events go out in the
order they are made, like the stasis message bus delivers them to one AMI session.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from cti.tasks import cancel_and_wait
from cti.testing import boot
from cti.testing import phones as phone_ops
from cti.testing.ami_server import AmiServer
from cti.testing.cdr import write_cdr
from cti.testing.internode import PeerLink, hangup_twin
from cti.testing.internode import reachable as internode_reachable
from cti.testing.model import (
    RING,
    UP,
    Bridge,
    Channel,
    Fields,
    Phone,
    RingAnswer,
    SimConfig,
    hangup_fields,
)
from cti.testing.queue import QueueModel
from cti.testing.recording import Recorders

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CallHandle:
    """What ``place_call`` returns: the citizen's channel and how the call ended."""

    channel: Channel
    done: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = ""  # answered | abandoned | failed
    answered_by: str = ""

    @property
    def uniqueid(self) -> str:
        return self.channel.uniqueid

    async def wait(self, timeout: float | None = None) -> str:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.outcome


class AsteriskSimulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.channels: dict[str, Channel] = {}
        # The same channels by device and by uniqueid: a device's state and a channel's
        # master are looked up on every step of every call (thousands of channels up).
        self.device_legs: dict[str, dict[str, Channel]] = {}
        self.by_uniqueid: dict[str, Channel] = {}
        # Of those, the ringing side of Dial()s (a role set when the channel is made) and
        # the legs an attended transfer holds: a device's state without a pass over its
        # legs (the carrier's trunk has a leg per citizen).
        self.device_callees: dict[str, dict[str, Channel]] = {}
        self.on_hold: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, str] = {}
        self.astdb: dict[tuple[str, str], str] = {}
        self.globals: dict[str, str] = {}
        self.phones: dict[str, Phone] = {}
        self.endpoints: dict[str, str] = dict(self.config.endpoints)
        self.conferences: dict[str, Bridge] = {}
        # Inter-node trunks (cti.testing.internode): our PJSIP endpoint -> the other node.
        self.peers: dict[str, PeerLink] = {}
        self.queue = QueueModel(self, self.config.queue_name)
        self.ami = AmiServer(self)
        self.calls: list[CallHandle] = []
        self.handles: dict[str, CallHandle] = {}
        self.processed_calls = 0
        self.started_at = time.time()
        self.reloaded_at = self.started_at
        self._chan_seq = itertools.count(self.config.channel_seq_start)
        self._uid_seq = itertools.count(self.config.uniqueid_seq_start)
        self._local_seq = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.recorders = Recorders(self)
        self.running = False
        self.stopping = asyncio.Event()
        # The PBX's life cycle: shutting down (actions refused), booting (logins accepted,
        # modules loading), booted (FullyBooted sent).
        self.shutting_down = False
        self.booted = True
        self.loaded_modules: set[str] = set(boot.MODULES)
        # The carrier answers the trunk's qualify OPTIONS (only matters with trunk_qualify).
        self.carrier_answers = self.config.carrier_answers_options
        for ext in self.endpoints:
            self.devices[f"PJSIP/{ext}"] = "UNAVAILABLE"
        self.devices["PJSIP/trunk"] = "NOT_INUSE" if self.trunk_reachable else "UNAVAILABLE"

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def ami_port(self) -> int:
        return self.ami.port

    async def start(self) -> int:
        self.running = True
        # The MixMonitor files grow on a thread (cti.testing.recording): with CPython's 5 ms
        # switch interval the dialplan's loop could wait that long for the GIL each time
        # an AGI answer or an AMI action wakes it. Asterisk's threads share no such lock.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        port = await self.ami.start(self.config.host, self.config.ami_port)
        self.config.ami_port = port
        return port

    async def stop(self) -> None:
        self.running = False
        self.stopping.set()
        await self.ami.stop()
        await self._cancel_tasks()
        self.recorders.close_all()

    # -- MixMonitor files (cti.testing.recording.Recorders) -----------------------------

    def start_monitor(self, channel: Channel) -> None:
        """MixMonitor started on ``channel``: its files are written from now on."""
        self.recorders.start(channel)

    def stop_monitor(self, channel: Channel) -> None:
        """StopMixMonitor: the files end here (closed with their final sizes)."""
        self.recorders.stop(channel)

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        await cancel_and_wait(*(t for t in self._tasks if t is not current))

    async def restart(self, *, announce: bool = True) -> None:
        """``core restart now``; returns once the manager listens again (still booting).
        See ``cti.testing.boot.restart``."""
        await boot.restart(self, announce=announce)

    def reset_sequences(self) -> None:
        """A new Asterisk process: channel names and uniqueids count from 0 again."""
        self._chan_seq = itertools.count(0)
        self._uid_seq = itertools.count(0)
        self._local_seq = itertools.count(1)

    async def cancel_tasks(self) -> None:
        await self._cancel_tasks()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=task.exception())

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds) * self.config.scale)

    def now(self) -> float:
        """Simulated time in seconds; differences give HoldTime, TalkTime, Duration."""
        return asyncio.get_running_loop().time() / self.config.scale if self.config.scale else 0

    # -- ids and events ------------------------------------------------------------------

    def new_uniqueid(self) -> str:
        prefix = f"{self.config.system_name}-" if self.config.system_name else ""
        return f"{prefix}{int(time.time())}.{next(self._uid_seq)}"

    def new_channel_name(self, resource: str) -> str:
        return f"PJSIP/{resource}-{next(self._chan_seq):08x}"

    def new_local_name(self, exten: str, context: str) -> tuple[str, str]:
        base = f"Local/{exten}@{context}-{next(self._local_seq):08x}"
        return f"{base};1", f"{base};2"

    def emit(self, name: str, privilege: str | None, fields: Fields) -> None:
        head = [("Event", name)]
        if privilege is not None:
            head.append(("Privilege", privilege))
        self.ami.broadcast(name, privilege, head + fields)

    def channel_event(
        self,
        name: str,
        channel: Channel,
        extra: Sequence[tuple[str, str]] = (),
        priv: str = "call,all",
    ) -> None:
        self.emit(name, priv, [*channel.snapshot(), *extra])

    def newexten(self, channel: Channel, app: str, data: str, priority: int | None = None) -> None:
        if priority is not None:
            channel.priority = priority
        channel.app, channel.app_data = app, data
        if self.config.emit_dialplan_events:
            self.channel_event(
                "Newexten",
                channel,
                [("Extension", channel.exten), ("Application", app), ("AppData", data)],
                "dialplan,all",
            )

    def setvar(self, channel: Channel, name: str, value: str) -> None:
        """Set(name=value). A ``__`` (or ``_``) prefix makes it inherited by the channels
        this one dials; lookups use the bare name; VarSet shows the name as written."""
        bare = name.lstrip("_")
        channel.variables[bare] = value
        if name.startswith("_"):
            channel.inherit[name] = value
        if self.config.emit_dialplan_events:
            self.channel_event(
                "VarSet", channel, [("Variable", name), ("Value", value)], "dialplan,all"
            )

    # -- devices -------------------------------------------------------------------------

    def set_device(self, device: str, state: str) -> None:
        """DeviceStateChange goes out only when the cached state changes, as in Asterisk."""
        if self.devices.get(device) == state:
            return
        self.devices[device] = state
        self.emit("DeviceStateChange", "call,all", [("Device", device), ("State", state)])
        if device.startswith("PJSIP/"):
            self.queue.device_changed(device)

    @property
    def trunk_reachable(self) -> bool:
        """With qualify on the trunk's AOR, chan_pjsip dials the carrier only while it answers
        OPTIONS; without qualify the static contact is always tried."""
        return not self.config.trunk_qualify or self.carrier_answers

    def endpoint_state(self, device: str) -> str:
        resource = device.split("/", 1)[1]
        peer = resource in self.peers
        if resource != "trunk" and not peer:
            phone = self.phones.get(resource)
            if phone is None or not phone.reachable:
                return "UNAVAILABLE"
        legs = self.device_legs.get(device, {})
        if not any(not c.hungup for c in legs.values()):
            # An unqualified trunk is in use during a call, unavailable after it.
            if peer:
                up = internode_reachable(self, resource)
                return "NOT_INUSE" if up else "UNAVAILABLE"
            return "NOT_INUSE" if resource != "trunk" or self.trunk_reachable else "UNAVAILABLE"
        if any(c.device == device and not c.hungup for c in self.on_hold.values()):
            return "ONHOLD"
        up = any(c.state == UP and not c.hungup for c in legs.values())
        callees = self.device_callees.get(device, {})
        ringing = any(c.state != UP and not c.hungup for c in callees.values())
        if up and ringing:
            return "RINGINUSE"
        if up:
            return "INUSE"
        return "RINGING" if ringing else "INUSE"

    def set_on_hold(self, channel: Channel, held: bool) -> None:
        """An attended transfer puts ``channel`` on hold (or takes it off): its device shows
        ONHOLD meanwhile."""
        if held:
            channel.variables["__ONHOLD"] = "1"
            self.on_hold[channel.name] = channel
        else:
            channel.variables.pop("__ONHOLD", None)
            self.on_hold.pop(channel.name, None)
        self.update_device(channel.device)

    def update_device(self, device: str) -> None:
        self.set_device(device, self.endpoint_state(device))

    # -- channels ------------------------------------------------------------------------

    def new_channel(
        self,
        resource: str,
        *,
        cid_num: str,
        cid_name: str,
        context: str,
        exten: str,
        state: int = RING,
        linkedid: str | None = None,
        role: str = "",
        name: str | None = None,
        device: str | None = None,
    ) -> Channel:
        uniqueid = self.new_uniqueid()
        channel = Channel(
            name=name or self.new_channel_name(resource),
            uniqueid=uniqueid,
            linkedid=linkedid or uniqueid,
            device=device if device is not None else f"PJSIP/{resource}",
            cid_num=cid_num,
            cid_name=cid_name,
            context=context,
            exten=exten,
            state=state,
            created=self.now(),
            role=role,
        )
        self.channels[channel.name] = channel
        self.device_legs.setdefault(channel.device, {})[channel.name] = channel
        if role == "callee":
            self.device_callees.setdefault(channel.device, {})[channel.name] = channel
        self.by_uniqueid[uniqueid] = channel
        self.channel_event("Newchannel", channel)
        return channel

    def set_state(self, channel: Channel, state: int, *, device: bool = True) -> None:
        channel.state = state
        if state == UP and channel.answered_at is None:
            channel.answered_at = self.now()
        self.channel_event("Newstate", channel)
        if device and channel.device.startswith("PJSIP/"):
            self.update_device(channel.device)

    def connected_line(self, channel: Channel, num: str, name: str) -> None:
        channel.connected_num, channel.connected_name = num, name
        self.channel_event("NewConnectedLine", channel)

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def request_hangup(
        self, channel: Channel, cause: int = 16, *, with_cause: bool | None = None
    ) -> None:
        """The far end hung up (SIP BYE): HangupRequest now; the owning application tears
        the call down when it notices, like a channel thread does."""
        if not channel.alive or channel.hangup_pending:
            return
        channel.hangup_cause = cause
        # app_queue's caller and an originated leg report HangupRequest without Cause.
        if with_cause is None:
            with_cause = not (channel.in_queue or channel.originated)
        extra = [("Cause", str(cause))] if with_cause else []
        self.channel_event("HangupRequest", channel, extra)
        self.notice_hangup(channel)

    def notice_hangup(self, channel: Channel) -> None:
        """Flag the channel as hanging up (ast_check_hangup is true from now: Redirect
        refuses it) and wake its thread, ``hangup_notice_s`` later if set: a real channel
        takes milliseconds, more under load or while its AGI runs on dead."""
        channel.hangup_pending = True

        def wake() -> None:
            channel.hangup_requested.set()
            if channel.bridge is not None:
                channel.bridge.changed.set()

        if self.config.hangup_notice_s > 0:
            asyncio.get_running_loop().call_later(self.config.hangup_notice_s, wake)
        else:
            wake()

    def soft_hangup(self, channel: Channel, cause: int = 16) -> None:
        if channel.soft_sent:
            return
        channel.soft_sent = True
        if not channel.hangup_requested.is_set():
            channel.hangup_cause = cause
            channel.hangup_requested.set()
        self.channel_event("SoftHangupRequest", channel, [("Cause", str(cause))])

    def mark_connected(self, channel: Channel, seat: Channel) -> None:
        handle = self.handles.get(channel.uniqueid)
        if handle is not None and not handle.connected.is_set():
            handle.answered_by = seat.name
            handle.connected.set()

    def destroy(self, channel: Channel, cause: int | None = None, *, device: bool = True) -> None:
        """Emit Hangup and forget the channel; writes the recording if MixMonitor ran."""
        if channel.hungup:
            return
        channel.hungup = True
        channel.hangup_requested.set()
        hangup_twin(channel, channel.hangup_cause if cause is None else cause)
        other = channel.local_peer
        if other is not None and other.alive:
            # One half of a Local pair going away queues a hangup on the other
            # (ast_unreal_hangup), seen before this half's own Hangup.
            self.request_hangup(other, channel.hangup_cause if cause is None else cause)
        self.emit(
            "Hangup",
            "call,all",
            hangup_fields(channel, channel.hangup_cause if cause is None else cause),
        )
        self.forget(channel)
        handle = self.handles.pop(channel.uniqueid, None)
        if channel.role == "citizen" and self.config.cdr_path:
            write_cdr(self, channel, handle)
        if handle is not None:
            if not handle.outcome:
                handle.outcome = "answered" if handle.connected.is_set() else "abandoned"
            handle.done.set()
        self.recorders.finish(channel)
        if device and channel.device.startswith("PJSIP/"):
            self.update_device(channel.device)

    # -- bridges -------------------------------------------------------------------------

    def bridge_create(
        self,
        type: str = "basic",
        technology: str = "simple_bridge",
        creator: str = "<unknown>",
        name: str = "<unknown>",
    ) -> Bridge:
        bridge = Bridge(type=type, technology=technology, creator=creator, name=name)
        self.bridges[bridge.uniqueid] = bridge
        self.emit("BridgeCreate", "call,all", bridge.fields())
        return bridge

    def bridge_enter(self, bridge: Bridge, channel: Channel, swap: Channel | None = None) -> None:
        bridge.channels.append(channel)
        channel.bridge = bridge
        extra = [("SwapUniqueid", swap.uniqueid)] if swap is not None else []
        self.emit("BridgeEnter", "call,all", [*bridge.fields(), *channel.snapshot(), *extra])
        bridge.changed.set()

    def bridge_leave(self, channel: Channel) -> Bridge | None:
        bridge = channel.bridge
        if bridge is None:
            return None
        if channel in bridge.channels:
            bridge.channels.remove(channel)
        channel.bridge = None
        self.emit("BridgeLeave", "call,all", [*bridge.fields(), *channel.snapshot()])
        bridge.changed.set()
        return bridge

    def bridge_destroy(self, bridge: Bridge) -> None:
        if bridge.destroyed:
            return
        bridge.destroyed = True
        self.bridges.pop(bridge.uniqueid, None)
        self.emit("BridgeDestroy", "call,all", bridge.fields())
        bridge.changed.set()

    # -- AstDB and variables -------------------------------------------------------------

    def db_get(self, family: str, key: str) -> str | None:
        return self.astdb.get((family, key))

    def heartbeat_stale(self) -> bool:
        """``${EPOCH} - 0${DB(cti/heartbeat)} > CTI_STALE``: missing counts as epoch 0."""
        raw = self.db_get("cti", "heartbeat") or "0"
        try:
            beat = float(raw)
        except ValueError:
            beat = 0.0
        return int(time.time()) - beat > self.config.heartbeat_stale_s

    # -- public test API -----------------------------------------------------------------

    def register_phone(
        self,
        ext: str,
        ip: str = "127.0.0.3",
        *,
        answer_delay: float = 0.05,
        auto_answer: bool = True,
        on_ring: Any = None,
    ) -> Phone:
        return phone_ops.register(self, ext, ip, answer_delay, auto_answer, on_ring)

    def unregister_phone(self, ext: str, clean: bool = True) -> None:
        phone_ops.unregister(self, ext, clean)

    def set_carrier_options(self, answers: bool) -> None:
        """The carrier starts or stops answering the trunk's qualify OPTIONS."""
        if answers != self.carrier_answers:
            phone_ops.trunk_status(self, answers)

    def set_phone_behaviour(
        self, ext: str, answer: RingAnswer | None = None, **changes: Any
    ) -> Phone:
        phone = self.phones[ext]
        if answer is not None:
            phone.on_ring = lambda _channel, a=answer: a
        for key, value in changes.items():
            setattr(phone, key, value)
        return phone

    def pick_up(self, ext: str) -> bool:
        """The agent at ``ext`` lifts the handset of their ringing phone (one set to let it
        ring, ``answer="ignore"``). False when it does not ring so."""
        for channel in self.channels_of(ext):
            if channel.picked_up is not None and not channel.picked_up.is_set():
                channel.picked_up.set()
                return True
        return False

    def place_call(
        self,
        caller: str = "13800000001",
        name: str = "张三",
        did: str = "12345",
        talk_s: float | None = 6.0,
        patience_s: float | None = None,
        sip_headers: dict[str, str] | None = None,
    ) -> CallHandle:
        """A citizen's call on the trunk; ``sip_headers``: headers its INVITE carries (110's
        incident number on a call 110 puts through, ``X-Incident-Id``)."""
        from cti.testing.dialplan import start_inbound_call

        return start_inbound_call(
            self, caller, name, did, talk_s, patience_s, sip_headers=sip_headers
        )

    def hangup(self, channel: Channel | str, cause: int = 16) -> None:
        """The phone behind ``channel`` hangs up (a seat putting down the handset)."""
        target = self.channels.get(channel) if isinstance(channel, str) else channel
        if target is None:
            raise KeyError(f"no channel {channel}")
        self.request_hangup(target, cause)

    def channels_of(self, ext: str) -> list[Channel]:
        return list(self.device_legs.get(f"PJSIP/{ext}", {}).values())

    def forget(self, channel: Channel) -> None:
        """Take ``channel`` out of the channel list and its indexes."""
        if self.channels.get(channel.name) is channel:
            del self.channels[channel.name]
        for index in (self.device_legs, self.device_callees):
            legs = index.get(channel.device)
            if legs is not None and legs.get(channel.name) is channel:
                del legs[channel.name]
                if not legs:
                    del index[channel.device]
        if self.on_hold.get(channel.name) is channel:
            del self.on_hold[channel.name]
        if self.by_uniqueid.get(channel.uniqueid) is channel:
            del self.by_uniqueid[channel.uniqueid]

    def forget_all(self) -> None:
        self.channels.clear()
        self.device_legs.clear()
        self.device_callees.clear()
        self.on_hold.clear()
        self.by_uniqueid.clear()
