"""Sessions: a signed cookie naming a session kept on the server, and CSRF protection.

The cookie holds ``{"u": user id or None, "e": session epoch, "c": CSRF token, "s": session
token}``, signed (itsdangerous, HMAC-SHA1 over the secret key) and timestamped; it is HttpOnly,
SameSite=Strict, Secure unless the site serves plain HTTP on loopback, and expires
``session_hours`` after login. The signature proves the server issued it; the session token
names a row of ``console_sessions`` (only its SHA-256 is stored), and a cookie whose row is
gone, expired or revoked is nobody's. So logout, and an administrator's revocation, end a
session at once, copies of the cookie included. A password change or deactivation bumps the
user's epoch, which ends every older session too (and marks their rows revoked).

Every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in the
``X-CSRF-Token`` header; pages embed the token. The login form has a session too (an anonymous
one, issued with the login page, with no row on the server), so logging in needs the token
like everything else, and a successful login issues a new session with a new token (no
session fixation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from console.models import ConsoleSessionRow, UserRow
from console.users import Users
from cti.db import utcnow
from cti.errors import NotFound

log = logging.getLogger(__name__)

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

    def new(
        self, user_id: int | None = None, epoch: int = 0, token: str | None = None
    ) -> dict[str, Any]:
        """A session: anonymous (the login form's), or a user's with the token of its row
        in ``SessionStore``."""
        session: dict[str, Any] = {"u": user_id, "e": epoch, "c": secrets.token_urlsafe(24)}
        if token is not None:
            session["s"] = token
        return session

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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """The ``console_sessions`` table, with a short cache for the per-request check.

    Revocations made through this process drop their cache entries at once; a revocation by
    another process (none today: the CLI changes passwords, which the user's epoch covers) would
    take effect within ``CACHE_S``."""

    CACHE_S = 5.0
    TOUCH_S = 60.0  # last_seen_at is written at most this often per session
    KEEP_DAYS = 30  # expired and revoked rows are kept this long for the audit

    def __init__(self, sessions: sessionmaker[Session], max_age_s: int) -> None:
        self.sessions = sessions
        self.max_age_s = max_age_s
        self._cache: dict[str, tuple[float, int | None]] = {}
        self._lock = threading.Lock()

    def open(self, user_id: int, *, remote_addr: str = "", user_agent: str = "") -> str:
        """A new session of ``user_id``; returns the token for its cookie."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.sessions.begin() as session:
            session.execute(
                delete(ConsoleSessionRow).where(
                    ConsoleSessionRow.expires_at < now - timedelta(days=self.KEEP_DAYS)
                )
            )
            session.add(
                ConsoleSessionRow(
                    token_hash=_digest(token),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(seconds=self.max_age_s),
                    remote_addr=remote_addr[:64],
                    user_agent=user_agent[:256],
                )
            )
        return token

    def cached_user_id(self, token: str) -> tuple[bool, int | None]:
        """(found in the cache, user id of the live session or None)."""
        with self._lock:
            hit = self._cache.get(token)
        if hit is None or time.monotonic() - hit[0] > self.CACHE_S:
            return False, None
        return True, hit[1]

    def user_id(self, token: str) -> int | None:
        """The user of a live session (not revoked, not expired), else None."""
        found, user_id = self.cached_user_id(token)
        if found:
            return user_id
        now = utcnow()
        with self.sessions.begin() as session:
            row = session.scalar(
                select(ConsoleSessionRow).where(ConsoleSessionRow.token_hash == _digest(token))
            )
            alive = row is not None and row.revoked_at is None and row.expires_at > now
            user_id = row.user_id if row is not None and alive else None
            if (
                row is not None
                and alive
                and (now - row.last_seen_at).total_seconds() > self.TOUCH_S
            ):
                row.last_seen_at = now
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (time.monotonic(), user_id)
        return user_id

    def revoke(self, token: str) -> None:
        """Logout: the session of this token ends."""
        with self.sessions.begin() as session:
            session.execute(
                update(ConsoleSessionRow)
                .where(
                    ConsoleSessionRow.token_hash == _digest(token),
                    ConsoleSessionRow.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        with self._lock:
            self._cache.pop(token, None)

    def revoke_id(self, session_id: int) -> tuple[int, str]:
        """An administrator ends one live session; returns (user id, username)."""
        now = utcnow()
        with self.sessions.begin() as session:
            row = session.get(ConsoleSessionRow, session_id)
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise NotFound(
                    "no-such-session", f"no live session {session_id}", session_id=session_id
                )
            row.revoked_at = now
            user = session.get(UserRow, row.user_id)
            found = (row.user_id, user.username if user is not None else "")
        self._forget_all()
        return found

    def revoke_user(self, username: str) -> tuple[int, int]:
        """An administrator ends every live session of a user; returns (user id, count)."""
        now = utcnow()
        with self.sessions.begin() as session:
            user = session.scalar(select(UserRow).where(UserRow.username == username))
            if user is None:
                raise NotFound("no-such-user", f"no user {username!r}", username=username)
            result = session.execute(
                update(ConsoleSessionRow)
                .where(
                    ConsoleSessionRow.user_id == user.id,
                    ConsoleSessionRow.revoked_at.is_(None),
                    ConsoleSessionRow.expires_at > now,
                )
                .values(revoked_at=now)
            )
            found = (user.id, int(getattr(result, "rowcount", 0) or 0))
        self._forget_all()
        return found

    def live(self, username: str | None = None, current: str | None = None) -> list[dict[str, Any]]:
        """The live sessions, newest first, for the administrator: never the tokens.
        ``current``: the caller's own token, to mark its session."""
        now = utcnow()
        mine = _digest(current) if current else None
        query = (
            select(ConsoleSessionRow, UserRow)
            .join(UserRow, UserRow.id == ConsoleSessionRow.user_id)
            .where(ConsoleSessionRow.revoked_at.is_(None), ConsoleSessionRow.expires_at > now)
            .order_by(ConsoleSessionRow.id.desc())
        )
        if username is not None:
            query = query.where(UserRow.username == username)
        with self.sessions() as session:
            return [
                {
                    "id": row.id,
                    "user_id": user.id,
                    "username": user.username,
                    "display_name": user.display_name or user.username,
                    "created_at": _iso(row.created_at),
                    "last_seen_at": _iso(row.last_seen_at),
                    "expires_at": _iso(row.expires_at),
                    "remote_addr": row.remote_addr,
                    "user_agent": row.user_agent,
                    "current": row.token_hash == mine,
                }
                for row, user in session.execute(query)
            ]

    def _forget_all(self) -> None:
        # Revoked by id or by user: the cache is keyed by token, so drop it all (it refills
        # from the database within a request).
        with self._lock:
            self._cache.clear()


def _iso(value: datetime) -> str:
    return value.isoformat()


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
        store: SessionStore,
        csrf_exempt: Collection[str] = (),
    ) -> None:
        self.app = app
        self.codec = codec
        self.users = users
        self.store = store
        self.csrf_exempt = frozenset(csrf_exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        raw = _cookie(scope)
        session = self.codec.loads(raw) if raw else None
        user = None
        if session is not None and session.get("u") is not None:
            user = await self._session_user(session)
            if user is None:
                session = None  # the user is gone, or the session ended or was revoked
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

    async def _session_user(self, session: dict[str, Any]) -> Any:
        return await session_user(self.store, self.users, session)


async def session_user(store: SessionStore, users: Users, session: dict[str, Any]) -> Any:
    """The ``User`` of a user's session while it lives (its row on the server is live, and
    the user active with the same epoch), else None. Also asked again by open websockets."""
    user_id, epoch, token = session.get("u"), session.get("e", 0), session.get("s")
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        return None
    if not isinstance(token, str):
        return None  # no session on the server: a cookie of before they were kept
    # The caches answer most requests; a miss reads the database off the loop.
    found, owner = store.cached_user_id(token)
    if not found:
        owner = await asyncio.to_thread(store.user_id, token)
    if owner != user_id:
        return None
    found, user = users.cached_session_user(user_id, epoch)
    if found:
        return user
    return await asyncio.to_thread(users.session_user, user_id, epoch)


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
