"""Who may see and act on what: one scope function per resource, and the table of it all.

Every route that returns or acts on a ticket, a recording (or a transcript) or a window's
answer asks the functions here; no route decides on its own. ``ACCESS`` says, for every route
of the console and every role, what the role reaches; ``tests/console/test_scopes_walk.py``
walks every route as every role and compares, and ``docs/access.md`` is printed from the same
table (``python -m console.scopes --markdown > docs/access.md``).

The rules:

- **Tickets.** The desk (agents, leaders, supervisors) sees every ticket: the floor shares the
  backlog (a repeat caller reaches whoever is free, callback surveys and merges cross agents).
  So agents may edit each other's tickets, and such an edit is audited: its ``update`` event
  names the handler (``handled_by``) beside the editor and the changes. A department user sees
  the tickets dispatched to its unit, as lead or co-handler, while the dispatch is active and
  after the ticket was closed with it. Window staff see a ticket from the moment their window
  joined a three-way call about it (the audit event ``window_call``), and only what the clerk
  needs to answer: no phone numbers, calls, dispatches or audit trail. A ticket out of scope
  answers 404 ``no-such-ticket`` exactly as a missing one, whether read or acted on.
- **Recordings and transcripts (the recording rule).** Supervisors and administrators hear
  every recording; agents and leaders those of their own calls. A ticket's transcript follows
  the rule wherever the ticket appears: it is left out unless every call of the ticket is the
  user's own. Filesystem paths of recordings reach administrators only.
- **Window answers** come only from the window's own staff, on a ticket their window was in a
  three-way call about.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select

from console.security import User
from cti.errors import ApiError, Forbidden, NotFound
from tickets.models import Assignment, Ticket, TicketEvent
from tickets.service import WINDOW_CALL

DESK = ("agent", "leader", "supervisor")
DEPARTMENT = "department"
WINDOW = "window"
# A unit keeps seeing a ticket it handled to the end; not one it returned or lost to another.
UNIT_KEEPS = ("closed",)

# What window staff see of a ticket: the matter, to answer it, and the windows' answers.
WINDOW_FIELDS = (
    "id",
    "state",
    "state_code",
    "state_label",
    "topic",
    "category",
    "citizen_name",
    "occurred",
    "location",
    "description",
    "opened_at",
    "attachments",
    "window_outcomes",
)
TRANSCRIPT_FIELDS = ("transcript", "transcript_segments")
# Filesystem paths of recordings in live events and call snapshots: administrators only.
EVENT_PATHS = {
    "RecordingStarted": ("path",),
    "RecordingStopped": ("path",),
    "CallRouted": ("recording",),
}


# --- tickets -------------------------------------------------------------------------------


def sees_every_ticket(user: User) -> bool:
    return user.has(*DESK)  # administrators pass ``has`` always


def ticket_scope(user: User) -> ColumnElement[bool] | None:
    """The tickets ``user`` may see, as a filter on ``Ticket`` (None: all of them). Keeps the
    same tickets as ``can_see_ticket``."""
    if sees_every_ticket(user):
        return None
    clauses: list[ColumnElement[bool]] = []
    if DEPARTMENT in user.roles and user.department_id:
        clauses.append(
            Ticket.id.in_(
                select(Assignment.ticket_id).where(
                    Assignment.department_id == user.department_id,
                    or_(Assignment.active.is_(True), Assignment.end_reason.in_(UNIT_KEEPS)),
                )
            )
        )
    if WINDOW in user.roles and user.window_id:
        clauses.append(
            Ticket.id.in_(
                select(TicketEvent.ticket_id).where(
                    TicketEvent.action == WINDOW_CALL,
                    TicketEvent.data["window_id"].as_string() == user.window_id,
                )
            )
        )
    return or_(*clauses) if clauses else false()


def visible_ticket_ids(sessions: Any, user: User, ticket_ids: Iterable[str]) -> set[str]:
    """Those of ``ticket_ids`` that ``user`` may see (one query, by ``ticket_scope``)."""
    wanted = {t for t in ticket_ids if t}
    if not wanted:
        return set()
    scope = ticket_scope(user)
    query = select(Ticket.id).where(Ticket.id.in_(wanted))
    with sessions() as session:
        return set(session.scalars(query if scope is None else query.where(scope)))


def _unit_sees(user: User, ticket: Mapping[str, Any]) -> bool:
    unit = user.department_id
    return (
        DEPARTMENT in user.roles
        and bool(unit)
        and any(
            a["department_id"] == unit and (a["active"] or a["end_reason"] in UNIT_KEEPS)
            for a in ticket.get("assignments", ())
        )
    )


def window_was_in_call(window_id: str | None, ticket: Mapping[str, Any]) -> bool:
    """Whether the window joined a three-way call about ``ticket`` (a full view, with its
    audit trail)."""
    return bool(window_id) and any(
        e["action"] == WINDOW_CALL and (e.get("data") or {}).get("window_id") == window_id
        for e in ticket.get("events", ())
    )


def _window_sees(user: User, ticket: Mapping[str, Any]) -> bool:
    return WINDOW in user.roles and window_was_in_call(user.window_id, ticket)


def can_see_ticket(user: User, ticket: Mapping[str, Any]) -> bool:
    """``ticket`` is a full view (``TicketView.to_dict()``)."""
    return sees_every_ticket(user) or _unit_sees(user, ticket) or _window_sees(user, ticket)


def no_such_ticket(ticket_id: str) -> NotFound:
    """What a ticket out of scope answers: word for word what a missing one does
    (``TicketQueries.load_ticket``)."""
    return NotFound("no-such-ticket", f"no ticket {ticket_id}", ticket_id=ticket_id)


def visible_ticket(service: Any, user: User, ticket_id: str) -> dict[str, Any]:
    """The full view of a ticket ``user`` may see or act on; else 404 as for a missing one."""
    data: dict[str, Any] = service.get(ticket_id).to_dict()
    if not can_see_ticket(user, data):
        raise no_such_ticket(ticket_id)
    return data


def present_ticket(user: User, ticket: Mapping[str, Any]) -> dict[str, Any]:
    """What ``user`` gets of a ticket in scope: window staff the matter only; the transcript
    by the recording rule; recording paths for administrators only."""
    if not sees_every_ticket(user) and not _unit_sees(user, ticket):
        return {k: ticket[k] for k in WINDOW_FIELDS if k in ticket}
    out = dict(ticket)
    if not can_hear_ticket(user, ticket):
        for key in TRANSCRIPT_FIELDS:
            out.pop(key, None)
    if not user.has("admin") and "calls" in out:
        out["calls"] = [_call_without_path(c) for c in out["calls"]]
    return out


def _call_without_path(call: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in call.items() if k != "recording_path"}
    out["recorded"] = bool(call.get("recording_path"))
    return out


def handled_by(user: User, ticket: Mapping[str, Any]) -> bool:
    """Whether ``user`` is the agent who handled the ticket (took its call)."""
    return bool(user.agent_id) and ticket.get("agent_id") == user.agent_id


# --- calls, recordings and transcripts -----------------------------------------------------


def owns_call(user: User, agent_id: str | None) -> bool:
    """A call taken by ``agent_id`` is the user's own; supervisors (and administrators) may
    act on any."""
    if user.has("supervisor"):  # administrators pass ``has`` always
        return True
    return bool(user.agent_id) and agent_id == user.agent_id


def acting_agent(user: User, requested: str | None) -> str:
    """The agent a call-control action applies to: one's own; another's only for
    supervisors."""
    if requested and requested != user.agent_id:
        if not owns_call(user, requested):
            raise Forbidden("not-your-call", "agents act on their own call only")
        return requested
    if not user.agent_id:
        raise ApiError(
            409, "not-an-agent", "this user is not an agent: name the agent_id", {"user": user.id}
        )
    return user.agent_id


def can_see_recording(user: User, agent_id: str | None) -> bool:
    """The recording rule: the recordings of one's own calls (``owns_call``)."""
    return owns_call(user, agent_id)


