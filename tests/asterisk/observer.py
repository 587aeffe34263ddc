"""A second AMI connection that watches what Asterisk does (read = all, dialplan events
included), in a thread, independent of the CTI and of the tests' event loops.

Every event is kept with the time it arrived (``t``, ``time.monotonic()``) and Asterisk's own
``Timestamp`` (``manager.conf`` ``timestampevents = yes``, set by the harness). The
connection comes back by itself after an Asterisk restart; ``connected_at`` lists when.
Handlers (``on``) run in the reader thread and must be quick.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    fields: dict[str, str]
    t: float  # monotonic arrival
    wall: float  # time.time() at arrival
    seq: int = 0
    extra: list[tuple[str, str]] = field(default_factory=list)  # repeated keys (Variable ...)

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    @property
    def name(self) -> str:
        return self.fields.get("Event", "")

    @property
    def ts(self) -> float:
        """Asterisk's clock (Timestamp), else the arrival wall time."""
        try:
            return float(self.fields["Timestamp"])
        except (KeyError, ValueError):
            return self.wall

    def __getitem__(self, key: str) -> str:
        return self.fields[key]


def parse(raw: str, t: float, wall: float) -> Message:
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for line in raw.split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in fields:
            extra.append((key, value))
        else:
            fields[key] = value
    return Message(fields, t, wall, extra=extra)


