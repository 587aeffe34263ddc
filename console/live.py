"""The websocket fan-out: bus events to browsers, filtered by role.

The bus calls ``LiveHub.on_event`` synchronously on the event loop, so it only does
``put_nowait`` into each client's bounded queue: a browser that stops reading fills its queue
and is dropped (it reconnects and gets a fresh snapshot), and the bus never waits for it.

Supervisors and administrators see every event. Agents and leaders see their own calls,
tickets and state, the callback list, and a floor summary pushed at most once a second while
something changes. Window staff see the events of their window's phone and of the tickets of
its calls. The live transcript of a call (``LiveTranscript`` lines relayed by
``console.transcripts``) reaches the agent on the call and the supervisors, not the windows.
Recording paths in events and calls reach administrators only
(``console.scopes.live_event``, ``public_call``); department users get their snapshot only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from console import scopes
from console.security import User
from console.transcripts import LiveTranscripts
from cti.db import utcnow
from cti.events import Alarm, AmiDisconnected, Event, SeatAlarm

log = logging.getLogger(__name__)

QUEUE_MAX = 500
SUMMARY_INTERVAL_S = 1.0
ALARMS_KEPT = 200
WINDOW_TICKETS_KEPT = 5
DROP = {"type": "_drop"}

# Events every logged-in desktop needs whatever their subject.
FOR_EVERY_DESK = frozenset({"CallbackTaskChanged", "AmiConnected", "AmiDisconnected"})
# Events that make the floor summary (waiting line, agents by state) change.
FLOOR_EVENTS = frozenset(
    {
        "CallStarted",
        "CallRouted",
        "CallQueued",
        "CallRinging",
        "CallAnswered",
        "CallEnded",
        "AgentStateChanged",
    }
)


@dataclass(eq=False)
class Client:
    user: User
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    calls: set[str] = field(default_factory=set)  # call ids this desktop is part of
    tickets: set[str] = field(default_factory=set)
    dropped: bool = False
    closed_by_peer: bool = False

    @property
    def sees_all(self) -> bool:
        return self.user.has("supervisor")

    @property
    def at_desk(self) -> bool:
        """Gets the floor summary: the agents, leaders and supervisors of the floor."""
        return self.user.has(*scopes.DESK)


class LiveHub:
    def __init__(self, hotline: Any) -> None:
        self.hotline = hotline
        self.clients: set[Client] = set()
        self.alarms: deque[dict[str, Any]] = deque(maxlen=ALARMS_KEPT)
        self.events = 0
        self.dropped = 0
        self._floor_dirty = False
        self._window_tickets: dict[str, deque[tuple[str, str]]] = {}
        self._summary_task: asyncio.Task[None] | None = None
        sessions = getattr(hotline, "sessions", None)
        self.transcripts = (
            LiveTranscripts(sessions, self.relay, self._transcripts_wanted)
            if sessions is not None
            else None
        )
        hotline.bus.subscribe_all(self.on_event)

    @property
    def client_count(self) -> int:
        return len(self.clients)

    # --- clients -------------------------------------------------------------------

    def connect(self, user: User) -> Client:
        client = Client(user)
        self.clients.add(client)
        if self._summary_task is None or self._summary_task.done():
            self._summary_task = asyncio.get_running_loop().create_task(
                self._summaries(), name="console-floor-summary"
            )
        if self.transcripts is not None:
            self.transcripts.wake()
        return client

    async def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients and self._summary_task is not None:
            task, self._summary_task = self._summary_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for client in list(self.clients):
            self.drop(client)
        self.clients.clear()
        if self._summary_task is not None:
            self._summary_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._summary_task
            self._summary_task = None
        if self.transcripts is not None:
            await self.transcripts.close()
        self.hotline.bus.unsubscribe_all(self.on_event)

    # --- bus -----------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        self.events += 1
        kind = type(event).__name__
        if kind in FLOOR_EVENTS:
            self._floor_dirty = True
        if kind in ("RecordingStarted", "RecordingStopped") and self.transcripts is not None:
            with contextlib.suppress(RuntimeError):  # no loop: nobody connected either
                self.transcripts.wake()
        alarm = isinstance(event, Alarm | SeatAlarm | AmiDisconnected)
        if not alarm and not self.clients:
            return  # nobody to tell: no dict made for every event of a busy floor
        data = event.to_dict()
        if alarm:
            self.alarms.append(data)
        for client in list(self.clients):
            if not client.dropped and self.visible(client, data):
                self._put(client, scopes.live_event(client.user, data))

    def relay(self, data: dict[str, Any]) -> None:
        """An event made outside the bus (a live transcript line) to the clients it is for."""
        for client in list(self.clients):
            if not client.dropped and self.visible(client, data):
                self._put(client, data)

    def _transcripts_wanted(self) -> bool:
        """Someone to tell, and a call being recorded that a follower may be decoding."""
        transcription = getattr(self.hotline.settings, "transcription", None)
        if not self.clients or transcription is None:
            return False
        if not (transcription.enabled and transcription.live):
            return False
        return any(c.recording for c in self.hotline.tracker.active_calls())

    def _put(self, client: Client, data: dict[str, Any]) -> None:
        try:
            client.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("console: dropping slow websocket client %s", client.user.username)
            self.dropped += 1
            self.drop(client)

    @staticmethod
    def drop(client: Client) -> None:
        """Stop sending to ``client``: its sender sees ``DROP`` next and ends."""
        client.dropped = True
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(DROP)

    def visible(self, client: Client, ev: dict[str, Any]) -> bool:
        if client.sees_all:
            return True
        user, kind = client.user, ev["type"]
        if user.agent_id and user.has("agent", "leader"):
            if kind in FOR_EVERY_DESK:
                return True
            if kind == "TicketUpdated" and str(ev.get("what", "")).startswith("intake_"):
                return True  # a request by SMS, web, WeChat or 110: for whoever is free
            if ev.get("agent_id") == user.agent_id:
                # CallAnswered, CallEnded, AgentStateChanged, TicketOpened, SeatAlarm
                if "call_id" in ev:
                    client.calls.add(ev["call_id"])
                if kind == "TicketOpened":
                    client.tickets.add(ev["ticket_id"])
                return True
            if kind == "CallRinging":
                agent = self.hotline.agents.find(user.agent_id)
                if agent is not None and agent.seat and ev.get("seat") == agent.seat:
                    client.calls.add(ev["call_id"])
                    return True
                return False
            if kind in ("CallTransferred", "CallEnded", "RecordingStopped", "LiveTranscript"):
                return ev.get("call_id") in client.calls
            if kind in ("TicketChanged", "TicketUpdated", "TranscriptReady"):
                return ev.get("ticket_id") in client.tickets
            return False
        if user.window_id and user.has("window"):
            ext = self.window_extension(user.window_id)
            if kind == "SeatStatusChanged" and ext and ev.get("seat") == ext:
                self._follow_window(client, ext)
                return True
            if kind == "CallTransferred" and ev.get("kind") == "three_way":
                if ev.get("target") in (user.window_id, ext or None):
                    client.calls.add(ev["call_id"])
                    self._follow_window(client, ext)
                    return True
                return False
            if kind in ("CallEnded", "RecordingStopped"):
                return ev.get("call_id") in client.calls
            if kind in ("TicketChanged", "TicketUpdated"):
                return ev.get("ticket_id") in client.tickets
        return False

    def _follow_window(self, client: Client, extension: str) -> None:
        call = window_call(self.hotline.tracker, extension)
        if call is not None:
            client.calls.add(call.call_id)
            if call.ticket_id and client.user.window_id:
                client.tickets.add(call.ticket_id)
                self.remember_window_ticket(client.user.window_id, call.ticket_id)

    def remember_window_ticket(self, window_id: str, ticket_id: str) -> None:
        """The clerk usually writes the answer after the call: keep the last few tickets."""
        recent = self._window_tickets.setdefault(window_id, deque(maxlen=WINDOW_TICKETS_KEPT))
        if not any(t == ticket_id for t, _ in recent):
            recent.appendleft((ticket_id, utcnow().isoformat()))

    def window_tickets(self, window_id: str) -> list[dict[str, str]]:
        return [{"ticket_id": t, "at": at} for t, at in self._window_tickets.get(window_id, ())]

    def window_extension(self, window_id: str) -> str:
        for window in self.hotline.settings.windows:
            if window.id == window_id:
                return str(window.extension)
        return ""

    # --- snapshots and the floor summary -------------------------------------------

    def floor_summary(self) -> dict[str, Any]:
        waiting = self.hotline.acd.snapshot().get("waiting", [])
        states = Counter(a.state for a in self.hotline.agents.all())
        return {
            "type": "FloorSummary",
            "waiting": len(waiting),
            "longest_wait_s": max((float(w.get("wait_s", 0)) for w in waiting), default=0.0),
            "talking": sum(1 for c in self.hotline.tracker.active_calls() if c.state == "talking"),
            "agents": dict(states),
            "now": utcnow().isoformat(),
        }

    def snapshot(self, client: Client) -> dict[str, Any]:
        """What a page needs to draw itself before the first event arrives."""
        hotline = self.hotline
        now = time.monotonic()
        user = client.user
        snap: dict[str, Any] = {"type": "Snapshot"}
        if client.at_desk:
            snap["summary"] = self.floor_summary()
        if client.sees_all:
            snap["calls"] = [
                scopes.public_call(user, c.to_dict(now)) for c in hotline.tracker.active_calls()
            ]
            snap["waiting"] = hotline.acd.snapshot().get("waiting", [])
            snap["agents"] = [a.to_dict(now) for a in hotline.agents.all()]
            snap["seats"] = [s.to_dict() for s in hotline.seats.all()]
            snap["alarms"] = list(self.alarms)[-50:]
            snap["nodes"] = {name: n.connected for name, n in hotline.nodes.items()}
            leadership = getattr(hotline, "leadership", None)
            if leadership is not None:
                # Which CTI leads (cti.leader): a wallboard reconnecting after a takeover
                # names the new one.
                snap["cti"] = leadership.info()
            if self.transcripts is not None:
                snap["transcripts"] = {
                    c.call_id: lines
                    for c in hotline.tracker.active_calls()
                    if (lines := self.transcripts.lines(c.call_id))
                }
        if user.agent_id:
            agent = hotline.agents.find(user.agent_id)
            snap["me"] = agent.to_dict(now) if agent is not None else None
            call = self.current_call(user.agent_id)
            if call is not None:
                client.calls.add(call.call_id)
                if call.ticket_id:
                    client.tickets.add(call.ticket_id)
            snap["call"] = scopes.public_call(user, call.to_dict(now)) if call is not None else None
            if call is not None and self.transcripts is not None:
                snap["transcript"] = self.transcripts.lines(call.call_id)
        return snap

    def current_call(self, agent_id: str) -> Any:
        agent = self.hotline.agents.find(agent_id)
        if agent is None or not agent.seat:
            return None
        return self.hotline.tracker.call_of_seat(agent.seat)

    async def _summaries(self) -> None:
        """Push the floor summary (at most once a second, when it changed) to the desks that
        do not get every event."""
        while True:
            await asyncio.sleep(SUMMARY_INTERVAL_S)
            if not self._floor_dirty:
                continue
            self._floor_dirty = False
            summary = self.floor_summary()
            for client in list(self.clients):
                # Supervisors get every event and count for themselves.
                if not client.dropped and client.at_desk and not client.sees_all:
                    self._put(client, summary)


def window_call(tracker: Any, extension: str) -> Any:
    """The live call a window's phone takes part in (the three-way call), if any."""
    if not extension:
        return None
    for call in tracker.active_calls():
        if tracker.seat_channel(call, extension) is not None:
            return call
    return None
