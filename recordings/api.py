"""REST routes and the replay page.

Supervisors and administrators see every recording; agents and leaders only the recordings
of their own calls (``agent_id``): the recording rule, ``console.scopes.can_see_recording``,
which every route here asks (and the ticket routes, for the transcript inside a ticket).
Every play and download is written to the replay audit: a play is a request starting at
byte 0 (a full GET, or ``Range: bytes=0-``); the page sends a ``session`` token so that one
page view is one play however often the listener seeks.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from console import scopes
from console.security import User, require_roles
from console.validation import (
    DayQuery,
    FileName,
    KeyQuery,
    MomentQuery,
    Offset,
    RowId,
    RowIdQuery,
    TicketId,
    TicketIdQuery,
)
from cti.errors import ApiError, Forbidden, NotFound
from recordings import models as m
from recordings.audio import peaks
from recordings.service import RecordingService
from recordings.settings import RecordingSettings

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"replay.html", "replay.js", "replay.css"}
CHUNK = 64 * 1024
VIEWERS = ("agent", "leader", "supervisor")
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def can_see(user: User, rec: m.Recording) -> bool:
    return scopes.can_see_recording(user, rec.agent_id)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single ``bytes=`` range; None to serve the whole file.

    Raises ``ValueError`` for a malformed or unsatisfiable range (answered with 416).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # a unit we do not know: ignore the header (RFC 9110)
    if "," in spec:
        return None  # several ranges: serve the whole file rather than multipart
    mt = _RANGE.match(spec)
    if not mt or (not mt.group(1) and not mt.group(2)):
        raise ValueError(f"bad range {header!r}")
    first_s, last_s = mt.groups()
    if not first_s:  # suffix: the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first >= size or last < first:
        raise ValueError(f"range {header!r} not satisfiable for {size} bytes")
    return first, min(last, size - 1)


def _iter_file(path: str, first: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(first)
        left = length
        while left > 0:
            block = fh.read(min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block


def _rec_dict(rec: m.Recording) -> dict[str, Any]:
    return {
        "id": rec.id,
        "call_id": rec.call_id,
        "node": rec.node,
        "ticket_id": rec.ticket_id,
        "agent_id": rec.agent_id,
        "started_at": rec.started_at.isoformat(),
        "ended_at": rec.ended_at.isoformat(),
        "duration_s": rec.duration_s,
        "size": rec.size,
        "sha256": rec.sha256,
        "status": rec.status,
        "legs": sorted((rec.legs or {}).keys()),
        "muted_spans": rec.muted_spans or [],
    }


def router(service: RecordingService, settings: RecordingSettings) -> APIRouter:
    r = APIRouter()
    viewer = Depends(require_roles(*VIEWERS))
    admin = Depends(require_roles("admin"))

    def visible(recording_id: int, user: User) -> m.Recording:
        rec = service.get(recording_id)
        if not can_see(user, rec):
            raise scopes.recording_refused(recording_id)
        return rec

    @r.get("/api/recordings")
    def list_recordings(
        ticket_id: TicketIdQuery = None,
        agent_id: KeyQuery = None,
        date_: Annotated[DayQuery, Query(alias="date")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Offset = 0,
        user: User = viewer,
    ) -> dict[str, Any]:
        agent_id = scopes.recording_scope(user, agent_id)
        if agent_id == "":
            return {"recordings": []}
        rows = service.find(
            ticket_id=ticket_id, agent_id=agent_id, day=date_, limit=limit, offset=offset
        )
        return {"recordings": [_rec_dict(x) for x in rows]}

    @r.get("/api/recordings/{recording_id}")
    def get_recording(recording_id: RowId, user: User = viewer) -> dict[str, Any]:
        rec = visible(recording_id, user)
        out = _rec_dict(rec)
        out["transcription"] = service.job_status(recording_id)
        out["segments"] = [s.to_dict() for s in service.segments(recording_id)]
        return out

    @r.get("/api/recordings/{recording_id}/waveform")
    def waveform(
        recording_id: RowId,
        points: Annotated[int, Query(ge=10, le=5000)] = 800,
        user: User = viewer,
    ) -> dict[str, Any]:
        rec = visible(recording_id, user)
        path = service.audio_path(rec)
        if not path or not os.path.isfile(path):
            raise ApiError(410, "recording-gone", "the audio file is no longer available")
        return peaks(path, points)

    @r.get("/api/recordings/{recording_id}/audio")
    def audio(
        recording_id: RowId,
        request: Request,
        download: bool = False,
        leg: Annotated[str | None, Query(pattern="^(in|out)$")] = None,
        session: Annotated[str, Query(max_length=64)] = "",
        user: User = viewer,
    ) -> Response:
        rec = visible(recording_id, user)
        if rec.status == m.RECORDING:
            raise ApiError(
                409,
                "recording-in-progress",
                "the call is still being recorded: listen in live from the wallboard",
                {"status": rec.status},
            )
        path = service.audio_path(rec, leg)
        if not path or not os.path.isfile(path):
            raise ApiError(
                410,
                "recording-gone",
                "the audio file is no longer available",
                {"status": rec.status},
            )
        size = os.path.getsize(path)
        etag = (
            f'"{rec.sha256}"'
            if rec.sha256 and not leg
            else f'"{size}-{int(os.path.getmtime(path))}"'
        )
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, no-store"}
        if download:
            name = f"recording-{rec.id}{'-' + leg if leg else ''}.wav"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        range_header = request.headers.get("range", "")
        if_range = request.headers.get("if-range")
        span: tuple[int, int] | None = None
        if range_header and (if_range is None or if_range == etag):
            try:
                span = parse_range(range_header, size)
            except ValueError:
                return Response(
                    status_code=416,
                    headers={**headers, "Content-Range": f"bytes */{size}"},
                )
        first = span[0] if span else 0
        if first == 0:
            service.audit(
                user_id=user.id,
                username=user.username,
                action="download" if download else "play",
                recording_id=rec.id,
                remote_addr=request.client.host if request.client else "",
                forwarded_for=request.headers.get("x-forwarded-for", ""),
                user_agent=request.headers.get("user-agent", ""),
                range_header=range_header,
                session=session,
            )
        if span is None:
            headers["Content-Length"] = str(size)
            return StreamingResponse(
                _iter_file(path, 0, size), media_type="audio/wav", headers=headers
            )
        first, last = span
        length = last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(length)
        return StreamingResponse(
            _iter_file(path, first, length),
            status_code=206,
            media_type="audio/wav",
            headers=headers,
        )

    @r.get("/api/audit/replay")
    def replay_audit(
        recording_id: RowIdQuery = None,
        username: KeyQuery = None,
        since: MomentQuery = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
        user: User = admin,
    ) -> dict[str, Any]:
        rows = service.audit_log(
            recording_id=recording_id, username=username, since=since, limit=limit
        )
        return {
            "entries": [
                {
                    "id": a.id,
                    "at": a.at.isoformat(),
                    "user_id": a.user_id,
                    "username": a.username,
                    "action": a.action,
                    "recording_id": a.recording_id,
                    "remote_addr": a.remote_addr,
                    "forwarded_for": a.forwarded_for,
                    "user_agent": a.user_agent,
                    "range": a.range,
                }
                for a in rows
            ]
        }

    @r.get("/api/tickets/{ticket_id}/transcript")
    def ticket_transcript(ticket_id: TicketId, user: User = viewer) -> dict[str, Any]:
        rows = service.find(ticket_id=ticket_id, limit=1000)
        if not scopes.can_see_recordings(user, (x.agent_id for x in rows)):
            raise Forbidden("recording-not-yours", "the ticket has other agents' calls")
        return service.transcript_for_ticket(ticket_id).to_dict()

    @r.get("/replay/{recording_id}")
    def replay_page(recording_id: RowId, user: User = viewer) -> FileResponse:
        visible(recording_id, user)
        return FileResponse(STATIC / "replay.html", media_type="text/html; charset=utf-8")

    @r.get("/replay-static/{name}")
    def replay_static(name: FileName, user: User = viewer) -> FileResponse:
        if name not in STATIC_FILES:
            raise NotFound("no-such-file", "no such file", name=name)
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media.startswith("text/") or media.endswith("javascript"):
            media += "; charset=utf-8"
        return FileResponse(STATIC / name, media_type=media)

    return r


def error_response(exc: ApiError) -> JSONResponse:
    """The JSON body the console gives ``ApiError``s (for apps mounting only this router)."""
    return JSONResponse(exc.to_dict(), status_code=exc.status)
