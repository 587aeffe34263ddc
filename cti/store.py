"""Write-behind persistence: the event loop never waits on the database.

Writes are queued in order and run by one writer thread in batches: row values of a
:class:`~cti.rows.RowKind` (the frequent ones: calls, agents, seats), sent as one Core
statement per kind and batch, or callables given a session (or opening their own). When the
database is unreachable (PostgreSQL restarting, a locked SQLite file), the batch is kept and
retried with backoff, and new writes keep queuing in memory up to ``buffer_max``: nothing is
lost by a short outage. A write that fails for another reason (a bug, a constraint) is
retried alone, then logged and set aside in ``dead`` so the rest goes on.

Fencing (``fence``): a CTI that lost the lead must not write after the next leader has
begun, or its late flush would overwrite what the new leader rebuilt and wrote. Each batch
asks ``fence`` in its own transaction, just before the commit, whether this process still
leads; a task asks ``task_fence`` (or ``fence``) before it runs. Once the answer is no, the
store is ``deposed``: what it holds is dropped, and it writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cti.rows import RowKind, Values

log = logging.getLogger(__name__)

Write = Callable[[Session], None]
# A write given the batch's session may leave callables in ``session.info[AFTER_COMMIT]``:
# run once that transaction is committed (not when it fails and is tried again).
AFTER_COMMIT = "hotline.after_commit"


def after_commit(session: Session, done: Callable[[], object]) -> None:
    session.info.setdefault(AFTER_COMMIT, []).append(done)


Task = Callable[[], object]


class _Row:
    """Values for one row of ``kind``: written with the other rows of its kind in the batch."""

    __slots__ = ("kind", "values")

    def __init__(self, kind: RowKind, values: Values) -> None:
        self.kind = kind
        self.values = values


Item = tuple[str, "Callable[..., object] | _Row", bool]


class Deposed(Exception):
    """Another process leads now: this store's writes are refused."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


