"""Sessions in a signed cookie, and CSRF protection.

The cookie holds ``{"u": user id or None, "e": session epoch, "c": CSRF token}``, signed
(itsdangerous, HMAC-SHA1 over the secret key) and timestamped; it is HttpOnly and
SameSite=Strict and expires ``session_hours`` after login. Nothing secret is in it: the
signature only proves the server issued it. A password change or deactivation bumps the user's
epoch, which ends every older session.

Every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in the
``X-CSRF-Token`` header; pages embed the token. The login form has a session too (an anonymous
one, issued with the login page), so logging in needs the token like everything else, and a
successful login issues a new session with a new token (no session fixation).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from console.users import Users

COOKIE = "hotline_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="hotline-console-session")
        self.max_age_s = max_age_s

    def new(self, user_id: int | None = None, epoch: int = 0) -> dict[str, Any]:
        return {"u": user_id, "e": epoch, "c": secrets.token_urlsafe(24)}

    def dumps(self, session: dict[str, Any]) -> str:
        return str(self._serializer.dumps(session))

    def loads(self, value: str) -> dict[str, Any] | None:
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        return data

    def cookie_header(self, session: dict[str, Any] | None, *, secure: bool) -> str:
        """A ``Set-Cookie`` value; ``None`` deletes the cookie."""
        attrs = "Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        if session is None:
            return f"{COOKIE}=; Max-Age=0; {attrs}"
        return f"{COOKIE}={self.dumps(session)}; Max-Age={self.max_age_s}; {attrs}"


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is the same as none
                return None
            morsel = jar.get(COOKIE)
            if morsel is not None:
                return morsel.value
    return None


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


class SessionMiddleware:
    """Sets ``scope["state"]["session"]`` and ``["user"]`` (``console.security.User`` or
    None) on HTTP and websocket requests, and refuses unsafe requests without the token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        codec: SessionCodec,
        users: Users,
        csrf_exempt: Collection[str] = (),
    ) -> None:
        self.app = app
        self.codec = codec
        self.users = users
        self.csrf_exempt = frozenset(csrf_exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        raw = _cookie(scope)
        session = self.codec.loads(raw) if raw else None
        user = None
        if session is not None and isinstance(session.get("u"), int):
            user = await self._user(session["u"], int(session.get("e", 0)))
            if user is None:
                session = None  # the user is gone or the session was revoked
        state["session"] = session
        state["user"] = user
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and scope["path"] not in self.csrf_exempt
        ):
            token = _header(scope, CSRF_HEADER.encode())
            expected = session["c"] if session is not None else ""
            if not expected or not token or not hmac.compare_digest(token, expected):
                await _json(send, 403, {"error": "csrf", "message": "missing or wrong CSRF token"})
                return
        await self.app(scope, receive, send)

    async def _user(self, user_id: int, epoch: int) -> Any:
        # The users cache answers most requests; a miss reads the database off the loop.
        found, user = self.users.cached_session_user(user_id, epoch)
        if found:
            return user
        return await asyncio.to_thread(self.users.session_user, user_id, epoch)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
