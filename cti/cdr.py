"""Calls the CTI missed, recovered from Asterisk's CDR file when the CTI starts.

Asterisk writes a CDR for every call whatever the CTI does (``cdr_custom``, one CSV line per
record, columns in the order of ``FIELDS``: see ``config/asterisk/cdr_custom.conf``). While the
CTI is down the dialplan sends callers to the fallback ``Queue()``, the seats still answer
them, and nobody records a ticket. At start the CTI reads the CDR file of every node that has
one and completes the database:

- a citizen call the database does not know gets its call row;
- answered by a seat -> a ticket is opened (``Persistence.call_answered``, the same path as a
  live answer; ``TicketService.open_for_call`` is idempotent per node + call id);
- not answered -> a callback task, like a live abandoned call (``Persistence.call_ended``);
- a call row the CTI left open (it died mid-call) is closed the same way.

Idempotent by node + Linkedid: a call whose row is ended (and has its ticket if it was
answered) is skipped, so running the import twice changes nothing.

What a CDR says, for the hotline's dialplan (``Answer()`` runs before the FastAGI): the
citizen's channel is answered at once, so ``disposition`` is ANSWERED even when the caller
gave up in the queue and ``answer`` is the dialplan's answer, not the seat's. A seat talked
with the citizen when a record of the citizen's channel names a seat's channel in
``dstchannel`` with disposition ANSWERED. Answered at a seat of another node, it names the
trunk leg (``PJSIP/node-b-...``): the seat is then on that node's record of the call, which
came in on the trunk (``[from-node]``) with the citizen's number while the call lasted.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from cti.calls.model import Call, split_channel
from cti.calls.nodes import FROM_NODE_CONTEXT, TRUNK_PREFIX, is_node_trunk, trunk_to
from cti.config import Settings
from cti.db import utcnow
from cti.models import AgentStateLogRow, CallRow
from tickets.models import Ticket, TicketCall

log = logging.getLogger(__name__)

# The columns of one CDR line, in the order of the mapping in config/asterisk/cdr_custom.conf.
FIELDS = (
    "linkedid",
    "uniqueid",
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "lastapp",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "userfield",
)
# Contexts a citizen's channel runs in (config/asterisk/extensions.conf), besides the node's
# inbound context: a call the CTI held or delivered ends there.
HOLD_CONTEXTS = frozenset({"cti-hold", "cti-deliver"})
LOOKBACK = timedelta(days=2)
_CHUNK = 500


class CallSink(Protocol):
    """``cti.persist.Persistence``: what a live call goes through."""

    def call_answered(self, call: Call) -> None: ...
    def call_ended(self, call: Call) -> None: ...


@dataclass(frozen=True, slots=True)
class CdrRecord:
    linkedid: str
    uniqueid: str
    clid: str
    src: str
    dst: str
    dcontext: str
    channel: str
    dstchannel: str
    lastapp: str
    start: datetime | None
    answer: datetime | None
    end: datetime | None
    duration: float
    billsec: float
    disposition: str
    userfield: str


@dataclass(slots=True)
class CitizenCall:
    """The records of one Linkedid, folded: what the database needs."""

    linkedid: str
    channel: str
    caller: str
    caller_name: str
    did: str
    started_at: datetime
    ended_at: datetime
    context: str = ""
    answered_at: datetime | None = None
    seat: str = ""
    userfield: str = ""
    via: str = ""  # answered through the trunk to this node, at one of its seats


@dataclass(slots=True)
class ImportResult:
    records: int = 0
    bad_lines: int = 0
    calls: int = 0
    new: int = 0
    closed: int = 0
    tickets: int = 0
    callbacks: int = 0
    skipped: int = 0
    files: list[str] = field(default_factory=list)


def parse_time(value: str, tz: ZoneInfo) -> datetime | None:
    """``1763800000.123456`` (``CDR(start,u)``) or ``2025-11-22 10:00:00`` (the default
    format, in the PBX's local time); empty or zero means "never" (an unanswered call)."""
    value = value.strip()
    if not value:
        return None
    try:
        epoch = float(value)
    except ValueError:
        local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        return local.replace(tzinfo=tz).astimezone(UTC)
    return datetime.fromtimestamp(epoch, UTC) if epoch > 0 else None


def parse_row(row: Sequence[str], tz: ZoneInfo) -> CdrRecord:
    if len(row) != len(FIELDS):
        raise ValueError(f"{len(row)} columns, expected {len(FIELDS)}")
    v = dict(zip(FIELDS, row, strict=True))
    return CdrRecord(
        linkedid=v["linkedid"],
        uniqueid=v["uniqueid"],
        clid=v["clid"],
        src=v["src"],
        dst=v["dst"],
        dcontext=v["dcontext"],
        channel=v["channel"],
        dstchannel=v["dstchannel"],
        lastapp=v["lastapp"],
        start=parse_time(v["start"], tz),
        answer=parse_time(v["answer"], tz),
        end=parse_time(v["end"], tz),
        duration=float(v["duration"] or 0),
        billsec=float(v["billsec"] or 0),
        disposition=v["disposition"],
        userfield=v["userfield"],
    )


def read_records(
    path: Path, tz: ZoneInfo, since: datetime, result: ImportResult
) -> Iterator[CdrRecord]:
    """Records that ended at or after ``since``; a line that is not a CDR is counted and
    skipped (a half-written last line, an edited file)."""
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if not row:
                continue
            try:
                rec = parse_row(row, tz)
            except ValueError as exc:
                result.bad_lines += 1
                log.debug("CDR %s: skipping a line: %s", path, exc)
                continue
            result.records += 1
            if rec.end is not None and rec.end >= since and rec.start is not None:
                yield rec


def caller_name(clid: str) -> str:
    """``"张三" <13800000001>`` -> 张三."""
    name, lt, _rest = clid.rpartition("<")
    text = name if lt else clid
    return text.strip().strip('"').strip()


def fold(
    records: Iterator[CdrRecord],
    citizen_contexts: frozenset[str],
    inbound_context: str,
    seats: Mapping[str, str],
) -> dict[str, CitizenCall]:
    """Citizen calls by Linkedid. A citizen's channel is the first of its call (Uniqueid ==
    Linkedid), not a seat's and not a Local channel, in a citizen context."""
    calls: dict[str, CitizenCall] = {}
    for rec in records:
        if rec.uniqueid != rec.linkedid or rec.dcontext not in citizen_contexts:
            continue
        tech, endpoint = split_channel(rec.channel)
        if tech == "Local" or endpoint in seats:
            continue
        assert rec.start is not None and rec.end is not None
        call = calls.get(rec.linkedid)
        if call is None:
            call = calls[rec.linkedid] = CitizenCall(
                linkedid=rec.linkedid,
                channel=rec.channel,
                caller=rec.src,
                caller_name=caller_name(rec.clid),
                did=rec.dst if rec.dcontext == inbound_context else "",
                started_at=rec.start,
                ended_at=rec.end,
                context=rec.dcontext,
            )
        call.started_at = min(call.started_at, rec.start)
        if rec.end >= call.ended_at:
            call.ended_at, call.context = rec.end, rec.dcontext
        call.userfield = call.userfield or rec.userfield
        _d_tech, d_endpoint = split_channel(rec.dstchannel)
        trunk = is_node_trunk(d_endpoint)
        if rec.disposition == "ANSWERED" and (seats.get(d_endpoint) == "seat" or trunk):
            at = rec.answer or rec.start
            if call.answered_at is None or at < call.answered_at:
                call.answered_at = at
                call.seat, call.via = (
                    ("", d_endpoint[len(TRUNK_PREFIX) :]) if trunk else (d_endpoint, "")
                )
    return calls


def seat_over_trunk(call: CitizenCall, node: str, there: list[CdrRecord]) -> str:
    """The seat that answered ``call`` of ``node`` through the trunk, from the records of
    the node it went to (``there``): the earliest answered by a seat of those that came in
    from ``node`` with the citizen's number while the call lasted."""
    found = [
        (r.start, split_channel(r.dstchannel)[1])
        for r in there
        if split_channel(r.channel)[1] == trunk_to(node)
        and r.src == call.caller
        and r.start is not None
        and call.started_at <= r.start <= call.ended_at
    ]
    return min(found)[1] if found else ""


def _fit(value: str, *columns: Any) -> str:
    """Without control characters (PostgreSQL refuses NUL in text) and no longer than the
    narrowest of ``columns``: a caller id from the carrier is not to be trusted."""
    text = "".join(ch for ch in value if unicodedata.category(ch) != "Cc")
    lengths = [n for c in columns if (n := getattr(c.type, "length", None))]
    return text[: min(lengths)] if lengths else text


class CdrImport:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        sink: CallSink,
        *,
        now: Callable[[], datetime] = utcnow,
        lookback: timedelta = LOOKBACK,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.sink = sink
        self.now = now
        self.lookback = lookback
        self.tz = ZoneInfo(settings.site.timezone)
        self.seats: dict[str, str] = {s.extension: s.kind for s in settings.seats}
        self.dids = settings.did_map()
        self.default_skill = settings.routing.default_skill

    async def run(self) -> ImportResult:
        """Read the files and the database off the loop, then hand each call to the sink on
        the loop (it publishes events and allocates ticket numbers)."""
        result = ImportResult()
        plans = await asyncio.to_thread(self._plan, result)
        for plan in plans:
            self._apply(plan, result)
        if result.calls:
            log.info(
                "CDR import: %d calls in %s; %d new, %d closed, %d tickets, %d callbacks, "
                "%d already recorded",
                result.calls,
                ", ".join(result.files),
                result.new,
                result.closed,
                result.tickets,
                result.callbacks,
                result.skipped,
            )
        return result

    # --- reading (worker thread) ----------------------------------------------------------

    def _plan(self, result: ImportResult) -> list[_Plan]:
        plans: list[_Plan] = []
        since = self.now() - self.lookback
        folded: dict[str, list[CitizenCall]] = {}
        answered_here: dict[str, list[CdrRecord]] = {}
        for node in self.settings.asterisk:
            path_text = getattr(node, "cdr_path", "") or ""
            if not path_text:
                continue
            path = Path(path_text)
            if not path.exists():
                log.warning("CDR file of %s not found: %s", node.name, path)
                continue
            result.files.append(str(path))
            contexts = HOLD_CONTEXTS | {node.inbound_context}
            records = list(read_records(path, self.tz, since, result))
            calls = fold(iter(records), contexts, node.inbound_context, self.seats)
            result.calls += len(calls)
            folded[node.name] = list(calls.values())
            # Calls of the other nodes that a seat here answered through the trunk.
            answered_here[node.name] = [
                r
                for r in records
                if r.dcontext == FROM_NODE_CONTEXT
                and r.disposition == "ANSWERED"
                and self.seats.get(split_channel(r.dstchannel)[1]) == "seat"
            ]
        for name, calls_of_node in folded.items():
            for call in calls_of_node:
                if call.via:
                    call.seat = seat_over_trunk(call, name, answered_here.get(call.via, []))
            plans.extend(self._decide(name, calls_of_node, result))
        return plans

    def _decide(self, node: str, calls: list[CitizenCall], result: ImportResult) -> list[_Plan]:
        plans = []
        with self.sessions() as session:
            for i in range(0, len(calls), _CHUNK):
                chunk = calls[i : i + _CHUNK]
                ids = [c.linkedid for c in chunk]
                rows = {
                    r.linkedid: r
                    for r in session.scalars(
                        select(CallRow).where(CallRow.node == node, CallRow.linkedid.in_(ids))
                    )
                }
                ticketed = set(
                    session.scalars(
                        select(TicketCall.call_id).where(
                            tuple_(TicketCall.node, TicketCall.call_id).in_(
                                [(node, x) for x in ids]
                            )
                        )
                    )
                )
                for cdr in chunk:
                    row = rows.get(cdr.linkedid)
                    answered = cdr.answered_at is not None or bool(row is not None and row.answered)
                    needs_ticket = answered and cdr.linkedid not in ticketed
                    if row is not None and row.ended_at is not None and not needs_ticket:
                        result.skipped += 1
                        continue
                    agent = ""
                    if cdr.answered_at is not None and not (row is not None and row.agent_id):
                        agent = _agent_at_seat(session, cdr.seat, cdr.answered_at)
                    if needs_ticket and row is not None and row.ticket_id:
                        # A number the route drew but no ticket holds: the process that drew
                        # it died, and this one may draw it again for another call. The call
                        # gets a fresh number, which the call row then names.
                        row.ticket_id = ""
                    plans.append(_Plan(node, cdr, _row_facts(row), needs_ticket, agent))
                session.commit()
        return plans

    # --- writing (event loop) -------------------------------------------------------------

    def _apply(self, plan: _Plan, result: ImportResult) -> None:
        call = self._call(plan)
        if plan.row is None:
            result.new += 1
        else:
            result.closed += 1
        if plan.needs_ticket:
            result.tickets += 1
            self.sink.call_answered(call)
        if plan.row is None or plan.row.get("ended_at") is None:
            if call.answered_at is None:
                result.callbacks += 1
            self.sink.call_ended(call)

    def _call(self, plan: _Plan) -> Call:
        cdr, row = plan.cdr, plan.row or {}
        topic, skill = ("", self.default_skill)
        hotline = self.dids.get(cdr.did)
        if hotline is not None:
            topic, skill = hotline.topic, hotline.skill
        answered_at = row.get("answered_at") or cdr.answered_at
        mono = time.monotonic()
        started_mono = mono - (cdr.ended_at - cdr.started_at).total_seconds()
        call = Call(
            node=plan.node,
            call_id=cdr.linkedid,
            direction=row.get("direction") or "inbound",
            channel=row.get("channel") or cdr.channel,
            uniqueid=cdr.linkedid,
            caller=row.get("caller") or _fit(cdr.caller, CallRow.caller, Ticket.caller),
            caller_name=row.get("caller_name")
            or _fit(cdr.caller_name, CallRow.caller_name, Ticket.citizen_name),
            did=row.get("did") or _fit(cdr.did, CallRow.did, Ticket.did),
            started_at=row.get("started_at") or cdr.started_at,
            started_mono=started_mono,
            state="ended",
            topic=row.get("topic") or topic,
            skill=row.get("skill") or skill,
            priority=row.get("priority") or 0,
            route_reason=row.get("route_reason") or "",
            # Ended in the CTI's line: the CTI had routed it; otherwise the fallback queue.
            routed_by=row.get("routed_by")
            or ("cti" if cdr.context in HOLD_CONTEXTS else "fallback"),
            leader=bool(row.get("leader")),
            ticket_id=row.get("ticket_id") or "",
            recording=row.get("recording") or "",
            seat=row.get("seat") or cdr.seat,
            agent_id=row.get("agent_id") or plan.agent_id,
            answered_at=answered_at,
            ended_at=cdr.ended_at,
            abandoned=answered_at is None,
            cause="ended while the CTI was away",
        )
        if answered_at is not None:
            call.answered_mono = started_mono + (answered_at - call.started_at).total_seconds()
        return call


@dataclass(frozen=True, slots=True)
class _Plan:
    node: str
    cdr: CitizenCall
    row: dict[str, Any] | None
    needs_ticket: bool
    agent_id: str


_ROW_FACTS = (
    "direction channel caller caller_name did topic skill route_reason routed_by priority "
    "leader started_at answered_at ended_at seat agent_id ticket_id recording"
).split()


def _row_facts(row: CallRow | None) -> dict[str, Any] | None:
    """What the CTI knew of the call before it went away (the route's ticket number, the
    topic, the recording path): kept, the CDR only adds the end and the answer."""
    if row is None:
        return None
    return {name: getattr(row, name) for name in _ROW_FACTS}


def _agent_at_seat(session: Session, extension: str, at: datetime) -> str:
    """The agent logged in at ``extension`` at ``at``, from the agent state log (the agents
    table itself is reset at start)."""
    last = session.scalars(
        select(AgentStateLogRow)
        .where(AgentStateLogRow.seat == extension, AgentStateLogRow.at <= at)
        .order_by(AgentStateLogRow.at.desc(), AgentStateLogRow.id.desc())
        .limit(1)
    ).first()
    if last is None or last.new == "logged_out":
        return ""
    return last.agent_id


async def import_missed_calls(
    settings: Settings, sessions: sessionmaker[Session], sink: CallSink
) -> ImportResult:
    """The calls Asterisk recorded and the database misses (see the module's docstring).
    A recovery step: whatever goes wrong here is logged and must not keep the CTI from
    starting and taking calls."""
    try:
        return await CdrImport(settings, sessions, sink).run()
    except Exception:
        log.exception("CDR import failed; the calls of the outage are not recorded yet")
        return ImportResult()
