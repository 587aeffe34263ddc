"""Stopping asyncio tasks reliably.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as the
awaited future completes (python/cpython#86296, fixed in 3.12): a loop built around it then
runs on, and a plain ``task.cancel(); await task`` waits forever. ``cancel_and_wait`` cancels
again until the task ends, and gives up (logged) rather than hang a shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None, grace_s: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until each has ended (at most about ``grace_s``)."""
    pending = {t for t in tasks if t is not None and not t.done()}
    rounds = 10
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace_s / rounds)
    for task in pending:
        log.error("task %s did not stop when cancelled; left running", task.get_name())
    for given in tasks:
        if given is not None and given.done() and not given.cancelled():
            given.exception()  # retrieved: a failure was the task's own business
