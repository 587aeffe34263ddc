"""REST routes of the ticket slice.

Every route a person uses declares its roles with ``Depends(require_roles(...))``, and every
route that returns or acts on a ticket asks ``console.scopes`` which tickets the user reaches
(``visible_ticket``, ``ticket_scope``) and what of them (``present_ticket``): department users
their unit's tickets, window staff those their window was in a three-way call about, the
transcript by the recording rule; a ticket out of scope answers as a missing one (404).
``POST /api/sms/status`` is
twilio's delivery-report webhook: it has no user session, and is admitted by its
``X-Twilio-Signature`` (HMAC of the configured ``sms.status_callback_url`` and the form
parameters with the auth token) instead; a bad or missing signature is a 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from console import scopes
from console.security import User, require_roles
from console.validation import (
    CallerPath,
    CallIdText,
    Identifier,
    KeyQuery,
    MultiLine,
    Offset,
    RowId,
    SingleLine,
    TicketId,
    TicketIdQuery,
    TicketIdText,
)
from cti.errors import Forbidden, Invalid, NotFound
from cti.models import CallRow
from tickets.attachments import TooLarge, read_chunks, store
from tickets.hotspots import load_records, weekly_hotspots
from tickets.reports import build_report, parse_period, to_json
from tickets.service import TicketService
from tickets.sms import SmsNotifier
from tickets.statemachine import DEPARTMENT, Actor

DESK = ("agent", "leader", "supervisor")
EVERYONE = ("agent", "leader", "window", "supervisor", DEPARTMENT)


DeskUser = Annotated[User, Depends(require_roles(*DESK))]
DeskOrUnit = Annotated[User, Depends(require_roles(*DESK, DEPARTMENT))]
AnyUser = Annotated[User, Depends(require_roles(*EVERYONE))]
ReportUser = Annotated[User, Depends(require_roles("supervisor", "leader"))]
SupervisorUser = Annotated[User, Depends(require_roles("supervisor"))]
WindowUser = Annotated[User, Depends(require_roles("window"))]
# 2026-10, 2026-Q4, 2026-W41 or 2026 (tickets.reports.parse_period)
Period = Annotated[str, Query(max_length=16)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransitionBody(_Body):
    action: str = Field(pattern=r"^[a-z_]{1,32}$")
    reason: MultiLine = Field(default="", max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)


class MergeBody(_Body):
    into: TicketIdText
    reason: MultiLine = Field(default="", max_length=2000)


class FieldsBody(_Body):
    """The fields a person edits (``TicketService.update_fields`` checks them again, and the
    category against the configuration). ``channel`` is accepted only to be refused with its
    reason: the intake path sets it."""

    citizen_name: SingleLine | None = Field(None, max_length=50)
    occurred: SingleLine | None = Field(None, max_length=100)
    location: SingleLine | None = Field(None, max_length=200)
    description: MultiLine | None = Field(None, max_length=20_000)
    contact_phone: SingleLine | None = Field(None, max_length=20)
    category: SingleLine | None = Field(None, max_length=50)
    channel: SingleLine | None = Field(None, max_length=16)
    enterprise: bool | None = None


class CallBody(_Body):
    """A call the CTI recorded, by its id (and node, when several nodes have one of that id):
    its caller, agent, time and recording come from the CTI's record, never from the client."""

    call_id: CallIdText
    node: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,32}$")


class WindowOutcomeBody(_Body):
    window_id: Identifier
    text: MultiLine = Field(min_length=1, max_length=5000)


def _recorded_call(service: TicketService, user: User, call_id: str, node: str) -> CallRow:
    """The call the CTI recorded as ``call_id``: an agent attaches only calls they answered
    (another agent's call answers as a missing one), supervisors any."""
    query = select(CallRow).where(CallRow.linkedid == call_id)
    if node:
        query = query.where(CallRow.node == node)
    with service.sessions() as session:
        rows = list(session.scalars(query.limit(2)))
        session.expunge_all()
    if len(rows) > 1:
        raise Invalid("node-required", f"several nodes have a call {call_id}: name the node")
    call = rows[0] if rows else None
    if call is None or not scopes.owns_call(user, call.agent_id):
        raise NotFound("no-such-call", f"no call {call_id} of yours", call_id=call_id)
    return call


