"""Logging in and out, and the administrator's view of the sessions.

``POST /api/login`` is the one API route open without a session user (it still needs the
anonymous session's CSRF token, issued with the login page). Failed attempts are rate limited
per user name and per address (``console.ratelimit``); every attempt is written to the login
audit. ``POST /api/logout`` ends the session on the server (``console.sessions``), so a copy
of the cookie is worth nothing afterwards; an administrator lists the live sessions and ends
one, or all of a user's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from console.api import user_dict
from console.ratelimit import LoginLimiter
from console.security import ROLES, Clients, User, require_roles
from console.sessions import SessionCodec, SessionStore
from console.users import Users
from console.validation import Username
from cti.errors import ApiError

log = logging.getLogger(__name__)

AdminUser = Annotated[User, Depends(require_roles("admin"))]
SessionId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: str = Field(min_length=1, max_length=1024)


def router(
    users: Users,
    codec: SessionCodec,
    store: SessionStore,
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
        token = await asyncio.to_thread(store.open, user.id, remote_addr=address, user_agent=agent)
        session = codec.new(user.id, epoch, token)
        response = JSONResponse({"user": user_dict(user), "csrf": session["c"]})
        response.headers.append("set-cookie", codec.cookie_header(session, secure=secure))
        return response

    @api.post("/api/logout")
    async def logout(
        request: Request, user: Annotated[User, Depends(require_roles(*ROLES))]
    ) -> JSONResponse:
        token = (getattr(request.state, "session", None) or {}).get("s")
        if isinstance(token, str):
            await asyncio.to_thread(store.revoke, token)
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

    @api.get("/api/sessions", tags=["audit"])
    def list_sessions(
        request: Request,
        user: AdminUser,
        username: Annotated[Username | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """The live sessions (newest first); ``current`` marks the caller's own."""
        token = (getattr(request.state, "session", None) or {}).get("s")
        return store.live(username, token if isinstance(token, str) else None)

    @api.delete("/api/sessions/{session_id}", tags=["audit"], status_code=204)
    def revoke_session(session_id: SessionId, request: Request, user: AdminUser) -> Response:
        user_id, username = store.revoke_id(session_id)
        _revoked(users, user, username, user_id, clients.address(request))
        return Response(status_code=204)

    @api.delete("/api/users/{username}/sessions", tags=["audit"])
    def revoke_user_sessions(
        username: Annotated[Username, Path()], request: Request, user: AdminUser
    ) -> dict[str, int]:
        user_id, count = store.revoke_user(username)
        if count:
            _revoked(users, user, username, user_id, clients.address(request))
        return {"revoked": count}

    return api


def _revoked(users: Users, admin: User, username: str, user_id: int, address: str) -> None:
    log.info("console: %s ended sessions of %s", admin.username, username)
    # The audit row is the user's, from the administrator's address.
    users.record_login(username, "revoked", user_id=user_id, remote_addr=address)


def retry_after_headers(exc: ApiError) -> dict[str, Any]:
    wait = exc.details.get("retry_after_s") if exc.status == 429 else None
    return {"Retry-After": str(wait)} if wait else {}
