"""Giving memory back after a surge.

A 5x surge has ten thousand calls up at once: their objects are freed when the calls end, but
the C allocator keeps the pages it grew its heap with, so the process stays at its peak. Once
the floor has fallen back (fewer than half the calls of the peak since the last release),
``malloc_trim`` returns the free pages to the system. It runs in a thread: ctypes lets go of
the interpreter lock for the call, so the event loop is not held while glibc walks its heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Returns the allocator's free pages to the system; False where there is no way to."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))


class AfterPeak:
    """Says when a peak of calls has passed: the floor had at least ``least`` calls up and now
    has fewer than half of its peak. The peak starts again from there."""

    def __init__(self, least: int = 200) -> None:
        self.least = least
        self.peak = 0

    def passed(self, calls: int) -> bool:
        if calls > self.peak:
            self.peak = calls
            return False
        if self.peak >= self.least and calls * 2 < self.peak:
            self.peak = calls
            return True
        return False