class Store:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        buffer_max: int = 100_000,
        batch_max: int = 200,
        backoff_max_s: float = 5.0,
        fence: Callable[[Session], bool] | None = None,
        task_fence: Callable[[], bool] | None = None,
        linger_s: float = 0.02,
    ) -> None:
        self._sessions = sessions
        # A task's check, without a transaction of its own (the lease's deadline as this
        # process knows it): ``fence`` in a separate transaction was one more round trip for
        # each task, two a call, and no stronger (a task checked before it runs either way).
        self._task_fence = task_fence
        # Woken by a first write after a quiet moment, the writer waits this long for the
        # writes that come with it (a call's events come in bursts): fewer, fuller
        # transactions, and a row changed several times in the window is written once. With
        # writes already waiting it does not wait.
        self.linger_s = linger_s
        self._fence = fence
        self.deposed = False
        self.dropped = 0
        self.buffer_max = buffer_max
        self.batch_max = batch_max
        self.backoff_max_s = backoff_max_s
        # (label, callable, own_transaction): a Write gets the batch's session; a Task opens
        # its own (a service with its own sessions) and runs alone, between batches: inside an
        # open batch it would wait on the batch's own SQLite write lock.
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = False
        self.written = 0
        self.retries = 0
        self.overflow = 0
        self.dead: list[tuple[str, str]] = []
        self.healthy = True
        self.last_error = ""
        self.write_seconds: deque[float] = deque(maxlen=10_000)
        # CPU time of the writer thread: what writing costs the process, whatever the wait.
        self.cpu_seconds = 0.0

    # --- API used from the event loop -------------------------------------------------

    def submit(self, write: Write, label: str = "") -> None:
        self._put((label, write, False))

    def submit_row(self, kind: RowKind, values: Values, label: str = "") -> None:
        """One row's values (a dict the caller no longer changes)."""
        self._put((label or kind.name, _Row(kind, values), False))

    def submit_task(self, task: Task, label: str = "") -> None:
        """A callable that manages its own transaction (e.g. ``TicketService`` methods);
        retried like the others when the database is unreachable."""
        self._put((label, task, True))

    def _put(self, item: Item) -> None:
        with self._cond:
            if self.deposed:
                self.dropped += 1
                return
            if len(self._queue) >= self.buffer_max:
                # Memory is finite: keep the newest facts, count what we had to drop.
                self._queue.popleft()
                self.overflow += 1
            self._queue.append(item)
            self._cond.notify()

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self._busy else 0)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue and not self._busy:
                    return True
            await asyncio.sleep(0.01)
        return False

    def flush_sync(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue and not self._busy:
                    return True
            time.sleep(0.01)
        return False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hotline-store", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.flush_sync(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        ws = sorted(self.write_seconds)
        p99 = ws[int(len(ws) * 0.99) - 1] if ws else 0.0
        return {
            "pending": self.pending,
            "written": self.written,
            "retries": self.retries,
            "overflow": self.overflow,
            "dead": len(self.dead),
            "healthy": self.healthy,
            "last_error": self.last_error,
            "batch_p99_ms": round(p99 * 1000, 3),
            "cpu_s": round(self.cpu_seconds, 3),
        }

    # --- writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                idle = not self._queue
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if self._stopping and not self._queue:
                    return
                linger = idle and not self._stopping and len(self._queue) < self.batch_max
            if linger and self.linger_s > 0:
                time.sleep(self.linger_s)  # not on the condition: each write would wake it
            with self._cond:
                batch = self._take_batch()
                self._busy = True
            try:
                while True:
                    try:
                        self._write(batch)
                        backoff = 0.05
                        if not self.healthy:
                            log.info("database reachable again; buffered writes flushed")
                        self.healthy = True
                        break
                    except Deposed:
                        self._depose(len(batch))
                        break
                    except Exception as exc:
                        if _transient(exc):
                            log.debug("transient write error", exc_info=True)
                            self.healthy = False
                            self.retries += 1
                            self.last_error = str(exc).splitlines()[0][:200]
                            log.warning(
                                "database unavailable (%s); retrying in %.2fs, %d queued",
                                self.last_error,
                                backoff,
                                len(self._queue) + len(batch),
                            )
                            if self._stopping and backoff >= self.backoff_max_s:
                                log.error(
                                    "store stopping with the database down: %d writes lost",
                                    len(batch) + len(self._queue),
                                )
                                return
                            time.sleep(backoff)
                            backoff = min(self.backoff_max_s, backoff * 2)
                            continue
                        self._write_one_by_one(batch)
                        break
            finally:
                with self._cond:
                    self._busy = False

    def _take_batch(self) -> list[Item]:
        """Consecutive session writes, or one own-transaction task (order is kept)."""
        queue = self._queue
        if queue[0][2]:
            return [queue.popleft()]
        batch: list[Item] = []
        while queue and not queue[0][2] and len(batch) < self.batch_max:
            batch.append(queue.popleft())
        return batch

    def _write(self, batch: list[Item]) -> None:
        started = time.perf_counter()
        cpu = time.thread_time()
        try:
            first = batch[0][1]
            if batch[0][2]:
                assert not isinstance(first, _Row)
                if self._task_fence is not None:
                    if not self._task_fence():
                        raise Deposed
                elif self._fence is not None:
                    with self._sessions() as session:
                        if not self._fence(session):
                            raise Deposed
                first()
            else:
                with self._sessions() as session:
                    try:
                        self._write_batch(session, batch)
                        if self._fence is not None and not self._fence(session):
                            raise Deposed
                        session.commit()
                    except BaseException:
                        session.rollback()
                        raise
                    committed = session.info.pop(AFTER_COMMIT, ())
                for done in committed:
                    try:
                        done()
                    except Exception:  # what was written stays written
                        log.exception("after the commit of %s", batch[0][0])
        finally:
            self.cpu_seconds += time.thread_time() - cpu
        self.write_seconds.append(time.perf_counter() - started)
        self.written += len(batch)

    @staticmethod
    def _write_batch(session: Session, batch: list[Item]) -> None:
        """Rows are gathered per kind (the newest values per key) and sent before the next
        callable and at the end, so that a callable sees every row submitted before it."""
        rows: dict[RowKind, dict[object, Values]] = {}

        def send_rows() -> None:
            if not rows:
                return
            conn = session.connection()
            dialect = conn.dialect.name
            for kind in sorted(rows, key=lambda k: k.order):
                by_shape: dict[tuple[str, ...], list[Values]] = {}
                for values in rows[kind].values():
                    by_shape.setdefault(tuple(values), []).append(kind.params(values))
                for columns, params in by_shape.items():
                    conn.execute(kind.statement(dialect, columns), params)
            rows.clear()

        for _label, write, _own in batch:
            if isinstance(write, _Row):
                kind = write.kind
                per_kind = rows.setdefault(kind, {})
                key = kind.coalesce_key(write.values)
                if key is None:
                    per_kind[len(per_kind)] = write.values
                elif key in per_kind:
                    per_kind[key] = kind.merge(per_kind[key], write.values)
                else:
                    per_kind[key] = write.values
            else:
                send_rows()
                write(session)
        send_rows()

    def _write_one_by_one(self, batch: list[Item]) -> None:
        for item in batch:
            try:
                self._write([item])
            except Deposed:
                self._depose(len(batch) - batch.index(item))
                return
            except Exception as exc:
                if _transient(exc):
                    # The database went away in between: put the rest back in front, in order.
                    idx = batch.index(item)
                    with self._cond:
                        self._queue.extendleft(reversed(batch[idx:]))
                    return
                log.exception("write %r failed; set aside", item[0])
                self.dead.append((item[0], repr(exc)[:300]))

    def _depose(self, unwritten: int) -> None:
        with self._cond:
            lost = unwritten + len(self._queue)
            self._queue.clear()
            self.deposed = True
            self.dropped += lost
        log.error("store: another process leads; %d writes of this one dropped", lost)
