"""REST routes of call control (``/api/control/...``) and the window directory
(``/api/windows``).

Agents and leaders act on their own call: the agent id is the logged-in user's, never one
from the request. Supervisors (and administrators) may name the agent, to help or to take
a stuck call down. Spying is for supervisors. A window's answer comes only from the window's
own staff, on a ticket their window was in a three-way call about (``console.scopes``); any
other ticket answers 404 as a missing one.
Errors are ``cti.errors.ApiError``s (status, stable id, details); the console renders them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from console import scopes
from console.scopes import acting_agent  # the own-call rule, with the other scopes
from console.security import User, require_roles
from console.validation import KeyQuery, MomentQuery, MultiLine, TicketIdText

DESK = ("agent", "leader", "supervisor")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str | None = Field(None, max_length=64)


class Target(Body):
    target: str = Field(max_length=64)


class ThreeWay(Body):
    window_id: str = Field(max_length=64)
    ticket_id: TicketIdText | None = None


class Police(Body):
    ticket_id: TicketIdText


class Callback(Body):
    number: str = Field(max_length=32)
    ticket_id: TicketIdText | None = None


class Mute(Body):
    muted: bool


class Spy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seat: str = Field(max_length=64)
    agent_id: str = Field(max_length=64)
    mode: Literal["listen", "whisper", "barge"] = "listen"


class WindowOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: TicketIdText
    text: MultiLine = Field(max_length=4000)


def router(control: Any) -> APIRouter:
    api = APIRouter()
    desk = Depends(require_roles(*DESK))
    supervisors = Depends(require_roles("supervisor"))
    window_staff = Depends(require_roles("window"))
    anyone = Depends(require_roles("agent", "leader", "window", "supervisor"))

    @api.post("/api/control/hold")
    async def hold(body: Body | None = None, user: User = desk) -> dict[str, Any]:
        return dict(await control.hold(acting_agent(user, body.agent_id if body else None)))

    @api.post("/api/control/unhold")
    async def unhold(body: Body | None = None, user: User = desk) -> dict[str, Any]:
        return dict(await control.unhold(acting_agent(user, body.agent_id if body else None)))

    @api.post("/api/control/blind-transfer")
    async def blind_transfer(body: Target, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, body.agent_id)
        return dict(await control.blind_transfer(agent, body.target))

    @api.post("/api/control/attended-transfer")
    async def attended_transfer(body: Target, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, body.agent_id)
        return dict(await control.attended_transfer(agent, body.target))

    @api.post("/api/control/three-way")
    async def three_way(body: ThreeWay, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, body.agent_id)
        conference = await control.three_way(agent, body.window_id, ticket_id=body.ticket_id)
        return {"conference": conference, "session": control.session_of(agent)}

    @api.post("/api/control/three-way/leave")
    async def leave_three_way(body: Body | None = None, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, body.agent_id if body else None)
        return dict(await control.agent_leave_three_way(agent))

    @api.post("/api/control/police")
    async def police(body: Police, user: User = desk) -> dict[str, Any]:
        return dict(await control.police(acting_agent(user, body.agent_id), body.ticket_id))

    @api.post("/api/control/callback")
    async def callback(body: Callback, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, body.agent_id)
        return dict(await control.callback(agent, body.number, ticket_id=body.ticket_id))

    @api.post("/api/control/hangup")
    async def hangup(body: Body | None = None, user: User = desk) -> dict[str, Any]:
        return dict(await control.hangup(acting_agent(user, body.agent_id if body else None)))

    @api.post("/api/control/recording-mute")
    async def mute(body: Mute, user: User = desk) -> dict[str, Any]:
        return dict(await control.mute_recording(acting_agent(user, body.agent_id), body.muted))

    @api.get("/api/control/session")
    async def session(agent_id: KeyQuery = None, user: User = desk) -> dict[str, Any]:
        agent = acting_agent(user, agent_id)
        return {"agent_id": agent, "session": control.session_of(agent)}

    @api.get("/api/control/sessions")
    async def sessions(user: User = supervisors) -> dict[str, Any]:
        return {"sessions": control.snapshot()}

    @api.post("/api/control/spy")
    async def spy(
        body: Spy,
        user: User = supervisors,
    ) -> dict[str, Any]:
        return dict(await control.spy(body.seat, body.agent_id, body.mode))

    @api.post("/api/control/window-outcome")
    async def window_outcome(
        body: WindowOutcome,
        user: User = window_staff,
    ) -> dict[str, Any]:
        tickets = control.hotline.tickets
        if user.window_id:
            await control.window_joined(user.window_id, body.ticket_id)
        await asyncio.to_thread(
            scopes.window_outcome_ticket, tickets, user, user.window_id or "", body.ticket_id
        )
        view = await control.window_outcome(user, body.ticket_id, body.text)
        to_dict = getattr(view, "to_dict", None)
        shown = scopes.present_ticket(user, to_dict()) if callable(to_dict) else None
        return {"ticket_id": body.ticket_id, "ticket": shown}

    @api.get("/api/windows")
    async def windows(
        at: MomentQuery = None,
        user: User = anyone,
    ) -> dict[str, Any]:
        moment = at or datetime.now(UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=control.windows.tz)
        return {"at": moment.isoformat(), "windows": control.windows.to_dict(moment)}

    return api