def can_see_recordings(user: User, agent_ids: Iterable[str | None]) -> bool:
    """All of them (a ticket's transcript is made of all its calls)."""
    return all(can_see_recording(user, a) for a in agent_ids)


def can_hear_ticket(user: User, ticket: Mapping[str, Any]) -> bool:
    """The recording rule for the transcript inside a ticket view: every call is the user's
    own (a ticket without calls: its handler's)."""
    agents = [c.get("agent_id") for c in ticket.get("calls", ())] or [ticket.get("agent_id")]
    return can_see_recordings(user, agents)


def recording_scope(user: User, requested: str | None = None) -> str | None:
    """The agent whose recordings a list shows: anyone's (None) or the one asked for, for
    supervisors; one's own for the others, who are refused another agent's. A user with no
    agent identity gets ``""``: nobody's."""
    if user.has("supervisor"):
        return requested or None
    if requested and requested != user.agent_id:
        raise Forbidden("recording-not-yours", "agents see only their own recordings")
    return user.agent_id or ""


def recording_refused(recording_id: int) -> Forbidden:
    return Forbidden(
        "recording-not-yours",
        "only supervisors may open other agents' recordings",
        recording_id=recording_id,
    )


def public_call(user: User, call: Mapping[str, Any]) -> dict[str, Any]:
    """A live call (``Call.to_dict``) as ``user`` sees it: no recording path but for
    administrators."""
    if user.has("admin") or "recording" not in call:
        return dict(call)
    out = {k: v for k, v in call.items() if k != "recording"}
    out["recorded"] = bool(call.get("recording"))
    return out


