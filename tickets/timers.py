"""SLA timers on APScheduler 3 with a persistent job store in the hotline's own database.

Each ticket has at most one job per (kind, phase), with a stable id
``ticket:<id>:<kind>:<phase>``, so a re-dispatch or an extension replaces the job instead of
adding one. Kinds: ``response`` (sign-off and first call to the citizen), ``due`` (the
department's reply), ``survey`` (the callback survey); phases: ``remind`` and ``overdue``.

Jobs are stored as the reference ``tickets.timers:fire`` plus plain arguments, so they survive
a restart; renaming ``fire`` would make APScheduler drop every stored timer. APScheduler's
default misfire grace time of one second would silently drop a timer that fell due while the
process was down: ``misfire_grace_time=None`` runs it late instead, and ``coalesce`` runs a
job that missed several times only once.

APScheduler 3 supports one scheduler per job store, and every CTI process runs one. Several
CTIs on one PostgreSQL share the store safely because:

- a firing is claimed in the database before it acts (``cti.claims``: a ``job_claims`` row
  per timer and deadline, inserted by exactly one process); the others skip it;
- the store forgives a job another scheduler already removed (APScheduler's own bookkeeping
  would otherwise raise out of its wakeup and stop the scheduler for good);
- each scheduler looks at the store every ``poll_s`` seconds, so timers another process
  scheduled fire even when that process is gone;
- CTIs starting together on a new database may both create the store's table: the one that
  loses that race uses the table the other made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from cti import claims
from cti.db import make_engine, session_factory, utcnow

log = logging.getLogger(__name__)

KINDS = ("response", "due", "survey")
PHASES = ("remind", "overdue")
JOB_FUNC = "tickets.timers:fire"
TABLE = "ticket_timers"
_PRUNE_EVERY = timedelta(hours=1)


class TimerTarget(Protocol):
    def on_timer(self, ticket_id: str, kind: str, phase: str, expected: str) -> None: ...


_target: TimerTarget | None = None


def fire(ticket_id: str, kind: str, phase: str, expected: str) -> None:
    """The job function (runs in the scheduler's thread pool)."""
    target = _target
    if target is None:
        log.error("timer %s/%s/%s fired with no ticket service", ticket_id, kind, phase)
        return
    target.on_timer(ticket_id, kind, phase, expected)


def job_id(ticket_id: str, kind: str, phase: str) -> str:
    return f"ticket:{ticket_id}:{kind}:{phase}"


class _SharedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The job store of several schedulers (one per CTI process)."""

    def start(self, scheduler: Any, alias: str) -> None:
        try:
            super().start(scheduler, alias)
        except DBAPIError:
            # CTIs starting together on a new database each create the table (check, then
            # CREATE): the losers find it made by the winner, and go on with it.
            super().start(scheduler, alias)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            pass  # another scheduler ran (or cancelled) it first

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            # ``add_job(replace_existing=True)`` found the job, then another scheduler ran it:
            # the replacement is a new job. (Only date jobs live here: none is updated after
            # it ran.)
            try:
                self.add_job(job)
            except ConflictingIdError:
                super().update_job(job)


class TicketTimers:
    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        tablename: str = TABLE,
        poll_s: float = 10.0,
    ) -> None:
        if (url is None) == (engine is None):
            raise ValueError("pass the database url or an engine")
        if engine is None:
            assert url is not None
            # Our engine: psycopg 3 for postgresql:// URLs, SQLite's WAL and busy timeout.
            engine = make_engine(url)
            self._own_engine: Engine | None = engine
        else:
            self._own_engine = None
        self.sessions = session_factory(engine)
        self._poll_s = poll_s
        self._pruned: datetime | None = None
        store = _SharedJobStore(engine=engine, tablename=tablename)
        self.scheduler = AsyncIOScheduler(
            # "local": this process's own jobs (the poll), never seen by another scheduler.
            jobstores={"default": store, "local": MemoryJobStore()},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def start(self, target: TimerTarget, *, paused: bool = False) -> None:
        """Start inside the running event loop; jobs that fell due meanwhile run now (or at
        ``resume()`` when started ``paused``)."""
        global _target
        _target = target
        self.scheduler.add_job(
            self._poll,
            trigger="interval",
            seconds=self._poll_s,
            id="poll",
            jobstore="local",
            replace_existing=True,
        )
        self.scheduler.start(paused=paused)

    def resume(self) -> None:
        self.scheduler.resume()

    def _poll(self) -> None:
        """Wakes the scheduler, which then looks at the shared store (timers scheduled by
        another process); once an hour, forgets old claims."""
        now = utcnow()
        if self._pruned is None or now - self._pruned >= _PRUNE_EVERY:
            self._pruned = now
            try:
                claims.forget_old(self.sessions, now)
            except Exception as exc:  # the database may be away: next hour, then
                log.warning("old job claims not deleted: %s", exc)

    def shutdown(self, wait: bool = True) -> None:
        global _target
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        _target = None
        if self._own_engine is not None:
            self._own_engine.dispose()

    def schedule(
        self, ticket_id: str, kind: str, phase: str, at: datetime, expected: datetime
    ) -> None:
        if kind not in KINDS or phase not in PHASES:
            raise ValueError(f"unknown timer {kind}/{phase}")
        self.scheduler.add_job(
            JOB_FUNC,
            trigger="date",
            run_date=at.astimezone(UTC),
            args=[ticket_id, kind, phase, expected.astimezone(UTC).isoformat()],
            id=job_id(ticket_id, kind, phase),
            name=f"{kind} {phase} of ticket {ticket_id}",
            replace_existing=True,
        )

    def cancel(self, ticket_id: str, kinds: Iterable[str] = KINDS) -> None:
        for kind in kinds:
            for phase in PHASES:
                try:
                    self.scheduler.remove_job(job_id(ticket_id, kind, phase))
                except JobLookupError:
                    pass

    def jobs(self, ticket_id: str | None = None) -> list[dict[str, Any]]:
        prefix = f"ticket:{ticket_id}:" if ticket_id else "ticket:"
        return [
            {"id": job.id, "run_at": getattr(job, "next_run_time", None), "args": list(job.args)}
            for job in self.scheduler.get_jobs()
            if job.id.startswith(prefix)
        ]
