"""Operations endpoints: ``/healthz``, ``/metrics``, and the API description
(``/openapi.json`` and a local ``/docs`` page that reads it: no CDN).

``/healthz`` is open (load balancers and monitoring probe it without a login) and says only
what state each dependency is in: no hosts, credentials, file paths or error texts. It answers
503 when a dependency is down, so a probe needs no JSON parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts

from console import metrics
from console.live import LiveHub
from console.pages import PageRenderer
from console.security import ROLES, Clients, User, require_roles
from cti.errors import ApiError


def route_roles(route: Any) -> tuple[str, ...] | None:
    """The roles of the ``require_roles`` dependency of a route (searched through nested
    dependencies), or None when it has none."""

    def walk(dependant: Any) -> Iterator[tuple[str, ...]]:
        for dep in dependant.dependencies:
            roles = getattr(dep.call, "required_roles", None)
            if roles is not None:
                yield tuple(roles)
            yield from walk(dep)

    return next(walk(route.dependant), None)


def health(hotline: Any, hub: LiveHub) -> dict[str, Any]:
    raw = hotline.health()
    db = raw.get("database", {})
    agi = raw.get("agi", {})
    out: dict[str, Any] = {
        "status": raw.get("status", "degraded"),
        "asterisk": {
            name: {"state": n.get("state"), "connected": bool(n.get("connected"))}
            for name, n in raw.get("asterisk", {}).items()
        },
        "database": {
            "ok": bool(db.get("ok")),
            "writes_pending": db.get("pending"),
            "writer_healthy": db.get("healthy"),
        },
        "agi": {"listening": bool(agi.get("port")), "sessions": agi.get("sessions", 0)},
        "scheduler": {"running": bool(raw.get("scheduler", {}).get("running"))},
        "calls": raw.get("calls", 0),
        "console": {"websockets": hub.client_count},
    }
    lead = raw.get("leadership")
    if isinstance(lead, dict):
        # Which CTI leads (two on one database, cti.leader): this process's role, the
        # lease's term, and the leader's name as [ha] address gives it (no host unless the
        # site chose to put one there).
        out["leadership"] = {
            "role": lead.get("role"),
            "term": lead.get("term"),
            "leader_address": lead.get("leader_address"),
        }
    workers = raw.get("workers")
    if isinstance(workers, dict):
        out["workers"] = {
            k: v for k, v in workers.items() if isinstance(v, int | float | bool | str | None)
        }
    return out


def router(
    app: FastAPI,
    hotline: Any,
    hub: LiveHub,
    renderer: PageRenderer,
    metrics_token: str,
    clients: Clients,
) -> APIRouter:
    ops = APIRouter()

    @ops.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        body = health(hotline, hub)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @ops.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def prometheus(request: Request) -> Response:
        if not metrics.may_read(request, metrics_token, clients):
            raise ApiError(403, "metrics-forbidden", "metrics: loopback or a bearer token")
        return Response(metrics.render(hotline, hub), media_type=metrics.CONTENT_TYPE)

    @ops.get("/openapi.json", include_in_schema=False)
    def openapi(user: Annotated[User, Depends(require_roles(*ROLES))]) -> JSONResponse:
        return JSONResponse(describe(app))

    @ops.get("/docs", include_in_schema=False)
    def docs(request: Request, user: Annotated[User, Depends(require_roles(*ROLES))]) -> Response:
        return renderer.render("docs", request, title_key="docs.title")

    return ops


def describe(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document, with the roles each operation admits (``x-roles``)."""
    schema = app.openapi()
    # FastAPI keeps included routers as branches: iterate the effective routes.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        roles = route_roles(route)
        for method in route.methods or ():
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is not None:
                op["x-roles"] = list(roles) if roles is not None else []
    return schema
