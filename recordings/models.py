"""Tables of the recordings slice (on the shared ``cti.db.Base``).

Times are aware UTC datetimes (``UTCDateTime``); states are stored by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from cti.db import Base, UTCDateTime, utcnow

# Recording status
RECORDING = "recording"  # MixMonitor is writing it (the call goes on)
PENDING = "pending"  # MixMonitor stopped; the file was not there (or still being written)
REGISTERED = "registered"
LOST = "lost"  # never appeared within the grace period
DELETED = "deleted"  # removed by retention
ARCHIVED = "archived"  # moved by retention
STATUSES = (RECORDING, PENDING, REGISTERED, LOST, DELETED, ARCHIVED)

# Job status
LIVE = "live"  # the call goes on: for a live follower to take
FOLLOWING = "following"  # a live follower decodes the file as it is written
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        UniqueConstraint("call_id", "path", name="uq_recordings_call_id_path"),
        Index("ix_recordings_status_ended_at", "status", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64), default="")
    ticket_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # As Asterisk wrote it (HOTLINE_REC); each machine maps it with layout.local_path.
    path: Mapped[str] = mapped_column(String(512))
    # {"in": {"path", "size", "sha256"}, "out": {...}} for the legs found beside the file.
    legs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    size: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # [[start_s, end_s | null], ...] seconds from started_at while the agent muted it.
    muted_spans: Mapped[list[Any] | None] = mapped_column(JSON)
    transcript_text: Mapped[str | None] = mapped_column(Text)
    transcribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archive_path: Mapped[str | None] = mapped_column(String(512))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordingMute(Base):
    """A privacy pause: the agent muted the recording (MixMonitorMute) from ``start`` on."""

    __tablename__ = "recording_mutes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TranscriptionJob(Base):
    __tablename__ = "transcription_jobs"
    __table_args__ = (Index("ix_transcription_jobs_status_lease_until", "status", "lease_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # running: the lease of the worker holding it; queued: not to be taken before (back-off).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    rtf: Mapped[float | None] = mapped_column(Float)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TranscriptSegment(Base):
    __tablename__ = "transcript_segments"
    __table_args__ = (Index("ix_transcript_segments_recording_id_seq", "recording_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"))
    ticket_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    seq: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column("start_s", Float)
    end: Mapped[float] = mapped_column("end_s", Float)
    speaker: Mapped[str] = mapped_column(String(8))  # citizen | agent | mixed
    # The stored transcript: masked when transcription.mask_numbers is on (the raw text is
    # then never written); text_masked is always the masked form.
    text: Mapped[str] = mapped_column(Text)
    text_masked: Mapped[str] = mapped_column(Text)
    conf: Mapped[float] = mapped_column(Float)


class LiveSegment(Base):
    """A piece of a call's transcript while the call goes on, written by a live follower for
    the CTI's console to relay (``console.transcripts``): a partial result, replaced by the
    next partial of the same ``seq`` and then by its final. Insert only; rows older than a
    few minutes are deleted by the followers. The text is always masked."""

    __tablename__ = "live_segments"
    __table_args__ = (Index("ix_live_segments_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[int] = mapped_column(Integer)
    call_id: Mapped[str] = mapped_column(String(64))
    speaker: Mapped[str] = mapped_column(String(8))
    seq: Mapped[int] = mapped_column(Integer)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[float] = mapped_column("start_s", Float)
    end: Mapped[float] = mapped_column("end_s", Float)
    # When the audio it decodes was read from the file (the follower's clock, UTC).
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReplayAudit(Base):
    """Who played or downloaded which recording, when and from where. Never deleted with
    the recording (no foreign key)."""

    __tablename__ = "replay_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # play | download
    recording_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    forwarded_for: Mapped[str] = mapped_column(String(256), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    range: Mapped[str] = mapped_column(String(64), default="")
    session: Mapped[str] = mapped_column(String(64), default="", index=True)


TABLES = (
    Recording.__table__,
    RecordingMute.__table__,
    TranscriptionJob.__table__,
    TranscriptSegment.__table__,
    LiveSegment.__table__,
    ReplayAudit.__table__,
)


def create_tables(engine: Engine) -> None:
    """Create this slice's tables if missing (tests, a stand-alone worker database).

    Deployments bring the schema up with the project's migrations instead.
    """
    Base.metadata.create_all(engine, tables=list(TABLES))  # type: ignore[arg-type]


def drop_tables(engine: Engine) -> None:
    Base.metadata.drop_all(engine, tables=list(TABLES))  # type: ignore[arg-type]
