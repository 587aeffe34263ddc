"""What the service needs from a notifier: queue a text message for a purpose.

Purposes (and their template fields): ``citizen_opened`` (ticket_id), ``citizen_reply``
(ticket_id, reply), ``citizen_extension`` (ticket_id, due), ``department_dispatch``
(ticket_id, department, due), ``department_reminder`` (ticket_id, due). ``notify`` must not
block on the network: the SMS notifier stores the message and sends it off the event loop.
"""

from __future__ import annotations

from typing import Protocol


class Notifier(Protocol):
    def notify(self, purpose: str, to: str, ticket_id: str, **fields: str) -> None: ...


class NullNotifier:
    """Sends nothing (SMS disabled); remembers what it was asked, which tests read."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, str]]] = []

    def notify(self, purpose: str, to: str, ticket_id: str, **fields: str) -> None:
        self.sent.append((purpose, to, ticket_id, fields))
