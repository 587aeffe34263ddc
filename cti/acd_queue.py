"""The fallback queue's members, kept in step with the CTI's agents.

The dialplan sends a call to ``Queue(hotline)`` when the CTI cannot route it, so that queue
must always hold the seats of logged-in agents, paused unless they are ready. What Asterisk
holds is not what the CTI last told it:

- dynamic members outlive the CTI: after a CTI restart ``QueueAdd`` answers
  "Unable to add interface: Already there", and the members are as the old process left them;
- they do not outlive Asterisk: after a restart the queue is empty and ``QueuePause`` answers
  "Interface not found".

So each seat has a wanted state, and one task per seat brings Asterisk to it, reading those
answers as facts about what Asterisk holds rather than as failures. Changes made while an
action is on its way are picked up before the task ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from cti.ami.actions import AmiError, AmiUnavailable, build
from cti.ami.client import AmiNode
from cti.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# (member name, paused — None leaves it as it is —, pause reason); None: not a member.
Want = tuple[str, bool | None, str] | None
Key = tuple[str, str]  # (node, seat extension)

_MISSING = object()


def _already_member(exc: AmiError) -> bool:
    return "already there" in exc.message.lower()


def _pause_state(paused: bool, reason: str) -> tuple[bool, str]:
    return (paused, (reason or "login") if paused else "")


def _not_member(exc: AmiError) -> bool:
    low = exc.message.lower()
    return "not there" in low or "interface not found" in low


class QueueMembers:
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._want: dict[Key, Want] = {}
        self._present: dict[Key, bool] = {}
        # What Asterisk was last told or shown of a present member's pause: (paused, reason).
        self._paused: dict[Key, tuple[bool, str]] = {}
        self._nodes: dict[str, AmiNode] = {}
        self._tasks: dict[Key, asyncio.Task[bool]] = {}
        self.stats = {"actions": 0, "failed": 0}

    def want(self, node: AmiNode, seat: str, want: Want) -> asyncio.Task[bool]:
        """Make ``seat`` a member as ``want`` says; the task ends when Asterisk agrees (True)
        or refused (False: the next resync tries again)."""
        key = (node.name, seat)
        self._want[key] = want
        self._nodes[node.name] = node
        task = self._tasks.get(key)
        if task is None or task.done():
            task = asyncio.create_task(self._converge(key), name=f"queue-member-{seat}")
            self._tasks[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        return task

    def _forget(self, key: Key, task: asyncio.Task[bool]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    @property
    def converging(self) -> int:
        """Seats whose membership is on its way to what is wanted."""
        return sum(1 for task in self._tasks.values() if not task.done())

    def wanted(self, node: str, seat: str) -> Want:
        return self._want.get((node, seat))

    async def sync(self, node: AmiNode, wanted_now: Callable[[], Mapping[str, Want]]) -> bool:
        """Read the queue as Asterisk has it and converge every seat of ``node`` to
        ``wanted_now()``: members nobody wants (dynamic ones) are removed. Returns when every
        seat is done. The wanted states are read once the queue has been read: agents change
        meanwhile, and a snapshot taken before would undo their changes."""
        try:
            items = await node.send_list(build("QueueStatus", Queue=self.queue))
        except (AmiError, AmiUnavailable) as exc:
            log.warning(
                "fallback queue %s on %s: QueueStatus failed: %s", self.queue, node.name, exc
            )
            return False
        wanted = wanted_now()
        present: dict[str, Mapping[str, Any]] = {}
        for m in items:
            if m.get("Event") != "QueueMember" or m.get("Queue", self.queue) != self.queue:
                continue
            iface = m.get("Location") or m.get("StateInterface") or ""
            tech, _, seat = iface.partition("/")
            if tech == "PJSIP" and seat:
                present[seat] = m
        for key in [k for k in self._present if k[0] == node.name]:
            self._present[key] = key[1] in present
            self._paused.pop(key, None)
        for seat, member in present.items():
            self._present[(node.name, seat)] = True
            paused = member.get("Paused") == "1"
            self._paused[(node.name, seat)] = (paused, member.get("PausedReason", "") or "")
        tasks = []
        for seat, want in wanted.items():
            have = present.get(seat)
            if (
                want is not None
                and have is not None
                and (want[1] is None or (have.get("Paused") == "1") == want[1])
            ):
                self._want[(node.name, seat)] = want  # already so
                continue
            tasks.append(self.want(node, seat, want))
        for seat, member in present.items():
            if seat not in wanted and member.get("Membership", "dynamic") == "dynamic":
                tasks.append(self.want(node, seat, None))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return all(r is True for r in results)

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks.values())
        self._tasks.clear()

    async def _converge(self, key: Key) -> bool:
        node = self._nodes[key[0]]
        # One turn of the loop first: an agent whose state flips and back in one turn (a
        # wrap-up of 0 s: paused, then ready) costs Asterisk no action.
        await asyncio.sleep(0)
        ok = False
        for _ in range(5):
            want = self._want.get(key)
            ok = await self._apply(node, key, want)
            if self._want.get(key, _MISSING) == want:
                return ok
        return ok

    async def _apply(self, node: AmiNode, key: Key, want: Want) -> bool:
        iface = f"PJSIP/{key[1]}"
        try:
            if want is None:
                try:
                    await self._send(node, build("QueueRemove", Queue=self.queue, Interface=iface))
                except AmiError as exc:
                    if not _not_member(exc):
                        raise
                self._present[key] = False
                self._paused.pop(key, None)
                return True
            name, paused, reason = want
            if self._present.get(key):
                if paused is None or self._paused.get(key) == _pause_state(paused, reason):
                    return True
                try:
                    await self._pause(node, iface, paused, reason)
                except AmiError as exc:
                    if not _not_member(exc):
                        raise
                    self._present[key] = False  # Asterisk restarted: add it again
                    await self._add(node, iface, name, paused, reason)
                self._paused[key] = _pause_state(paused, reason)
            else:
                try:
                    await self._add(node, iface, name, bool(paused), reason)
                except AmiError as exc:
                    if not _already_member(exc):
                        raise
                    # Left there by an earlier CTI process: set what we want on it.
                    self._present[key] = True
                    self._paused.pop(key, None)
                    if paused is not None:
                        await self._pause(node, iface, paused, reason)
                if paused is not None:
                    self._paused[key] = _pause_state(paused, reason)
            self._present[key] = True
            return True
        except (AmiError, AmiUnavailable) as exc:
            self._paused.pop(key, None)  # not known any more
            self.stats["failed"] += 1
            log.info("fallback queue %s %s: %s", self.queue, iface, exc)
            return False

    async def _add(self, node: AmiNode, iface: str, name: str, paused: bool, reason: str) -> None:
        await self._send(
            node,
            build(
                "QueueAdd",
                Queue=self.queue,
                Interface=iface,
                MemberName=name,
                StateInterface=iface,
                Paused=paused,
                Reason=(reason or "login") if paused else None,
            ),
        )

    async def _pause(self, node: AmiNode, iface: str, paused: bool, reason: str) -> None:
        await self._send(
            node,
            build(
                "QueuePause",
                Queue=self.queue,
                Interface=iface,
                Paused=paused,
                Reason=(reason or None) if paused else None,
            ),
        )

    async def _send(self, node: AmiNode, action: dict[str, Any]) -> None:
        self.stats["actions"] += 1
        await node.send(action)
