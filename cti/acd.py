"""The CTI's automatic call distribution: routing decisions from the live state, and the
moves that carry them out on Asterisk.

- ``route`` answers the FastAGI ``route`` script: it asks ``routing.Router`` (pure, in memory)
  where the call goes, allocates the ticket number and the recording path, and tells the
  tracker. No database round trip on this path: caller facts come from ``CallerCache``.
- Waiting calls sit on hold in Asterisk (``[cti-hold]``). When an agent becomes ready, or a
  wait runs out (sticky agent, leader shift, overflow), the router makes ``Offer``s and the
  ACD ``Redirect``s the citizen's channel into ``[cti-deliver]`` (Dial the seat). Answer ->
  ``confirm``; seat not answering, caller gone, AMI refusing -> ``release`` or ``call_gone``,
  so no agent is ever offered two calls and no call is offered to two agents.
- The fallback queue (used when the CTI is down) always holds the logged-in seats, paused
  unless their agent is ready (``QueueAdd``/``QueuePause``/``QueueRemove``). Asterisk keeps
  dynamic members across a CTI restart but not across its own restart, so membership is kept
  by convergence: the wanted state per seat, and one task per seat that brings Asterisk to it
  whatever Asterisk already has ("Already there", "Interface not found").
- Several nodes: a seat belongs to the node its phone is registered on (``SeatRegistry``).
  The router prefers seats of the caller's node; a seat of another node is reached through
  the trunk to that node: ``Setvar HOTLINE_VIA=node-<name>`` and a Redirect into
  ``[cti-deliver-remote]`` (or the route's target ``PJSIP/<seat>@node-<name>``). The call's
  events come from the caller's node, the agent's ringing and hangup from the seat's.
- A failed move is never retried at once. "Redirect failed, channel not up." means the caller
  is hanging up; anything else puts the call back in line after a growing pause, a bounded
  number of times (an ACD that re-offered at once sent ~20,000 Redirects in 4 s for 7 calls).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from agi_scripts.route import RouteAnswer, RouteRequest
from cti.acd_queue import QueueMembers
from cti.agents.board import Agent, AgentBoard
from cti.ami.actions import (
    AmiError,
    AmiUnavailable,
    ChannelNotUp,
    NoSuchChannel,
    build,
    check_channel,
)
from cti.ami.client import AmiNode
from cti.calls.model import Call
from cti.calls.nodes import trunk_to
from cti.calls.tracker import CallTracker, RouteInfo
from cti.seats.registry import Seat, SeatRegistry
from routing import CallerInfo, Offer, Router

log = logging.getLogger(__name__)

# A call whose move failed goes back in line after MOVE_BACKOFF_S, doubled each time, at most
# MOVE_RETRIES times; then it stays on hold (the dialplan's fallback takes it if the CTI goes).
MOVE_RETRIES = 3
MOVE_BACKOFF_S = 0.5
# A seat of another node that the trunk from the caller's node could not reach is offered no
# call for this long (then tried again, if its phone is still usable): the call goes on to
# other seats meanwhile, and a broken trunk costs one failed Dial per seat this often.
TRUNK_HOLD_OFF_S = 5.0


# The kinds of caller flag supervisors set (console.callers), and the one routing puts ahead.
PRIORITY_FLAG = "priority"
FLAG_KINDS = (PRIORITY_FLAG, "abusive", "frequent")


class CallerCache:
    """What routing needs to know about a caller, kept in memory: open ticket and its agent
    (from the ticket store, refreshed on ticket events), supervisor flags, enterprises."""

    def __init__(self, enterprise: set[str], flagged: set[str]) -> None:
        self.enterprise = set(enterprise)
        self.flagged = set(flagged)
        # Supervisors' flags from the database (console.callers): caller -> kind. Only the
        # priority kind (VIP, vulnerable citizen) moves a caller ahead in the line.
        self.flags: dict[str, str] = {}
        self.open_ticket: dict[str, str | None] = {}  # caller -> last agent id

    def info(self, caller: str) -> CallerInfo:
        has_open = caller in self.open_ticket
        return CallerInfo(
            caller=caller,
            enterprise=caller in self.enterprise,
            flagged=caller in self.flagged or self.flags.get(caller) == PRIORITY_FLAG,
            open_ticket=has_open,
            last_agent_id=self.open_ticket.get(caller) if has_open else None,
        )

    def set_open(self, caller: str, agent_id: str | None) -> None:
        if caller:
            self.open_ticket[caller] = agent_id or self.open_ticket.get(caller)

    def set_closed(self, caller: str) -> None:
        self.open_ticket.pop(caller, None)

    def set_flag(self, caller: str, kind: str | None) -> None:
        """A supervisor's flag on ``caller`` (None: cleared)."""
        if kind:
            self.flags[caller] = kind
        else:
            self.flags.pop(caller, None)


