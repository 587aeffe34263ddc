"""The AMI client of one Asterisk node, on panoramisk, with its verified defects fixed around it.

panoramisk 1.4 gives us the connection, the login and action futures matched by ActionID.
What it gets wrong, and what this module does about it (see stack-notes):

1. UTF-8 split across TCP reads is dropped -> ``HotlineAMIProtocol`` frames bytes with
   ``cti.ami.parser.AmiParser`` before decoding.
2. Ping does not detect a dead peer -> a watchdog sends Ping under a timeout and aborts the
   transport when it goes unanswered, which triggers the reconnect.
3. Actions sent during an outage never resolve (or are replayed much later, a Redirect
   minutes after the caller left) -> ``send`` refuses at once when the node is down, every
   action runs under ``wait_for``, and pending actions fail when the connection drops.
4. ``connect()`` returns before login and a wrong secret raises nothing -> login failures are
   reported through ``on_state`` and retried with backoff; a connect, banner or login that
   hangs (a host dropping packets, a port that accepts and says nothing) is given up after
   ``login_timeout`` and retried too.
5. A single-response action whose message reads "Added interface to queue" is taken for a
   list and its future never resolves -> every action states ``as_list`` explicitly.
6. Reconnect uses a fixed delay -> exponential backoff with jitter, reset after login.
7. A list action answered ``Response: Error`` and no list (``No Contacts found``) never
   resolves: panoramisk waits for the ``...Complete`` event that never comes ->
   ``_ListAction`` ends on such an answer, and ``send_list`` reads "No ... found" as empty.
8. Its log says "Not able to reconnect" on every retry, with no node, address or reason ->
   its lines go to DEBUG, and ``cti.ami.outage.OutageLog`` writes one line per change of the
   connection (node, host:port, the reason in plain words, what to check), and a reminder
   every ``down_reminder_s`` while it stays down.

What Asterisk does that the login hook must respect: it accepts a login while it is still
booting (list actions of modules not yet loaded answer "Invalid/unknown command"), so the hook
(the resync) runs only once ``FullyBooted`` has been seen on this connection; Asterisk sends
it right after the login when it is up, or when the boot ends.

Events bypass panoramisk's fnmatch dispatch: they go straight to ``on_event(node, message)``
as plain dicts, which is what makes ingest cheap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import actions as pactions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message as PMessage

from cti.ami import outage
from cti.ami.actions import AmiError, AmiUnavailable, ShuttingDown, error_for, is_empty_list
from cti.ami.parser import DEFAULT_DROP, AmiParser, Message
from cti.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EventSink = Callable[[str, Message], None]
StateSink = Callable[[str, str, str], None]  # node, state, detail
LoginHook = Callable[["AmiNode"], Awaitable[None]]

# How long one read of the AMI socket may deliver events before the loop takes its other work
# (FastAGI questions, the console) and comes back to the rest.
DISPATCH_BUDGET_S = 0.002

# Login "Events:" classes: what the CTI needs, without the dialplan/AGI chatter that is most
# of the traffic (VarSet, Newexten, AGIExec*).
DEFAULT_EVENT_CLASSES = "system,call,agent,user"


class _DebugOnly(logging.LoggerAdapter[logging.Logger]):
    """panoramisk's logger with every line at DEBUG (see point 8 above)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


ListHook = Callable[[list[Message]], None]


def _plain(msgs: list[Any]) -> list[Message]:
    return [{k: v for k, v in m.items() if k != "content"} for m in msgs]


def _items(responses: list[Message]) -> list[Message]:
    """A list's events, without the opening response and the closing ``...Complete``."""
    return [r for r in responses[1:] if not r.get("Event", "").endswith("Complete")]


class _ListAction(pactions.Action):  # type: ignore[misc]
    """An action whose answer is a list; an error answer (no ``EventList``) ends it too.

    ``on_complete`` (see ``AmiNode.send_list``) gets the list's items as the message that
    ends it is read, before any message after it; what it raises is kept in ``hook_error``."""

    on_complete: ListHook | None = None
    hook_error: BaseException | None = None
    # The list's messages as plain dicts, made once as it ends (for the hook and the caller).
    plain: list[Message] | None = None

    def add_message(self, message: Any) -> bool | None:
        if (
            not self.responses
            and message.get("Response") in ("Error", "Fail", "Failure")
            and "EventList" not in message
        ):
            self.responses.append(message)
            if not self.future.done():
                self.future.set_result([message])
                if is_empty_list(message.get("Message", "")):
                    self._complete([])
            return True
        result: bool | None = super().add_message(message)
        if result and self.future.done() and not self.future.cancelled():
            self.plain = _plain(self.responses)
            self._complete(_items(self.plain))
        return result

    def _complete(self, items: list[Message]) -> None:
        hook, self.on_complete = self.on_complete, None
        if hook is None:
            return
        try:
            hook(items)
        except Exception as exc:  # raised by send_list, not into the protocol
            self.hook_error = exc


class HotlineAMIProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with byte-level framing and direct event delivery."""

    drop: frozenset[bytes] = DEFAULT_DROP
    # Set by panoramisk's connection_made; declared for the type checker.
    version: str | None
    closed: bool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.parser = AmiParser(drop=self.drop)
        self._backlog: list[Message] = []
        self._paused = False

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        if self.version is None and parser.banner:
            self.version = parser.banner.partition("/")[2].strip()
        if self._backlog:  # a burst still being dispatched: these wait their turn
            self._backlog.extend(parser.take())
            return
        self._dispatch(parser.take())

    def _dispatch(self, batch: list[Message]) -> None:
        """Deliver messages for at most ``DISPATCH_BUDGET_S``. A burst (thousands of events
        when a surge of calls starts, or a resync's lists) would otherwise hold the event
        loop for tens of ms while FastAGI questions wait behind it: what is left is
        delivered in the next turn of the loop, after what became ready meanwhile, and the
        socket is not read until it is done (its data waits in the kernel's buffer)."""
        responses = self.responses
        factory = self.factory
        clock = time.perf_counter
        deadline = clock() + DISPATCH_BUDGET_S
        for i, msg in enumerate(batch):
            if i & 31 == 31 and clock() > deadline:
                self._backlog = batch[i:]
                if not self._paused:
                    self._paused = True
                    self.transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._resume)
                return
            action_id = msg.get("ActionID")
            if action_id is not None and action_id in responses:
                self.handle_message(PMessage(msg))
            elif "Event" in msg:
                factory.on_raw_event(msg)
            else:
                log.debug("response to an unknown action: %r", msg)
        self._backlog = []
        if self._paused:
            self._paused = False
            if not self.closed:
                self.transport.resume_reading()

    def _resume(self) -> None:
        if self.closed or not self._backlog:
            return
        batch, self._backlog = self._backlog, []
        self._dispatch(batch)

    def close(self) -> None:
        # panoramisk re-queues pending actions to replay them after the reconnect; for call
        # control that is wrong (a Redirect replayed later moves the wrong call): fail them.
        factory = self.factory
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(
                    AmiUnavailable(getattr(factory, "name", "?"), "connection lost")
                )
        self.responses.clear()
        if not self.closed:
            try:
                self.transport.close()
            finally:
                self.closed = True


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, reporting each attempt and its outcome to ``AmiNode``."""

    def __init__(self, node: AmiNode, **config: Any) -> None:
        super().__init__(log=_DebugOnly(logging.getLogger("panoramisk.manager")), **config)
        self.node = node
        self.name = node.name

    def on_raw_event(self, msg: Message) -> None:
        self.node._event(msg)

    def connect(self, *args: Any, **kwargs: Any) -> asyncio.Task[Any] | None:
        if self.node._stopping or self.node._manager is not self:
            return None  # a retry scheduled before stop(): the node is closed, or anew
        task: asyncio.Task[Any] = super().connect(*args, **kwargs)
        self.node._attempt_started(task)
        return task

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            # The node gave up a connect that hung (and said so); panoramisk would not retry.
            if not self.node._stopping:
                self.reconnect_timeout = self.node._next_backoff()
                self.loop.call_later(self.reconnect_timeout, self.connect)
            return
        exc = f.exception()
        if exc is not None:
            self.node._connect_failed(exc)
            self.reconnect_timeout = self.node._next_backoff()
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        self.authenticated_future = None
        try:
            resp = future.result()
        except Exception:  # the connection dropped first; connection_lost reported it
            return False
        self.authenticated = bool(resp.success)
        if self.authenticated:
            self.node._login_answered()
            self.loop.call_soon(self.node._logged_in)
        else:
            self.node._auth_failed(resp.get("Message", ""))
            # Asterisk closes the socket after a failed login; back off before retrying.
            self.reconnect_timeout = self.node._next_backoff()
        return self.authenticated

    def connection_lost(self, exc: Any) -> None:
        self.authenticated = False
        if self.node._stopping:
            return
        self.reconnect_timeout = self.node._next_backoff()
        self.node._lost(exc)
        super().connection_lost(exc)

    def ping(self) -> None:  # the node's watchdog pings; panoramisk's pinger stays idle
        return None


class AmiNode:
    """One Asterisk server. ``await send(...)`` returns the response dict or raises
    ``AmiError`` (Asterisk said Error) / ``AmiUnavailable`` (not connected, timed out)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_event: EventSink,
        on_state: StateSink | None = None,
        on_login: LoginHook | None = None,
        events: str = DEFAULT_EVENT_CLASSES,
        action_timeout: float = 5.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        backoff_max: float = 30.0,
        boot_wait: float = 60.0,
        login_timeout: float = 10.0,
        down_reminder_s: float = 60.0,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._on_event = on_event
        self._on_state = on_state
        self._on_login = on_login
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.backoff_max = backoff_max
        self.login_timeout = login_timeout
        self.down_reminder_s = down_reminder_s
        self._backoff = 0.0
        self.state = "new"
        self.state_detail = ""
        self.logged_in_at: float | None = None
        self.events_received = 0
        self._username = username
        self._secret = secret
        self._events = events
        self._manager: _Manager | None = None
        self._stopping = False
        self._watchdog: asyncio.Task[None] | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        # FullyBooted seen on the current connection (cleared when it drops).
        self._booted = asyncio.Event()
        self.boot_wait = boot_wait
        self.fully_booted_at: float | None = None
        self.clock_offset: float | None = None
        self.outage = self._new_outage_log()
        # The attempt under way: its connect, the timer that gives it up, and why it failed
        # when the node knows better than the socket (a Ping unanswered, a Shutdown event).
        self._connect_task: asyncio.Task[Any] | None = None
        self._login_timer: asyncio.TimerHandle | None = None
        self._reminder: asyncio.TimerHandle | None = None
        self._attempt_reason: outage.Reason | None = None
        self._attempt_reported = False

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self.outage = self._new_outage_log()

        class Protocol(HotlineAMIProtocol):
            pass

        self._manager = _Manager(
            self,
            host=self.host,
            port=self.port,
            username=self._username,
            secret=self._secret,
            events=self._events,
            loop=loop,
            encoding="utf8",
            ping_delay=3600,
            ping_interval=3600,
            reconnect_timeout=1,
            protocol_factory=Protocol,
            forgetable_actions=("ping", "login"),
        )
        self._state("connecting", f"{self.host}:{self.port}")
        self._manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name=f"ami-watchdog-{self.name}")

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        self._stopping = True
        for timer in (self._login_timer, self._reminder):
            if timer is not None:
                timer.cancel()
        self._login_timer = self._reminder = None
        await cancel_and_wait(self._watchdog, self._login_task, self._connect_task)
        manager = self._manager
        self._manager = None
        if manager is not None:
            # With _stopping set, _Manager schedules no reconnect and reports no loss.
            manager.close()
        self._ready.clear()
        self._state("stopped", "")
        self.outage.stopped()

    @property
    def connected(self) -> bool:
        m = self._manager
        return bool(
            m is not None
            and m.authenticated
            and m.protocol is not None
            and not getattr(m.protocol, "closed", True)
        )

    # --- actions --------------------------------------------------------------------

    async def send(self, action: dict[str, Any], *, timeout: float | None = None) -> Message:
        responses = await self._send(action, as_list=False, timeout=timeout)
        return responses[0]

    async def send_list(
        self,
        action: dict[str, Any],
        *,
        timeout: float | None = None,
        on_complete: ListHook | None = None,
    ) -> list[Message]:
        """A list action (``EventList: start`` ... ``...Complete``): the events, in order,
        without the opening response and the closing ``...Complete`` event.

        ``on_complete`` is called with those events when the list ends, in the stream's
        order: before any event read after the list is delivered. (The caller of an
        ``await`` resumes a loop turn later, when the events that followed the list in the
        same read have been delivered already.) What it raises is raised here."""
        try:
            responses = await self._send(
                action, as_list=True, timeout=timeout, on_complete=on_complete
            )
        except AmiError as exc:
            if is_empty_list(exc.message):
                return []
            raise
        return _items(responses)

    async def _send(
        self,
        action: dict[str, Any],
        *,
        as_list: bool,
        timeout: float | None,
        on_complete: ListHook | None = None,
    ) -> list[Message]:
        name = str(action.get("Action", "?"))
        manager = self._manager
        if manager is None or not self.connected:
            raise AmiUnavailable(self.name, f"not connected ({self.state})")
        if as_list:
            paction = _ListAction(dict(action), as_list=True)
            paction.on_complete = on_complete
        else:
            paction = pactions.Action(dict(action), as_list=False)
        future = manager.send_action(paction, as_list=as_list)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout or self.action_timeout)
        except TimeoutError:
            manager.protocol.responses.pop(paction.id, None)
            raise AmiUnavailable(self.name, f"{name} timed out") from None
        if isinstance(paction, _ListAction) and paction.hook_error is not None:
            raise paction.hook_error
        msgs = result if isinstance(result, list) else [result]
        plain = getattr(paction, "plain", None) or _plain(msgs)
        first = plain[0]
        if first.get("Response") in ("Error", "Fail", "Failure"):
            raise error_for(name, first)
        return plain

    # --- callbacks from the manager ---------------------------------------------------

    def _event(self, msg: Message) -> None:
        self.events_received += 1
        name = msg.get("Event")
        if name == "FullyBooted" and not self._booted.is_set():
            self.fully_booted_at = time.monotonic()
            self._booted.set()
        elif name == "Shutdown":  # the socket closes next: that is why
            self._attempt_reason = outage.shut_down(msg.get("Restart", "").lower() == "true")
        self._on_event(self.name, msg)

    def _state(self, state: str, detail: str) -> None:
        """The state that ``on_state`` (and health) see; notified when it changes only, so a
        node failing the same way on every retry is one notification, not one per retry."""
        if state == self.state and detail == self.state_detail:
            return
        log.debug("AMI %s: %s -> %s %s", self.name, self.state, state, detail)
        self.state = state
        self.state_detail = detail
        if self._on_state is not None:
            self._on_state(self.name, state, detail)

    def _new_outage_log(self) -> outage.OutageLog:
        return outage.OutageLog(
            self.name, self.host, self.port, retry_max_s=self.backoff_max, logger=log
        )

    def _next_backoff(self) -> float:
        self._backoff = min(self.backoff_max, max(0.5, self._backoff * 2 or 0.5))
        return self._backoff * random.uniform(0.8, 1.2)

    def _attempt_started(self, task: asyncio.Task[Any]) -> None:
        self._connect_task = task
        self._attempt_reason = None
        self._attempt_reported = False
        if self._login_timer is not None:
            self._login_timer.cancel()
        loop = asyncio.get_running_loop()
        self._login_timer = loop.call_later(self.login_timeout, self._login_overdue)

    def _login_answered(self) -> None:
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None

    def _login_overdue(self) -> None:
        """``login_timeout`` after the attempt began and still not logged in: give it up
        (panoramisk would wait for ever on a host that drops packets or a silent port)."""
        self._login_timer = None
        manager = self._manager
        if manager is None or self._stopping or manager.authenticated:
            return
        task = self._connect_task
        if task is not None and not task.done():
            self._fail(outage.connect_timed_out(self.login_timeout))
            task.cancel()  # _Manager.connection_made schedules the retry
            return
        protocol = manager.protocol
        if protocol is None or getattr(protocol, "closed", True):
            return  # the attempt already ended, and was reported
        banner = protocol.parser.banner
        if banner is None:
            self._attempt_reason = outage.no_banner(self.login_timeout, self.port)
        elif not banner:
            self._attempt_reason = outage.not_ami(self.port)
        else:
            self._attempt_reason = outage.no_login_answer(self.login_timeout)
        protocol.transport.abort()  # connection_lost reports it and retries

    def _fail(self, reason: outage.Reason) -> None:
        """The attempt under way failed: once per attempt, whatever else follows (Asterisk
        closes the socket after refusing a login: that close is not news)."""
        if self._attempt_reported:
            return
        self._attempt_reported = True
        self._login_answered()
        self._state("auth-failed" if reason.kind == "auth-failed" else "disconnected", reason.text)
        self.outage.failed(reason)
        if self._reminder is None and not self._stopping:
            loop = asyncio.get_running_loop()
            self._reminder = loop.call_later(self.down_reminder_s, self._remind)

    def _remind(self) -> None:
        self._reminder = None
        if self._stopping or not self.outage.down:
            return
        self.outage.remind()
        self._reminder = asyncio.get_running_loop().call_later(self.down_reminder_s, self._remind)

    def _connect_failed(self, exc: BaseException) -> None:
        self._fail(outage.from_error(exc, self.host, self.port, logged_in=False))

    def _auth_failed(self, message: str) -> None:
        self._fail(outage.auth_failed(message))

    def _lost(self, exc: Any) -> None:
        was_up = self.logged_in_at is not None
        self._ready.clear()
        self._booted.clear()
        self.fully_booted_at = None
        self.logged_in_at = None
        if self._stopping:
            return
        error = exc if isinstance(exc, BaseException) else None
        reason = self._attempt_reason or outage.from_error(
            error, self.host, self.port, logged_in=was_up
        )
        self._fail(reason)

    def _logged_in(self) -> None:
        if not self.connected:  # lost between the login answer and now: reported already
            return
        self._backoff = 0.0
        self.logged_in_at = time.monotonic()
        if self._reminder is not None:
            self._reminder.cancel()
            self._reminder = None
        manager = self._manager
        version = getattr(manager.protocol, "version", None) if manager is not None else None
        self.outage.up(version)
        self._state("connected", "logged in")
        if self._on_login is not None:
            self._login_task = asyncio.create_task(self._run_login_hook())
        else:
            self._ready.set()

    async def _run_login_hook(self) -> None:
        assert self._on_login is not None
        try:
            await self._wait_booted()
            for attempt in range(1, 4):
                try:
                    await self._on_login(self)
                    break
                except ShuttingDown as exc:
                    log.warning("%s: resync refused, %s", self.outage.label, exc.message)
                    return  # the socket closes next; the next login resyncs
                except AmiError as exc:
                    # A list refused (a module still loading): try again shortly.
                    log.warning("%s: resync attempt %d failed: %s", self.outage.label, attempt, exc)
                    await asyncio.sleep(0.5 * attempt)
        except AmiUnavailable as exc:
            log.warning("%s: resync after login interrupted: %s", self.outage.label, exc)
        except Exception:
            log.exception("%s: resync after login failed", self.outage.label)
        finally:
            if self.connected:
                self._ready.set()

    async def _wait_booted(self) -> None:
        if self._booted.is_set():
            return
        self._state("connected", "logged in, waiting for FullyBooted")
        try:
            await asyncio.wait_for(self._booted.wait(), self.boot_wait)
        except TimeoutError:
            log.warning(
                "%s: no FullyBooted %.0f s after login (does the AMI user read 'system'?);"
                " resyncing anyway",
                self.outage.label,
                self.boot_wait,
            )
        else:
            self._state("connected", "logged in")

    def _clock_from(self, pong: Message, sent: float, received: float) -> None:
        """Asterisk's clock from a Pong's ``Timestamp``, as an offset from ours: channel ids
        carry Asterisk's epoch, and judging their age by our clock alone would be off by any
        skew between the two hosts."""
        try:
            stamp = float(pong.get("Timestamp", ""))
        except ValueError:
            return
        self.clock_offset = stamp - (sent + received) / 2

    def asterisk_time(self) -> float | None:
        """Asterisk's time now, as far as the last Pong tells; None before the first."""
        return None if self.clock_offset is None else time.time() + self.clock_offset

    async def _watch(self) -> None:
        """Ping under a timeout; an unanswered Ping means a dead peer: abort the transport
        so that panoramisk's reconnect starts (TCP alone may not notice for minutes)."""
        while not self._stopping:
            await asyncio.sleep(self.ping_interval)
            if not self.connected or self._stopping:
                continue
            try:
                sent = time.time()
                pong = await self.send({"Action": "Ping"}, timeout=self.ping_timeout)
                self._clock_from(pong, sent, time.time())
            except AmiUnavailable:
                manager = self._manager
                if manager is not None and manager.protocol is not None:
                    self._attempt_reason = outage.ping_unanswered(self.ping_timeout)
                    transport = manager.protocol.transport
                    transport.abort()
            except Exception:
                log.exception("%s: watchdog ping failed", self.outage.label)