def router(
    service: TicketService,
    *,
    sms: SmsNotifier | None = None,
    clock: Callable[[], datetime] | None = None,
    window_joined: Callable[[str, str], Awaitable[None]] | None = None,
) -> APIRouter:
    """``window_joined(window_id, ticket_id)``: awaited before a window's answer is checked
    against the ticket, so that a window that has just joined a call about it is on record
    (``cti.control.CallControl.window_joined``)."""
    api = APIRouter()
    now = clock or (lambda: datetime.now(UTC))

    @api.get("/api/tickets")
    def list_tickets(
        user: DeskOrUnit,
        state: KeyQuery = None,
        department: KeyQuery = None,
        caller: KeyQuery = None,
        limit: int = Query(50, ge=1, le=500),
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        views = service.list_tickets(
            state=state,
            department_id=department,
            caller=caller,
            limit=limit,
            offset=offset,
            scope=scopes.ticket_scope(user),
        )
        return [scopes.present_ticket(user, v.to_dict()) for v in views]

    @api.get("/api/tickets/{ticket_id}")
    def get_ticket(ticket_id: TicketId, user: AnyUser) -> dict[str, Any]:
        return scopes.present_ticket(user, scopes.visible_ticket(service, user, ticket_id))

    @api.patch("/api/tickets/{ticket_id}")
    def update_ticket(ticket_id: TicketId, body: FieldsBody, user: DeskUser) -> dict[str, Any]:
        # The floor shares the backlog: an edit of another agent's ticket is allowed and
        # audited with the handler's name (TicketService.update_fields).
        data = scopes.visible_ticket(service, user, ticket_id)
        fields = body.model_dump(exclude_none=True)
        not_theirs = not scopes.handled_by(user, data)
        view = service.update_fields(ticket_id, user, not_theirs=not_theirs, **fields)
        return scopes.present_ticket(user, view.to_dict())

    @api.post("/api/tickets/{ticket_id}/transitions")
    def transition(ticket_id: TicketId, body: TransitionBody, user: DeskOrUnit) -> dict[str, Any]:
        scopes.visible_ticket(service, user, ticket_id)
        into = body.data.get("into") if body.action == "merge" else None
        if isinstance(into, str) and into:
            scopes.visible_ticket(service, user, into)  # a merge acts on both tickets
        view = service.transition(ticket_id, body.action, user, body.reason, **body.data)
        return scopes.present_ticket(user, view.to_dict())

    @api.post("/api/tickets/{ticket_id}/attachments", status_code=201)
    async def upload_attachment(
        ticket_id: TicketId, request: Request, file: UploadFile, user: DeskOrUnit
    ) -> dict[str, Any]:
        """A file for the ticket (multipart field ``file``): a photo, a letter, a report."""
        settings = service.settings
        max_bytes = int(settings.attachment_max_mb * 1024 * 1024)
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_bytes + 64 * 1024:  # refused before reading the body
            raise TooLarge(max_bytes)
        await asyncio.to_thread(scopes.visible_ticket, service, user, ticket_id)
        stored = await asyncio.to_thread(
            store,
            Path(settings.attachments_dir),
            ticket_id,
            file.filename or "attachment",
            file.content_type or "application/octet-stream",
            read_chunks(file.file),
            max_bytes=max_bytes,
            allowed=list(settings.attachment_types),
        )
        view = await asyncio.to_thread(
            service.add_attachment,
            ticket_id,
            user,
            name=stored.name,
            path=stored.path,
            content_type=stored.content_type,
            size=stored.size,
        )
        return scopes.present_ticket(user, view.to_dict())

    @api.get("/api/tickets/{ticket_id}/attachments/{attachment_id}")
    def download_attachment(ticket_id: TicketId, attachment_id: RowId, user: AnyUser) -> Response:
        data = scopes.visible_ticket(service, user, ticket_id)
        for a in data["attachments"]:
            if a["id"] == attachment_id:
                path = service.attachment_path(ticket_id, attachment_id)
                if path is None or not Path(path).is_file():
                    raise NotFound("attachment-file-missing", "the file is no longer there")
                return FileResponse(
                    path,
                    media_type=a["content_type"],
                    filename=a["name"],
                    headers={
                        "X-Content-Type-Options": "nosniff",
                        "Content-Security-Policy": "default-src 'none'; sandbox",
                        "Cache-Control": "private, no-store",
                    },
                )
        raise NotFound("no-such-attachment", f"no attachment {attachment_id} on {ticket_id}")

    @api.post("/api/tickets/{ticket_id}/merge")
    def merge(ticket_id: TicketId, body: MergeBody, user: DeskUser) -> dict[str, Any]:
        scopes.visible_ticket(service, user, ticket_id)
        scopes.visible_ticket(service, user, body.into)
        view = service.merge(ticket_id, body.into, user, body.reason)
        return scopes.present_ticket(user, view.to_dict())

    @api.post("/api/tickets/{ticket_id}/calls")
    def attach_call(ticket_id: TicketId, body: CallBody, user: DeskUser) -> dict[str, Any]:
        scopes.visible_ticket(service, user, ticket_id)
        call = _recorded_call(service, user, body.call_id, body.node)
        view = service.attach_call(
            ticket_id,
            call.linkedid,
            node=call.node,
            caller=call.caller,
            agent_id=call.agent_id,
            answered_at=call.answered_at,
            recording_path=call.recording,
            actor=Actor.from_user(user),
        )
        return scopes.present_ticket(user, view.to_dict())

    @api.post("/api/tickets/{ticket_id}/window-outcomes")
    async def window_outcome(
        ticket_id: TicketId,
        body: WindowOutcomeBody,
        user: WindowUser,
    ) -> dict[str, Any]:
        if window_joined is not None and body.window_id == user.window_id:
            await window_joined(body.window_id, ticket_id)

        def write() -> dict[str, Any]:
            # Only the window's own staff, on a ticket their window was in a three-way call
            # about.
            scopes.window_outcome_ticket(service, user, body.window_id, ticket_id)
            view = service.add_window_outcome(ticket_id, body.window_id, body.text, user)
            return scopes.present_ticket(user, view.to_dict())

        return await asyncio.to_thread(write)

    @api.get("/api/callers/{caller}/tickets")
    def caller_history(
        caller: CallerPath,
        user: DeskUser,
        limit: int = Query(20, ge=1, le=200),
    ) -> list[dict[str, Any]]:
        views = service.history_for_caller(caller, limit, scope=scopes.ticket_scope(user))
        return [scopes.present_ticket(user, v.to_dict()) for v in views]

    @api.get("/api/departments")
    def departments(user: AnyUser) -> list[dict[str, Any]]:
        return service.departments()

    @api.get("/api/reports/kpi")
    def kpi_report(period: Period, user: ReportUser) -> dict[str, Any]:
        try:
            parsed = parse_period(period, service.settings.timezone)
        except ValueError as exc:
            raise Invalid("invalid-period", str(exc)) from exc
        with service.sessions() as session:
            report = build_report(
                session.connection(), parsed, service.settings, as_of=now(), with_hotspots=False
            )
        return {
            "period": parsed.label,
            "departments": to_json(report),
            "bottom_three": [r.department_id for r in report.bottom_three],
            "repeat_callers": [
                {"caller": r.caller, "category": r.category, "count": r.count}
                for r in report.repeat_callers
            ],
            "occupancy": report.occupancy.to_dict() if report.occupancy is not None else None,
        }

    @api.get("/api/reports/hotspots")
    def hotspot_report(period: Period, user: ReportUser) -> list[dict[str, Any]]:
        try:
            parsed = parse_period(period, service.settings.timezone)
        except ValueError as exc:
            raise Invalid("invalid-period", str(exc)) from exc
        with service.sessions() as session:
            records = load_records(session.connection(), parsed)
        return [w.to_dict() for w in weekly_hotspots(records, service.settings.timezone)]

    if sms is None:
        return api

    @api.get("/api/sms")
    def sms_messages(
        user: SupervisorUser,
        status: KeyQuery = None,
        ticket_id: TicketIdQuery = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        return sms.messages(status=status, ticket_id=ticket_id, limit=limit)

    @api.post("/api/sms/{message_id}/retry", status_code=204)
    def sms_retry(message_id: RowId, user: SupervisorUser) -> Response:
        sms.retry(message_id)
        return Response(status_code=204)

    @api.post("/api/sms/status", status_code=204)
    async def sms_status(request: Request) -> Response:
        # No session: twilio signs the request instead (see the module docstring).
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not sms.verify(str(request.url), params, signature):
            raise Forbidden("bad-signature", "the X-Twilio-Signature does not match")
        await asyncio.to_thread(sms.handle_status, params)
        return Response(status_code=204)

    return api