class Acd:
    def __init__(
        self,
        router: Router,
        tracker: CallTracker,
        seats: SeatRegistry,
        agents: AgentBoard,
        nodes: Mapping[str, AmiNode],
        callers: CallerCache,
        *,
        ticket_number: Callable[[], str],
        recording_path: Callable[[datetime, str, str], str],
        now: Callable[[], datetime],
        deliver_context: str = "cti-deliver",
        deliver_remote_context: str = "cti-deliver-remote",
        queue: str = "hotline",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.tracker = tracker
        self.seats = seats
        self.agents = agents
        self.nodes = nodes
        self.callers = callers
        self._ticket_number = ticket_number
        self._recording_path = recording_path
        self._now = now
        self._clock = clock
        self.deliver_context = deliver_context
        self.deliver_remote_context = deliver_remote_context
        self.queue = queue
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.stats = {
            "routed": 0,
            "direct": 0,
            "held": 0,
            "moves": 0,
            "move_failed": 0,
            "remote_moves": 0,
        }
        self._move_failures: dict[str, int] = {}
        self._suspect_agents: set[str] = set()
        self._retry_handles: dict[str, asyncio.TimerHandle] = {}
        self._held_off: dict[str, asyncio.TimerHandle] = {}  # seat -> its way back
        self.members = QueueMembers(queue)
        tracker.on_waiting.append(self._waiting)
        tracker.on_answered.append(self._answered)
        tracker.on_ended.append(self._ended)
        tracker.on_dial_failed.append(self._dial_failed)
        agents.hooks.append(self._agent_changed)
        seats.on_usable_changed.append(self._seat_usable)
        seats.on_node_changed.append(self._seat_node)

    # --- FastAGI route --------------------------------------------------------------

    def route(self, req: RouteRequest) -> RouteAnswer:
        answer, apply = self.decide(req)
        apply()
        return answer

    def decide(self, req: RouteRequest) -> tuple[RouteAnswer, Callable[[], None]]:
        """The route's answer, and what the CTI's state makes of it (the call's record, its
        events): for the FastAGI server to run right after writing the answer, in the same
        turn of the loop (nothing about the call can be read in between)."""
        now = self._clock()
        call_id = req.uniqueid
        info = self.callers.info(req.caller)
        node = self.tracker.node_of_uniqueid(req.uniqueid) or self._only_node()
        try:
            decision = self.router.new_call(call_id, req.did, info, now, node=node)
        except ValueError:
            # The same channel routed twice (the dialplan re-ran the AGI): forget the old one.
            self.router.call_gone(call_id, now)
            decision = self.router.new_call(call_id, req.did, info, now, node=node)
        ticket_id = self._ticket_number()
        recording = self._recording_path(self._now(), ticket_id, req.uniqueid)
        target = self._dial_string(decision.seat, node) if decision.seat else ""
        self.stats["routed"] += 1
        self.stats["direct" if target else "held"] += 1
        route_info = RouteInfo(
            target=target,
            hold=decision.hold,
            skill=decision.skill,
            topic=decision.topic,
            reason=decision.reason,
            priority=decision.priority,
            ticket_id=ticket_id,
            recording=recording,
            leader=decision.leader,
            seat=decision.seat or "",
            agent_id=decision.agent_id or "",
        )

        def apply() -> None:
            if not self.tracker.routed(req.uniqueid, route_info):
                # The caller went on without this answer: nothing to reserve a seat for.
                self._dispatch(self.router.call_gone(call_id, self._clock()))

        answer = RouteAnswer(
            target=target,
            hold=decision.hold,
            recording=recording,
            ticket_id=ticket_id,
            skill=decision.skill,
            topic=decision.topic,
            priority=decision.priority,
            leader=decision.leader,
            reason=decision.reason,
        )
        return answer, apply

    # --- nodes --------------------------------------------------------------------------

    def _only_node(self) -> str:
        return next(iter(self.nodes)) if len(self.nodes) == 1 else ""

    def _remote_node(self, seat: str, node: str) -> str:
        """The node of ``seat`` if it is another node than ``node`` (the caller's), else ""."""
        found = self.seats.get(seat)
        other = found.node if found is not None else ""
        return other if node and other and other != node and other in self.nodes else ""

    def _dial_string(self, seat: str, node: str) -> str:
        remote = self._remote_node(seat, node)
        return f"PJSIP/{seat}@{trunk_to(remote)}" if remote else f"PJSIP/{seat}"

    def _seat_node(self, seat: Seat) -> None:
        """The seat's phone registered on another node (its own was lost, say): the router
        places it there, and the fallback queue of that node takes the seat in (the old
        node's resync drops it there)."""
        self.router.seat_node(seat.extension, seat.node)
        agent = self.agents.at_seat(seat.extension)
        if agent is not None and agent.state in ("ready", "not_ready", "wrap_up"):
            self._queue_member(agent, "unpause" if agent.state == "ready" else "pause")

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="acd-tick")

    def hold_unheard_seats(self) -> None:
        """When this process starts to lead: a seat no node has reported yet is out of the
        router's reach until one does (``_seat_usable``). A node reports its seats after
        its channel list has been read, so a seat busy there (its agent restored as ready)
        is not offered a call of another node, waiting in the line, meanwhile."""
        now = self._clock()
        for seat in self.seats.all():
            if seat.kind == "seat" and not seat.usable:
                self._dispatch(self.router.seat_unreachable(seat.extension, now))

    async def stop(self) -> None:
        for handle in [*self._retry_handles.values(), *self._held_off.values()]:
            handle.cancel()
        self._retry_handles.clear()
        self._held_off.clear()
        await self.members.stop()
        tasks = list(self._tasks)
        if self._ticker is not None:
            tasks.append(self._ticker)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(0.25)
            ticks += 1
            try:
                self._dispatch(self.router.tick(self._clock()))
                if ticks % 20 == 0:
                    self._check_agents()
            except Exception:
                log.exception("ACD tick failed")

    def _check_agents(self) -> None:
        """Every 5 s: an agent the board says is ready but the router has held not ready for
        two checks in a row is made ready in the router (and logged: it is a bug). Such a
        disagreement means nobody offers the agent a call while her desktop says ready."""
        stuck = {
            a.id
            for a in self.agents.all()
            if a.state == "ready" and self.router.agent_state(a.id) == "not_ready"
        }
        for agent_id in stuck & self._suspect_agents:
            log.error("ACD: %s ready on the desktop but not in the router: repaired", agent_id)
            self._dispatch(self.router.agent_ready(agent_id, self._clock()))
        self._suspect_agents = stuck - self._suspect_agents

    # --- moves --------------------------------------------------------------------------

    def _dispatch(self, offers: list[Offer]) -> None:
        for offer in offers:
            task = asyncio.create_task(self._deliver(offer), name=f"deliver-{offer.call_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, offer: Offer) -> None:
        call = self.tracker.find_call(offer.call_id)
        now = self._clock()
        if call is None or call.state == "ended":
            self._dispatch(self.router.call_gone(offer.call_id, now))
            return
        node = self.nodes.get(call.node)
        channel = self.tracker.citizen_channel(call)
        if node is None or channel is None:
            self._dispatch(self.router.call_gone(offer.call_id, now))
            return
        call.offered_seat = offer.seat
        call.agent_id = offer.agent_id
        call.leader = call.leader or offer.leader
        remote = self._remote_node(offer.seat, call.node)
        try:
            context = self.deliver_context
            if remote:
                # [cti-deliver-remote] dials the seat through the trunk named here.
                await node.send(
                    build(
                        "Setvar",
                        Channel=check_channel(channel.name),
                        Variable="HOTLINE_VIA",
                        Value=trunk_to(remote),
                    )
                )
                context = self.deliver_remote_context
            await node.send(
                build(
                    "Redirect",
                    Channel=check_channel(channel.name),
                    Context=context,
                    Exten=offer.seat,
                    Priority=1,
                )
            )
            self.stats["moves"] += 1
            if remote:
                self.stats["remote_moves"] += 1
                call.delivering = True
        except (NoSuchChannel, ChannelNotUp) as exc:
            # The caller hung up while being moved: the Hangup event follows. Should the
            # channel still be there later after all, it goes back in line then.
            self.stats["move_failed"] += 1
            log.info("ACD: %s gone while moved to %s (%s)", offer.call_id, offer.seat, exc)
            call.offered_seat = ""
            self._dispatch(self.router.call_gone(offer.call_id, self._clock()))
            self._retry_later(offer.call_id)
        except (AmiError, AmiUnavailable) as exc:
            self.stats["move_failed"] += 1
            log.warning("ACD: moving %s to %s failed: %s", offer.call_id, offer.seat, exc)
            call.offered_seat = ""
            # Out of line for a while: a refusal now is a refusal a millisecond later too.
            self._dispatch(self.router.call_gone(offer.call_id, self._clock()))
            self._retry_later(offer.call_id)

    def _retry_later(self, call_id: str) -> None:
        failures = self._move_failures.get(call_id, 0) + 1
        self._move_failures[call_id] = failures
        if failures > MOVE_RETRIES:
            log.error(
                "ACD: %s could not be moved after %d tries; it stays on hold", call_id, failures
            )
            return
        delay = MOVE_BACKOFF_S * 2 ** (failures - 1)
        old = self._retry_handles.pop(call_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._retry_handles[call_id] = loop.call_later(delay, self._back_in_line, call_id)

    def _back_in_line(self, call_id: str) -> None:
        self._retry_handles.pop(call_id, None)
        call = self.tracker.find_call(call_id)
        if call is None or call.state != "waiting" or call.direction != "inbound":
            return
        self._rejoin(call)

    # --- facts from the tracker and the board ----------------------------------------------

    def _answered(self, call: Call) -> None:
        if call.direction != "inbound":
            return
        now = self._clock()
        agent = self.agents.at_seat(call.seat)
        try:
            if agent is None:
                raise ValueError("no agent at the seat")
            self.router.confirm(call.call_id, agent.id, now)
        except ValueError:
            # Answered by a seat that was not reserved for it (the fallback queue, a
            # transfer): whatever reservation the call had is void.
            self._dispatch(self.router.call_gone(call.call_id, now))

    def _waiting(self, call: Call) -> None:
        """A call found waiting after a reconnect (its route happened while the AMI link was
        down, or before a CTI restart) joins the line like a new call, so it gets moved."""
        if call.direction != "inbound":
            return
        if call.routed_by == "fallback":
            # In the fallback queue, which distributes it itself: whatever the router held
            # for it (the seat of a route the caller never reached) is void.
            self._dispatch(self.router.call_gone(call.call_id, self._clock()))
            return
        if call.routed_by != "resync":
            return
        self._rejoin(call)

    def _rejoin(self, call: Call) -> None:
        """Put a waiting call (back) in the router's line and move it if a seat is free."""
        now = self._clock()
        info = self.callers.info(call.caller)
        try:
            decision = self.router.new_call(call.call_id, call.did, info, now, node=call.node)
        except ValueError:
            return  # already known
        call.routed_by = "cti"
        call.topic, call.skill = call.topic or decision.topic, call.skill or decision.skill
        if decision.agent_id and decision.seat:
            self._dispatch(
                [
                    Offer(
                        call.call_id,
                        decision.agent_id,
                        decision.seat,
                        decision.reason,
                        decision.leader,
                    )
                ]
            )

    def _ended(self, call: Call) -> None:
        self._move_failures.pop(call.call_id, None)
        handle = self._retry_handles.pop(call.call_id, None)
        if handle is not None:
            handle.cancel()
        self._dispatch(self.router.call_gone(call.call_id, self._clock()))

    def _dial_failed(self, call: Call, seat: str, status: str) -> None:
        agent = self.agents.at_seat(seat)
        if agent is None:
            return
        now = self._clock()
        if status == "CANCEL":
            # The caller hung up while the seat rang (its Hangup follows): nothing to put
            # back in line, and the agent did nothing wrong.
            self._dispatch(self.router.call_gone(call.call_id, now))
            return
        if status not in ("NOANSWER", "BUSY") and self._remote_node(seat, call.node):
            # The trunk to the seat's node failed: the seat never rang, and its agent stays as
            # they are. The seat is out of the router's reach for a while (a broken trunk
            # refuses the next try as fast), the call back in line for the other seats.
            self._dispatch(self.router.seat_unreachable(seat, now))
            try:
                offers = self.router.release(call.call_id, agent.id, now, agent_ok=True)
            except ValueError:
                offers = []
            self._dispatch(offers)
            self._hold_off(seat)
            return
        # The board has already judged the agent (a seat not answering is not ready, RONA);
        # the router follows it, so the two never disagree about who may be offered a call.
        agent_ok = agent.state in ("ready", "ringing")
        try:
            offers = self.router.release(call.call_id, agent.id, now, agent_ok=agent_ok)
        except ValueError:
            return
        self._dispatch(offers)

    def _hold_off(self, seat: str) -> None:
        old = self._held_off.pop(seat, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._held_off[seat] = loop.call_later(TRUNK_HOLD_OFF_S, self._seat_back, seat)

    def _seat_back(self, seat: str) -> None:
        self._held_off.pop(seat, None)
        found = self.seats.get(seat)
        if found is not None and found.usable:
            self._dispatch(self.router.seat_reachable(seat, self._clock()))

    def _agent_changed(self, agent: Agent, old: str, new: str) -> None:
        now = self._clock()
        router = self.router
        offers: list[Offer] = []
        try:
            if old == "logged_out":
                router.agent_login(agent.id, agent.seat, now)
                self._queue_member(agent, "add")
            if new == "ready":
                offers = router.agent_ready(agent.id, now)
                self._queue_member(agent, "unpause")
            elif new == "not_ready":
                offers = router.agent_not_ready(agent.id, now, agent.reason)
                self._queue_member(agent, "pause")
            elif new in ("ringing", "on_call"):
                if old not in ("ringing", "on_call"):
                    offers = router.agent_busy(agent.id, now)
            elif new == "wrap_up":
                offers = router.agent_busy(agent.id, now)
                self._queue_member(agent, "pause")
            elif new == "logged_out":
                offers = router.agent_logout(agent.id, now)
                self._queue_member(agent, "remove")
        except ValueError as exc:
            log.warning("ACD: agent %s %s -> %s: %s", agent.id, old, new, exc)
        self._dispatch(offers)

    def _seat_usable(self, seat: Seat) -> None:
        now = self._clock()
        if seat.usable:
            self._dispatch(self.router.seat_reachable(seat.extension, now))
            self.agents.phone_usable(seat.extension)
        else:
            self.agents.phone_unusable(seat.extension)
            self._dispatch(self.router.seat_unreachable(seat.extension, now))

    # --- the fallback queue ---------------------------------------------------------------

    def _queue_member(self, agent: Agent, op: str) -> None:
        node = self._node_of_seat(agent.seat)
        if node is None or not agent.seat:
            return
        if op == "remove":
            self.members.want(node, agent.seat, None)
        else:
            # Logged in: a member, paused unless ready (a login starts paused).
            paused = op != "unpause"
            self.members.want(node, agent.seat, (agent.name, paused, agent.reason or ""))

    def _node_of_seat(self, extension: str) -> AmiNode | None:
        seat = self.seats.get(extension)
        node = self.nodes.get(seat.node) if seat is not None and seat.node else None
        if node is None and len(self.nodes) == 1:
            node = next(iter(self.nodes.values()))
        return node

    async def sync_queue(self, node: AmiNode) -> None:
        """After (re)connect: the fallback queue's dynamic members on this node become
        exactly the seats of logged-in agents, paused unless ready; returns when done."""

        def wanted() -> dict[str, tuple[str, bool | None, str]]:
            out: dict[str, tuple[str, bool | None, str]] = {}
            for agent in self.agents.all():
                if agent.state == "logged_out" or not agent.seat:
                    continue
                if self._node_of_seat(agent.seat) is not node:
                    continue
                # On a call the pause state is whatever it was (a callback from a not-ready
                # seat).
                on_call = agent.state in ("ringing", "on_call")
                paused = None if on_call else agent.state != "ready"
                out[agent.seat] = (agent.name, paused, agent.reason or "")
            return out

        await self.members.sync(node, wanted)

    def snapshot(self, *, agents: bool = True, limit: int | None = None) -> dict[str, object]:
        snap = self.router.snapshot(agents=agents, limit=limit)
        now = self._clock()
        for item in snap.get("waiting", []):
            item["wait_s"] = round(now - float(item.get("arrived", now)), 1)
        return snap
