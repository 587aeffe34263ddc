"""Why an AMI connection is down, in plain words, and the log lines of a node's outages.

An operator reading the log of a CTI that cannot reach Asterisk needs the node, its address,
the reason and what to check, once when it changes and not once per retry, and a reminder
while it lasts. ``Reason`` is the why; ``OutageLog`` decides which line to write when. Neither
does any I/O besides logging: ``cti.ami.client`` feeds them what happened on the socket.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

CONFIG_HINT = "the [[asterisk]] entry of this node"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an attempt failed or a connection ended. ``kind`` is stable (refused,
    auth-failed, timed-out, closed, shutdown, reset, unreachable, unresolved, os-error);
    ``text`` says it in plain words; ``advice`` says what to check, when there is something."""

    kind: str
    text: str
    advice: str = ""
    # An error that waiting will not cure (a wrong secret): logged as an error, not a warning.
    needs_fix: bool = False


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def duration(seconds: float) -> str:
    """``0.05 s``, ``2 s``, ``2.5 s``, ``12 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``."""
    if seconds < 10:
        short = f"{seconds:.2f}" if seconds < 1 else f"{seconds:.1f}"
        return f"{short.rstrip('0').rstrip('.')} s"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def attempts(n: int) -> str:
    return f"{n} failed attempt" if n == 1 else f"{n} failed attempts"


# --- reasons ------------------------------------------------------------------------------


def refused(port: int) -> Reason:
    return Reason(
        "refused",
        "connection refused",
        f"is Asterisk running, with the manager enabled on port {port}"
        " (manager.conf: enabled = yes, port, bindaddr)?",
    )


def auth_failed(message: str) -> Reason:
    return Reason(
        "auth-failed",
        f"login refused ({message or 'no message'})",
        f"check username and secret in {CONFIG_HINT} against manager.conf on the PBX"
        " (and that user's permit/deny)",
        needs_fix=True,
    )


def connect_timed_out(seconds: float) -> Reason:
    return Reason(
        "timed-out",
        f"no answer to the TCP connect within {duration(seconds)}",
        f"check the host in {CONFIG_HINT}, the network and any firewall between",
    )


def no_banner(seconds: float, port: int) -> Reason:
    return Reason(
        "timed-out",
        f"connected, but no AMI banner within {duration(seconds)}",
        f"is port {port} Asterisk's manager port, and is Asterisk responding (not hung)?",
    )


def not_ami(port: int) -> Reason:
    return Reason(
        "not-ami",
        "connected, but what answered is not Asterisk's manager",
        f"check the port in {CONFIG_HINT} ({port})",
    )


def no_login_answer(seconds: float) -> Reason:
    return Reason(
        "timed-out",
        f"no answer to Login within {duration(seconds)}",
        "is Asterisk overloaded or hung?",
    )


def ping_unanswered(seconds: float) -> Reason:
    return Reason(
        "timed-out",
        f"no answer to Ping within {duration(seconds)}",
        "Asterisk hung, or the network between lost the connection",
    )


def closed_by_peer(*, logged_in: bool) -> Reason:
    if logged_in:
        return Reason("closed", "closed by the PBX (Asterisk stopped, restarted or reloaded?)")
    return Reason(
        "closed",
        "closed by the PBX before the login answer",
        "is this Asterisk's manager port, and is the manager's connection limit reached?",
    )


def shut_down(restart: bool) -> Reason:
    what = "restarting" if restart else "shutting down"
    return Reason("shutdown", f"Asterisk announced it is {what}")


_PLAIN: dict[int, tuple[str, str]] = {
    errno.ECONNRESET: ("reset", "connection reset by the PBX"),
    errno.ECONNABORTED: ("reset", "connection aborted"),
    errno.EPIPE: ("reset", "connection broken (the PBX closed it while we wrote)"),
    errno.ETIMEDOUT: ("timed-out", "the connection timed out (no answer from the host)"),
    errno.EHOSTUNREACH: ("unreachable", "no route to the host"),
    errno.ENETUNREACH: ("unreachable", "network unreachable"),
    errno.EHOSTDOWN: ("unreachable", "the host is down"),
    errno.EADDRNOTAVAIL: ("unreachable", "the address is not available on this machine"),
}


def _errno_of(exc: OSError) -> int | None:
    if exc.errno is not None:
        return exc.errno
    # asyncio reports a host with several addresses as "Multiple exceptions: [Errno 111] ...,
    # [Errno 111] ...": when every address failed the same way, that is the reason.
    found = {int(n) for n in re.findall(r"\[Errno (\d+)\]", str(exc))}
    return found.pop() if len(found) == 1 else None


