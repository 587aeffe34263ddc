"""The console's web application: ``create_app(hotline)`` wires the session middleware, the
routes of the console and of the other slices (tickets, recordings, call control: each
included when its module is installed), the websocket, the pages and the static files.

``Hotline._start_console`` serves the app with uvicorn on the CTI's own event loop, so the
routes and the websocket fan-out work on the live objects directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from console import api, assist, auth, callers, intake, ops, pages
from console.i18n import Translator
from console.kb import KnowledgeBase
from console.live import DROP, LiveHub
from console.ratelimit import LoginLimiter
from console.security import ROLES, Clients, User
from console.sessions import SessionCodec, SessionMiddleware, SessionStore, session_user
from console.users import Users
from cti.errors import ApiError, ConfigError
from cti.preflight import console_key_problem

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
# Webhooks that prove themselves another way (a signature) and have no browser session.
CSRF_EXEMPT = (
    "/api/sms/status",
    # the intake paths: a signature, an intake client's token, or a public form (console.intake)
    "/api/sms/inbound",
    "/api/tickets",
    "/api/intake/web",
    "/api/intake/web/confirm",
)
WS_CLOSE_SLOW = 1013  # "try again later": the page reconnects and gets a fresh snapshot
WS_CLOSE_POLICY = 1008  # the session ended: the page's reconnect is refused until login
WS_SESSION_CHECK_S = 1.0


def ws_user(websocket: WebSocket) -> User:
    """The websocket's user from the session cookie; a foreign Origin is refused too."""
    origin = websocket.headers.get("origin")
    if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
        raise WebSocketException(code=1008, reason="cross-origin")
    user = websocket.scope.get("state", {}).get("user")
    if user is None:
        raise WebSocketException(code=1008, reason="not-authenticated")
    return user  # type: ignore[no-any-return]


ws_user.required_roles = ROLES  # type: ignore[attr-defined]


def create_app(hotline: Any) -> FastAPI:
    settings = hotline.settings
    console = settings.console
    translator = Translator(settings.site.language)
    # Whoever starts the console (serve, the demo, a test), a key everybody knows is refused:
    # it would let anyone sign a session cookie for the administrator.
    problem = console_key_problem(console)
    if problem is not None or console.secret_key is None:
        raise ConfigError([problem or "console.secret_key: missing."], "console")
    users = Users(hotline.sessions)
    max_age_s = console.session_hours * 3600
    codec = SessionCodec(console.secret_key.get_secret_value(), max_age_s)
    store = SessionStore(hotline.sessions, max_age_s)
    limiter = LoginLimiter(console.login_attempts_per_minute)
    clients = Clients(console.trusted_proxies)
    kb = KnowledgeBase.load(getattr(console, "kb_path", "") or None)
    hub = LiveHub(hotline)
    renderer = pages.PageRenderer(translator, settings.site.name, settings.site.timezone)
    secure = not console.serves_plain_http()
    token: Any = console.metrics_token or ""  # a SecretStr (a test may give a plain str)
    metrics_token = str(token.get_secret_value() if hasattr(token, "get_secret_value") else token)

    app = FastAPI(
        title="hotline",
        summary="12345 government hotline call centre: CTI, tickets, recordings, console",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.hotline = hotline
    app.state.hub = hub
    app.state.users = users
    app.state.codec = codec
    app.state.session_store = store
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        SessionMiddleware, codec=codec, users=users, store=store, csrf_exempt=CSRF_EXEMPT
    )
    _error_handlers(app, renderer)

    app.include_router(auth.router(users, codec, store, limiter, clients, secure=secure))
    app.include_router(api.router(hotline, hub, kb, users))
    app.include_router(pages.router(hotline, renderer, codec, secure=secure))
    app.include_router(ops.router(app, hotline, hub, renderer, metrics_token, clients))
    app.include_router(callers.router(hotline, renderer))
    _include_slices(app, hotline)
    if getattr(hotline, "tickets", None) is not None:
        app.include_router(intake.router(hotline, renderer, clients.limiter_address))
        app.include_router(assist.router(hotline, hub))

    @app.websocket("/ws")
    async def live(websocket: WebSocket, user: Annotated[User, Depends(ws_user)]) -> None:
        await websocket.accept()
        client = hub.connect(user)
        receiver = asyncio.get_running_loop().create_task(_until_closed(websocket, hub, client))
        session = websocket.scope.get("state", {}).get("session") or {}
        checked = time.monotonic()
        try:
            await _send(websocket, hub.snapshot(client))
            while True:
                message = await client.queue.get()
                if message is DROP:
                    break
                # A socket opened before logout (or a revocation, a password change) carries
                # nothing after it: the session is asked again before sending, once a second.
                if time.monotonic() - checked >= WS_SESSION_CHECK_S:
                    if await session_user(store, users, session) is None:
                        with contextlib.suppress(Exception):
                            await websocket.close(WS_CLOSE_POLICY, "session ended")
                        break
                    checked = time.monotonic()
                await _send(websocket, message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            await hub.disconnect(client)
            if client.dropped and not client.closed_by_peer:
                with contextlib.suppress(Exception):
                    await websocket.close(WS_CLOSE_SLOW, "too slow")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Build the knowledge base index now, off the loop (jieba loads its dictionary for ~1 s),
    # rather than during the first agent's search. Outside a loop (tests) it builds lazily.
    with contextlib.suppress(RuntimeError):
        warmup = asyncio.get_running_loop().run_in_executor(None, kb.build)
        warmup.add_done_callback(_log_failure)
        app.state.kb_warmup = warmup
    return app


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("knowledge base index: %s", future.exception())


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(message, ensure_ascii=False, default=str))


