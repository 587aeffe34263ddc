"""The composition root: the only place where objects are wired together.

``Hotline(settings)`` builds every part from the configuration; ``await start()`` connects to
the Asterisk nodes, opens the FastAGI port and the console; ``await stop()`` undoes it in
reverse order, cancelling and awaiting every background task it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agi_scripts import route as route_script
from agi_scripts.route import RouteAnswer, RouteRequest
from cti.acd import Acd, CallerCache
from cti.agents.board import Agent, AgentBoard, restored_as
from cti.agi.server import AgiSession, FastAgiServer
from cti.ami.actions import AmiError, AmiUnavailable, build
from cti.ami.client import AmiNode
from cti.bus import Bus
from cti.calls.model import Call
from cti.calls.tracker import CallTracker
from cti.cdr import import_missed_calls
from cti.claims import once_per
from cti.config import Settings
from cti.db import create_schema, make_engine, session_factory
from cti.errors import HotlineError
from cti.events import (
    AmiConnected,
    AmiDisconnected,
    AmiResynced,
    RecordingStarted,
    RecordingStopped,
    TicketChanged,
    TicketOpened,
)
from cti.leader import FencedNode, Leadership, Lease, process_id
from cti.memory import AfterPeak, release_free_memory
from cti.models import AgentRow, CallerFlagRow, CallRow, SeatRow
from cti.persist import Persistence
from cti.seats.registry import Seat, SeatRegistry
from cti.single import SingleCti
from cti.store import Store, after_commit
from cti.tasks import cancel_and_wait
from recordings import models as rec_models
from recordings import rows as rec_rows
from recordings.layout import recording_path
from recordings.service import RecordingService
from routing import Router, RoutingPlan
from tickets.models import Ticket
from tickets.notify import NullNotifier
from tickets.numbers import TicketNumbers
from tickets.police_calls import link_call
from tickets.service import DraftCall, TicketService
from tickets.sms import SmsNotifier
from tickets.statemachine import OPEN_STATES
from tickets.timers import TicketTimers

OPEN_STATES_NAMES = frozenset(str(s) for s in OPEN_STATES)
# 110's incident numbers of routed calls waiting for their answer (a few at a time): at most
# this many are kept for calls that are never answered.
MAX_INCIDENTS = 1000

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Hotline:
    def __init__(self, settings: Settings, *, console: bool = True) -> None:
        self.settings = settings
        self.started_at = utcnow()
        self.engine = make_engine(settings.database.url)
        self.sessions = session_factory(self.engine)
        self.bus = Bus()
        self.store = Store(
            self.sessions,
            buffer_max=settings.database.buffer_max,
            # SQLite: one CTI per file (cti.single), nobody to be fenced from.
            fence=None if self.engine.dialect.name == "sqlite" else self._holds_lease,
            task_fence=None if self.engine.dialect.name == "sqlite" else self._leads_now,
        )
        self.seats = SeatRegistry(
            [
                Seat(
                    id=s.id,
                    extension=s.extension,
                    kind=s.kind,
                    room=s.room,
                    position=s.position,
                    phone_model=s.phone_model,
                    mac=s.mac,
                )
                for s in settings.seats
            ],
            self.bus,
            utcnow,
        )
        self.agents = AgentBoard(
            [
                Agent(id=a.id, name=a.name, skills=dict(a.skills), leader=a.leader, title=a.title)
                for a in settings.agents
            ],
            self.seats,
            self.bus,
            utcnow,
            wrapup_s=settings.control.wrapup_s,
            reasons=settings.control.not_ready_reasons,
        )
        dids = settings.did_map()
        self._dids = dids
        self._incidents: dict[str, str] = {}  # call id -> 110's incident number
        default_skill = settings.routing.default_skill

        def topics(did: str) -> tuple[str, str]:
            h = dids.get(did)
            return (h.topic, h.skill) if h is not None else ("", default_skill)

        contexts = {n.name: n.inbound_context for n in settings.asterisk}
        self.tracker = CallTracker(
            self.bus,
            self.seats,
            self.agents,
            utcnow,
            inbound_context=lambda node: contexts.get(node, "from-citizen"),
            topics=topics,
        )
        self.plan = RoutingPlan.from_settings(
            settings.routing,
            list(settings.hotlines),
            list(settings.agents),
            list(settings.leader_shifts),
        )
        self.router = Router(self.plan)
        self.callers = CallerCache(
            set(settings.routing.enterprise_callers), set(settings.routing.flagged_callers)
        )
        # Its own engine: APScheduler's job store disposes the engine it was given at shutdown,
        # which would orphan connections the store thread holds at that moment.
        self.ticket_timers = TicketTimers(settings.database.url)
        self.single = SingleCti(settings.database.url)
        ha = settings.ha
        self.lost = asyncio.Event()
        # On a database server the lease has its own connection: a renewal never waits for
        # one of the pool the store's writes and the console use.
        self._lease_engine = (
            self.engine
            if self.engine.dialect.name == "sqlite"
            else make_engine(settings.database.url)
        )
        self.leadership = Leadership(
            Lease(
                self._lease_engine,
                holder=process_id(),
                lease_s=ha.lease_s,
                address=ha.address or f"agi://{settings.agi.host}:{settings.agi.port}",
            ),
            renew_s=ha.renew_s,
            poll_s=ha.poll_s,
            margin_s=ha.margin_s,
            # One CTI per SQLite file (the file lock): a dead predecessor's lease is void.
            force=self.single.lock_path is not None,
            fence=ha.standby,
            on_lost=self._lost_lead,
        )
        self.sms: SmsNotifier | None = (
            SmsNotifier(self.sessions, settings.sms) if settings.sms.enabled else None
        )
        # Departments are synchronised at start(), once the schema exists.
        self.tickets = TicketService(
            self.sessions,
            self.bus,
            settings.tickets,
            notifier=self.sms or NullNotifier(),
            scheduler=self.ticket_timers,
            clock=utcnow,
        )
        self.ticket_numbers = TicketNumbers(self.sessions, settings.site.timezone)
        self.recordings = RecordingService(
            self.sessions,
            settings.recordings,
            self.bus,
            utcnow,
            transcription=settings.transcription,
        )
        self.nodes: dict[str, AmiNode] = {}
        for n in settings.asterisk:
            self.nodes[n.name] = FencedNode(
                n.name,
                n.host,
                n.port,
                n.username,
                n.secret.get_secret_value(),
                on_event=self.tracker.handle,
                on_state=self._node_state,
                on_login=self._resync,
                events=n.events,
                action_timeout=n.action_timeout_s,
                ping_interval=n.ping_interval_s,
                ping_timeout=n.ping_timeout_s,
                backoff_max=n.backoff_max_s,
                login_timeout=n.login_timeout_s,
                down_reminder_s=n.down_reminder_s,
                may_act=lambda: self.leadership.leading,
            )
        rec_root = settings.recordings.asterisk_dir or settings.recordings.dir
        self.acd = Acd(
            self.router,
            self.tracker,
            self.seats,
            self.agents,
            self.nodes,
            self.callers,
            ticket_number=self.ticket_numbers.next,
            recording_path=lambda at, ticket, uid: recording_path(rec_root, at, ticket, uid),
            now=utcnow,
            deliver_context=settings.control.deliver_context,
            queue=settings.asterisk[0].queue,
        )
        self.persistence = Persistence(
            self.store,
            self.bus,
            self.tracker,
            self.seats,
            open_ticket=self._open_ticket,
            register_recording=self._register_recording,
        )
        self.tracker.on_recording_unknown.append(self._ask_recording_path)
        self.tracker.on_adopted.append(self._adopted)
        self.bus.subscribe(TicketOpened, lambda ev: self.callers.set_open(ev.caller, ev.agent_id))
        self.bus.subscribe(TicketChanged, self._ticket_changed)
        self.bus.subscribe(RecordingStarted, self._recording_started)
        if len(self.nodes) > 1:
            # Several nodes: the seats of a node the CTI lost stop taking calls; the others
            # go on (with one node there is nowhere else to send a call anyway).
            self.bus.subscribe(AmiDisconnected, self._node_lost)
        self.agi = FastAgiServer(
            settings.agi.host,
            settings.agi.port,
            {},
            immediate={"route": self._agi_route},
            header_timeout=settings.agi.header_timeout_s,
            max_sessions=settings.agi.max_sessions,
        )
        self.control: Any = None
        self._want_console = console
        self.console_app: Any = None
        self._console_server: Any = None
        self._console_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # MixMonitor stops waiting for their files to settle: (node, call, path) -> the timer
        # and what it submits.
        self._settling: dict[
            tuple[str, str, str], tuple[asyncio.TimerHandle, Callable[[], None]]
        ] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.node_state: dict[str, tuple[str, str]] = {}
        self.resync_seconds: dict[str, float] = {}
        self.node_state_seen: dict[str, bool] = {}
        self.console_port = settings.console.port
        self._build_control()

    def _build_control(self) -> None:
        try:
            from cti.control import CallControl
        except ImportError:  # the control slice is optional in trimmed deployments
            return
        self.control = CallControl(self)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, until: asyncio.Event | None = None) -> bool:
        """Lead, then run. With another CTI leading on this database, wait on standby first
        (``cti.leader``): nothing is listened on, sent to Asterisk or written meanwhile.
        Returns False when ``until`` was set before this process could lead."""
        # The event loop answers FastAGI and AMI while the store's writer thread runs ORM
        # code: with CPython's default 5 ms switch interval every answer that wakes the
        # loop may wait that long for the GIL, several times per route. 0.5 ms keeps the
        # route's waits short for a little throughput.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        self.single.acquire()  # a second CTI on the same SQLite file stops here
        create_schema(self.engine)
        if self._want_console:
            # Built now, so that a standby taking over does not spend its first second
            # loading and wiring the web framework.
            from console.app import create_app

            self.console_app = create_app(self)
        if not await self.leadership.acquire(until):
            return False
        await self._lead()
        return True

    async def _lead(self) -> None:
        """What the leader runs: the state rebuilt from the database and from Asterisk (the
        resync at each node's login), the timers, FastAGI, the ACD, the console."""
        logged_in = self._sync_reference_data()
        self._warm_caller_cache()
        # The calls Asterisk recorded while no CTI watched are imported after each node's
        # resync (``_resync``), when the lists have shown what is still up.
        self.tickets.bind_loop(asyncio.get_running_loop())
        self.store.start()
        self.ticket_numbers.prime()
        self.acd.hold_unheard_seats()
        self._restore_agents(logged_in)
        await self.agi.start()
        for node in self.nodes.values():
            await node.start()
        self.acd.start()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="cti-heartbeat")
        # After Asterisk's side: timers that fell due during a takeover run at once, in
        # threads, and must not delay the first route.
        self.tickets.start_timers()
        if self.sms is not None:
            self.sms.start()
        self._maintenance = asyncio.create_task(self._maintenance_loop(), name="cti-maintenance")
        if self._want_console:
            await self._start_console()
        # What start-up made lives as long as the process (the site, two thousand agents and
        # seats, the modules, the web framework): out of the collector's view, so that its
        # full collections scan what comes and goes. Under bench_load they took 50-120 ms of
        # the loop each, the tail of the route's times.
        gc.collect()
        gc.freeze()

    def _holds_lease(self, session: Session) -> bool:
        """The store's fence: once this process has led, its writes commit only while it
        holds the lease. (Before, only a tool or a test runs the store: a CTI starts it when
        it begins to lead.)"""
        if self.leadership.current is None:
            return True
        return self.leadership.lease.holds(session.connection())

    def _leads_now(self) -> bool:
        """The fence of the store's tasks: the lease's deadline as this process knows it
        from its last renewal (no round trip to the database)."""
        return self.leadership.current is None or self.leadership.leading

    def _lost_lead(self, reason: str) -> None:
        """The lease may have run out (``cti.leader``): stop acting now. The FastAGI port is
        closed first (Asterisk is refused and asks the other CTI), the heartbeat stops;
        ``lost`` tells the owner to stop the rest."""
        task = asyncio.get_running_loop().create_task(self.agi.stop(), name="agi-fence")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.lost.set()

    async def stop(self) -> None:
        self._stopping.set()
        if self._maintenance is not None:
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await cancel_and_wait(self._heartbeat)
        if self._console_server is not None:
            self._console_server.should_exit = True
            if self._console_task is not None:
                await asyncio.gather(self._console_task, return_exceptions=True)
        await cancel_and_wait(*self._background)
        await self.acd.stop()
        if self.control is not None and hasattr(self.control, "stop"):
            await self.control.stop()
        await self.agi.stop()
        for node in self.nodes.values():
            await node.stop()
        self.agents.stop()
        if self.sms is not None:
            await self.sms.stop()
        self.ticket_timers.shutdown(wait=True)
        self._submit_settling()
        await asyncio.to_thread(self.store.stop)
        self.ticket_numbers.close()  # a block being reserved ahead holds a connection
        busy = self.engine.pool.checkedout() if hasattr(self.engine.pool, "checkedout") else 0
        if busy:
            log.warning("stopping with %d database connections still checked out", busy)
        # Last: the standby must not lead while this process still writes.
        await self.leadership.stop(release=not self.lost.is_set())
        if self._lease_engine is not self.engine:
            self._lease_engine.dispose()
        self.engine.dispose()
        self.single.release()

    async def wait_connected(self, timeout: float = 10.0) -> bool:
        results = await asyncio.gather(*(n.wait_ready(timeout) for n in self.nodes.values()))
        return all(results)

    async def _start_console(self) -> None:
        import ipaddress

        import uvicorn

        from console.app import create_app

        if self.console_app is None:
            self.console_app = create_app(self)
        # X-Forwarded-For (and -Proto) are believed only from [console] trusted_proxies: by
        # default uvicorn believes them from 127.0.0.1, which let any local client pick the
        # address the login limiter counts. Without proxies, nobody's are believed.
        proxies = [
            str(ipaddress.ip_network(p, strict=False))
            for p in self.settings.console.trusted_proxies
        ]
        config = uvicorn.Config(
            self.console_app,
            host=self.settings.console.host,
            port=self.settings.console.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies,
        )
        server = uvicorn.Server(config)
        # The CTI's loop owns SIGINT/SIGTERM (``hotline serve``): uvicorn would take them over
        # for as long as the console serves.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._console_server = server
        self._console_task = asyncio.create_task(server.serve(), name="console")
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        if server.servers:
            self.console_port = server.servers[0].sockets[0].getsockname()[1]

    # --- AMI ----------------------------------------------------------------------------

    def _node_state(self, node: str, state: str, detail: str) -> None:
        self.node_state[node] = (state, detail)
        if state == "connected":
            self.bus.publish(AmiConnected(node=node, at=utcnow()))
        elif state in ("disconnected", "auth-failed"):
            self.bus.publish(AmiDisconnected(node=node, at=utcnow(), reason=detail))

    def _node_lost(self, ev: AmiDisconnected) -> None:
        self.seats.node_lost(ev.node)

    async def _resync(self, node: AmiNode) -> None:
        """After every (re)connect: events during the outage are gone, so rebuild the state
        of this node from Asterisk's lists."""
        started = time.monotonic()
        self.tracker.mark(node.name)

        # The channels are reconciled as the list's last message is read, before the events
        # that follow it: those are about channels of the list (a seat the fallback queue
        # rang answers), and delivered to a tracker that did not know them yet they were
        # dropped (the answer never counted).
        def reconcile(items: list[dict[str, str]]) -> None:
            self.tracker.resync(node.name, items)

        channels = await node.send_list(
            build("CoreShowChannels"), timeout=30, on_complete=reconcile
        )
        # A phone may register while the lists are on their way: its live event is newer
        # than the snapshot, which must not undo it.
        mark = self.seats.mark()
        contacts, devices = await asyncio.gather(
            node.send_list(build("PJSIPShowContacts"), timeout=30),
            node.send_list(build("DeviceStateList"), timeout=30),
        )
        self.seats.resync_contacts(node.name, contacts, mark)
        self.seats.resync_devices(node.name, devices, mark)
        await self.acd.sync_queue(node)
        seconds = time.monotonic() - started
        booted = node.fully_booted_at
        log.info(
            "AMI %s: resync done in %.3f s%s (%d channels, %d contacts)",
            node.name,
            seconds,
            f", {time.monotonic() - booted:.3f} s after FullyBooted" if booted else "",
            len(channels),
            len(contacts),
        )
        # Calls that began and ended while the link was down left no event, only Asterisk's
        # CDR (the FastAGI route kept working meanwhile). At the first login too: calls that
        # ended between the start's import and this snapshot (a standby taking over under
        # load) are in the CDR and in no list. The import skips what is recorded already.
        await import_missed_calls(self.settings, self.sessions, self.persistence)
        self.node_state_seen[node.name] = True
        self.resync_seconds[node.name] = seconds
        self.bus.publish(
            AmiResynced(
                node=node.name,
                at=utcnow(),
                channels=len(channels),
                contacts=len(contacts),
                seconds=round(seconds, 4),
            )
        )

    async def _heartbeat_loop(self) -> None:
        """The dialplan skips the FastAGI when this is older than 3 s (FastAGI has no
        timeout of its own): a stalled CTI must stop receiving calls quickly."""
        interval = self.settings.agi.heartbeat_interval_s
        while self.leadership.leading:
            stamp = str(int(time.time()))
            for node in self.nodes.values():
                if node.connected and self.leadership.leading:
                    try:
                        await node.send(
                            build("DBPut", Family="cti", Key="heartbeat", Val=stamp),
                            timeout=interval,
                        )
                    except (AmiError, AmiUnavailable) as exc:
                        log.debug("heartbeat to %s: %s", node.name, exc)
            await asyncio.sleep(interval)

    async def _maintenance_loop(self) -> None:
        """Transcripts the workers finished become events (the desktop shows them within a
        second); recordings past their retention are deleted or moved once an hour."""
        last_retention = 0.0
        after_peak = AfterPeak()
        while not self._stopping.is_set():
            # Stopped by the event, not by cancellation: a database call running in a thread
            # cannot be cancelled, and the engine must not be disposed under it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)
                return
            if after_peak.passed(len(self.tracker.calls)):
                # A surge has passed: its calls' memory goes back to the system.
                await asyncio.to_thread(release_free_memory)
            try:
                await asyncio.to_thread(self.recordings.deliver_transcript_events)
                if time.monotonic() - last_retention > 3600:
                    last_retention = time.monotonic()
                    # Once per clock hour for all the CTIs on this database (cti.claims).
                    hour = timedelta(hours=1)
                    if await asyncio.to_thread(
                        once_per, self.sessions, "recordings:retention", hour, utcnow()
                    ):
                        await asyncio.to_thread(self.recordings.apply_retention)
            except Exception as exc:  # the database may be away: the store reports that
                log.warning("maintenance: %s", exc)

    def _adopted(self, call: Call) -> None:
        """A call found by a resync: its recording path and dialled number are in its channel
        variables; read them back. Not its ticket number: one drawn by a process that died
        before writing it may be drawn again by this one (the ticket service finds the ticket
        of a call it already opened by the call's id)."""
        node = self.nodes.get(call.node)
        if node is None:
            return

        async def read_back() -> None:
            for var, attr in (("HOTLINE_REC", "recording"), ("HOTLINE_DID", "did")):
                try:
                    resp = await node.send(build("Getvar", Channel=call.channel, Variable=var))
                except (AmiError, AmiUnavailable) as exc:
                    log.info("adopted call %s: %s: %s", call.call_id, var, exc)
                    return
                value = resp.get("Value", "")
                if value and not getattr(call, attr):
                    setattr(call, attr, value)

        task = asyncio.get_running_loop().create_task(read_back())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ask_recording_path(self, call: Call) -> None:
        node = self.nodes.get(call.node)
        channel = self.tracker.citizen_channel(call)
        if node is None or channel is None:
            return

        async def ask() -> None:
            try:
                resp = await node.send(
                    build("Getvar", Channel=channel.name, Variable="MIXMONITOR_FILENAME")
                )
            except (AmiError, AmiUnavailable) as exc:
                log.info("no recording path for %s: %s", call.call_id, exc)
                return
            path = resp.get("Value", "")
            if path and not call.recording:
                call.recording = path
                if call.state != "ended":
                    # Known while the call goes on (a callback's, or a call the fallback
                    # queue took): registered now, so its transcript can follow it live.
                    self.bus.publish(
                        RecordingStarted(
                            node=call.node, call_id=call.call_id, path=path, at=utcnow()
                        )
                    )

        task = asyncio.get_running_loop().create_task(ask())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- FastAGI ------------------------------------------------------------------------

    def _agi_route(self, session: AgiSession) -> list[str] | None:
        """The route's answer, written in the turn of the loop that reads the question."""
        if not self.leadership.leading or not self._resynced(session.peer):
            return None  # closed unanswered: the caller's defaults, the fallback queue

        def decide(req: RouteRequest) -> RouteAnswer:
            answer, apply = self._route(req)
            session.after_answer(apply)  # the call's record and events: once it is written
            return answer

        return route_script.answer_now(
            session,
            decide,
            give_up_s=self.settings.agi.route_timeout_s,
            pbx_time=lambda: self._pbx_time(session.peer),
        )

    def _route(self, req: RouteRequest) -> tuple[RouteAnswer, Callable[[], None]]:
        hotline = self._dids.get(req.did)
        if req.incident and hotline is not None and hotline.police110:
            # 110's incident, linked to the call's ticket once it is open (_open_ticket).
            self._incidents[req.uniqueid] = req.incident
            while len(self._incidents) > MAX_INCIDENTS:  # calls never answered
                del self._incidents[next(iter(self._incidents))]
        return self.acd.decide(req)

    def _resynced(self, peer: str) -> bool:
        """Whether this process has read the asking node's channels yet. Before that (the
        first seconds of a start or a takeover) a route could send a caller to a seat busy
        with a call this process has not seen, and the answer of a call it routed could
        pass unseen; the fallback queue takes those callers."""
        nodes = [n for n in self.nodes.values() if n.host == peer] or list(self.nodes.values())
        return any(self.node_state_seen.get(n.name) for n in nodes)

    def _pbx_time(self, peer: str) -> float | None:
        """The clock of the Asterisk that asks: the node at that address, else the only one."""
        nodes = [n for n in self.nodes.values() if n.host == peer] or list(self.nodes.values())
        return nodes[0].asterisk_time() if len(nodes) == 1 else None

    # --- tickets and recordings ---------------------------------------------------------

    def _open_ticket(self, call: Call) -> None:
        ticket_id = call.ticket_id or self.ticket_numbers.next()
        call.ticket_id = ticket_id
        snapshot = call.snapshot()
        loop = asyncio.get_running_loop()
        incident = self._incidents.pop(call.call_id, "")
        label = f"ticket {ticket_id}"
        draft = DraftCall(
            call_id=snapshot.call_id,
            node=snapshot.node,
            caller=snapshot.caller,
            caller_name=snapshot.caller_name,
            did=snapshot.did,
            topic=snapshot.topic,
            agent_id=snapshot.agent_id,
            leader=snapshot.leader,
            answered_at=snapshot.answered_at,
            recording_path=snapshot.recording,
        )

        def open_ticket() -> None:
            opened = self.tickets.open_draft(ticket_id, draft)
            if incident:
                link_call(self.tickets, opened, incident, utcnow())
            if opened == ticket_id:
                return
            # The call already had a ticket (seen again after a reconnect or a CTI restart):
            # the call row names that one, not the number just drawn.
            with self.sessions() as session:
                row = session.scalar(
                    select(CallRow).where(
                        CallRow.node == call.node, CallRow.linkedid == call.call_id
                    )
                )
                if row is not None:
                    row.ticket_id = opened
                    session.commit()
            loop.call_soon_threadsafe(setattr, call, "ticket_id", opened)

        def open_in_batch(session: Session) -> None:
            # The usual case (a new call, a fresh number) in the batch's own transaction;
            # anything else is for open_ticket's lookups, after it.
            opened = None if incident else self.tickets.draft_in(session, ticket_id, draft)
            if opened is not None:
                after_commit(session, opened)
            else:  # queued once this batch is committed (a batch tried again queues it once)
                after_commit(session, lambda: self.store.submit_task(open_ticket, label))

        self.store.submit(open_in_batch, label)

    def _recording_started(self, ev: RecordingStarted) -> None:
        """MixMonitor started: the recording is known while the call goes on (its
        transcription can follow it live). Two rows in the store's next batch."""
        if not ev.path:
            return
        call = self.tracker.calls.get((ev.node, ev.call_id))
        values = {
            "call_id": ev.call_id,
            "node": ev.node,
            "ticket_id": call.ticket_id if call else "",
            "agent_id": (call.agent_id if call else "") or None,
            "path": ev.path,
            "started_at": ev.at,
            "ended_at": ev.at,
            "status": rec_models.RECORDING,
            "created_at": ev.at,
        }
        self.store.submit_row(rec_rows.STARTED, values, f"recording started {ev.call_id}")
        transcription = self.settings.transcription
        if transcription.enabled and transcription.live:
            job = {"call_id": ev.call_id, "path": ev.path, "now": ev.at}
            self.store.submit_row(rec_rows.LIVE_JOB, job)

    def _register_recording(self, ev: RecordingStopped, call: Call | None) -> None:
        """MixMonitor stopped. Asterisk may still be closing the file, and a file is
        registered (measured, hashed) only once it has been still for ``settle_s``: so the
        stop is written when that time has passed, in the same transaction as the
        registration, not once now and again then. Stopping the CTI writes what is waiting."""
        path = ev.path or (call.recording if call else "")
        if not path:
            return
        ticket_id = ev.ticket_id or (call.ticket_id if call else "")
        agent_id = call.agent_id if call else ""
        started = call.answered_at or call.started_at if call else ev.at
        loop = asyncio.get_running_loop()
        key = (ev.node, ev.call_id, path)

        def register() -> None:
            rid, status = self.recordings.stopped(
                call_id=ev.call_id,
                node=ev.node,
                ticket_id=ticket_id,
                agent_id=agent_id,
                path=path,
                started_at=started,
                ended_at=ev.at,
            )
            if status == rec_models.PENDING:
                self._recheck_pending(loop, rid, 1)

        def submit() -> None:
            if self._settling.pop(key, None) is not None:
                self.store.submit_task(register, f"recording {ev.call_id}")

        if key in self._settling:
            return
        self._settling[key] = (
            loop.call_later(self.settings.recordings.settle_s + 0.05, submit),
            submit,
        )

    def _submit_settling(self) -> None:
        """On the way out: the stops still waiting for their files to settle are written now
        (left ``pending`` for the sweeper if the file is not settled yet)."""
        for handle, submit in list(self._settling.values()):
            handle.cancel()
            submit()

    def _recheck_pending(self, loop: asyncio.AbstractEventLoop, rid: int, attempt: int) -> None:
        """In the store's thread: a file still being closed when MixMonitor stopped is looked
        at again once it has settled, not left to the periodic sweep (its transcript waits
        on the registration)."""
        if attempt > 5:
            return
        delay = self.settings.recordings.settle_s * attempt + 0.1

        def again() -> None:
            if self.recordings.register_pending(rid) == rec_models.PENDING:
                self._recheck_pending(loop, rid, attempt + 1)

        def later() -> None:
            if not self._stopping.is_set():
                self.store.submit_task(again, f"recording {rid} settled")

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(loop.call_later, delay, later)

    def _ticket_changed(self, ev: TicketChanged) -> None:
        if ev.new not in OPEN_STATES_NAMES:
            caller = self.tickets_caller(ev.ticket_id)
            if caller:
                self.callers.set_closed(caller)

    def tickets_caller(self, ticket_id: str) -> str:
        try:
            return str(self.tickets.get(ticket_id).caller)
        except Exception:
            return ""

    # --- start-up data ------------------------------------------------------------------

    def _sync_reference_data(self) -> dict[str, tuple[str, str, str]]:
        """Seats and agents of the configuration in their tables (reports join on them).
        Returns the agents the previous process left logged in: id -> (state, seat, reason)."""
        logged_in: dict[str, tuple[str, str, str]] = {}
        with self.sessions() as session:
            for s in self.settings.seats:
                row = session.get(SeatRow, s.id) or SeatRow(id=s.id, extension=s.extension)
                row.extension, row.kind, row.room, row.position = (
                    s.extension,
                    s.kind,
                    s.room,
                    s.position,
                )
                row.phone_model, row.mac = s.phone_model, s.mac
                session.add(row)
            for a in self.settings.agents:
                arow = session.get(AgentRow, a.id) or AgentRow(id=a.id, name=a.name)
                if arow.state and arow.state != "logged_out" and arow.seat:
                    logged_in[a.id] = (arow.state, arow.seat, arow.reason or "")
                arow.name, arow.leader, arow.title = a.name, a.leader, a.title
                arow.skills = dict(a.skills)
                arow.state, arow.seat = "logged_out", ""
                session.add(arow)
            session.commit()
        if self.settings.departments:
            self.tickets.sync_departments(self.settings.departments)
        return logged_in

    def _restore_agents(self, logged_in: dict[str, tuple[str, str, str]]) -> None:
        """Agents stay logged in across a CTI restart, at the same seat: ready if they were
        ready or on a call, else not ready with their reason. The first resync then makes
        the fallback queue match (Asterisk kept the old process's members)."""
        for agent_id, (state, seat, reason) in logged_in.items():
            if self.agents.find(agent_id) is None:
                continue
            try:
                ready = restored_as(state) == "ready"
                self.agents.login(agent_id, seat, ready=ready)
                if not ready and reason in self.agents.reasons and reason != "login":
                    self.agents.set_not_ready(agent_id, reason)
            except HotlineError as exc:
                log.warning("agent %s not restored at seat %s: %s", agent_id, seat, exc)
                continue
            log.info("agent %s restored at seat %s (%s)", agent_id, seat, state)

    def _warm_caller_cache(self) -> None:
        """Callers with an open ticket and the agent who took it (sticky routing), and the
        supervisors' caller flags, read once when this process starts to lead; ticket events
        and the console's flag routes (console.callers) keep it current afterwards."""
        with self.sessions() as session:
            rows = session.execute(
                select(Ticket.caller, Ticket.agent_id)
                .where(Ticket.state.in_([str(s) for s in OPEN_STATES]), Ticket.caller != "")
                .order_by(Ticket.opened_at)
            )
            for caller, agent_id in rows:
                self.callers.set_open(caller, agent_id or None)
            for caller, kind in session.execute(
                select(CallerFlagRow.caller, CallerFlagRow.kind).where(CallerFlagRow.kind != "")
            ):
                self.callers.set_flag(caller, kind)

    # --- health -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        nodes = {
            name: {
                "state": n.state,
                "detail": n.state_detail,
                "connected": n.connected,
                "events": n.events_received,
                "resync_s": self.resync_seconds.get(name),
            }
            for name, n in self.nodes.items()
        }
        db_ok = True
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # reported, not raised: health must answer
            db_ok = False
            log.warning("health: database: %s", exc)
        store = self.store.stats()
        ok = db_ok and all(n["connected"] for n in nodes.values())
        return {
            "status": "ok" if ok else "degraded",
            "asterisk": nodes,
            "database": {"ok": db_ok, **store},
            "agi": {"port": self.agi.port, **self.agi.stats},
            "calls": len(self.tracker.active_calls()),
            "leadership": self.leadership.info(),
            "scheduler": {"running": self.ticket_timers.running},
            "sms": self.sms.stats()
            if self.sms is not None and hasattr(self.sms, "stats")
            else {"enabled": False},
        }
