"""Call control through AMI: the services behind the agent desktop's buttons.

Every method takes ids (agent, seat, window, ticket), never raw channel names from a
browser: channels come from the tracker. Inputs are checked before anything is sent, and
Asterisk's refusals become typed API errors carrying Asterisk's own message.

What each action sends, as the reference Asterisk 22 recorded it (shared/asterisk):

- three-way with a service window (三方通话): one ``Redirect`` with ``ExtraChannel`` moves
  the citizen and the seat into ``cti-conf/<conf>`` (a ConfBridge), then ``Originate`` rings
  the window into the same conference. The conference name starts with a digit because the
  dialplan's pattern is ``_X.``.
- blind transfer: ``BlindTransfer`` of the seat's channel (the citizen goes on alone).
- attended transfer: ``Atxfer`` of the seat's channel; it only works when the call was
  dialled with options ``tT`` and ``features.conf`` has an ``atxfer`` code (otherwise
  "No attended transfer feature code found"); the agent completes it by hanging up.
- hold: there is no AMI action that puts a SIP call on hold, so the CTI parks both sides in
  conferences: the citizen alone in the call's conference (music, ``confbridge.conf``'s
  ``music_on_hold_when_empty``), the seat in a conference of its own; unhold moves the seat
  back. Transfers out of a conference use ``Redirect`` (ConfBridge refuses transfers).
- callback (回访) and supervisor spy: ``Originate`` of the seat's phone first, async; the
  ``OriginateResponse`` event tells whether it answered (Reason 4) or not (3 no answer,
  5 busy, 0/1/8 failure).

The three-way call is a small state machine per call (``SESSION_TRANSITIONS``). When
Asterisk refuses midway, the state stays what Asterisk really has: if the window cannot be
rung after the Redirect, citizen and agent are together in the conference and the agent is
told; if the window does not answer, an alarm goes out and the agent stays with the citizen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cti.agents.board import Agent, AgentBoard
from cti.ami.actions import (
    AmiError,
    AmiUnavailable,
    NoSuchChannel,
    UnsafeValue,
    build,
    callerid,
    check_channel,
    check_context,
    check_exten,
)
from cti.ami.client import AmiNode
from cti.bus import Bus
from cti.calls.model import Call, Channel
from cti.calls.tracker import CallTracker
from cti.errors import ApiError, Conflict, Invalid, NotFound
from cti.events import Alarm, CallTransferred
from cti.seats.registry import SeatRegistry
from cti.windows import Window, WindowDirectory

log = logging.getLogger(__name__)

NUMBER_RE = re.compile(r"^[0-9]{3,20}$")
TICKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
SPY_MODES = {"listen": "q", "whisper": "qw", "barge": "qB"}
SPY_LABELS = {"listen": "监听", "whisper": "耳语", "barge": "强插"}
# OriginateResponse Reason (enum ast_control_frame_type of the outgoing leg)
ORIGINATE_REASONS = {
    "0": "failed",
    "1": "hung up",
    "3": "no answer",
    "4": "answered",
    "5": "busy",
    "8": "congestion",
}
ATXFER_HINT = "the call needs Dial options tT and an atxfer code in features.conf"
# How long a window's staff wait, at most, for their window's joining a call to be written on
# the ticket before they are answered (the writer commits within tens of milliseconds).
WINDOW_JOIN_WAIT_S = 2.0


# --- typed API errors -------------------------------------------------------------------


class NoActiveCall(Conflict):
    def __init__(self, agent_id: str, reason: str = "", **details: Any) -> None:
        super().__init__(
            "no-active-call",
            reason or f"agent {agent_id} has no call to act on",
            agent_id=agent_id,
            **details,
        )


class WindowClosed(ApiError):
    def __init__(self, window: Window, next_open: datetime | None) -> None:
        when = f"; opens {next_open:%Y-%m-%d %H:%M}" if next_open else ""
        super().__init__(
            409,
            "window-closed",
            f"{window.name} is closed now{when}: dispatch the ticket instead",
            {
                "window_id": window.id,
                "next_open": next_open.isoformat() if next_open else None,
                "suggestion": "dispatch",
                "department": window.department,
            },
        )


class WindowUnreachable(ApiError):
    def __init__(self, window_id: str, reason: str, **details: Any) -> None:
        super().__init__(
            409,
            "window-unreachable",
            f"window {window_id}: {reason}",
            {"window_id": window_id, "suggestion": "dispatch", **details},
        )


class BadNumber(Invalid):
    def __init__(self, number: str, field: str = "number") -> None:
        super().__init__("bad-number", f"not a number that can be dialled: {number!r}", field=field)


class NumberNotAllowed(ApiError):
    def __init__(self, number: str, field: str = "number") -> None:
        super().__init__(
            403,
            "number-not-allowed",
            f"{number} is not a number this site dials out to (control.dial_allow)",
            {"field": field, "number": number},
        )


class AsteriskRefused(ApiError):
    def __init__(self, exc: AmiError, **details: Any) -> None:
        super().__init__(
            502,
            "asterisk-refused",
            f"Asterisk refused {exc.action}: {exc.message}",
            {"action": exc.action, "asterisk_message": exc.message, **details},
        )
        self.raw = exc.raw


class NodeUnavailable(ApiError):
    def __init__(self, node: str, reason: str) -> None:
        super().__init__(
            503, "node-unavailable", f"Asterisk {node} is not reachable: {reason}", {"node": node}
        )


class ControlBusy(Conflict):
    def __init__(self, call_id: str) -> None:
        super().__init__(
            "control-busy", "another action on this call is still running", call_id=call_id
        )


# --- the per-call state machine ------------------------------------------------------------

# bridged: citizen and seat in the two-party bridge of Dial; conference: both in the call's
# ConfBridge; held: citizen alone in the conference (music), seat parked in its own;
# window_ringing: the window is being rung into the conference; three_way: all three;
# agent_left: citizen with the window (ringing or talking), the agent gone; ended: the CTI
# no longer controls the call (it ended, or was transferred away).
SESSION_TRANSITIONS: dict[str, frozenset[str]] = {
    "bridged": frozenset({"held", "conference", "ended"}),
    "held": frozenset({"conference", "ended"}),
    "conference": frozenset({"held", "window_ringing", "ended"}),
    "window_ringing": frozenset({"three_way", "conference", "agent_left", "ended"}),
    "three_way": frozenset({"conference", "agent_left", "ended"}),
    "agent_left": frozenset({"ended"}),
    "ended": frozenset(),
}


class IllegalControlTransition(Conflict):
    def __init__(self, call_id: str, old: str, new: str) -> None:
        super().__init__(
            "illegal-control-transition",
            f"call {call_id}: {old} -> {new} is not possible",
            call_id=call_id,
            old=old,
            new=new,
        )


@dataclass(slots=True)
class CallSession:
    node: str
    call_id: str
    conference: str
    state: str = "bridged"
    agent_id: str = ""
    seat: str = ""
    seat_uid: str = ""
    seat_channel: str = ""
    citizen_channel: str = ""
    window_id: str = ""
    window_channel: str = ""
    window_uid: str = ""
    ticket_id: str = ""
    members: list[str] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.call_id)

    @property
    def hold_conference(self) -> str:
        return "3h" + self.conference[2:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "call_id": self.call_id,
            "state": self.state,
            "conference": self.conference,
            "agent_id": self.agent_id,
            "seat": self.seat,
            "window_id": self.window_id,
            "ticket_id": self.ticket_id,
            "members": list(self.members),
        }


def conference_name(call_id: str) -> str:
    """``3w-1795317450-34`` for call 1795317450.34: digits first for the ``_X.`` pattern."""
    return "3w-" + call_id.replace(".", "-")


@dataclass(slots=True)
class _Pending:
    purpose: str
    future: asyncio.Future[dict[str, str]]
    agent_id: str = ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CallControl:
    def __init__(self, hotline: Any, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.hotline = hotline
        self.settings = hotline.settings.control
        self.tracker: CallTracker = hotline.tracker
        self.seats: SeatRegistry = hotline.seats
        self.agents: AgentBoard = hotline.agents
        self.bus: Bus = hotline.bus
        self.nodes: dict[str, AmiNode] = hotline.nodes
        self._now = now
        calendar = getattr(getattr(hotline, "tickets", None), "calendar", None)
        if calendar is None:
            from tickets.calendar import WorkCalendar

            calendar = WorkCalendar()
        self.windows = WindowDirectory(
            hotline.settings.windows, calendar, hotline.settings.site.timezone
        )
        self.sessions: dict[tuple[str, str], CallSession] = {}
        self._pending: dict[str, _Pending] = {}
        # A window rung into a three-way call: (ticket, settled once its joining is written on
        # the ticket, or it will not be). What its staff may do rests on that record
        # (console.scopes), and they act on the call within moments of joining it.
        self._window_joins: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._prefix = f"hl-{secrets.token_hex(3)}"
        self._dial_allow = [re.compile(p) for p in getattr(self.settings, "dial_allow", ())]
        self._subscribe()

    # --- subscriptions: the one place this slice listens to AMI --------------------------

    def _subscribe(self) -> None:
        self._listen("OriginateResponse", self._on_originate_response)
        self._listen("Hangup", self._on_hangup)
        self.tracker.on_ended.append(self._on_call_ended)

    def _listen(self, event: str, handler: Callable[[str, dict[str, str]], None]) -> None:
        """Run ``handler`` after the tracker has applied the event (so its view of channels
        and calls is current)."""
        previous = self.tracker.handlers.get(event)

        def chained(node: str, msg: dict[str, str]) -> None:
            try:
                if previous is not None:
                    previous(node, msg)
            finally:
                try:
                    handler(node, msg)
                except Exception:
                    log.exception("control: handling %s failed", event)

        self.tracker.handlers[event] = chained

    async def stop(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
        for window_id in list(self._window_joins):
            self._window_join_settled(window_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- public actions -----------------------------------------------------------------

    async def hold(self, agent_id: str) -> dict[str, Any]:
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            node = self._node(call.node)
            if session.state == "bridged":
                await self._redirect(
                    node, citizen, session.conference, extra=(seat_ch, session.hold_conference)
                )
            elif session.state == "conference":
                await self._redirect(node, seat_ch, session.hold_conference)
            else:
                raise Conflict("not-holdable", f"cannot hold in state {session.state}")
            self._set_state(session, "held")
            self.tracker.bind_conference(call, session.conference)
        return session.to_dict()

    async def unhold(self, agent_id: str) -> dict[str, Any]:
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            if session.state != "held":
                raise Conflict("not-held", "the call is not on hold")
            await self._redirect(self._node(call.node), seat_ch, session.conference)
            self._set_state(session, "conference")
        return session.to_dict()

    async def blind_transfer(self, agent_id: str, exten_or_window_id: str) -> dict[str, Any]:
        context, exten, window = self._target(exten_or_window_id)
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            node = self._node(call.node)
            if session.state == "bridged":
                await self._send(
                    node,
                    build(
                        "BlindTransfer",
                        Channel=check_channel(seat_ch.name),
                        Context=context,
                        Exten=exten,
                    ),
                )
                # The tracker publishes CallTransferred from Asterisk's BlindTransfer event.
            elif session.state in ("conference", "held"):
                await self._redirect(node, citizen, exten, context=context)
                # Ended before the seat is hung up: its Hangup event must not be taken for
                # the agent leaving the citizen alone in the conference.
                self._end_session(session)
                await self._hangup_quietly(node, seat_ch.name)
                self._published_transfer(call, "blind", exten)
            else:
                raise Conflict("not-transferable", f"cannot transfer in state {session.state}")
            self._end_session(session)
        return {"call_id": call.call_id, "target": exten, "context": context, "window": window}

    async def attended_transfer(self, agent_id: str, target: str) -> dict[str, Any]:
        context, exten, window = self._target(target)
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            if session.state != "bridged":
                raise Conflict(
                    "not-transferable",
                    "attended transfer needs the two-party call (not a conference or hold)",
                    state=session.state,
                )
            try:
                await self._send(
                    self._node(call.node),
                    build(
                        "Atxfer",
                        Channel=check_channel(seat_ch.name),
                        Context=context,
                        # Asterisk plays these digits into the transfer's digit collection,
                        # which waits transferdigittimeout (3 s of silence for the agent)
                        # while the number could go on ("_X."); "#" ends it at once.
                        Exten=exten + "#",
                    ),
                )
            except AsteriskRefused as exc:
                if "feature code" in str(exc.details.get("asterisk_message", "")):
                    exc.details["hint"] = ATXFER_HINT
                raise
        # The agent talks to the target now; hanging up completes the transfer.
        return {"call_id": call.call_id, "target": exten, "context": context, "window": window}

    async def three_way(
        self, agent_id: str, window_id: str, *, ticket_id: str | None = None
    ) -> str:
        window = self.windows.get(window_id)
        ticket = self._check_ticket(ticket_id) if ticket_id else ""
        self._check_window(window)
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        ticket = ticket or call.ticket_id
        if ticket:
            self._check_ticket(ticket)
        originate = self._window_originate(window, session.conference, ticket)
        async with self._locked(session):
            node = self._node(call.node)
            if session.state == "bridged":
                await self._redirect(
                    node, citizen, session.conference, extra=(seat_ch, session.conference)
                )
                self._set_state(session, "conference")
                self.tracker.bind_conference(call, session.conference)
            elif session.state != "conference":
                raise Conflict("not-possible", f"cannot add a window in state {session.state}")
            session.window_id, session.ticket_id = window.id, ticket
            try:
                action_id, future = await self._originate(node, originate, "window")
            except ApiError as exc:
                # The Redirect happened: citizen and agent are together in the conference.
                exc.details.update(
                    conference=session.conference, state=session.state, together=True
                )
                raise
            self._set_state(session, "window_ringing")
            self._expect_window_join(window.id, ticket)
            self._spawn(
                self._watch_window(session, window, action_id, future),
                name=f"window-{call.call_id}",
            )
        return session.conference

    async def agent_leave_three_way(self, agent_id: str) -> dict[str, Any]:
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            if session.state not in ("three_way", "window_ringing"):
                raise Conflict("not-in-three-way", "the window is not in the call")
            await self._send(
                self._node(call.node), build("Hangup", Channel=check_channel(seat_ch.name))
            )
            self._set_state(session, "agent_left")
        return session.to_dict()

    async def police(self, agent_id: str, ticket_id: str) -> dict[str, Any]:
        ticket = self._check_ticket(ticket_id)
        number = check_exten(self.settings.police_number)
        context = check_context(self.settings.police_context)
        agent, call, seat_ch, citizen = self._agent_call(agent_id)
        session = self._session(call, agent, seat_ch, citizen)
        async with self._locked(session):
            node = self._node(call.node)
            # The dialplan shows the ticket id to the police as caller name (12号文 linkage).
            await self._send(
                node,
                build(
                    "Setvar",
                    Channel=check_channel(citizen.name),
                    Variable="HOTLINE_TICKET",
                    Value=ticket,
                ),
            )
            await self._redirect(node, citizen, number, context=context)
            in_conference = session.state != "bridged"
            self._end_session(session)
            if in_conference:
                # In a conference the seat (and a window) stay behind: release them.
                await self._hangup_quietly(node, seat_ch.name)
                if session.window_channel:
                    await self._hangup_quietly(node, session.window_channel)
            self._published_transfer(call, "police", number)
        self._record_police(ticket, agent.id)
        return {"call_id": call.call_id, "number": number, "ticket_id": ticket}

    async def spy(self, supervisor_seat: str, agent_id: str, mode: str) -> dict[str, Any]:
        if mode not in SPY_MODES:
            raise Invalid("bad-mode", f"mode must be one of {sorted(SPY_MODES)}", mode=mode)
        seat = self.seats.resolve(supervisor_seat)
        if seat is None:
            raise NotFound("no-such-seat", f"no seat {supervisor_seat!r}", seat=supervisor_seat)
        agent = self.agents.get(agent_id)
        if not agent.seat:
            raise Conflict("agent-not-logged-in", f"agent {agent_id} is not at a seat")
        if agent.seat == seat.extension:
            raise Invalid("same-seat", "cannot listen to one's own seat")
        agent_seat = self.seats.get(agent.seat)
        node_name, target = self._spy_target(seat.node, agent.seat, agent_seat)
        action = build(
            "Originate",
            Channel=check_channel(f"PJSIP/{seat.extension}"),
            Context=check_context(self.settings.spy_context),
            Exten="s",
            Priority=1,
            CallerID=callerid(f"{SPY_LABELS[mode]} {agent.name}", agent.seat),
            Async=True,
            Timeout=self.settings.ring_timeout_s * 1000,
            Variable=[f"SPY_TARGET={check_channel(target)}", f"SPY_MODE={SPY_MODES[mode]}"],
        )
        node = self._node_for_seat(node_name)
        action_id, future = await self._originate(node, action, "spy")
        self._spawn(
            self._watch_originate(
                action_id, future, "spy", {"seat": seat.id, "agent_id": agent_id}
            ),
            name=f"spy-{action_id}",
        )
        return {"action_id": action_id, "seat": seat.id, "agent_id": agent_id, "mode": mode}

    def _spy_target(self, spy_node: str, extension: str, agent_seat: Any) -> tuple[str, str]:
        """(node, ChanSpy target) for listening to seat ``extension`` from a phone on
        ``spy_node``. ChanSpy only sees its own node's channels: the seat's channel where its
        phone is registered, or, for a call the seat answered through the trunk, the trunk
        leg on the call's node, which carries the same voice."""
        seat_node = agent_seat.node if agent_seat is not None else ""
        if spy_node and seat_node and spy_node != seat_node:
            call = self.tracker.call_of_seat(extension)
            leg = self._trunk_leg(call, extension) if call is not None else None
            if call is not None and leg is not None and call.node == spy_node:
                return spy_node, leg.name
        # "PJSIP/8001-": ChanSpy matches by prefix; the dash keeps 80010 out.
        return spy_node or seat_node, f"PJSIP/{extension}-"

    async def callback(
        self, agent_id: str, number: str, ticket_id: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(number, str) or not NUMBER_RE.match(number):
            raise BadNumber(str(number))
        self._check_dial_out(number, "number")
        ticket = self._check_ticket(ticket_id) if ticket_id else ""
        agent = self.agents.get(agent_id)
        if not agent.seat:
            raise Conflict("agent-not-logged-in", f"agent {agent_id} is not at a seat")
        if self._seat_busy(agent.seat):
            raise Conflict("agent-busy", "finish the current call first", agent_id=agent_id)
        seat = self.seats.get(agent.seat)
        node = self._node_for_seat(seat.node if seat is not None else "")
        action = build(
            "Originate",
            Channel=check_channel(f"PJSIP/{agent.seat}"),
            Context=check_context(self.settings.callback_context),
            Exten=check_exten(number),
            Priority=1,
            CallerID=callerid(f"{self.settings.hotline_number} 回访", self.settings.hotline_number),
            Async=True,
            Timeout=self.settings.ring_timeout_s * 1000,
            Variable=f"HOTLINE_TICKET={ticket}" if ticket else None,
        )
        action_id, future = await self._originate(node, action, "callback", agent.id)
        self._spawn(
            self._watch_callback(action_id, future, agent, number, ticket),
            name=f"callback-{action_id}",
        )
        return {"action_id": action_id, "seat": agent.seat, "number": number, "ticket_id": ticket}

    def calling_back(self, agent_id: str) -> bool:
        """A callback Originate of this agent's is out: the seat is being rung, and the
        citizen will be dialled when it answers."""
        return any(
            p.purpose == "callback" and p.agent_id == agent_id and not p.future.done()
            for p in self._pending.values()
        )

    async def hangup(self, agent_id: str) -> dict[str, Any]:
        """Hang up whatever the agent's phone is in (talking, ringing, consulting): every
        channel of the seat, by a regex, as the rig's CTI does."""
        agent = self.agents.get(agent_id)
        if not agent.seat:
            raise Conflict("agent-not-logged-in", f"agent {agent_id} is not at a seat")
        channels = [
            ch
            for ch in list(self.tracker.channels.values())
            if ch.tech == "PJSIP" and ch.endpoint == agent.seat
        ]
        if not channels:
            raise NoActiveCall(agent_id)
        node = self._node(channels[0].node)
        pattern = check_channel(f"/^PJSIP\\/{re.escape(agent.seat)}-.*$/")
        try:
            items = await node.send_list(build("Hangup", Channel=pattern))
        except AmiError as exc:
            raise AsteriskRefused(exc) from None
        except AmiUnavailable as exc:
            raise NodeUnavailable(exc.node, exc.reason) from None
        return {"agent_id": agent_id, "hung_up": [m.get("Channel", "") for m in items]}

    async def mute_recording(self, agent_id: str, muted: bool) -> dict[str, Any]:
        if not isinstance(muted, bool):
            raise Invalid("bad-input", "muted must be true or false", field="muted")
        agent, call, _seat_ch, citizen = self._agent_call(agent_id)
        await self._send(
            self._node(call.node),
            build(
                "MixMonitorMute",
                Channel=check_channel(citizen.name),
                Direction="both",
                State=1 if muted else 0,
            ),
        )
        at = self._now()
        recordings = getattr(self.hotline, "recordings", None)
        mark = getattr(recordings, "mark_muted", None)
        store = getattr(self.hotline, "store", None)
        if mark is not None and store is not None:
            call_id = call.call_id
            # The service opens its own transaction: a task, not a write in the store's batch.
            store.submit_task(lambda: mark(call_id, muted, at), f"recording mute {call_id}")
        return {"call_id": call.call_id, "muted": muted, "at": at.isoformat()}

    async def window_outcome(self, window_user: Any, ticket_id: str, text: str) -> Any:
        ticket = self._check_ticket(ticket_id)
        window_id = getattr(window_user, "window_id", None) or ""
        if not window_id:
            raise Invalid("not-window-staff", "the user is not attached to a service window")
        self.windows.get(window_id)
        if not isinstance(text, str) or not text.strip():
            raise Invalid("empty-text", "the window's answer is empty", field="text")
        if len(text) > 4000:
            raise Invalid("too-long", "at most 4000 characters", field="text")
        tickets = self.hotline.tickets
        return await asyncio.to_thread(
            tickets.add_window_outcome, ticket, window_id, text.strip(), window_user
        )

    # --- state for the console -----------------------------------------------------------

    def session_of(self, agent_id: str) -> dict[str, Any] | None:
        for session in self.sessions.values():
            if session.agent_id == agent_id and session.state != "ended":
                return session.to_dict()
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.sessions.values()]

    # --- lookups and checks ---------------------------------------------------------------

    def _agent_call(self, agent_id: str) -> tuple[Agent, Call, Channel, Channel]:
        agent = self.agents.get(agent_id)
        if not agent.seat:
            raise NoActiveCall(agent_id, f"agent {agent_id} is not logged in at a seat")
        for call in self.tracker.active_calls():
            if call.seat != agent.seat or call.state != "talking":
                continue
            seat_ch = self.tracker.seat_channel(call, agent.seat) or self._trunk_leg(
                call, agent.seat
            )
            citizen = self._citizen_channel(call)
            if seat_ch is not None and citizen is not None:
                return agent, call, seat_ch, citizen
        raise NoActiveCall(agent_id)

    def _trunk_leg(self, call: Call, extension: str) -> Channel | None:
        """For a call answered at a seat registered on another node: the leg of the call's
        node that dialled the seat through the trunk. It stands for the seat on the citizen's
        node (the seat's own channel is on the other node, out of reach of actions sent
        here): redirected, transferred or hung up there, it takes the seat with it."""
        for uid in call.legs:
            ch = self.tracker.channels.get((call.node, uid))
            if ch is not None and ch.via_seat == extension:
                return ch
        return None

    def _citizen_channel(self, call: Call) -> Channel | None:
        if call.direction == "inbound":
            return self.tracker.citizen_channel(call)
        for uid in call.legs:  # a callback: the trunk leg is the citizen
            ch = self.tracker.channels.get((call.node, uid))
            if ch is not None and ch.tech == "PJSIP" and self.seats.get(ch.endpoint) is None:
                return ch
        return None

    def _seat_busy(self, extension: str) -> bool:
        return any(
            ch.tech == "PJSIP" and ch.endpoint == extension for ch in self.tracker.channels.values()
        )

    def _session(self, call: Call, agent: Agent, seat_ch: Channel, citizen: Channel) -> CallSession:
        session = self.sessions.get(call.key)
        if session is None:
            session = CallSession(
                node=call.node, call_id=call.call_id, conference=conference_name(call.call_id)
            )
            self.sessions[call.key] = session
        session.agent_id, session.seat = agent.id, agent.seat
        session.seat_uid, session.seat_channel = seat_ch.uniqueid, seat_ch.name
        session.citizen_channel = citizen.name
        return session

    def _set_state(self, session: CallSession, new: str) -> None:
        old = session.state
        if new == old:
            return
        if new not in SESSION_TRANSITIONS[old]:
            raise IllegalControlTransition(session.call_id, old, new)
        log.info("control %s: %s -> %s", session.call_id, old, new)
        session.state = new

    def _end_session(self, session: CallSession) -> None:
        if session.state != "ended":
            self._set_state(session, "ended")
        self.sessions.pop(session.key, None)

    def _locked(self, session: CallSession) -> asyncio.Lock:
        if session.lock.locked():
            raise ControlBusy(session.call_id)
        return session.lock

    @staticmethod
    def _check_ticket(ticket_id: str | None) -> str:
        if not isinstance(ticket_id, str) or not TICKET_RE.match(ticket_id):
            raise Invalid("bad-ticket-id", f"not a ticket id: {ticket_id!r}", field="ticket_id")
        return ticket_id

    def _check_window(self, window: Window) -> None:
        is_open, next_open = self.windows.is_open(window.id, self._now())
        if not is_open:
            raise WindowClosed(window, next_open)
        if window.extension:
            seat = self.seats.get(window.extension)
            if seat is not None and seat.contact in ("Unreachable", "Removed"):
                raise WindowUnreachable(
                    window.id, f"the window's phone is {seat.contact}", contact=seat.contact
                )

    def _target(self, target: str) -> tuple[str, str, str]:
        """(context, exten, window id) of a transfer target: a window id, a SIP extension
        (seat or window) or an outside number (through the trunk)."""
        if not isinstance(target, str):
            raise BadNumber(str(target), "target")
        window = self.windows.find(target)
        if window is None and NUMBER_RE.match(target):
            window = self.windows.by_extension(target)
        if window is not None:
            self._check_window(window)
            if window.extension:
                return check_context(self.settings.window_context), window.extension, window.id
            return check_context(self.settings.callback_context), window.external_number, window.id
        if not NUMBER_RE.match(target):
            raise BadNumber(target, "target")
        if self.seats.get(target) is not None:
            return check_context(self.settings.window_context), target, ""
        self._check_dial_out(target, "target")
        return check_context(self.settings.callback_context), target, ""

    def _check_dial_out(self, number: str, field: str) -> None:
        """An outside number is dialled only when it matches one of ``control.dial_allow``
        (toll fraud: a login must not reach premium or foreign numbers through the trunk)."""
        if not any(p.fullmatch(number) for p in self._dial_allow):
            raise NumberNotAllowed(number, field)

    def _window_originate(self, window: Window, conference: str, ticket: str) -> dict[str, Any]:
        if window.extension:
            channel = f"PJSIP/{window.extension}"
        else:
            # An outside number: a Local channel runs the trunk dialplan of cti-callback.
            channel = f"Local/{window.external_number}@{self.settings.callback_context}"
        return build(
            "Originate",
            Channel=check_channel(channel),
            Context=check_context(self.settings.conference_context),
            Exten=check_exten(conference),
            Priority=1,
            CallerID=callerid(self.settings.hotline_number, self.settings.hotline_number),
            Async=True,
            Variable=f"HOTLINE_TICKET={ticket}" if ticket else None,
        )

    # --- sending ------------------------------------------------------------------------

    def _node(self, name: str) -> AmiNode:
        node = self.nodes.get(name)
        if node is None:
            raise NodeUnavailable(name, "unknown node")
        return node

    def _node_for_seat(self, name: str) -> AmiNode:
        if name and name in self.nodes:
            return self.nodes[name]
        connected = [n for n in self.nodes.values() if n.connected]
        if connected:
            return connected[0]
        if not self.nodes:
            raise NodeUnavailable("-", "no Asterisk node configured")
        return next(iter(self.nodes.values()))

    async def _send(self, node: AmiNode, action: dict[str, Any]) -> dict[str, str]:
        try:
            return await node.send(action)
        except NoSuchChannel as exc:
            raise Conflict(
                "no-active-call",
                "the call is gone (Asterisk: " + exc.message + ")",
                asterisk_message=exc.message,
                action=exc.action,
            ) from None
        except AmiError as exc:
            raise AsteriskRefused(exc) from None
        except AmiUnavailable as exc:
            raise NodeUnavailable(exc.node, exc.reason) from None
        except UnsafeValue as exc:
            raise Invalid("bad-input", str(exc)) from None

    async def _redirect(
        self,
        node: AmiNode,
        channel: Channel,
        exten: str,
        *,
        context: str | None = None,
        extra: tuple[Channel, str] | None = None,
    ) -> None:
        ctx = check_context(context or self.settings.conference_context)
        fields: dict[str, Any] = {
            "Channel": check_channel(channel.name),
            "Context": ctx,
            "Exten": check_exten(exten),
            "Priority": 1,
        }
        if extra is not None:
            fields.update(
                ExtraChannel=check_channel(extra[0].name),
                ExtraContext=ctx,
                ExtraExten=check_exten(extra[1]),
                ExtraPriority=1,
            )
        await self._send(node, build("Redirect", **fields))

    async def _hangup_quietly(self, node: AmiNode, channel: str) -> None:
        try:
            await node.send(build("Hangup", Channel=check_channel(channel)))
        except (AmiError, AmiUnavailable, UnsafeValue) as exc:
            log.info("control: hangup of %s: %s", channel, exc)

    async def _originate(
        self, node: AmiNode, action: dict[str, Any], purpose: str, agent_id: str = ""
    ) -> tuple[str, asyncio.Future[dict[str, str]]]:
        """Send an async Originate under an ActionID of ours; the future gets its
        OriginateResponse event."""
        action_id = f"{self._prefix}-{purpose}-{next(self._ids)}"
        action = {**action, "ActionID": action_id}
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(purpose, future, agent_id)
        try:
            await self._send(node, action)
        except BaseException:
            self._pending.pop(action_id, None)
            future.cancel()
            raise
        return action_id, future

    def _response_timeout(self) -> float:
        return float(max(self.settings.ring_timeout_s, 30) + 15)

    # --- watchers ---------------------------------------------------------------------

    async def _wait_response(
        self, action_id: str, future: asyncio.Future[dict[str, str]]
    ) -> dict[str, str]:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._response_timeout())
        except TimeoutError:
            return {"Response": "Failure", "Reason": "", "Message": "no OriginateResponse"}
        finally:
            self._pending.pop(action_id, None)

    async def _watch_window(
        self,
        session: CallSession,
        window: Window,
        action_id: str,
        future: asyncio.Future[dict[str, str]],
    ) -> None:
        recording = False
        try:
            msg = await self._wait_response(action_id, future)
            ok = msg.get("Response") == "Success"
            if ok and session.state != "ended":
                recording = self._record_window_call(session, window.id)
        finally:
            if not recording:
                self._window_join_settled(window.id)
        node = self.nodes.get(session.node)
        reason = ORIGINATE_REASONS.get(msg.get("Reason", ""), msg.get("Reason", "") or "timeout")
        if ok:
            session.window_channel = msg.get("Channel", "")
            session.window_uid = msg.get("Uniqueid", "")
            if session.state == "ended":
                # The citizen hung up while the window was ringing: release the window.
                if node is not None and session.window_channel:
                    await self._hangup_quietly(node, session.window_channel)
                return
            if session.state == "window_ringing":
                self._set_state(session, "three_way")
            self._transferred(session, "three_way", window.id, "Success")
            if node is not None:
                await self._list_members(node, session)
            return
        log.warning("control %s: window %s %s", session.call_id, window.id, reason)
        self._transferred(session, "three_way", window.id, f"Failure: {reason}")
        self.bus.publish(
            Alarm(
                kind="window-no-answer",
                message=f"{window.name} did not answer the three-way call ({reason})",
                at=self._now(),
                details={
                    "call_id": session.call_id,
                    "agent_id": session.agent_id,
                    "window_id": window.id,
                    "reason": reason,
                    "conference": session.conference,
                    "suggestion": "dispatch",
                },
            )
        )
        if session.state == "window_ringing":
            self._set_state(session, "conference")  # the agent stays with the citizen
        elif session.state == "agent_left" and node is not None:
            # Nobody left to talk to the citizen: end the call as a two-party call would.
            await self._hangup_quietly(node, session.citizen_channel)
            self._end_session(session)

    async def _list_members(self, node: AmiNode, session: CallSession) -> None:
        try:
            items = await node.send_list(build("ConfbridgeList", Conference=session.conference))
        except (AmiError, AmiUnavailable) as exc:
            log.info("ConfbridgeList %s: %s", session.conference, exc)
            return
        session.members = [m.get("Channel", "") for m in items if m.get("Channel")]

    async def _watch_originate(
        self,
        action_id: str,
        future: asyncio.Future[dict[str, str]],
        purpose: str,
        details: dict[str, Any],
    ) -> dict[str, str]:
        msg = await self._wait_response(action_id, future)
        if msg.get("Response") != "Success":
            reason = ORIGINATE_REASONS.get(msg.get("Reason", ""), "timeout")
            self.bus.publish(
                Alarm(
                    kind=f"{purpose}-failed",
                    message=f"{purpose}: the seat's phone did not answer ({reason})",
                    at=self._now(),
                    details={**details, "reason": reason},
                )
            )
        return msg

    async def _watch_callback(
        self,
        action_id: str,
        future: asyncio.Future[dict[str, str]],
        agent: Agent,
        number: str,
        ticket: str,
    ) -> None:
        msg = await self._watch_originate(
            action_id,
            future,
            "callback",
            {"agent_id": agent.id, "number": number, "ticket_id": ticket},
        )
        if msg.get("Response") == "Success" and ticket:
            call = self.tracker.find_call(msg.get("Uniqueid", ""))
            if call is not None and not call.ticket_id:
                call.ticket_id = ticket

    # --- AMI events (after the tracker) -----------------------------------------------------

    def _on_originate_response(self, node: str, msg: dict[str, str]) -> None:
        pending = self._pending.get(msg.get("ActionID", ""))
        if pending is not None and not pending.future.done():
            pending.future.set_result(dict(msg))

    def _on_hangup(self, node: str, msg: dict[str, str]) -> None:
        uid = msg.get("Uniqueid", "")
        for session in list(self.sessions.values()):
            if session.node != node:
                continue
            if uid and uid == session.window_uid:
                self._window_left(session)
            elif uid and uid == session.seat_uid:
                self._agent_gone(session)

    def _window_left(self, session: CallSession) -> None:
        session.window_uid = session.window_channel = ""
        if session.state == "three_way":
            self._set_state(session, "conference")
        elif session.state == "agent_left":
            self._release_citizen(session)

    def _agent_gone(self, session: CallSession) -> None:
        if session.state in ("three_way", "window_ringing"):
            self._set_state(session, "agent_left")
        elif session.state in ("conference", "held"):
            # The citizen would stay alone in the conference: end the call, as hanging up
            # a two-party call does.
            self._release_citizen(session)
        elif session.state == "bridged":
            self._end_session(session)

    def _release_citizen(self, session: CallSession) -> None:
        node = self.nodes.get(session.node)
        self._end_session(session)
        if node is not None and session.citizen_channel:
            self._spawn(
                self._hangup_quietly(node, session.citizen_channel),
                name=f"release-{session.call_id}",
            )

    def _on_call_ended(self, call: Call) -> None:
        session = self.sessions.get(call.key)
        if session is None:
            return
        remaining = [
            name
            for name in (session.window_channel, session.seat_channel)
            if name and (call.node, name) in self.tracker.by_name
        ]
        in_conference = session.state not in ("bridged", "ended")
        self._end_session(session)
        node = self.nodes.get(call.node)
        if in_conference and node is not None:
            # The citizen hung up during the conference: release the window and the seat.
            for name in remaining:
                self._spawn(self._hangup_quietly(node, name), name=f"release-{name}")

    # --- facts for the rest of the system ------------------------------------------------

    def _transferred(self, session: CallSession, kind: str, target: str, result: str) -> None:
        self.bus.publish(
            CallTransferred(
                node=session.node,
                call_id=session.call_id,
                kind=kind,
                target=target,
                result=result,
                at=self._now(),
            )
        )

    def _published_transfer(self, call: Call, kind: str, target: str) -> None:
        self.bus.publish(
            CallTransferred(
                node=call.node,
                call_id=call.call_id,
                kind=kind,
                target=target,
                result="Success",
                at=self._now(),
            )
        )

    def _record_window_call(self, session: CallSession, window_id: str) -> bool:
        """The window joined the call: from now on its staff may read the ticket and write the
        window's answer on it (``console.scopes``). Queued behind the ticket's own creation in
        the write-behind queue; :meth:`window_joined` waits for it. False when nothing is to
        be written (no ticket, no ticket service)."""
        tickets = getattr(self.hotline, "tickets", None)
        store = getattr(self.hotline, "store", None)
        ticket_id, call_id = session.ticket_id, session.call_id
        if tickets is None or store is None or not ticket_id:
            return False
        try:
            from tickets.statemachine import Actor
        except ImportError:
            return False
        actor = Actor(session.agent_id or Actor.SYSTEM_ID, frozenset({"agent"}))
        loop = asyncio.get_running_loop()
        joined = self._window_joins.get(window_id)
        waiting = joined[1] if joined is not None else None

        def write() -> None:
            try:
                tickets.record_window_call(ticket_id, window_id, call_id, actor)
            except ApiError as exc:
                log.warning("ticket %s: window %s not recorded: %s", ticket_id, window_id, exc)
            finally:
                if waiting is not None:
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(self._window_join_settled, window_id, waiting)

        store.submit_task(write, f"ticket {ticket_id} window {window_id}")
        return True

    def _expect_window_join(self, window_id: str, ticket_id: str) -> None:
        self._window_join_settled(window_id)  # an earlier call of the window's: moot now
        if ticket_id:
            future = asyncio.get_running_loop().create_future()
            self._window_joins[window_id] = (ticket_id, future)

    def _window_join_settled(
        self, window_id: str, future: asyncio.Future[None] | None = None
    ) -> None:
        """Written (or never to be): ``future`` only if it is still the window's latest."""
        joined = self._window_joins.get(window_id)
        if joined is None or (future is not None and joined[1] is not future):
            return
        del self._window_joins[window_id]
        if not joined[1].done():
            joined[1].set_result(None)

    async def window_joined(
        self, window_id: str, ticket_id: str, timeout: float = WINDOW_JOIN_WAIT_S
    ) -> None:
        """Before a window's staff are told what their window may see: when the window is
        being rung into, or has just joined, a three-way call about ``ticket_id``, wait (at
        most ``timeout``) until that is written on the ticket. Returns at once otherwise."""
        joined = self._window_joins.get(window_id)
        if joined is None or joined[0] != ticket_id:
            return
        try:
            await asyncio.wait_for(asyncio.shield(joined[1]), timeout)
        except TimeoutError:
            log.info(
                "window %s: ticket %s not yet written after %.1fs", window_id, ticket_id, timeout
            )

    def _record_police(self, ticket_id: str, agent_id: str) -> None:
        """The ticket goes to its 转110 state, behind the ticket's own creation in the
        write-behind queue. Best effort: the agent may already have moved it."""
        tickets = getattr(self.hotline, "tickets", None)
        store = getattr(self.hotline, "store", None)
        if tickets is None or store is None:
            return
        try:
            from tickets.statemachine import Actor
        except ImportError:
            return
        actor = Actor(agent_id, frozenset({"agent"}))

        def write() -> None:
            try:
                tickets.transition(ticket_id, "transfer_police", actor, "transferred to 110")
            except ApiError as exc:
                log.info("ticket %s not moved to police: %s", ticket_id, exc.message)

        store.submit_task(write, f"ticket {ticket_id} police")
