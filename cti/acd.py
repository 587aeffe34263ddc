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
  unless their agent is ready (``QueueAdd``/``QueuePause``/``QueueRemove``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from agi_scripts.route import RouteAnswer, RouteRequest
from cti.agents.board import Agent, AgentBoard
from cti.ami.actions import AmiError, AmiUnavailable, NoSuchChannel, build, check_channel
from cti.ami.client import AmiNode
from cti.calls.model import Call
from cti.calls.tracker import CallTracker, RouteInfo
from cti.seats.registry import Seat, SeatRegistry
from routing import CallerInfo, Offer, Router

log = logging.getLogger(__name__)


class CallerCache:
    """What routing needs to know about a caller, kept in memory: open ticket and its agent
    (from the ticket store, refreshed on ticket events), supervisor flags, enterprises."""

    def __init__(self, enterprise: set[str], flagged: set[str]) -> None:
        self.enterprise = set(enterprise)
        self.flagged = set(flagged)
        self.open_ticket: dict[str, str | None] = {}  # caller -> last agent id

    def info(self, caller: str) -> CallerInfo:
        has_open = caller in self.open_ticket
        return CallerInfo(
            caller=caller,
            enterprise=caller in self.enterprise,
            flagged=caller in self.flagged,
            open_ticket=has_open,
            last_agent_id=self.open_ticket.get(caller) if has_open else None,
        )

    def set_open(self, caller: str, agent_id: str | None) -> None:
        if caller:
            self.open_ticket[caller] = agent_id or self.open_ticket.get(caller)

    def set_closed(self, caller: str) -> None:
        self.open_ticket.pop(caller, None)


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
        self.queue = queue
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.stats = {"routed": 0, "direct": 0, "held": 0, "moves": 0, "move_failed": 0}
        tracker.on_waiting.append(self._waiting)
        tracker.on_answered.append(self._answered)
        tracker.on_ended.append(self._ended)
        tracker.on_dial_failed.append(self._dial_failed)
        agents.hooks.append(self._agent_changed)
        seats.on_usable_changed.append(self._seat_usable)

    # --- FastAGI route --------------------------------------------------------------

    def route(self, req: RouteRequest) -> RouteAnswer:
        now = self._clock()
        call_id = req.uniqueid
        info = self.callers.info(req.caller)
        try:
            decision = self.router.new_call(call_id, req.did, info, now)
        except ValueError:
            # The same channel routed twice (the dialplan re-ran the AGI): forget the old one.
            self.router.call_gone(call_id, now)
            decision = self.router.new_call(call_id, req.did, info, now)
        ticket_id = self._ticket_number()
        recording = self._recording_path(self._now(), ticket_id, req.uniqueid)
        target = f"PJSIP/{decision.seat}" if decision.seat else ""
        self.stats["routed"] += 1
        self.stats["direct" if target else "held"] += 1
        self.tracker.routed(
            req.uniqueid,
            RouteInfo(
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
            ),
        )
        return RouteAnswer(
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

    async def route_async(self, req: RouteRequest) -> RouteAnswer:
        return self.route(req)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop(), name="acd-tick")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        if self._ticker is not None:
            tasks.append(self._ticker)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                self._dispatch(self.router.tick(self._clock()))
            except Exception:
                log.exception("ACD tick failed")

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
        try:
            await node.send(
                build(
                    "Redirect",
                    Channel=check_channel(channel.name),
                    Context=self.deliver_context,
                    Exten=offer.seat,
                    Priority=1,
                )
            )
            self.stats["moves"] += 1
        except NoSuchChannel:
            # The caller hung up while being moved.
            self.stats["move_failed"] += 1
            self._dispatch(self.router.call_gone(offer.call_id, self._clock()))
        except (AmiError, AmiUnavailable) as exc:
            self.stats["move_failed"] += 1
            log.warning("ACD: moving %s to %s failed: %s", offer.call_id, offer.seat, exc)
            call.offered_seat = ""
            self._dispatch(
                self.router.release(offer.call_id, offer.agent_id, self._clock(), agent_ok=True)
            )

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
        if call.routed_by != "resync" or call.direction != "inbound":
            return
        now = self._clock()
        info = self.callers.info(call.caller)
        try:
            decision = self.router.new_call(call.call_id, call.did, info, now)
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
        self._dispatch(self.router.call_gone(call.call_id, self._clock()))

    def _dial_failed(self, call: Call, seat: str) -> None:
        agent = self.agents.at_seat(seat)
        if agent is None:
            return
        try:
            offers = self.router.release(call.call_id, agent.id, self._clock(), agent_ok=False)
        except ValueError:
            return
        self._dispatch(offers)

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
        else:
            self.agents.phone_unusable(seat.extension)
            self._dispatch(self.router.seat_unreachable(seat.extension, now))

    # --- the fallback queue ---------------------------------------------------------------

    def _queue_member(self, agent: Agent, op: str) -> None:
        seat = self.seats.get(agent.seat)
        node = self.nodes.get(seat.node) if seat is not None and seat.node else None
        if node is None and len(self.nodes) == 1:
            node = next(iter(self.nodes.values()))
        if node is None or not agent.seat:
            return
        interface = f"PJSIP/{agent.seat}"
        if op == "add":
            action = build(
                "QueueAdd",
                Queue=self.queue,
                Interface=interface,
                MemberName=agent.name,
                StateInterface=interface,
                Paused=True,
                Reason="login",
            )
        elif op == "remove":
            action = build("QueueRemove", Queue=self.queue, Interface=interface)
        else:
            action = build(
                "QueuePause",
                Queue=self.queue,
                Interface=interface,
                Paused=op == "pause",
                Reason=agent.reason or None,
            )
        task = asyncio.create_task(self._send_quietly(node, action), name=f"queue-{op}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_quietly(self, node: AmiNode, action: dict[str, object]) -> None:
        try:
            await node.send(action)
        except (AmiError, AmiUnavailable) as exc:
            # The queue is re-synchronised after each (re)connect: a miss here is repaired.
            log.info("fallback queue: %s: %s", action.get("Action"), exc)

    async def sync_queue(self, node: AmiNode) -> None:
        """After (re)connect: make the fallback queue's members match the logged-in agents."""
        try:
            members = await node.send_list(build("QueueStatus", Queue=self.queue))
        except (AmiError, AmiUnavailable) as exc:
            log.warning("QueueStatus on %s failed: %s", node.name, exc)
            return
        present = {
            m.get("Location", "") or m.get("StateInterface", "")
            for m in members
            if m.get("Event") == "QueueMember"
        }
        for agent in self.agents.all():
            if agent.state == "logged_out" or not agent.seat:
                continue
            interface = f"PJSIP/{agent.seat}"
            try:
                if interface not in present:
                    await node.send(
                        build(
                            "QueueAdd",
                            Queue=self.queue,
                            Interface=interface,
                            MemberName=agent.name,
                            StateInterface=interface,
                            Paused=agent.state != "ready",
                            Reason="resync",
                        )
                    )
                else:
                    await node.send(
                        build(
                            "QueuePause",
                            Queue=self.queue,
                            Interface=interface,
                            Paused=agent.state != "ready",
                        )
                    )
            except (AmiError, AmiUnavailable) as exc:
                log.info("fallback queue resync %s: %s", interface, exc)

    def snapshot(self) -> dict[str, object]:
        snap = self.router.snapshot()
        now = self._clock()
        for item in snap.get("waiting", []):
            item["wait_s"] = round(now - float(item.get("arrived", now)), 1)
        return snap
