"""Run a job once per due time, whichever CTI process sees it due first.

Several CTIs on one PostgreSQL each run the same schedules: ticket timers (their APScheduler
job store is shared), periodic sweeps. Before acting, a process inserts the claim row
``(job, due time)`` of ``job_claims``; the primary key lets one insert through, and only that
process acts. The database decides, on SQLite as on PostgreSQL, with no lock held while the
job runs. A claim is kept ``KEPT`` (``forget_old``), longer than any due time is seen late.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti.db import utcnow
from cti.models import JobClaim

KEPT = timedelta(days=7)
# Who claimed a run, for the operator reading job_claims.
PROCESS = f"{socket.gethostname()}:{os.getpid()}"[:64]


def claim_once(session: Session, job: str, due_at: datetime, by: str = PROCESS) -> bool:
    """Claim the run of ``job`` due at ``due_at``: True for exactly one caller, whatever the
    process. ``INSERT ... ON CONFLICT DO NOTHING``: on PostgreSQL a second claimer waits for
    the first one's transaction and then inserts nothing; SQLite serialises writers."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(JobClaim)
        .values(job=job, due_at=due_at, claimed_at=utcnow(), claimed_by=by)
        .on_conflict_do_nothing()
        .returning(JobClaim.job)  # psycopg reports no row count for this statement
    )
    return session.execute(statement).scalar() is not None


def once_per(sessions: sessionmaker[Session], job: str, period: timedelta, now: datetime) -> bool:
    """Claim the ``period``-long slot (counted from the Unix epoch, UTC) that holds ``now``:
    for a sweep that must run at most once per slot across processes."""
    seconds = period.total_seconds()
    start = datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)
    with sessions.begin() as session:
        return claim_once(session, job, start)


def forget_old(sessions: sessionmaker[Session], now: datetime) -> None:
    with sessions.begin() as session:
        session.execute(delete(JobClaim).where(JobClaim.claimed_at < now - KEPT))