async def _until_closed(websocket: WebSocket, hub: LiveHub, client: Any) -> None:
    """Read (and ignore) what the browser sends, to notice when it goes away."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    client.closed_by_peer = True
    hub.drop(client)


def _include_slices(app: FastAPI, hotline: Any) -> None:
    """The other slices' routers, each when its module is there."""
    control = getattr(hotline, "control", None)
    slices: list[tuple[str, Any]] = [
        (
            "tickets.api",
            lambda mod: mod.router(
                hotline.tickets,
                sms=getattr(hotline, "sms", None),
                window_joined=getattr(control, "window_joined", None),
            ),
        ),
        (
            "recordings.api",
            lambda mod: mod.router(hotline.recordings, hotline.settings.recordings),
        ),
    ]
    if control is not None:
        slices.append(("cti.control_api", lambda mod: mod.router(control)))
    for name, build in slices:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            log.info("console: %s is not installed; its routes are left out", name)
            continue
        app.include_router(build(module))


def _error_handlers(app: FastAPI, renderer: pages.PageRenderer) -> None:
    def wants_page(request: Request) -> bool:
        path = request.url.path
        return (
            request.method == "GET"
            and not path.startswith("/api/")
            and path
            not in (
                "/healthz",
                "/metrics",
                "/openapi.json",
            )
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if wants_page(request):
            if exc.status == 401:
                return pages.login_redirect(request)
            if exc.status in (403, 404):
                return _error_page(renderer, exc.status)
        return JSONResponse(
            exc.to_dict(), status_code=exc.status, headers=auth.retry_after_headers(exc)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # The submitted values are left out: they may hold a password.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            {
                "error": "invalid-request",
                "message": "invalid request",
                "details": {"errors": errors},
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_page(request) and exc.status_code == 404:
            return _error_page(renderer, 404)
        ids = {404: "not-found", 405: "method-not-allowed"}
        return JSONResponse(
            {
                "error": ids.get(exc.status_code, "http-error"),
                "message": str(exc.detail),
                "details": {},
            },
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def _error_page(renderer: pages.PageRenderer, status: int) -> HTMLResponse:
    t = renderer.t
    key = "error.forbidden" if status == 403 else "error.not_found"
    body = (
        f'<!doctype html><html lang="{t.language}"><head><meta charset="utf-8">'
        f'<title>{status}</title><link rel="stylesheet" href="/static/console.css"></head>'
        f'<body class="page-error"><main class="error"><h1>{status}</h1>'
        f'<p>{html.escape(t(key))}</p><p><a href="/">{html.escape(t("error.home"))}</a></p>'
        "</main></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=pages.page_headers())


class SecurityHeaders:
    """Headers every response gets (pages add their Content-Security-Policy)."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)
