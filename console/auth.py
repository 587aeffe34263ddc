"""Logging in and out.

``POST /api/login`` is the one API route open without a session user (it still needs the
anonymous session's CSRF token, issued with the login page). Failed attempts are rate limited
per user name and per address (``console.ratelimit``); every attempt is written to the login
audit.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from console.api import user_dict
from console.ratelimit import LoginLimiter
from console.security import ROLES, Clients, User, require_roles
from console.sessions import SessionCodec
from console.users import Users
from console.validation import Username
from cti.errors import ApiError


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: str = Field(min_length=1, max_length=1024)


def router(
    users: Users,
    codec: SessionCodec,
    limiter: LoginLimiter,
    clients: Clients,
    *,
    secure: bool,
) -> APIRouter:
    api = APIRouter(tags=["auth"])

    @api.post("/api/login")
    async def login(body: LoginBody, request: Request) -> JSONResponse:
        address = clients.address(request)
        counted = clients.limiter_address(request)
        agent = request.headers.get("user-agent", "")
        wait = limiter.retry_after(body.username, counted)
        if wait:
            await asyncio.to_thread(
                users.record_login,
                body.username,
                "rate-limited",
                remote_addr=address,
                user_agent=agent,
            )
            raise ApiError(
                429,
                "too-many-attempts",
                "too many failed logins: wait and try again",
                {"retry_after_s": wait},
            )
        user, epoch, outcome = await asyncio.to_thread(
            users.authenticate, body.username, body.password
        )
        await asyncio.to_thread(
            users.record_login,
            body.username,
            outcome,
            user_id=user.id if user else None,
            remote_addr=address,
            user_agent=agent,
        )
        if user is None:
            limiter.failed(body.username, counted)
            # One message for every failure: the answer does not tell which usernames exist.
            raise ApiError(401, "bad-credentials", "wrong username or password")
        limiter.succeeded(body.username, counted)
        session = codec.new(user.id, epoch)
        response = JSONResponse({"user": user_dict(user), "csrf": session["c"]})
        response.headers.append("set-cookie", codec.cookie_header(session, secure=secure))
        return response

    @api.post("/api/logout")
    async def logout(
        request: Request, user: Annotated[User, Depends(require_roles(*ROLES))]
    ) -> JSONResponse:
        await asyncio.to_thread(
            users.record_login,
            user.username,
            "logout",
            user_id=user.id,
            remote_addr=clients.address(request),
        )
        response = JSONResponse({"ok": True})
        response.headers.append("set-cookie", codec.cookie_header(None, secure=secure))
        return response

    return api


def retry_after_headers(exc: ApiError) -> dict[str, Any]:
    wait = exc.details.get("retry_after_s") if exc.status == 429 else None
    return {"Retry-After": str(wait)} if wait else {}