def from_error(exc: BaseException | None, host: str, port: int, *, logged_in: bool) -> Reason:
    """The reason behind a failed connect or a lost connection (``None``: a clean close)."""
    if exc is None:
        return closed_by_peer(logged_in=logged_in)
    if isinstance(exc, socket.gaierror):
        return Reason(
            "unresolved",
            f"cannot resolve {host} ({exc.strerror or exc})",
            f"check the host in {CONFIG_HINT}",
        )
    if isinstance(exc, OSError):
        code = _errno_of(exc)
        if code == errno.ECONNREFUSED:
            return refused(port)
        if code in _PLAIN:
            kind, text = _PLAIN[code]
            advice = f"check the host in {CONFIG_HINT} and the network between"
            return Reason(kind, text, "" if kind == "reset" else advice)
        if code is not None:
            return Reason("os-error", os.strerror(code).lower() or str(exc))
    return Reason("os-error", str(exc) or type(exc).__name__)


# --- the lines ----------------------------------------------------------------------------


class OutageLog:
    """The log lines of one node's connection: a line when it comes up, when it goes down,
    and when the reason changes while it is down; the same reason again is not news. While
    it stays down, ``remind()`` (called by the node every ``reminder_s``) repeats how long and
    why. States: starting -> up | down; up -> down; down -> up; any -> stopped."""

    def __init__(
        self,
        node: str,
        host: str,
        port: int,
        *,
        retry_max_s: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = f"AMI node {node} ({address(host, port)})"
        self.retry_max_s = retry_max_s
        self.log = logger
        self.clock = clock
        self.state = "starting"
        self.reason: Reason | None = None
        self.failures = 0
        self.reminders = 0
        self.since = clock()

    @property
    def down(self) -> bool:
        return self.state == "down"

    def down_for(self) -> float | None:
        return self.clock() - self.since if self.down else None

    def _emit(self, reason: Reason, fmt: str, *args: object) -> None:
        """A line about ``reason``, with what to check at its end."""
        level = logging.ERROR if reason.needs_fix else logging.WARNING
        advice = f"; {reason.advice}" if reason.advice else ""
        self.log.log(level, "%s: " + fmt + "%s", self.label, *args, advice)

    def failed(self, reason: Reason) -> None:
        """An attempt failed, or the connection that was up ended."""
        now = self.clock()
        previous, state = self.reason, self.state
        self.reason = reason
        self.failures += 1
        retry = duration(self.retry_max_s)
        if state == "up":
            up_for = duration(now - self.since)
            self.since, self.failures, self.reminders = now, 1, 0
            self._emit(
                reason,
                "connection lost after %s up: %s, retrying at intervals up to %s",
                up_for,
                reason.text,
                retry,
            )
        elif previous is None:  # the first attempt since the start
            self._emit(reason, "%s, retrying at intervals up to %s", reason.text, retry)
        elif previous != reason:
            self._emit(
                reason,
                "now %s (before: %s; down for %s)",
                reason.text,
                previous.text,
                duration(now - self.since),
            )
        else:
            self.log.debug("%s: %s again (attempt %d)", self.label, reason.text, self.failures)
        self.state = "down"

    def up(self, version: str | None) -> None:
        now = self.clock()
        reason = self.reason
        if self.state == "down" and reason is not None:
            self.log.info(
                "%s: logged in after %s down (last reason: %s; %s)",
                self.label,
                duration(now - self.since),
                reason.text,
                attempts(self.failures),
            )
        else:
            self.log.info("%s: logged in (AMI %s)", self.label, version or "version unknown")
        self.state, self.reason, self.since, self.failures, self.reminders = "up", None, now, 0, 0

    def remind(self) -> None:
        reason = self.reason
        if not self.down or reason is None:
            return
        self.reminders += 1
        self._emit(
            reason,
            "still down after %s (%s): %s",
            duration(self.clock() - self.since),
            attempts(self.failures),
            reason.text,
        )

    def stopped(self) -> None:
        if self.down and self.reason is not None:
            self.log.info(
                "%s: stopped, down for %s (last reason: %s)",
                self.label,
                duration(self.clock() - self.since),
                self.reason.text,
            )
        else:
            self.log.info("%s: stopped", self.label)
        self.state = "stopped"