def live_event(user: User, event: dict[str, Any]) -> dict[str, Any]:
    """A bus event on its way to ``user``'s websocket: filesystem paths for administrators
    only. (Which events reach whom is ``LiveHub.visible``.)"""
    hidden = EVENT_PATHS.get(event.get("type", ""))
    if not hidden or user.has("admin"):
        return event
    return {k: v for k, v in event.items() if k not in hidden}


# --- window answers ------------------------------------------------------------------------


def can_post_window_outcome(user: User, window_id: str, ticket: Mapping[str, Any]) -> bool:
    """Only the window's own staff, on a ticket the window was in a three-way call about."""
    return (
        WINDOW in user.roles
        and bool(user.window_id)
        and window_id == user.window_id
        and window_was_in_call(window_id, ticket)
    )


def window_outcome_ticket(
    service: Any, user: User, window_id: str, ticket_id: str
) -> dict[str, Any]:
    """The ticket a window's answer goes on, when ``user`` may write it there: 403 for anyone
    but the window's own staff (whatever the ticket), 404 as for a missing ticket when the
    window was in no three-way call about it."""
    if WINDOW not in user.roles or not user.window_id:
        raise Forbidden("window-staff-only", "a window's answer comes from the window's staff")
    if window_id != user.window_id:
        raise Forbidden("not-your-window", "window staff report for their own window")
    data = visible_ticket(service, user, ticket_id)
    if not can_post_window_outcome(user, window_id, data):
        # Seen through another role of the user (a unit's), but the window was not in a call.
        raise Forbidden("window-not-in-call", "the window was in no three-way call about it")
    return data


# --- the table -------------------------------------------------------------------------------


class Scope(StrEnum):
    ALL = "all"
    OWN = "own"
    UNIT = "unit"
    WINDOW = "window"
    SELF = "self"
    NONE = "—"
    OPEN = "open"


LEGEND = {
    Scope.ALL: "every one of them",
    Scope.OWN: "the user's own calls: recordings, transcripts and call control of calls "
    "the user's agent identity took",
    Scope.UNIT: "tickets dispatched to the user's unit (lead or co-handler), while dispatched "
    "and after closing; others answer 404 as missing ones",
    Scope.WINDOW: "tickets the user's window joined a three-way call about, the clerk's part "
    "only; others answer 404 as missing ones",
    Scope.SELF: "about the user only (account, own agent state)",
    Scope.NONE: "refused: 403",
    Scope.OPEN: "no login needed (checked another way, or public)",
}

ROLE_ORDER = ("agent", "leader", "supervisor", "admin", "department", "window")


@dataclass(frozen=True, slots=True)
class Access:
    method: str  # GET, POST, ... or WS
    path: str
    what: str
    cells: Mapping[str, Scope]
    optional: bool = False  # mounted only with its feature (SMS)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


def _row(route: str, what: str, cells: str, *, optional: bool = False) -> Access:
    method, path = route.split(" ", 1)
    words = cells.split()
    if len(words) != len(ROLE_ORDER):
        raise ValueError(f"{route}: {len(words)} cells for {len(ROLE_ORDER)} roles")
    return Access(
        method, path, what, dict(zip(ROLE_ORDER, map(Scope, words), strict=True)), optional
    )


_OPEN = "open open open open open open"
_CONTROL = "own own all all — —"  # supervisors may name the agent
_RECORDING = "own own all all — —"

