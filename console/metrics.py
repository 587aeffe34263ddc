"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand from the
live objects of the composition root: nothing is counted twice, the numbers are the ones the
CTI works with.

Access (``may_read``): ``/metrics`` answers clients on the same machine that talk to the
console straight (a Prometheus or node exporter there); everyone else needs
``Authorization: Bearer <console.metrics_token>``, and without a configured token is refused.
A request through a proxy is not straight, even from loopback: it carries a proxy header, or
comes from one of ``[console] trusted_proxies`` (a proxy on this machine that says nothing of
its client would otherwise make every visitor a local one).
"""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from console.security import Clients

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def may_read(request: Request, token: str, clients: Clients) -> bool:
    if clients.straight_from_loopback(request):
        return True
    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else ""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
                self.lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{name} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


AGENT_STATES = ("logged_out", "ready", "not_ready", "ringing", "on_call", "wrap_up")


def render(hotline: Any, hub: Any = None) -> str:
    out = Exposition()
    calls = hotline.tracker.active_calls()
    by_state = Counter(c.state for c in calls)
    out.family(
        "hotline_calls_active",
        "gauge",
        "Citizen calls in progress by call state.",
        [({"state": s}, by_state.get(s, 0)) for s in ("routed", "waiting", "ringing", "talking")],
    )
    waiting = hotline.acd.snapshot().get("waiting", [])
    out.one("hotline_calls_waiting", "gauge", "Calls in the CTI's waiting line.", len(waiting))
    out.one(
        "hotline_calls_longest_wait_seconds",
        "gauge",
        "Wait of the longest-waiting call in the line.",
        max((float(w.get("wait_s", 0)) for w in waiting), default=0.0),
    )
    agents = Counter(a.state for a in hotline.agents.all())
    out.family(
        "hotline_agents",
        "gauge",
        "Agents by state.",
        [({"state": s}, agents.get(s, 0)) for s in AGENT_STATES],
    )
    seats = hotline.seats.all()
    out.family(
        "hotline_seat_phone_usable",
        "gauge",
        "1 when the seat's phone is registered and reachable.",
        [({"seat": s.id, "extension": s.extension}, 1 if s.usable else 0) for s in seats],
    )
    nodes = hotline.nodes
    out.family(
        "hotline_ami_up",
        "gauge",
        "1 when the AMI connection to the Asterisk node is logged in.",
        [({"node": name}, 1 if n.connected else 0) for name, n in nodes.items()],
    )
    out.family(
        "hotline_ami_events_received_total",
        "counter",
        "AMI events received from the node.",
        [({"node": name}, n.events_received) for name, n in nodes.items()],
    )
    out.family(
        "hotline_ami_resync_seconds",
        "gauge",
        "Duration of the last state resync after a (re)connect.",
        [({"node": name}, float(s)) for name, s in hotline.resync_seconds.items()],
    )
    store = hotline.store.stats()
    out.one("hotline_store_pending", "gauge", "Writes buffered for the database.", store["pending"])
    out.one("hotline_store_written_total", "counter", "Writes committed.", store["written"])
    out.one("hotline_store_retries_total", "counter", "Write batches retried.", store["retries"])
    out.one(
        "hotline_store_overflow_total", "counter", "Writes dropped: buffer full.", store["overflow"]
    )
    out.one(
        "hotline_store_healthy", "gauge", "1 while the database accepts writes.", store["healthy"]
    )
    out.one(
        "hotline_store_batch_p99_seconds",
        "gauge",
        "99th percentile of recent write batch durations.",
        float(store["batch_p99_ms"]) / 1000,
    )
    agi = hotline.agi.stats
    out.family(
        "hotline_agi_sessions_total",
        "counter",
        "FastAGI sessions by outcome.",
        [({"outcome": k}, v) for k, v in sorted(agi.items()) if k != "sessions"],
    )
    out.one("hotline_agi_sessions_started_total", "counter", "FastAGI sessions.", agi["sessions"])
    out.family(
        "hotline_acd_total",
        "counter",
        "Routing decisions and moves of the ACD.",
        [({"kind": k}, v) for k, v in sorted(hotline.acd.stats.items())],
    )
    latency = getattr(hotline.acd, "route_latency", None)
    if latency is not None:
        out.family(
            "hotline_route_latency_seconds",
            "gauge",
            "FastAGI route answer time percentiles.",
            [({"quantile": q}, v) for q, v in latency().items()],
        )
    if hub is not None:
        out.one("hotline_console_clients", "gauge", "Open console websockets.", hub.client_count)
        out.one(
            "hotline_console_events_total", "counter", "Bus events seen by the console.", hub.events
        )
        out.one(
            "hotline_console_clients_dropped_total",
            "counter",
            "Websocket clients dropped for reading too slowly.",
            hub.dropped,
        )
    out.one(
        "hotline_uptime_seconds",
        "gauge",
        "Seconds since the CTI started.",
        round(time.time() - hotline.started_at.timestamp(), 1),
    )
    return out.text()
