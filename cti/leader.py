"""Which of the CTIs sharing one database leads: a lease row in that database.

Two ``hotline serve`` processes (two machines) run on one PostgreSQL; one leads (answers
FastAGI, sends AMI actions, runs the timers and the ACD, writes the calls), the other waits
on standby and takes over when the leader's lease runs out. No protocol of our own: the
database decides, with one conditional UPDATE of the ``cti_leases`` row::

    holder := me, expires_at := db_now + lease   WHERE holder = me OR expires_at < db_now

The leader renews every ``renew_s``; a standby tries the same statement every ``poll_s`` and
gets the row only once the lease has expired. Times are the database's clock, so the two
machines' clocks need not agree.

Fencing: a leader that could not renew (the database is away, or the process stalled) must
stop acting before the lease it holds runs out, or two would act at once. It counts from
the moment it *sent* its last successful renewal, on its own monotonic clock: the database
set the expiry at least that late, so ``sent + lease - margin`` is reached before a standby
can take the row. ``leading`` turns false then, whether or not the renewal task got to run,
and ``on_lost`` is called so the process stops what it does.

SQLite is one machine, one CTI (``cti.single`` refuses a second one on the file): the
process that holds the file takes the lease at once, a dead predecessor's included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Float, Table, case, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from cti.ami.actions import AmiUnavailable
from cti.ami.client import AmiNode, ListHook
from cti.ami.parser import Message
from cti.db import first_line
from cti.models import LeaseRow
from cti.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME = "cti"


def process_id() -> str:
    """This process, as the lease row and the console name it: host, pid and a random tag
    (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"[-64:]


LEASES: Table = LeaseRow.__table__  # type: ignore[assignment]


def db_now(dialect: str) -> ColumnElement[float]:
    """The database's clock in epoch seconds, as an SQL expression."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - 2440587.5) * 86400.0


@dataclass(frozen=True, slots=True)
class Holder:
    """The lease row as read: who holds it, since when, until when (database epoch)."""

    holder: str
    term: int
    since: float
    expires_at: float
    address: str
    now: float

    @property
    def live(self) -> bool:
        return bool(self.holder) and self.expires_at > self.now


class Lease:
    """The ``cti_leases`` row (synchronous: call it from a thread)."""

    def __init__(
        self, engine: Engine, *, holder: str, lease_s: float, address: str = "", name: str = NAME
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.lease_s = lease_s
        self.address = address
        self.name = name
        self._now = db_now(engine.dialect.name)

    def _ensure_row(self, conn: Any) -> None:
        dialect = conn.dialect.name
        ins: Any = postgresql.insert(LEASES) if dialect == "postgresql" else sqlite.insert(LEASES)
        row = {"name": self.name, "holder": "", "term": 0, "since": 0.0, "expires_at": 0.0}
        conn.execute(ins.values(**row, address="").on_conflict_do_nothing(index_elements=["name"]))

    def take(self, *, force: bool = False) -> Holder | None:
        """Take or renew the lease: the row when this process holds it now, None when another
        live holder has it. ``force`` takes it whoever holds it (SQLite's sole process)."""
        now, c = self._now, LEASES.c
        mine = c.holder == self.holder
        where = [c.name == self.name]
        if not force:
            where.append(or_(mine, c.expires_at < now))
        # SET expressions read the row as it was: "mine" is who held it before.
        statement = (
            update(LEASES)
            .where(*where)
            .values(
                term=case((mine, c.term), else_=c.term + 1),
                since=case((mine, c.since), else_=now),
                holder=self.holder,
                expires_at=now + self.lease_s,
                address=self.address,
            )
            .returning(c.holder, c.term, c.since, c.expires_at, c.address, now)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement).first()
            if row is None:
                self._ensure_row(conn)
                row = conn.execute(statement).first()
        return Holder(*row) if row is not None else None

    def read(self) -> Holder | None:
        c = LEASES.c
        query = select(c.holder, c.term, c.since, c.expires_at, c.address, self._now).where(
            c.name == self.name
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Holder(*row) if row is not None else None

    def holds(self, conn: Any) -> bool:
        """Whether this process holds the lease, as ``conn``'s transaction sees it. On
        PostgreSQL the row stays share-locked until that transaction ends, so a standby's
        take waits for it: what the transaction writes lands before the next leader's term,
        or, once that term began, is refused (``cti.store``'s fence)."""
        c = LEASES.c
        query = select(c.term).where(c.name == self.name, c.holder == self.holder)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        return conn.execute(query).first() is not None

    def release(self) -> None:
        """A clean stop: the lease ends now, so the standby takes over at its next try."""
        c = LEASES.c
        with self.engine.begin() as conn:
            conn.execute(
                update(LEASES)
                .where(c.name == self.name, c.holder == self.holder)
                .values(expires_at=0.0)
            )


class Leadership:
    """The lease over time: ``await acquire()`` waits (standby) until this process leads,
    then a task renews it; ``leading`` is false from the moment the lease may have run out."""

    def __init__(
        self,
        lease: Lease,
        *,
        renew_s: float = 1.0,
        poll_s: float = 0.5,
        margin_s: float = 0.3,
        force: bool = False,
        fence: bool = True,
        on_lost: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.renew_s = renew_s
        self.poll_s = poll_s
        self.margin_s = margin_s
        self.force = force
        self.fence = fence
        self.on_lost = on_lost
        self.clock = clock
        self.current: Holder | None = None
        self.lost_reason = ""
        self.became_leader_at: float | None = None
        self.waited_s = 0.0
        self._deadline: float | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._last_seen: Holder | None = None
        self._failing = False
        # The lease's statements run in a thread of their own: behind other work in the
        # loop's shared executor, a renewal could come late under load and stop a leader
        # that is well.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadership")

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def me(self) -> str:
        return self.lease.holder

    @property
    def leading(self) -> bool:
        return self._deadline is not None and not self.lost_reason and self.clock() < self._deadline

    async def acquire(self, until: asyncio.Event | None = None) -> bool:
        """Wait until this process holds the lease (True), or ``until`` is set (False)."""
        started = self.clock()
        announced = False
        while until is None or not until.is_set():
            sent = self.clock()
            try:
                held = await self._db(self.lease.take, force=self.force)
            except Exception as exc:  # the database away: a standby just waits
                log.warning("leadership: the lease could not be tried: %s", first_line(exc))
                held = None
            if held is not None:
                self._won(held, sent)
                self.waited_s = self.clock() - started
                return True
            if not announced:
                announced = True
                await self._announce_standby()
            if until is None:
                await asyncio.sleep(self.poll_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), self.poll_s)
        return False

    async def _announce_standby(self) -> None:
        try:
            other = await self._db(self.lease.read)
        except Exception:
            other = None
        self._last_seen = other
        who = f"{other.holder} (term {other.term})" if other is not None else "unknown"
        log.info("leadership: standby (%s); the lead is held by %s", self.me, who)

    def _won(self, held: Holder, sent: float) -> None:
        self.current = held
        self.became_leader_at = self.clock()
        log.info("leadership: %s leads (term %d)", self.me, held.term)
        if self.force:
            # SQLite: the file's lock (``cti.single``) is the leadership, held for the
            # process's life. Renewing would only queue behind the store's writes for the
            # file's write lock, and a renewal late under load would stop a sole CTI.
            self._deadline = math.inf
            return
        self._deadline = self._next_deadline(sent)
        self._renewer = asyncio.create_task(self._renew_loop(), name="leadership-renew")

    def _next_deadline(self, sent: float) -> float:
        """When this process must stop acting without a further renewal. Without ``fence``
        (a sole CTI on the database: nobody stands by) never: a database outage is ridden
        out on the store's buffer, and only another holder of the lease ends the lead."""
        return sent + self.lease.lease_s - self.margin_s if self.fence else math.inf

    async def _renew_loop(self) -> None:
        while self.leading:
            assert self._deadline is not None
            await asyncio.sleep(max(0.0, min(self.renew_s, self._deadline - self.clock())))
            if not self.leading:
                break
            sent = self.clock()
            try:
                held = await asyncio.wait_for(
                    self._db(self.lease.take, force=self.force),
                    max(0.01, min(self._deadline - sent, 10 * self.renew_s)),
                )
            except TimeoutError:
                continue  # the deadline passed while the database did not answer
            except Exception as exc:
                # Once per outage as a warning: a sole CTI rides out long ones.
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "leadership: renewal failed: %s", first_line(exc))
                self._failing = True
                continue
            if self._failing:
                log.info("leadership: renewed again")
                self._failing = False
            if held is None:
                self._lose("another process holds the lease")
                return
            self.current = held
            self._deadline = self._next_deadline(sent)
        self._lose("the lease could not be renewed in time")

    def _lose(self, reason: str) -> None:
        if self.lost_reason:
            return
        self.lost_reason = reason
        log.error("leadership: %s stepped down: %s", self.me, reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; a leader that still holds the lease hands it over at once."""
        was_leading = self.leading
        self.lost_reason = self.lost_reason or "stopped"
        await cancel_and_wait(self._renewer)
        self._renewer = None
        if release and was_leading:
            try:
                await asyncio.wait_for(self._db(self.lease.release), 5)
            except Exception as exc:
                log.warning(
                    "leadership: the lease was not released (it runs out): %s", first_line(exc)
                )
        # A statement stuck on a database that went away is left to finish on its own.
        self._executor.shutdown(wait=False, cancel_futures=True)

    def info(self) -> dict[str, Any]:
        """For health and the console: who leads, and whether it is this process."""
        held = self.current if self.leading else self._last_seen
        return {
            "role": "leader" if self.leading else "standby",
            "process": self.me,
            "leader": held.holder if held is not None else "",
            "term": held.term if held is not None else 0,
            "leader_address": held.address if held is not None else "",
            "since": held.since if held is not None else None,
            "waited_s": round(self.waited_s, 3),
        }


class FencedNode(AmiNode):
    """An Asterisk node that sends no action once this process may no longer lead: a
    leader that stalled past its lease and wakes up acts no more, whichever of its tasks
    runs first (the ACD's, a desktop's request's), before it has noticed and stopped.
    Pings still go (they only watch the link)."""

    def __init__(self, *args: Any, may_act: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._may_act = may_act

    def _fence(self, action: dict[str, Any]) -> None:
        if action.get("Action") != "Ping" and not self._may_act():
            raise AmiUnavailable(self.name, f"{action.get('Action', '?')}: this CTI does not lead")

    async def send(self, action: dict[str, Any], *, timeout: float | None = None) -> Message:
        self._fence(action)
        return await super().send(action, timeout=timeout)

    async def send_list(
        self,
        action: dict[str, Any],
        *,
        timeout: float | None = None,
        on_complete: ListHook | None = None,
    ) -> list[Message]:
        self._fence(action)
        return await super().send_list(action, timeout=timeout, on_complete=on_complete)