class Observer:
    def __init__(self, port: int, username: str, secret: str, host: str = "127.0.0.1") -> None:
        self.addr = (host, port)
        self.username = username
        self.secret = secret
        self.events: list[Message] = []
        self.connected_at: list[float] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._responses: dict[str, list[Message]] = {}
        self._handlers: list[Callable[[Message], None]] = []
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name="ami-observer", daemon=True)
        self.login_ok = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self.login_ok.wait(timeout):
            raise AssertionError("the AMI observer could not log in")

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def on(self, handler: Callable[[Message], None]) -> None:
        self._handlers.append(handler)

    def off(self, handler: Callable[[Message], None]) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except OSError:
                pass
            self.login_ok.clear()
            if not self._stop.is_set():
                time.sleep(0.05)

    def _session(self) -> None:
        sock = socket.create_connection(self.addr, timeout=2)
        sock.settimeout(None)
        self._sock = sock
        buf = b""
        try:
            banner = b""
            while not banner.endswith(b"\r\n"):
                chunk = sock.recv(1)
                if not chunk:
                    return
                banner += chunk
            self._write(
                f"Action: Login\r\nUsername: {self.username}\r\nSecret: {self.secret}\r\n"
                "Events: on\r\nActionID: login\r\n\r\n"
            )
            while not self._stop.is_set():
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    msg = parse(raw.decode("utf-8", "replace"), time.monotonic(), time.time())
                    self._dispatch(msg)
        finally:
            self._sock = None
            sock.close()

    def _dispatch(self, msg: Message) -> None:
        if "Response" in msg.fields and msg.get("ActionID") == "login":
            if msg.get("Response") == "Success":
                with self._cond:
                    self.connected_at.append(msg.t)
                self.login_ok.set()
            return
        with self._cond:
            msg.seq = next(self._seq)
            if "Event" in msg.fields:
                self.events.append(msg)
            action_id = msg.get("ActionID")
            if action_id and action_id in self._responses:
                self._responses[action_id].append(msg)
            self._cond.notify_all()
        if "Event" in msg.fields:
            for handler in self._handlers:
                try:
                    handler(msg)
                except Exception as exc:  # a handler's bug must not stop the observer
                    print(f"observer handler failed: {exc!r}")

    # --- actions ------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        sock = self._sock
        if sock is None:
            raise OSError("observer not connected")
        with self._send_lock:
            sock.sendall(text.encode("utf-8"))

    def send(self, action: str, **headers: str | list[str]) -> str:
        """Send an action without waiting; returns its ActionID."""
        action_id = f"obs-{next(self._ids)}"
        with self._cond:
            self._responses[action_id] = []
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for key, value in headers.items():
            for v in value if isinstance(value, list) else [value]:
                lines.append(f"{key}: {v}")
        self._write("\r\n".join(lines) + "\r\n\r\n")
        return action_id

    def action(
        self, action: str, *, complete: str = "", timeout: float = 5.0, **headers: str | list[str]
    ) -> list[Message]:
        """Send and wait: the response, and with ``complete`` (e.g. ``QueueStatusComplete``)
        every event of the list up to that one."""
        action_id = self.send(action, **headers)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._responses[action_id]
                if got and not complete:
                    break
                if got and got[0].get("Response") == "Error":
                    break
                if complete and any(m.name == complete for m in got):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{action}: no answer in {timeout} s")
                self._cond.wait(left)
            return list(self._responses.pop(action_id))

    # --- reading ------------------------------------------------------------------------

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int = 0, name: str | None = None, **match: str) -> list[Message]:
        with self._lock:
            events = self.events[mark:]
        return [
            e
            for e in events
            if (name is None or e.name == name) and all(e.get(k) == v for k, v in match.items())
        ]

    def wait_for(
        self,
        pred: Callable[[Message], bool],
        timeout: float,
        mark: int = 0,
    ) -> Message:
        deadline = time.monotonic() + timeout
        with self._cond:
            i = mark
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("observer: expected event not seen in time")
                self._cond.wait(left)

    def channel_vars(self, uniqueid: str, mark: int = 0) -> dict[str, str]:
        """The last value of every variable set on the channel (VarSet events)."""
        out: dict[str, str] = {}
        for e in self.since(mark, "VarSet", Uniqueid=uniqueid):
            out[e.get("Variable")] = e.get("Value")
        return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def agi_command_gaps(events: list[Message]) -> dict[str, list[float]]:
    """Where the route's time goes, per [cti-route] channel (ms, Asterisk's clock): from the
    AGI() Newexten to the first command, between one command's end and the next one's start
    (the CTI's side of each round trip), and from the last command's end to the next
    priority (the CTI closing the session)."""
    first: list[float] = []
    between: list[float] = []
    after: list[float] = []
    state: dict[str, tuple[float, bool]] = {}
    for e in events:
        uid = e.get("Uniqueid")
        if e.name == "Newexten" and uid in state:
            t, is_first = state.pop(uid)
            if not is_first:
                after.append((e.ts - t) * 1000)
        is_agi = e.get("Context") == "cti-route" and e.get("Application") == "AGI"
        if e.name == "Newexten" and is_agi:
            state[uid] = (e.ts, True)
        elif e.name == "AGIExecStart" and uid in state:
            t, is_first = state[uid]
            (first if is_first else between).append((e.ts - t) * 1000)
        elif e.name == "AGIExecEnd" and uid in state:
            state[uid] = (e.ts, False)
    return {
        "to_first_command": first,
        "between_commands": between,
        "last_answer_to_next_priority": after,
    }


def agi_route_times(events: list[Message]) -> dict[str, Any]:
    """Route latency by Asterisk's clock, from Newexten events.

    ``route``: on each [cti-route] Local channel, from the Newexten of the AGI() priority to
    the Newexten of the next priority on the same channel. ``wait``: on each citizen's
    channel in [from-citizen], from the Newexten of the ``Dial(Local/...)`` priority to that
    of ``MixMonitor`` (routed), once the caller has taken the answer. Both in milliseconds,
    keyed by Linkedid."""
    pending: dict[str, tuple[str, float]] = {}
    route: dict[str, float] = {}
    wait: dict[str, float] = {}
    for e in events:
        if e.name != "Newexten":
            continue
        uid = e.get("Uniqueid")
        app, data, ctx = e.get("Application"), e.get("AppData"), e.get("Context")
        if uid in pending and (pending[uid][0] == "route" or app == "MixMonitor"):
            kind, start = pending.pop(uid)
            (route if kind == "route" else wait)[e.get("Linkedid")] = (e.ts - start) * 1000
        if ctx == "cti-route" and app == "AGI":
            pending[uid] = ("route", e.ts)
        elif app == "Dial" and data.startswith("Local/") and "@cti-route" in data:
            pending[uid] = ("wait", e.ts)
    return {"route": route, "wait": wait}
