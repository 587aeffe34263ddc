"""``cancel_and_wait``: a task that swallows a cancellation is cancelled again."""

from __future__ import annotations

import asyncio

from cti.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_still_stops() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                # what Python 3.11's wait_for does when the cancellation lands as its
                # future completes: the loop around it goes on
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_and_wait(task, grace_s=5.0)
    assert task.cancelled() and swallowed == 3


async def test_a_task_that_never_stops_is_given_up_not_waited_for_forever(caplog) -> None:  # noqa: ANN001
    stop = asyncio.Event()

    async def deaf() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    await cancel_and_wait(task, None, grace_s=0.2)
    assert not task.done() and "deaf did not stop" in caplog.text
    stop.set()
    task.cancel()
    await asyncio.wait({task})
