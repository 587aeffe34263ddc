"""Login rate limiting: per user name with a doubling wait, plus per address.

Only failures count, so an agent who types the password right on the second try is not
slowed down.

- **Per user name**, wherever the attempts come from (rotating addresses does not help a
  guesser): ``free`` failures are allowed, then each further one makes the name wait
  ``BASE_WAIT_S``, twice that after the next, and so on up to ``MAX_WAIT_S``. While it waits
  every attempt is refused, even with the right password (else the guesser would learn it);
  refused attempts do not lengthen the wait. A success clears the name; so does a quiet
  ``FORGET_S``. Someone who knows a user name can keep that user waiting, at most
  ``MAX_WAIT_S`` at a time: the price of stopping the guesser, and the login audit shows it.
- **Per address**: ``free * SPRAY_FACTOR`` failures in a sliding minute across user names
  (password spraying) make the address wait until the minute has slid past them. The
  address "" (unknown: a trusted proxy that did not say whom it relays) is never limited, so
  one guesser behind the proxy cannot lock everybody out.

In memory: one process serves one site.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
SPRAY_FACTOR = 4
MAX_KEYS = 10_000


@dataclass(slots=True)
class _NameFailures:
    count: int = 0
    last: float = 0.0
    until: float = 0.0


class LoginLimiter:
    BASE_WAIT_S = 15.0
    MAX_WAIT_S = 900.0
    FORGET_S = 3600.0

    def __init__(self, free: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.free = free
        self._clock = clock
        self._names: dict[str, _NameFailures] = {}
        self._addresses: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _name(self, username: str, now: float) -> _NameFailures | None:
        key = username.lower()
        entry = self._names.get(key)
        if entry is not None and now >= entry.until and now - entry.last >= self.FORGET_S:
            del self._names[key]
            return None
        return entry

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._addresses.get(address)
        if times is None:
            return deque()
        while times and now - times[0] >= WINDOW_S:
            times.popleft()
        if not times:
            del self._addresses[address]
        return times

    def retry_after(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt may be made; 0 when it may be made now."""
        now = self._clock()
        with self._lock:
            waits = [0.0]
            entry = self._name(username, now)
            if entry is not None:
                waits.append(entry.until - now)
            if address:
                times = self._recent(address, now)
                limit = self.free * SPRAY_FACTOR
                if len(times) >= limit:
                    waits.append(times[len(times) - limit] + WINDOW_S - now)
            return math.ceil(max(waits))

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._prune(now)
            entry = self._name(username, now)
            if entry is None:
                entry = self._names[username.lower()] = _NameFailures()
            entry.count += 1
            entry.last = now
            over = entry.count - self.free
            if over >= 0:
                wait = min(self.BASE_WAIT_S * 2.0 ** min(over, 32), self.MAX_WAIT_S)
                entry.until = max(entry.until, now + wait)
            if address:
                self._addresses.setdefault(address, deque()).append(now)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._names.pop(username.lower(), None)

    def _prune(self, now: float) -> None:
        """Bounded memory under a spray of made-up names from many addresses: forget what
        has expired, then the oldest."""
        if len(self._names) > MAX_KEYS:
            for name in list(self._names):
                self._name(name, now)
            while len(self._names) > MAX_KEYS:
                del self._names[next(iter(self._names))]
        if len(self._addresses) > MAX_KEYS:
            for address in list(self._addresses):
                self._recent(address, now)
            while len(self._addresses) > MAX_KEYS:
                del self._addresses[next(iter(self._addresses))]
