"""The HTML pages: a server-rendered shell around a body template, plus plain JavaScript.

A page's body lives in ``console/templates/<page>.html``; ``{{key}}`` placeholders are
filled with catalogue text (HTML-escaped). Everything a script needs at start (the CSRF
token, the user, the catalogue, page settings) goes into a ``<script type="application/json">``
block, which the Content-Security-Policy allows because it is data, not code: the pages run
no inline script and load nothing from outside the server.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.api import Anyone, home_page, user_dict
from console.i18n import MISSING, Translator
from console.security import User, require_roles
from console.sessions import SessionCodec

TEMPLATES = Path(__file__).with_name("templates")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
_KEY = re.compile(r"\{\{([a-z0-9_.-]+)\}\}")
# Where each role may go, in the order the navigation shows them.
NAV = (
    ("/agent", "nav.agent", ("agent", "leader")),
    ("/window", "nav.window", ("window",)),
    ("/wallboard", "nav.wallboard", ("supervisor",)),
    ("/reports", "nav.reports", ("supervisor", "leader")),
    ("/callers", "nav.callers", ("supervisor",)),
    ("/audit", "nav.audit", ("admin",)),
)


@functools.cache
def _template(name: str) -> str:
    return (TEMPLATES / f"{name}.html").read_text("utf-8")


def _json_for_script(data: Any) -> str:
    # ``</script>`` and HTML comments cannot appear inside the block once these are escaped.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class PageRenderer:
    def __init__(self, translator: Translator, site_name: str, timezone: str) -> None:
        self.t = translator
        self.site_name = site_name
        self.timezone = timezone

    def body(self, name: str) -> str:
        return _KEY.sub(lambda m: html.escape(self.t(m[1])), _template(name))

    def render(
        self,
        page: str,
        request: Request,
        *,
        title_key: str,
        config: dict[str, Any] | None = None,
        body_class: str = "",
    ) -> HTMLResponse:
        user: User | None = getattr(request.state, "user", None)
        session = getattr(request.state, "session", None) or {}
        boot = {
            "page": page,
            "csrf": session.get("c", ""),
            "user": user_dict(user) if user is not None else None,
            "lang": self.t.language,
            "tz": self.timezone,
            "messages": self.t.messages,
            # Set in test mode only: how the scripts show a key the catalogue lacks.
            "missing": MISSING if self.t.mark_missing else None,
            "config": config or {},
        }
        title = self.t(title_key)
        nav = ""
        if user is not None:
            links = [
                f'<a href="{href}"{" class=current" if href == "/" + page else ""}>'
                f"{html.escape(self.t(key))}</a>"
                for href, key, roles in NAV
                if user.has(*roles)
            ]
            nav = (
                f'<nav class="links">{"".join(links)}</nav>'
                f'<span class="who" id="who">{html.escape(user.display_name)}</span>'
                f'<button type="button" id="logout" class="ghost">'
                f"{html.escape(self.t('nav.logout'))}</button>"
            )
        doc = (
            f'<!doctype html>\n<html lang="{html.escape(self.t.language)}">\n<head>\n'
            '<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)} · {html.escape(self.site_name)}</title>\n"
            '<link rel="stylesheet" href="/static/console.css">\n</head>\n'
            f'<body class="page-{page} {body_class}">\n'
            f'<header class="topbar"><span class="site">{html.escape(self.site_name)}</span>'
            f'<h1 class="title">{html.escape(title)}</h1>{nav}'
            f'<span id="conn" class="conn" hidden></span></header>\n'
            f'<main id="main">{self.body(page)}</main>\n'
            f'<script type="application/json" id="boot">{_json_for_script(boot)}</script>\n'
            '<script src="/static/common.js"></script>\n'
            + "".join(f'<script src="/static/{src}"></script>\n' for src in _scripts(page))
            + "</body>\n</html>\n"
        )
        return HTMLResponse(doc, headers=page_headers())


def _scripts(page: str) -> list[str]:
    extra = {
        "reports": ["chart.js"],
        "agent": ["transcript.js", "assist.js"],
        "wallboard": ["transcript.js"],
    }
    return [*extra.get(page, []), f"{page}.js"]


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}


# A path of this site in plain URL characters: no second slash or backslash after the first.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?#]*")


def _safe_next(value: str) -> str:
    r"""Where to go after login: a path of this site, else "" (the user's home page).

    Browsers drop tabs and newlines from a URL and read ``\`` as ``/``, so
    ``/\t/evil.example/`` and ``/\evil.example`` are ``//evil.example/``: another site. Only
    plain URL characters pass, and the path may not start with two slashes, even once
    percent-decoded. ``login.js`` checks the origin again before it navigates."""
    if not _LOCAL_PATH.fullmatch(value):
        return ""
    decoded = re.sub(r"[\t\n\r]", "", unquote(value))
    if decoded.startswith(("//", "/\\")):
        return ""
    return value


def router(hotline: Any, renderer: PageRenderer, codec: SessionCodec, *, secure: bool) -> APIRouter:
    pages = APIRouter(include_in_schema=False)
    settings = hotline.settings

    @pages.get("/")
    async def root(request: Request) -> Response:
        user = getattr(request.state, "user", None)
        return RedirectResponse(home_page(user) if user else "/login", status_code=303)

    @pages.get("/login")
    async def login_page(
        request: Request, next_: Annotated[str, Query(alias="next", max_length=500)] = ""
    ) -> Response:
        user = getattr(request.state, "user", None)
        if user is not None:
            return RedirectResponse(_safe_next(next_) or home_page(user), status_code=303)
        session = getattr(request.state, "session", None)
        fresh = session is None
        if fresh:
            session = codec.new()
            request.state.session = session
        response = renderer.render(
            "login", request, title_key="login.title", config={"next": _safe_next(next_)}
        )
        if fresh:
            response.headers.append("set-cookie", codec.cookie_header(session, secure=secure))
        return response

    @pages.get("/home")
    async def home(request: Request, user: Anyone) -> Response:
        return renderer.render("home", request, title_key="home.title")

    @pages.get("/agent")
    async def agent_page(
        request: Request, user: Annotated[User, Depends(require_roles("agent", "leader"))]
    ) -> Response:
        leader = "leader" in user.roles or _is_leader(hotline, user.agent_id)
        config = {
            "leader": leader,
            "reasons": list(settings.control.not_ready_reasons),
            "wrapup_s": settings.control.wrapup_s,
            "seats": [
                {"id": s.id, "extension": s.extension, "position": s.position}
                for s in settings.seats
                if s.kind == "seat"
            ],
            "windows": [
                {"id": w.id, "name": w.name, "department": w.department} for w in settings.windows
            ],
            "police_number": settings.control.police_number,
            # the datalist of the category field: what the ticket API accepts
            "categories": settings.tickets.allowed_categories(),
        }
        return renderer.render(
            "agent",
            request,
            title_key="agent.leader_title" if leader else "agent.title",
            config=config,
            body_class="leader" if leader else "",
        )

    @pages.get("/window")
    async def window_page(
        request: Request, user: Annotated[User, Depends(require_roles("window"))]
    ) -> Response:
        return renderer.render("window", request, title_key="window.title")

    @pages.get("/wallboard")
    async def wallboard(
        request: Request,
        user: Annotated[User, Depends(require_roles("supervisor"))],
        wall: bool = False,
    ) -> Response:
        config = {
            "rooms": sorted({s.room for s in settings.seats}),
            "service_level_s": 15,
            "agents": {a.id: a.name for a in settings.agents},
        }
        return renderer.render(
            "wallboard",
            request,
            title_key="wallboard.title",
            config=config,
            body_class="tv" if wall else "",
        )

    @pages.get("/reports")
    async def reports(
        request: Request,
        user: Annotated[User, Depends(require_roles("supervisor", "leader"))],
    ) -> Response:
        return renderer.render("reports", request, title_key="reports.title")

    @pages.get("/audit")
    async def audit(
        request: Request, user: Annotated[User, Depends(require_roles("admin"))]
    ) -> Response:
        return renderer.render("audit", request, title_key="audit.title")

    return pages


def _is_leader(hotline: Any, agent_id: str | None) -> bool:
    agent = hotline.agents.find(agent_id) if agent_id else None
    return bool(agent is not None and agent.leader)


def login_redirect(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303)