# fmt: off
ACCESS: tuple[Access, ...] = (
    #                                                       agent leader super admin dept window
    _row("POST /api/login", "session", _OPEN),
    _row("POST /api/logout", "session", "self self self self self self"),
    _row("GET /api/me", "account", "self self self self self self"),
    _row("GET /api/sessions", "session", "— — — all — —"),
    _row("DELETE /api/sessions/{session_id}", "session", "— — — all — —"),
    _row("DELETE /api/users/{username}/sessions", "session", "— — — all — —"),
    _row("GET /", "page", _OPEN),
    _row("GET /login", "page", _OPEN),
    _row("GET /home", "page", "self self self self self self"),
    _row("GET /agent", "page", "own own — own — —"),
    _row("GET /window", "page", "— — — window — window"),
    _row("GET /wallboard", "page", "— — all all — —"),
    _row("GET /reports", "page", "— all all all — —"),
    _row("GET /audit", "page", "— — — all — —"),
    _row("GET /callers", "page", "— — all all — —"),
    _row("GET /healthz", "ops", _OPEN),
    _row("GET /metrics", "ops", _OPEN),
    _row("GET /openapi.json", "docs", "all all all all all all"),
    _row("GET /docs", "docs", "all all all all all all"),
    _row("WS /ws", "live events", "own own all all self window"),
    # the agent's own state
    _row("GET /api/agents/me", "agent state", "own own — own — —"),
    _row("POST /api/agents/me/login", "agent state", "own own — own — —"),
    _row("POST /api/agents/me/ready", "agent state", "own own — own — —"),
    _row("POST /api/agents/me/not-ready", "agent state", "own own — own — —"),
    _row("POST /api/agents/me/logout", "agent state", "own own — own — —"),
    _row("POST /api/agents/me/wrapup-done", "agent state", "own own — own — —"),
    # the floor
    _row("GET /api/calls", "floor", "— — all all — —"),
    _row("GET /api/calls/waiting", "floor", "— — all all — —"),
    _row("GET /api/agents", "floor", "— — all all — —"),
    _row("GET /api/alarms", "floor", "— — all all — —"),
    _row("GET /api/seats", "directory", "all all all all — —"),
    _row("GET /api/windows", "directory", "all all all all — all"),
    _row("GET /api/departments", "directory", "all all all all all all"),
    _row("GET /api/kb/search", "knowledge", "all all all all — all"),
    _row("GET /api/callbacks", "callback", "all all all all — —"),
    _row("POST /api/callbacks/{task_id}/call", "callback", "all all — all — —"),
    _row("GET /api/window/current", "window call", "— — — window — window"),
    # tickets
    _row("GET /api/tickets", "ticket", "all all all all unit —"),
    _row("GET /api/tickets/{ticket_id}", "ticket", "all all all all unit window"),
    _row("PATCH /api/tickets/{ticket_id}", "ticket", "all all all all — —"),
    _row("POST /api/tickets/{ticket_id}/transitions", "ticket", "all all all all unit —"),
    _row("POST /api/tickets/{ticket_id}/attachments", "ticket", "all all all all unit —"),
    _row("GET /api/tickets/{ticket_id}/attachments/{attachment_id}", "ticket",
         "all all all all unit window"),
    _row("POST /api/tickets/{ticket_id}/merge", "ticket", "all all all all — —"),
    _row("POST /api/tickets/{ticket_id}/calls", "ticket", "all all all all — —"),
    _row("POST /api/tickets/{ticket_id}/window-outcomes", "window answer", "— — — — — window"),
    _row("POST /api/control/window-outcome", "window answer", "— — — — — window"),
    _row("GET /api/callers/{caller}/tickets", "ticket", "all all all all — —"),
    _row("GET /api/callers/{caller}/summary", "screen pop", "all all all all — —"),
    _row("GET /api/tickets/{ticket_id}/suggestions", "ticket", "all all all all — —"),
    _row("POST /api/tickets/{ticket_id}/suggestions", "ticket", "all all all all — —"),
    _row("GET /api/reports/suggestions", "report", "— all all all — —"),
    _row("GET /api/kpi/today", "report", "— all all all — —"),
    _row("GET /api/reports/kpi", "report", "— all all all — —"),
    _row("GET /api/reports/hotspots", "report", "— all all all — —"),
    _row("GET /api/sms", "sms", "— — all all — —", optional=True),
    _row("POST /api/sms/{message_id}/retry", "sms", "— — all all — —", optional=True),
    _row("POST /api/sms/status", "sms", _OPEN, optional=True),
    # intake by other channels (console.intake): another system's bearer token, no person
    _row("POST /api/tickets", "intake API: an [[intake.clients]] token", "— — — — — —"),
    _row("GET /api/police/handovers", "to 110: a police110 intake client's token, checked "
         "in the route", _OPEN),
    _row("POST /api/sms/inbound", "intake: citizens' SMS (twilio's signature)", _OPEN,
         optional=True),
    _row("GET /intake", "intake: the public web form", _OPEN, optional=True),
    _row("POST /api/intake/web", "intake: the public web form", _OPEN, optional=True),
    _row("POST /api/intake/web/confirm", "intake: the public web form", _OPEN, optional=True),
    # recordings and transcripts
    _row("GET /api/recordings", "recording", _RECORDING),
    _row("GET /api/recordings/{recording_id}", "recording", _RECORDING),
    _row("GET /api/recordings/{recording_id}/waveform", "recording", _RECORDING),
    _row("GET /api/recordings/{recording_id}/audio", "recording", _RECORDING),
    _row("GET /replay/{recording_id}", "recording", _RECORDING),
    _row("GET /api/tickets/{ticket_id}/transcript", "transcript", _RECORDING),
    _row("GET /replay-static/{name}", "page", "all all all all — —"),
    _row("GET /api/audit/replay", "audit", "— — — all — —"),
    _row("GET /api/audit/logins", "audit", "— — — all — —"),
    # caller flags (console.callers): set and cleared by supervisors, each change audited
    _row("GET /api/caller-flags", "caller flag", "— — all all — —"),
    _row("PUT /api/caller-flags/{caller}", "caller flag", "— — all all — —"),
    _row("POST /api/caller-flags/{caller}/clear", "caller flag", "— — all all — —"),
    _row("GET /api/audit/caller-flags", "audit", "— — all all — —"),
    # call control
    _row("POST /api/control/hold", "call control", _CONTROL),
    _row("POST /api/control/unhold", "call control", _CONTROL),
    _row("POST /api/control/blind-transfer", "call control", _CONTROL),
    _row("POST /api/control/attended-transfer", "call control", _CONTROL),
    _row("POST /api/control/three-way", "call control", _CONTROL),
    _row("POST /api/control/three-way/leave", "call control", _CONTROL),
    _row("POST /api/control/police", "call control", _CONTROL),
    _row("POST /api/control/callback", "call control", _CONTROL),
    _row("POST /api/control/hangup", "call control", _CONTROL),
    _row("POST /api/control/recording-mute", "call control", _CONTROL),
    _row("GET /api/control/session", "call control", _CONTROL),
    _row("GET /api/control/sessions", "call control", "— — all all — —"),
    _row("POST /api/control/spy", "call control", "— — all all — —"),
)
# fmt: on

