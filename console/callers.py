"""Caller flags set by supervisors: a phone number marked as a priority caller (VIP, a
vulnerable citizen), an abusive caller or a frequent caller, with the reason.

Each change is one row of ``caller_flag_events`` (who, when, what, why), written in the same
transaction as the flag. The routing reads the flags from the CTI's caller cache
(``cti.acd.CallerCache``), which the routes here update once the row is committed and the CTI
fills from the table when it starts to lead (a standby's console changes the table, and the
cache of the process that leads next); the classic AGI script reads the table itself. Only the
priority kind changes the route (the caller goes ahead in the line); the others are kept on
the record for the supervisors (the agent desktop does not show them yet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from console.security import User, require_roles
from console.validation import SingleLine
from cti.acd import FLAG_KINDS, PRIORITY_FLAG
from cti.db import utcnow
from cti.errors import NotFound
from cti.models import CallerFlagEvent, CallerFlagRow

Supervisor = Annotated[User, Depends(require_roles("supervisor"))]
# The number as the trunk presents it (the CTI matches calls on it): digits, a leading +.
Number = Annotated[
    str, Path(pattern=r"^\+?[0-9]{3,20}$", description="a phone number, as the trunk sends it")
]
Kind = Literal["priority", "abusive", "frequent"]
FLAG_ACTIONS = ("set", "clear")  # of caller_flag_events
assert set(Kind.__args__) == set(FLAG_KINDS)  # type: ignore[attr-defined]


class FlagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    reason: SingleLine = Field(min_length=2, max_length=200)


class ClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: SingleLine = Field(min_length=2, max_length=200)


def _flag_dict(row: CallerFlagRow) -> dict[str, Any]:
    return {
        "caller": row.caller,
        "kind": row.kind,
        "reason": row.note,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at,
    }


class CallerFlags:
    """The table and its audit trail (blocking: the routes run these in a thread)."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions

    def current(self) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(CallerFlagRow)
                .where(CallerFlagRow.kind != "")
                .order_by(CallerFlagRow.updated_at.desc())
            )
            return [_flag_dict(r) for r in rows]

    def set(self, caller: str, kind: str, reason: str, user: User) -> dict[str, Any]:
        now = utcnow()
        with self.sessions.begin() as session:
            row = session.get(CallerFlagRow, caller, with_for_update=True)
            if row is None:
                row = CallerFlagRow(caller=caller, enterprise=False)
                session.add(row)
            row.kind, row.flagged, row.note = kind, kind == PRIORITY_FLAG, reason
            row.updated_by, row.updated_at = user.username[:32], now
            session.add(self._event(caller, "set", kind, reason, user, now))
            return _flag_dict(row)

    def clear(self, caller: str, reason: str, user: User) -> None:
        now = utcnow()
        with self.sessions.begin() as session:
            row = session.get(CallerFlagRow, caller, with_for_update=True)
            if row is None or not row.kind:
                raise NotFound("no-such-flag", f"{caller} carries no flag")
            kind = row.kind
            row.kind, row.flagged, row.note = "", False, reason
            row.updated_by, row.updated_at = user.username[:32], now
            session.add(self._event(caller, "clear", kind, reason, user, now))

    def events(self, caller: str | None, limit: int) -> list[dict[str, Any]]:
        query = select(CallerFlagEvent).order_by(CallerFlagEvent.id.desc()).limit(limit)
        if caller:
            query = query.where(CallerFlagEvent.caller == caller)
        with self.sessions() as session:
            return [
                {
                    "id": e.id,
                    "caller": e.caller,
                    "action": e.action,
                    "kind": e.kind,
                    "reason": e.reason,
                    "actor": e.actor,
                    "at": e.at,
                }
                for e in session.scalars(query)
            ]

    @staticmethod
    def _event(
        caller: str, action: str, kind: str, reason: str, user: User, at: datetime
    ) -> CallerFlagEvent:
        return CallerFlagEvent(
            caller=caller, action=action, kind=kind, reason=reason, actor=user.username, at=at
        )


def router(hotline: Any, renderer: Any) -> APIRouter:
    flags = CallerFlags(hotline.sessions)
    cache = hotline.callers  # the live routing's (cti.acd.CallerCache), on the loop
    api = APIRouter(tags=["callers"])

    @api.get("/callers", include_in_schema=False)
    async def page(request: Request, user: Supervisor) -> Response:
        return renderer.render("callers", request, title_key="callers.title")  # type: ignore[no-any-return]

    @api.get("/api/caller-flags")
    def list_flags(user: Supervisor) -> list[dict[str, Any]]:
        return flags.current()

    @api.put("/api/caller-flags/{caller}")
    async def set_flag(caller: Number, body: FlagBody, user: Supervisor) -> dict[str, Any]:
        out = await run_in_threadpool(flags.set, caller, body.kind, body.reason, user)
        cache.set_flag(caller, body.kind)  # the next route of this caller sees it
        return out

    @api.post("/api/caller-flags/{caller}/clear", status_code=204)
    async def clear_flag(caller: Number, body: ClearBody, user: Supervisor) -> None:
        await run_in_threadpool(flags.clear, caller, body.reason, user)
        cache.set_flag(caller, None)

    @api.get("/api/audit/caller-flags")
    def flag_audit(
        user: Supervisor,
        caller: Annotated[str | None, Query(pattern=r"^\+?[0-9]{3,20}$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        return flags.events(caller, limit)

    return api
