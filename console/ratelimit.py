"""Login rate limiting: failed attempts per (username, address) in a sliding minute.

Only failures count, so an agent who types the password right on the second try is not
slowed down; a guesser is stopped after ``per_minute`` failures for that username from that
address, and after ``per_minute * SPRAY_FACTOR`` failures from one address across usernames
(password spraying). In memory: one process serves one site.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0
SPRAY_FACTOR = 4
MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._fails: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._fails.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= WINDOW_S:
            times.popleft()
        if not times:
            del self._fails[key]
        return times

    def retry_after(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt may be made; 0 when it may be made now."""
        now = self._clock()
        with self._lock:
            waits = []
            for key, limit in (
                ((username.lower(), address), self.per_minute),
                (("", address), self.per_minute * SPRAY_FACTOR),
            ):
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[len(times) - limit] + WINDOW_S - now)
            return math.ceil(max(waits)) if waits else 0

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._fails) > MAX_KEYS:
                for key in list(self._fails):
                    self._recent(key, now)
            for key in ((username.lower(), address), ("", address)):
                self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._fails.pop((username.lower(), address), None)