# Inside a ticket view: which parts reach whom (the ticket itself being in scope).
FIELDS: tuple[tuple[str, Mapping[str, Scope]], ...] = tuple(
    (name, dict(zip(ROLE_ORDER, map(Scope, cells.split()), strict=True)))
    for name, cells in (
        ("the matter: " + ", ".join(WINDOW_FIELDS[4:]), "all all all all unit window"),
        (
            "caller, contact_phone, did, calls, dispatches, audit trail, reply, surveys",
            "all all all all unit —",
        ),
        ("transcript, transcript_segments (every call the user's own)", "own own all all — —"),
        ("calls[].recording_path; recording paths in live events and calls", "— — — all — —"),
    )
)

ACCESS_BY_ROUTE = {a.key: a for a in ACCESS}


def markdown() -> str:
    """``docs/access.md``: the rules, then the route × role table and the ticket fields."""
    doc = (__doc__ or "").split("The rules:", 1)[1].strip()
    lines = [
        "# Who sees what: routes × roles",
        "",
        "Generated by `python -m console.scopes --markdown > docs/access.md` from the table",
        "`console.scopes.ACCESS`, which `tests/console/test_scopes_walk.py` checks against",
        "every route as every role. Do not edit by hand.",
        "",
        doc,
        "",
        "## Cells",
        "",
        "| cell | meaning |",
        "|---|---|",
        *(f"| {s.value} | {meaning} |" for s, meaning in LEGEND.items()),
        "",
        "## Routes",
        "",
        "| route | what | " + " | ".join(ROLE_ORDER) + " |",
        "|---|---|" + "---|" * len(ROLE_ORDER),
    ]
    for a in ACCESS:
        note = " (with SMS)" if a.optional else ""
        cells = " | ".join(a.cells[r].value for r in ROLE_ORDER)
        lines.append(f"| `{a.method} {a.path}`{note} | {a.what} | {cells} |")
    lines += [
        "",
        "## Inside a ticket",
        "",
        "| part | " + " | ".join(ROLE_ORDER) + " |",
        "|---|" + "---|" * len(ROLE_ORDER),
    ]
    for name, cells_by_role in FIELDS:
        cells = " | ".join(cells_by_role[r].value for r in ROLE_ORDER)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.scopes", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print docs/access.md")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
