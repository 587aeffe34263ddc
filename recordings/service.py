"""Recording registration, privacy pauses, retention and transcripts: the database side.

``register_stopped`` is called from the CTI's store thread when MixMonitor stops: it never
sleeps and never publishes; a file that is not there yet (Asterisk is still closing it) is
left ``pending`` and ``sweep_pending`` (run periodically by the CTI or a worker) registers it
later. Transcription workers run in other processes; ``deliver_transcript_events`` turns
finished jobs into ``TranscriptReady`` events on the CTI's bus.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.bus import Bus
from cti.db import utcnow
from cti.errors import NotFound
from cti.events import TranscriptReady
from recordings import models as m
from recordings import rows
from recordings.audio import wav_info
from recordings.layout import leg_paths, local_path, relative_to_root
from recordings.settings import RecordingSettings, TranscriptionSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    sha256: str
    duration_s: float | None
    sample_rate: int | None
    channels: int | None


@dataclass(slots=True)
class RetentionReport:
    cutoff: datetime
    action: str
    examined: int = 0
    deleted: int = 0
    moved: int = 0
    missing_files: int = 0
    freed_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "action": self.action,
            "examined": self.examined,
            "deleted": self.deleted,
            "moved": self.moved,
            "missing_files": self.missing_files,
            "freed_bytes": self.freed_bytes,
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class SegmentView:
    recording_id: int
    start: float
    end: float
    speaker: str
    text: str
    conf: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "recording_id": self.recording_id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "speaker": self.speaker,
            "text": self.text,
            "conf": round(self.conf, 3),
        }


@dataclass(frozen=True, slots=True)
class TicketTranscript:
    ticket_id: str
    recordings: tuple[int, ...]
    segments: tuple[SegmentView, ...]
    pending: tuple[int, ...]  # recordings whose transcription is not finished

    @property
    def text(self) -> str:
        return "\n".join(f"{s.speaker}: {s.text}" for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "recordings": list(self.recordings),
            "pending": list(self.pending),
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
        }


def file_facts(path: str, *, wav: bool = True) -> FileFacts:
    """Size and SHA-256 of the file at ``path`` and, with ``wav``, its audio format (a WAV
    file's header; None for a file that is not one)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        # file_digest hashes through one buffer of its own: no new bytes object per block.
        sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    if not wav:
        return FileFacts(size, sha256, None, None, None)
    try:
        info = wav_info(path)
    except ValueError:  # not a WAV file: still registered, without duration
        return FileFacts(size, sha256, None, None, None)
    return FileFacts(size, sha256, round(info.duration_s, 3), info.sample_rate, info.channels)


class RecordingService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: RecordingSettings,
        bus: Bus | None = None,
        clock: Clock = utcnow,
        *,
        transcription: TranscriptionSettings | None = None,
    ) -> None:
        self.sf = session_factory
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.transcription = transcription or TranscriptionSettings()

    # --- registration ------------------------------------------------------------------

    def register_started(
        self,
        *,
        call_id: str,
        node: str,
        ticket_id: str,
        agent_id: str | None,
        path: str,
        started_at: datetime,
    ) -> int:
        """Record that MixMonitor started writing ``path``: the recording is ``recording``
        and, with live transcription on, its job waits for a live follower that decodes the
        file as the call goes on (so the transcript is there moments after the hangup).

        Idempotent per (call_id, path); a recording already stopped is left alone.
        """
        values = self._values(call_id, node, ticket_id, agent_id, path, started_at, started_at)
        values["status"] = m.RECORDING
        live = self.transcription.enabled and self.transcription.live
        with self.sf() as s:
            rid, _ = self._find_or_add(s, values, m.LIVE if live else None)
            s.commit()
            return rid

    def register_stopped(self, **stop: Any) -> int:
        """Record that MixMonitor stopped writing ``path`` (as Asterisk sees it): the
        arguments of :meth:`stopped`, which says the status too.

        Idempotent per (call_id, path): a repeated call returns the same id. Returns at once;
        a file that is missing or still being written stays ``pending`` for the sweeper.
        """
        return self.stopped(**stop)[0]

    def stopped(
        self,
        *,
        call_id: str,
        node: str,
        ticket_id: str,
        agent_id: str | None,
        path: str,
        started_at: datetime,
        ended_at: datetime,
    ) -> tuple[int, str]:
        """:meth:`register_stopped`, with the recording's status after it (``pending``: the
        file is not there or not settled yet). The stop and the registration of a settled
        file are one transaction."""
        values = self._values(call_id, node, ticket_id, agent_id, path, started_at, ended_at)
        with self.sf() as s:
            rid, found = self._find_or_add(s, values, None)
            status = m.PENDING
            stop: dict[str, Any] = {}
            if found is not None:
                status = found.status
                if status == m.RECORDING:
                    status = m.PENDING
                    stop = {
                        "status": status,
                        "ended_at": ended_at,
                        "ticket_id": ticket_id or found.ticket_id,
                        "agent_id": agent_id or found.agent_id,
                    }
            if status == m.PENDING:
                status = self._register_in(s, rid, found, stop)
            try:
                s.commit()
            except IntegrityError:  # registered concurrently by the sweeper
                s.rollback()
                return rid, self.status(rid)
        return rid, status

    def _values(
        self,
        call_id: str,
        node: str,
        ticket_id: str,
        agent_id: str | None,
        path: str,
        started_at: datetime,
        ended_at: datetime,
    ) -> dict[str, Any]:
        return {
            "call_id": call_id,
            "node": node,
            "ticket_id": ticket_id or "",
            "agent_id": agent_id or None,
            "path": path,
            "started_at": started_at,
            "ended_at": ended_at,
            "status": m.PENDING,
            "created_at": self.clock(),
        }

    def _find_or_add(
        self, s: Session, values: dict[str, Any], job_status: str | None
    ) -> tuple[int, Any]:
        """The recording of (call_id, path): its id and row when it is there; else the id of
        the row added from ``values`` (with a job in ``job_status`` when given) and None.
        Another thread registering the same file at the same time is found, not duplicated
        (the transaction, with nothing else in it yet, is rolled back)."""
        conn = s.connection()
        existing = rows.find(conn, values["call_id"], values["path"])
        if existing is not None:
            return int(existing.id), existing
        try:
            rid = rows.add(conn, values)
            if job_status is not None:
                rows.add_job(conn, rid, job_status, self.clock())
        except IntegrityError:  # registered concurrently: nothing else written yet
            s.rollback()
            existing = rows.find(s.connection(), values["call_id"], values["path"])
            if existing is None:
                raise
            return int(existing.id), existing
        return rid, None

    def _try_register(self, rid: int) -> str:
        """Hash and measure the file if it is there and settled; returns the new status."""
        with self.sf() as s:
            status = self._register_in(s, rid)
            try:
                s.commit()
            except IntegrityError:  # registered concurrently by the sweeper
                s.rollback()
                return m.REGISTERED
            return status

    def _register_in(
        self, s: Session, rid: int, rec: Any = None, stop: dict[str, Any] | None = None
    ) -> str:
        """:meth:`_try_register` inside the caller's transaction (not committed). ``rec``:
        the recording's row as read in it already (``rows.find``); ``stop``: what the stop
        changes, written in the same statement as the registration."""
        conn = s.connection()
        if rec is None:
            rec = rows.by_id(conn, rid)
        stop = stop or {}
        status = stop.get("status", rec.status if rec is not None else m.LOST)
        if rec is None or status != m.PENDING:
            return str(status)
        local = local_path(self.settings, rec.path)
        facts = self._settled_facts(local)
        now = self.clock()
        if facts is None:
            waited = (now - stop.get("ended_at", rec.ended_at)).total_seconds()
            if waited > self.settings.missing_grace_s:
                error = f"file not found after {waited:.0f} s: {local}"
                rows.change(conn, rid, **{**stop, "status": m.LOST, "error": error})
                rows.fail_live_job(conn, rid, error, now)
                log.error("recording %s of call %s lost: %s", rid, rec.call_id, error)
                return m.LOST
            if stop:
                rows.change(conn, rid, **stop)
            log.info("recording %s not ready yet (%s): left pending", rid, local)
            return m.PENDING
        rows.change(
            conn,
            rid,
            **{
                **stop,
                "size": facts.size,
                "sha256": facts.sha256,
                "duration_s": facts.duration_s,
                "sample_rate": facts.sample_rate,
                "channels": facts.channels,
                "legs": self._legs(local) if self.settings.legs else None,
                "muted_spans": (
                    rows.muted_spans(conn, rec.call_id, rec.started_at) if rec.muted else None
                ),
                "status": m.REGISTERED,
                "registered_at": now,
                "error": None,
            },
        )
        if self.transcription.enabled:
            if rec.job is None:
                rows.add_job(conn, rid, m.QUEUED, now)
            elif rec.job == m.LIVE:  # no live follower took it: the queue's now
                rows.queue_job(conn, rid, now)
            # FOLLOWING: the follower sees the recording registered and finishes it
        log.info(
            "recording %s registered: call %s ticket %s %s (%d bytes, %.1f s)",
            rid,
            rec.call_id,
            stop.get("ticket_id", rec.ticket_id),
            local,
            facts.size,
            facts.duration_s or 0.0,
        )
        return m.REGISTERED

    def _settled_facts(self, local: str) -> FileFacts | None:
        try:
            st = os.stat(local)
        except FileNotFoundError:
            return None
        # Asterisk may still be flushing the file right after MixMonitor reported the stop.
        if time.time() - st.st_mtime < self.settings.settle_s:
            return None
        return file_facts(local)

    @staticmethod
    def _legs(local: str) -> dict[str, Any] | None:
        legs: dict[str, Any] = {}
        for name, leg in zip(("in", "out"), leg_paths(local), strict=True):
            if os.path.isfile(leg):
                facts = file_facts(leg, wav=False)
                legs[name] = {"path": leg, "size": facts.size, "sha256": facts.sha256}
        return legs or None

    def register_pending(self, recording_id: int) -> str:
        """Try again to register a recording left pending; returns its status."""
        return self._try_register(recording_id)

    def status(self, recording_id: int) -> str:
        with self.sf() as s:
            status = s.scalar(select(m.Recording.status).where(m.Recording.id == recording_id))
            return status or m.LOST

    def sweep_pending(self) -> dict[str, int]:
        """Re-check recordings whose file was not there yet; returns counts by new status.

        A recording still ``recording`` whose file has not grown for ``stale_recording_s``
        lost its stop (the CTI was down when MixMonitor stopped): taken as stopped then.
        """
        self._close_stale()
        with self.sf() as s:
            ids = list(s.scalars(select(m.Recording.id).where(m.Recording.status == m.PENDING)))
        counts: dict[str, int] = {}
        for rid in ids:
            status = self._try_register(rid)
            counts[status] = counts.get(status, 0) + 1
        return counts

    def _close_stale(self) -> None:
        now = self.clock()
        stale = self.settings.stale_recording_s
        with self.sf() as s:
            rows = list(
                s.scalars(
                    select(m.Recording).where(
                        m.Recording.status == m.RECORDING,
                        m.Recording.started_at < now - timedelta(seconds=stale),
                    )
                )
            )
            for rec in rows:
                try:
                    mtime = os.stat(local_path(self.settings, rec.path)).st_mtime
                except FileNotFoundError:
                    mtime = rec.started_at.timestamp()
                if time.time() - mtime < stale:
                    continue  # still being written: a long call
                rec.status = m.PENDING
                rec.ended_at = max(rec.started_at, datetime.fromtimestamp(mtime, now.tzinfo))
                log.warning(
                    "recording %s of call %s: no stop seen and the file idle for %.0f s: "
                    "taken as stopped",
                    rec.id,
                    rec.call_id,
                    time.time() - mtime,
                )
            s.commit()

    # --- privacy pauses ----------------------------------------------------------------

    def mark_muted(self, call_id: str, muted: bool, at: datetime) -> None:
        """The agent paused (``muted``) or resumed the recording of ``call_id`` at ``at``.

        The AMI ``MixMonitorMute`` action is sent by the CTI's control service; this keeps
        the spans so that the replay can show them.
        """
        with self.sf() as s:
            open_span = s.scalar(
                select(m.RecordingMute)
                .where(m.RecordingMute.call_id == call_id, m.RecordingMute.stopped_at.is_(None))
                .order_by(m.RecordingMute.id.desc())
            )
            if muted and open_span is None:
                s.add(m.RecordingMute(call_id=call_id, started_at=at))
            elif not muted and open_span is not None:
                open_span.stopped_at = at
            else:
                return  # a repeated pause or resume changes nothing
            s.flush()
            for rec in s.scalars(select(m.Recording).where(m.Recording.call_id == call_id)):
                rec.muted_spans = rows.muted_spans(s, call_id, rec.started_at)
            s.commit()
        log.info("recording of call %s %s at %s", call_id, "paused" if muted else "resumed", at)

    # --- retention ---------------------------------------------------------------------

    def apply_retention(self, now: datetime | None = None, *, batch: int = 1000) -> RetentionReport:
        """Delete or move (``retention_action``) files of calls that ended before the cutoff.

        Every file touched is logged; the rows stay (with ``deleted_at``/``archived_at``) so
        that tickets and the audit trail keep pointing at something.
        """
        now = now or self.clock()
        days = self.settings.retention_days
        report = RetentionReport(now - timedelta(days=days), self.settings.retention_action)
        if days == 0:
            log.info("retention: disabled (retention_days = 0)")
            return report
        with self.sf() as s:
            rows = list(
                s.scalars(
                    select(m.Recording)
                    .where(
                        m.Recording.status.in_((m.REGISTERED, m.LOST)),
                        m.Recording.ended_at < report.cutoff,
                    )
                    .order_by(m.Recording.ended_at)
                    .limit(batch)
                )
            )
            for rec in rows:
                report.examined += 1
                try:
                    self._retire(s, rec, now, report)
                except OSError as exc:
                    msg = f"recording {rec.id}: {exc}"
                    report.errors.append(msg)
                    log.error("retention: %s", msg)
                    continue
                s.execute(
                    update(m.TranscriptionJob)
                    .where(
                        m.TranscriptionJob.recording_id == rec.id,
                        m.TranscriptionJob.status == m.QUEUED,
                    )
                    .values(status=m.FAILED, error="recording removed by retention", updated_at=now)
                )
                s.commit()
        log.info(
            "retention (%s, older than %d days, before %s): examined %d, deleted %d, moved %d, "
            "files already gone %d, freed %d bytes, errors %d",
            report.action,
            days,
            report.cutoff.isoformat(),
            report.examined,
            report.deleted,
            report.moved,
            report.missing_files,
            report.freed_bytes,
            len(report.errors),
        )
        return report

    def _retire(self, s: Session, rec: m.Recording, now: datetime, report: RetentionReport) -> None:
        local = local_path(self.settings, rec.path)
        files = [local] + [leg["path"] for leg in (rec.legs or {}).values()]
        if self.settings.retention_action == "delete":
            for f in files:
                try:
                    size = os.path.getsize(f)
                    os.remove(f)
                    report.freed_bytes += size
                    log.info(
                        "retention: deleted %s (recording %s, call %s)", f, rec.id, rec.call_id
                    )
                except FileNotFoundError:
                    report.missing_files += 1
                    log.warning("retention: %s already gone (recording %s)", f, rec.id)
            rec.status = m.DELETED
            rec.deleted_at = now
            report.deleted += 1
            return
        archive = Path(self.settings.archive_dir or "")
        moved_main: str | None = None
        for f in files:
            rel = relative_to_root(self.settings, f) or Path(f).name
            target = archive / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                size = os.path.getsize(f)
                shutil.move(f, target)
                report.freed_bytes += size
                log.info("retention: moved %s -> %s (recording %s)", f, target, rec.id)
            except FileNotFoundError:
                report.missing_files += 1
                log.warning("retention: %s already gone (recording %s)", f, rec.id)
                continue
            if f == local:
                moved_main = str(target)
        rec.status = m.ARCHIVED
        rec.archived_at = now
        rec.archive_path = moved_main
        report.moved += 1

    # --- reading -----------------------------------------------------------------------

    def get(self, recording_id: int) -> m.Recording:
        with self.sf() as s:
            rec = s.get(m.Recording, recording_id)
            if rec is None:
                raise NotFound("no-such-recording", "no such recording", id=recording_id)
            s.expunge(rec)
            return rec

    def audio_path(self, rec: m.Recording, leg: str | None = None) -> str | None:
        """The file to stream for ``rec`` on this machine (the archive after a move)."""
        if leg in ("in", "out"):
            entry = (rec.legs or {}).get(leg)
            path = entry["path"] if entry else None
            if path and rec.status == m.ARCHIVED and rec.archive_path:
                rel = relative_to_root(self.settings, path)
                path = str(Path(self.settings.archive_dir or "") / rel) if rel else None
            return path
        if rec.status == m.ARCHIVED:
            return rec.archive_path
        if rec.status == m.DELETED:
            return None
        return local_path(self.settings, rec.path)

    def segments(self, recording_id: int) -> list[SegmentView]:
        with self.sf() as s:
            rows = s.scalars(
                select(m.TranscriptSegment)
                .where(m.TranscriptSegment.recording_id == recording_id)
                .order_by(m.TranscriptSegment.seq)
            )
            return [
                SegmentView(r.recording_id, r.start, r.end, r.speaker, r.text, r.conf) for r in rows
            ]

    def job_status(self, recording_id: int) -> dict[str, Any] | None:
        with self.sf() as s:
            job = s.scalar(
                select(m.TranscriptionJob).where(m.TranscriptionJob.recording_id == recording_id)
            )
            if job is None:
                return None
            return {"status": job.status, "attempts": job.attempts, "error": job.error}

    def find(
        self,
        *,
        ticket_id: str | None = None,
        agent_id: str | None = None,
        day: date | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[m.Recording]:
        q = select(m.Recording).order_by(m.Recording.started_at.desc(), m.Recording.id.desc())
        if ticket_id:
            q = q.where(m.Recording.ticket_id == ticket_id)
        if agent_id:
            q = q.where(m.Recording.agent_id == agent_id)
        if day is not None:
            tz = ZoneInfo(self.settings.timezone)
            lo = datetime(day.year, day.month, day.day, tzinfo=tz)
            q = q.where(m.Recording.started_at >= lo, m.Recording.started_at < lo + timedelta(1))
        with self.sf() as s:
            rows = list(s.scalars(q.limit(limit).offset(offset)))
            s.expunge_all()
            return rows

    def transcript_for_ticket(self, ticket_id: str) -> TicketTranscript:
        """All transcribed speech of a ticket's calls, in call order then time order."""
        with self.sf() as s:
            recs = list(
                s.scalars(
                    select(m.Recording)
                    .where(m.Recording.ticket_id == ticket_id)
                    .order_by(m.Recording.started_at, m.Recording.id)
                )
            )
            ids = [r.id for r in recs]
            order = {rid: i for i, rid in enumerate(ids)}
            segs = (
                list(
                    s.scalars(
                        select(m.TranscriptSegment).where(m.TranscriptSegment.recording_id.in_(ids))
                    )
                )
                if ids
                else []
            )
            segs.sort(key=lambda g: (order[g.recording_id], g.seq))
            done = (
                set(
                    s.scalars(
                        select(m.TranscriptionJob.recording_id).where(
                            m.TranscriptionJob.recording_id.in_(ids),
                            m.TranscriptionJob.status.in_((m.DONE, m.FAILED)),
                        )
                    )
                )
                if ids
                else set()
            )
            return TicketTranscript(
                ticket_id=ticket_id,
                recordings=tuple(ids),
                segments=tuple(
                    SegmentView(g.recording_id, g.start, g.end, g.speaker, g.text, g.conf)
                    for g in segs
                ),
                pending=tuple(r.id for r in recs if r.id not in done and r.status != m.LOST),
            )

    # --- audit -------------------------------------------------------------------------

    def audit(
        self,
        *,
        user_id: int,
        username: str,
        action: str,
        recording_id: int,
        remote_addr: str = "",
        forwarded_for: str = "",
        user_agent: str = "",
        range_header: str = "",
        session: str = "",
    ) -> bool:
        """Log a play or download. A play with a ``session`` token is logged once per session
        (the browser's further Range requests while seeking are the same play)."""
        with self.sf() as s:
            if session:
                seen = s.scalar(
                    select(func.count(m.ReplayAudit.id)).where(
                        m.ReplayAudit.user_id == user_id,
                        m.ReplayAudit.recording_id == recording_id,
                        m.ReplayAudit.action == action,
                        m.ReplayAudit.session == session,
                    )
                )
                if seen:
                    return False
            s.add(
                m.ReplayAudit(
                    user_id=user_id,
                    username=username[:64],
                    action=action,
                    recording_id=recording_id,
                    at=self.clock(),
                    remote_addr=remote_addr[:64],
                    forwarded_for=forwarded_for[:256],
                    user_agent=user_agent[:256],
                    range=range_header[:64],
                    session=session[:64],
                )
            )
            s.commit()
        log.info(
            "replay audit: %s %s recording %s from %s", username, action, recording_id, remote_addr
        )
        return True

    def audit_log(
        self,
        *,
        recording_id: int | None = None,
        username: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[m.ReplayAudit]:
        q = select(m.ReplayAudit).order_by(m.ReplayAudit.at.desc(), m.ReplayAudit.id.desc())
        if recording_id is not None:
            q = q.where(m.ReplayAudit.recording_id == recording_id)
        if username:
            q = q.where(m.ReplayAudit.username == username)
        if since is not None:
            q = q.where(m.ReplayAudit.at >= since)
        with self.sf() as s:
            rows = list(s.scalars(q.limit(limit)))
            s.expunge_all()
            return rows

    # --- events ------------------------------------------------------------------------

    def deliver_transcript_events(self, limit: int = 100) -> int:
        """Publish ``TranscriptReady`` for jobs finished by the workers since the last call.

        The workers run in other processes (maybe other machines) and publish nothing; the
        CTI calls this periodically from its own loop.
        """
        now = self.clock()
        events: list[TranscriptReady] = []
        with self.sf() as s:
            rows = s.execute(
                select(m.TranscriptionJob.id, m.Recording.id, m.Recording.ticket_id)
                .join(m.Recording, m.Recording.id == m.TranscriptionJob.recording_id)
                .where(
                    m.TranscriptionJob.status == m.DONE, m.TranscriptionJob.notified_at.is_(None)
                )
                .order_by(m.TranscriptionJob.id)
                .limit(limit)
            ).all()
            for job_id, rid, ticket in rows:
                claimed = s.execute(
                    update(m.TranscriptionJob)
                    .where(
                        m.TranscriptionJob.id == job_id, m.TranscriptionJob.notified_at.is_(None)
                    )
                    .values(notified_at=now)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    events.append(TranscriptReady(recording_id=rid, ticket_id=ticket, at=now))
            s.commit()
        if self.bus is not None:
            for event in events:
                self.bus.publish(event)
        return len(events)

    def requeue(self, recording_ids: Sequence[int]) -> int:
        """Transcribe these recordings again (after a model change, say)."""
        now = self.clock()
        with self.sf() as s:
            res = s.execute(
                update(m.TranscriptionJob)
                .where(
                    m.TranscriptionJob.recording_id.in_(list(recording_ids)),
                    or_(m.TranscriptionJob.status == m.DONE, m.TranscriptionJob.status == m.FAILED),
                )
                .values(
                    status=m.QUEUED,
                    attempts=0,
                    lease_until=None,
                    error=None,
                    updated_at=now,
                    notified_at=None,
                )
            )
            s.commit()
            return int(res.rowcount)  # type: ignore[attr-defined]
