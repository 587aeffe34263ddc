"""The registration's reads and writes as prepared Core statements on one connection.

Every answered call starts and stops a recording, so these run twenty times a second at peak
in the CTI's writer thread. As ORM units of work they cost about a millisecond of Python each
(identity map, flushes, expression building); here the statements are built once, with
bound parameters, and a stop and its registration share one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, exists, insert, literal, select, update
from sqlalchemy.sql import Executable

from cti.rows import RowKind
from recordings import models as m

REC: Table = m.Recording.__table__  # type: ignore[assignment]
JOB: Table = m.TranscriptionJob.__table__  # type: ignore[assignment]
MUTE: Table = m.RecordingMute.__table__  # type: ignore[assignment]

# A recording as its registration reads it, with its transcription job's status (None: no
# job) and whether its call had privacy pauses (most have none, and their spans are not read):
# one statement, by the call and the file or by the id.
_ROW = select(
    REC.c.id,
    REC.c.status,
    REC.c.call_id,
    REC.c.ticket_id,
    REC.c.agent_id,
    REC.c.path,
    REC.c.started_at,
    REC.c.ended_at,
    JOB.c.status.label("job"),
    exists().where(MUTE.c.call_id == REC.c.call_id).label("muted"),
).select_from(REC.outerjoin(JOB, JOB.c.recording_id == REC.c.id))
_FIND = _ROW.where(REC.c.call_id == bindparam("call_id"), REC.c.path == bindparam("path"))
_BY_ID = _ROW.where(REC.c.id == bindparam("rid"))
_ADD = insert(REC)
_UPDATE = update(REC).where(REC.c.id == bindparam("rid"))
_MUTES = (
    select(MUTE.c.started_at, MUTE.c.stopped_at)
    .where(MUTE.c.call_id == bindparam("call_id"))
    .order_by(MUTE.c.started_at)
)
_JOB_STATUS = select(JOB.c.status).where(JOB.c.recording_id == bindparam("rid"))
_ADD_JOB = insert(JOB)
# A live job no follower took goes to the queue; one a follower took meanwhile is left to it.
_QUEUE_LIVE_JOB = (
    update(JOB)
    .where(JOB.c.recording_id == bindparam("rid"), JOB.c.status == m.LIVE)
    .values(status=m.QUEUED, lease_until=None)
)
_FAIL_LIVE_JOB = (
    update(JOB)
    .where(JOB.c.recording_id == bindparam("rid"), JOB.c.status.in_((m.LIVE, m.FOLLOWING)))
    .values(status=m.FAILED, lease_until=None)
)


def _live_job(_dialect: str) -> Executable:
    """A live follower's job for a recording still being written that has none."""
    now = bindparam("now", type_=JOB.c.created_at.type)
    recording = select(REC.c.id, literal(m.LIVE), literal(0), now, now).where(
        REC.c.call_id == bindparam("call_id"),
        REC.c.path == bindparam("path"),
        REC.c.status == m.RECORDING,
        ~exists().where(JOB.c.recording_id == REC.c.id),
    )
    columns = ["recording_id", "status", "attempts", "created_at", "updated_at"]
    return insert(JOB).from_select(columns, recording)


# MixMonitor started: the CTI's store writes these in its batches (``cti.rows``). A
# recording already there (stopped, or seen again in a resync) is left alone.
STARTED = RowKind("recording started", REC, "insert_ignore", key=("call_id", "path"))
LIVE_JOB = RowKind("live transcription job", JOB, "statement", build=_live_job)


def find(conn: Connection, call_id: str, path: str) -> Row[Any] | None:
    return conn.execute(_FIND, {"call_id": call_id, "path": path}).first()


def by_id(conn: Connection, rid: int) -> Row[Any] | None:
    return conn.execute(_BY_ID, {"rid": rid}).first()


def add(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(_ADD, values)
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def change(conn: Connection, rid: int, **values: Any) -> None:
    # The SET clause comes from the parameters' keys: one statement object, compiled once
    # per set of columns.
    conn.execute(_UPDATE, {"rid": rid, **values})


def muted_spans(conn: Any, call_id: str, started_at: datetime) -> list[Any] | None:
    """The recording's privacy pauses, in seconds from its start (``conn``: a Connection or
    a Session)."""
    spans = []
    for mute_start, mute_stop in conn.execute(_MUTES, {"call_id": call_id}):
        start = max(0.0, (mute_start - started_at).total_seconds())
        stop = None if mute_stop is None else max(0.0, (mute_stop - started_at).total_seconds())
        spans.append([round(start, 3), None if stop is None else round(stop, 3)])
    return spans or None


def job_status(conn: Connection, rid: int) -> str | None:
    status = conn.execute(_JOB_STATUS, {"rid": rid}).scalar()
    return None if status is None else str(status)


def add_job(conn: Connection, rid: int, status: str, now: datetime) -> None:
    conn.execute(
        _ADD_JOB, {"recording_id": rid, "status": status, "created_at": now, "updated_at": now}
    )


def queue_job(conn: Connection, rid: int, now: datetime) -> None:
    conn.execute(_QUEUE_LIVE_JOB, {"rid": rid, "updated_at": now})


def fail_live_job(conn: Connection, rid: int, error: str, now: datetime) -> None:
    conn.execute(_FAIL_LIVE_JOB.values(error=error, updated_at=now), {"rid": rid})
