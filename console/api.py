"""REST routes of the console: the agent's own state, the floor, callbacks, the knowledge
base, today's KPIs, alarms and the window clerk's current call.

Routes that touch the live objects (agents, seats, calls) are ``async def`` so that they run
on the event loop that owns those objects; routes that read the database are plain ``def``
(FastAPI runs them in its thread pool).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from console import scopes
from console.kb import KnowledgeBase
from console.live import LiveHub, window_call
from console.security import ROLES, User, require_roles
from console.users import Users
from console.validation import Identifier, RowId, SingleLine
from cti.db import utcnow
from cti.errors import ApiError, NotFound
from cti.events import CallbackTaskChanged
from cti.models import CallbackTaskRow
from tickets.reports import today_counters

Anyone = Annotated[User, Depends(require_roles(*ROLES))]
Desk = Annotated[User, Depends(require_roles("agent", "leader"))]
DeskOrFloor = Annotated[User, Depends(require_roles("agent", "leader", "supervisor"))]
Floor = Annotated[User, Depends(require_roles("supervisor"))]
Leaders = Annotated[User, Depends(require_roles("supervisor", "leader"))]
Readers = Annotated[User, Depends(require_roles("agent", "leader", "supervisor", "window"))]
Window = Annotated[User, Depends(require_roles("window"))]
Admin = Annotated[User, Depends(require_roles("admin"))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeatLogin(_Body):
    seat: Identifier
    ready: bool = False


class NotReady(_Body):
    reason: Identifier


class CallbackCall(_Body):
    note: SingleLine = Field(default="", max_length=200)


def user_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(user.roles),
        "agent_id": user.agent_id,
        "window_id": user.window_id,
        "department_id": user.department_id,
        "home": home_page(user),
    }


def home_page(user: User) -> str:
    if user.has("supervisor"):
        return "/wallboard"
    if user.has("agent", "leader") and user.agent_id:
        return "/agent"
    if user.has("window") and user.window_id:
        return "/window"
    return "/home"


def _agent_id(user: User) -> str:
    if not user.agent_id:
        raise ApiError(409, "no-agent-identity", "this login has no agent identity")
    return user.agent_id


def router(hotline: Any, hub: LiveHub, kb: KnowledgeBase, users: Users) -> APIRouter:
    api = APIRouter()
    settings = hotline.settings
    tz = ZoneInfo(settings.site.timezone)

    def my_agent(user: User) -> dict[str, Any]:
        agent = hotline.agents.get(_agent_id(user))
        now = time.monotonic()
        call = hub.current_call(agent.id)
        return {
            **agent.to_dict(now),
            "call": scopes.public_call(user, call.to_dict(now)) if call is not None else None,
            "reasons": sorted(settings.control.not_ready_reasons),
            "wrapup_s": settings.control.wrapup_s,
            "shifts": leader_shifts(agent.id),
        }

    def leader_shifts(agent_id: str) -> list[dict[str, Any]]:
        now = utcnow()
        return [
            {
                "seat": s.seat,
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "topics": list(s.topics),
                "title": s.title,
                "on_duty": s.start <= now < s.end,
            }
            for s in settings.leader_shifts
            if s.agent == agent_id and s.end > now
        ]

    # --- who am I -------------------------------------------------------------------

    @api.get("/api/me", tags=["console"])
    async def me(user: Anyone) -> dict[str, Any]:
        out = user_dict(user)
        if user.agent_id and hotline.agents.find(user.agent_id) is not None:
            out["agent"] = my_agent(user)
        return out

    # --- the agent's own state --------------------------------------------------------

    @api.get("/api/agents/me", tags=["agents"])
    async def agent_me(user: Desk) -> dict[str, Any]:
        return my_agent(user)

    @api.post("/api/agents/me/login", tags=["agents"])
    async def agent_login(body: SeatLogin, user: Desk) -> dict[str, Any]:
        hotline.agents.login(_agent_id(user), body.seat, ready=body.ready)
        return my_agent(user)

    @api.post("/api/agents/me/ready", tags=["agents"])
    async def agent_ready(user: Desk) -> dict[str, Any]:
        hotline.agents.set_ready(_agent_id(user))
        return my_agent(user)

    @api.post("/api/agents/me/not-ready", tags=["agents"])
    async def agent_not_ready(body: NotReady, user: Desk) -> dict[str, Any]:
        hotline.agents.set_not_ready(_agent_id(user), body.reason)
        return my_agent(user)

    @api.post("/api/agents/me/logout", tags=["agents"])
    async def agent_logout(user: Desk) -> dict[str, Any]:
        hotline.agents.logout(_agent_id(user))
        return my_agent(user)

    @api.post("/api/agents/me/wrapup-done", tags=["agents"])
    async def agent_wrapup_done(user: Desk) -> dict[str, Any]:
        hotline.agents.end_wrapup(_agent_id(user))
        return my_agent(user)

    # --- the floor --------------------------------------------------------------------

    @api.get("/api/calls", tags=["calls"])
    async def calls(user: Floor) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [scopes.public_call(user, c.to_dict(now)) for c in hotline.tracker.active_calls()]

    @api.get("/api/calls/waiting", tags=["calls"])
    async def waiting(
        user: Floor,
        agents: bool = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> dict[str, Any]:
        """The head of the ACD's line (``limit`` calls in service order; ``waiting_total``
        and ``waiting_by_skill`` count the whole line) and its reserved calls; the router's
        agents with ``agents=1``, else their number per state (the wallboard polls this)."""
        return dict(hotline.acd.snapshot(agents=agents, limit=limit))

    @api.get("/api/seats", tags=["seats"])
    async def seats(user: DeskOrFloor) -> list[dict[str, Any]]:
        return [s.to_dict() for s in hotline.seats.all()]

    @api.get("/api/agents", tags=["agents"])
    async def agents(user: Floor) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [a.to_dict(now) for a in hotline.agents.all()]

    @api.get("/api/alarms", tags=["floor"])
    async def alarms(user: Floor) -> list[dict[str, Any]]:
        return list(reversed(hub.alarms))

    # --- callbacks (漏接回拨) ----------------------------------------------------------

    @api.get("/api/callbacks", tags=["callbacks"])
    def callbacks(
        user: DeskOrFloor,
        caller: Annotated[str | None, Query(pattern=r"^\+?[0-9]{3,20}$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
    ) -> list[dict[str, Any]]:
        query = select(CallbackTaskRow).where(CallbackTaskRow.status != "done")
        if caller:
            query = query.where(CallbackTaskRow.caller == caller)
        query = query.order_by(CallbackTaskRow.first_call_at, CallbackTaskRow.id).limit(limit)
        with hotline.sessions() as session:
            return [_callback_dict(r) for r in session.scalars(query)]

    claiming: set[int] = set()  # callback tasks a request is claiming and dialling now

    @api.post("/api/callbacks/{task_id}/call", tags=["callbacks"])
    async def callback_call(task_id: RowId, body: CallbackCall, user: Desk) -> dict[str, Any]:
        """Ring the agent's seat and dial the citizen back (control.callback)."""
        control = hotline.control
        if control is None or not hasattr(control, "callback"):
            raise ApiError(503, "control-unavailable", "call control is not available")
        agent = hotline.agents.get(_agent_id(user))
        if not agent.seat:
            raise ApiError(409, "not-at-seat", "log in at a seat first")
        taken = ApiError(
            409,
            "callback-taken",
            "another agent is calling this citizen back",
            {"task_id": task_id},
        )
        # A second click while the first is still between its claim and its Originate is
        # refused here: the agent it is for is not ringing yet, so the check below cannot
        # see it.
        if task_id in claiming:
            raise taken
        claiming.add(task_id)
        try:
            task = await asyncio.to_thread(_callback_task, hotline.sessions, task_id)
            owner = task["assigned_agent"]
            # A task another agent is calling back right now (their seat ringing for it, or
            # on the call) is theirs; one whose last attempt is over (the citizen did not
            # answer) may be taken by anyone.
            owner_calling = (
                bool(owner)
                and owner != agent.id
                and (_on_a_call(hotline.agents, owner) or control.calling_back(owner))
            )
            claimed = await asyncio.to_thread(
                _claim_callback, hotline.sessions, task, agent.id, owner_calling
            )
            if not claimed:
                raise taken
            try:
                result = await control.callback(agent.id, task["caller"])
            except BaseException:
                await asyncio.to_thread(_release_callback, hotline.sessions, task, agent.id)
                raise
        finally:
            claiming.discard(task_id)
        if body.note:
            await asyncio.to_thread(_callback_note, hotline.sessions, task_id, body.note)
        hotline.bus.publish(
            CallbackTaskChanged(
                task_id=task_id, caller=task["caller"], status="calling", at=utcnow()
            )
        )
        return {"task_id": task_id, "result": _plain(result)}

    # --- knowledge base ---------------------------------------------------------------

    @api.get("/api/kb/search", tags=["knowledge"])
    def kb_search(
        user: Readers,
        q: Annotated[str, Query(min_length=1, max_length=100)],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        return {"query": q, "results": kb.search(q, limit)}

    # --- KPIs -------------------------------------------------------------------------

    @api.get("/api/kpi/today", tags=["reports"])
    def kpi_today(user: Leaders) -> dict[str, Any]:
        return today_kpis(hotline.sessions, tz)

    # --- window staff -----------------------------------------------------------------

    @api.get("/api/window/current", tags=["windows"])
    async def window_current(user: Window) -> dict[str, Any]:
        window = next((w for w in settings.windows if w.id == user.window_id), None)
        if window is None:
            raise NotFound("no-such-window", f"no window {user.window_id!r}")
        call = window_call(hotline.tracker, window.extension)
        live_ticket = call.ticket_id if call is not None else ""
        if live_ticket:
            hub.remember_window_ticket(window.id, live_ticket)
            control = getattr(hotline, "control", None)
            if control is not None:
                # The window has just joined: its page shows the ticket once that is on record.
                await control.window_joined(window.id, live_ticket)
        recent = hub.window_tickets(window.id)
        # Only tickets the window may open: those it joined a three-way call about (a call
        # put through to the window, or still ringing there, shows none).
        visible = await asyncio.to_thread(
            scopes.visible_ticket_ids,
            hotline.tickets.sessions,
            user,
            [live_ticket, *(r["ticket_id"] for r in recent)],
        )
        ticket_id = live_ticket if live_ticket in visible else ""
        return {
            "window": {"id": window.id, "name": window.name, "extension": window.extension},
            "call": (
                {
                    "call_id": call.call_id,
                    "state": call.state,
                    "topic": call.topic,
                    "agent_id": call.agent_id,
                    "ticket_id": ticket_id,
                }
                if call is not None
                else None
            ),
            "ticket_id": ticket_id,
            "recent": [r for r in recent if r["ticket_id"] in visible],
        }

    # --- administration ---------------------------------------------------------------

    @api.get("/api/audit/logins", tags=["audit"])
    def login_audit(
        user: Admin, limit: Annotated[int, Query(ge=1, le=5000)] = 200
    ) -> list[dict[str, Any]]:
        return users.login_log(limit)

    return api


def _callback_dict(r: CallbackTaskRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "caller": r.caller,
        "caller_name": r.caller_name,
        "did": r.did,
        "topic": r.topic,
        "first_call_at": r.first_call_at.isoformat(),
        "last_call_at": r.last_call_at.isoformat(),
        "missed_calls": r.missed_calls,
        "status": r.status,
        "attempts": r.attempts,
        "assigned_agent": r.assigned_agent,
    }


def _callback_task(sessions: Any, task_id: int) -> dict[str, Any]:
    with sessions() as session:
        row = session.get(CallbackTaskRow, task_id)
        if row is None:
            raise NotFound("no-such-callback", f"no callback task {task_id}", task_id=task_id)
        if row.status == "done":
            raise ApiError(409, "callback-done", "the citizen was reached already")
        return _callback_dict(row)


def _on_a_call(agents: Any, agent_id: str) -> bool:
    agent = agents.find(agent_id)
    return agent is not None and agent.state in ("ringing", "on_call")


def _claim_callback(
    sessions: Any, task: dict[str, Any], agent_id: str, owner_calling: bool
) -> bool:
    """Take the task for one attempt, atomically: the update applies only if nobody took it
    since ``task`` was read (same attempts count), so of two clicks at once only one dials the
    citizen. A task another agent is calling back (``owner_calling``) is refused."""
    row = CallbackTaskRow
    allowed = row.status != "done"
    if owner_calling:
        allowed = allowed & (row.status == "open")
    claim = (
        update(row)
        .where(row.id == task["id"], row.attempts == task["attempts"], allowed)
        .values(status="calling", attempts=row.attempts + 1, assigned_agent=agent_id)
    )
    with sessions.begin() as session:
        return bool(session.execute(claim).rowcount)


def _release_callback(sessions: Any, task: dict[str, Any], agent_id: str) -> None:
    """The dial was refused (the seat busy, the node down): the attempt did not happen, so the
    task goes back as it was, unless somebody took it meanwhile."""
    row = CallbackTaskRow
    with sessions.begin() as session:
        session.execute(
            update(row)
            .where(
                row.id == task["id"],
                row.status == "calling",
                row.assigned_agent == agent_id,
                row.attempts == task["attempts"] + 1,
            )
            .values(
                status=task["status"],
                attempts=row.attempts - 1,
                assigned_agent=task["assigned_agent"],
            )
        )


def _callback_note(sessions: Any, task_id: int, note: str) -> None:
    with sessions.begin() as session:
        row = session.get(CallbackTaskRow, task_id, with_for_update=True)
        if row is not None:
            row.note = (row.note + "\n" + note).strip()[-2000:]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)


def today_kpis(sessions: Any, tz: ZoneInfo, now: datetime | None = None) -> dict[str, Any]:
    """Today's inbound calls (local day of the site): offered, answered, answered within
    15 s, abandoned, ASA, and the same per hour for the chart. The calls and formulas are
    those of the period table (``tickets.reports.today_counters``), so both agree."""
    with sessions() as session:
        return today_counters(session.connection(), now or utcnow(), str(tz))
