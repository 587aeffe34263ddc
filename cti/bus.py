"""In-process publish/subscribe of domain events.

Handlers run synchronously in the publisher's turn of the event loop, in subscription order;
a handler that raises is logged and does not stop the others. Handlers that need I/O hand the
event to a queue of their own (the store, the websocket fan-out).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from cti.events import Event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], None]


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)
        self._all: list[Handler] = []

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[kind].append(handler)

    def subscribe_all(self, handler: Callable[[Event], None]) -> None:
        self._all.append(handler)

    def unsubscribe_all(self, handler: Callable[[Event], None]) -> None:
        if handler in self._all:
            self._all.remove(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            self._call(handler, event)
        for handler in self._all:
            self._call(handler, event)

    @staticmethod
    def _call(handler: Handler, event: Event) -> None:
        try:
            handler(event)
        except Exception:
            log.exception("event handler %r failed on %s", handler, type(event).__name__)
