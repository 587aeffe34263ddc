"""A min-heap of ids with O(1) removal, the index behind ready agents and waiting calls.

``heapq`` cannot remove an entry from the middle, and an agent or a call sits in several
heaps at once (one per skill). So removal only forgets the id's live stamp; the stale entry
stays in the list and is dropped when it reaches the top. The list is rebuilt once stale
entries outnumber live ones, which keeps memory proportional to the live set and the cost
amortised O(log n) per operation.
"""

from __future__ import annotations

import heapq
from itertools import count

Key = tuple[float, ...]

# One counter for every heap: a stamp is unique across pushes, so a stale entry can never be
# mistaken for the live one, and equal keys keep insertion order.
_stamps = count()


class IndexedHeap:
    __slots__ = ("_entries", "_live")

    def __init__(self) -> None:
        self._entries: list[tuple[Key, int, str]] = []
        self._live: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, item: str) -> bool:
        return item in self._live

    def push(self, item: str, key: Key) -> None:
        """Insert ``item`` with ``key``; an item already present is moved to the new key."""
        stamp = next(_stamps)
        self._live[item] = stamp
        heapq.heappush(self._entries, (key, stamp, item))
        self._compact()

    def remove(self, item: str) -> None:
        """Forget ``item`` if present."""
        if self._live.pop(item, None) is not None:
            self._compact()

    def top(self) -> tuple[Key, str] | None:
        """The smallest live (key, item), or None when empty."""
        entries = self._entries
        live = self._live
        while entries:
            key, stamp, item = entries[0]
            if live.get(item) == stamp:
                return key, item
            heapq.heappop(entries)
        return None

    def items(self) -> list[str]:
        """Live items in key order (O(n log n): for snapshots, not for decisions)."""
        live = self._live
        return [item for _, stamp, item in sorted(self._entries) if live.get(item) == stamp]

    def _compact(self) -> None:
        if len(self._entries) > 2 * len(self._live) + 32:
            live = self._live
            self._entries = [e for e in self._entries if live.get(e[2]) == e[1]]
            heapq.heapify(self._entries)
