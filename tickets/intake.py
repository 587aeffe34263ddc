"""Requests that reach the hotline other than by a call: a citizen's SMS, the public web form
(accepted once the citizen types the code sent by SMS to the number given), and the intake
API of other systems (WeChat back-ends, the 110 linkage).

Each becomes a ticket of the same workflow as a call's: a draft (S0 受理中) with its channel,
the citizen's number as caller and contact, and its own ticket number from the shared
counter, for an agent to answer, dispatch or refuse. A request from a number with an open
ticket of the same category opened within ``dedup_days`` is attached to that ticket instead
(a ``ticket_intakes`` row of kind ``attached`` and an ``intake_contact`` audit event with the
text): 并单 at the door. SMS carry no category, so a text joins the number's newest open
ticket of the week, whatever its category.

Every request is a ``ticket_intakes`` row, unique by ``(source, external_id)``: twilio's
MessageSid, the web form's confirmation id, an API client's own record id. The same request
delivered twice finds its row and opens nothing (``Outcome.replayed``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cti.errors import ApiError, Invalid, NotFound
from cti.events import TicketUpdated
from tickets import police_calls
from tickets.actions import police_handover
from tickets.channels import Channel
from tickets.fields import clean_text
from tickets.models import IntakeCode, Ticket, TicketEvent, TicketIntake
from tickets.phones import is_mobile, normalise_phone
from tickets.service import TicketService
from tickets.settings import IntakeSettings
from tickets.sms import SmsNotifier
from tickets.statemachine import OPEN_STATES, Actor, State

log = logging.getLogger(__name__)

# The short fields of a request, with their column sizes.
SHORT_FIELDS = {"citizen_name": 50, "occurred": 100, "location": 200, "category": 50}
OPENED, ATTACHED = "opened", "attached"
_STORE_LOCK = threading.Lock()


class RateLimited(ApiError):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(429, "rate-limited", message, {"retry_after_s": retry_after_s})


class SmsUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "sms-disabled",
            "this hotline sends no SMS, so the web form cannot send its confirmation code:"
            " call 12345 instead",
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One request, its text fields already checked (``clean_request``)."""

    channel: Channel
    source: str  # twilio | web | the API client's name
    external_id: str
    phone: str  # normalised (tickets.phones)
    description: str
    category: str = ""
    citizen_name: str = ""
    occurred: str = ""
    location: str = ""
    did: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    ticket_id: str
    kind: str  # opened | attached
    replayed: bool = False  # the same request was delivered before: nothing new was stored

    def to_dict(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "kind": self.kind, "replayed": self.replayed}


@dataclass(frozen=True, slots=True)
class PendingForm:
    """A web form waiting for its code."""

    id: str
    phone: str
    expires_at: datetime


class Intake:
    def __init__(
        self,
        service: TicketService,
        settings: IntakeSettings,
        sms: SmsNotifier | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.sms = sms
        self.clock = clock or service.clock

    # --- the checks every path shares --------------------------------------------------------

    def clean_request(
        self,
        channel: Channel,
        source: str,
        external_id: str,
        phone: str,
        fields: Mapping[str, Any],
        *,
        data: Mapping[str, Any] | None = None,
    ) -> Request:
        """A ``Request`` from raw fields, or ``Invalid`` naming the first bad one: a phone
        number that is not a mainland one, an empty or oversized text, a control character,
        a category the hotline does not use."""
        number = normalise_phone(phone, field="phone") if phone else ""
        if not number:
            raise Invalid("phone-required", "a phone number to reach the citizen is needed")
        unknown = set(fields) - set(SHORT_FIELDS) - {"description"}
        if unknown:
            raise Invalid("unknown-field", f"no field {sorted(unknown)[0]!r} in a request")
        description = clean_text(
            "description", fields.get("description", ""), self.settings.max_text, multiline=True
        )
        if not description:
            raise Invalid("empty-description", "describe the matter: the text is empty")
        short = {
            name: clean_text(name, fields.get(name, ""), limit)
            for name, limit in SHORT_FIELDS.items()
        }
        category = short.pop("category")
        if category and category not in self.service.settings.allowed_categories():
            raise Invalid(
                "unknown-category",
                f"category {category!r} is not one this hotline uses",
                allowed=self.service.settings.allowed_categories(),
            )
        return Request(
            channel=channel,
            source=source,
            external_id=external_id,
            phone=number,
            description=description,
            category=category,
            data=dict(data or {}),
            **short,
        )

    # --- opening or attaching ----------------------------------------------------------------

    def submit(self, request: Request) -> Outcome:
        """The ticket the request opened, or the open one it joined; idempotent by the
        request's ``(source, external_id)``."""
        for _ in range(3):
            seen = self._seen(request)
            if seen is not None:
                return seen
            try:
                outcome = self._store(request)
            except IntegrityError:
                # The same request raced in twice, or the number was drawn meanwhile by a
                # process that could not know (a counter reset): the next round decides.
                continue
            self.service.publish(
                TicketUpdated(
                    ticket_id=outcome.ticket_id,
                    what=f"intake_{outcome.kind}",
                    actor=_actor(request).id,
                    at=self.clock(),
                )
            )
            log.info(
                "intake %s/%s %s ticket %s",
                request.source,
                request.external_id,
                outcome.kind,
                outcome.ticket_id,
            )
            return outcome
        raise ApiError(503, "intake-busy", "the request could not be stored: send it again")

    def _seen(self, request: Request) -> Outcome | None:
        with self.service.sessions() as session:
            row = session.execute(
                select(TicketIntake.ticket_id, TicketIntake.kind).where(
                    TicketIntake.source == request.source,
                    TicketIntake.external_id == request.external_id,
                )
            ).first()
        return None if row is None else Outcome(row[0], row[1], replayed=True)

    def open_ticket_of(self, session: Session, phone: str, category: str) -> Ticket | None:
        """The newest open ticket of ``phone`` of ``category`` (any, for "") opened within
        ``dedup_days``."""
        if self.settings.dedup_days <= 0:
            return None
        since = self.clock() - timedelta(days=self.settings.dedup_days)
        query = (
            select(Ticket)
            .where(
                Ticket.contact_phone == phone,
                Ticket.state.in_([s.value for s in OPEN_STATES]),
                Ticket.opened_at >= since,
            )
            .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
            .limit(1)
        )
        if category:
            query = query.where(Ticket.category == category)
        return session.scalar(query)

    def _store(self, request: Request) -> Outcome:
        # Within the process one request at a time (SQLite has no row locks to wait on);
        # across processes on PostgreSQL, an advisory lock per number.
        with _STORE_LOCK:
            return self._store_locked(request)

    def _store_locked(self, request: Request) -> Outcome:
        now = self.clock()
        actor = _actor(request)
        with self.service.sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Two requests of one number at once (a burst of texts, two CTIs) would each
                # find no open ticket and open two: the second waits for the first's commit.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": zlib.crc32(f"intake:{request.phone}".encode())},
                )
            # 110's record of a call 110 put through already (police_calls): that call's
            # ticket, whatever number the record gives.
            linked = (
                police_calls.record_ticket(session, request.external_id)
                if request.channel == Channel.POLICE110
                else None
            )
            ticket = linked or self.open_ticket_of(session, request.phone, request.category)
            if ticket is not None:
                session.add(_intake_row(request, ticket.id, ATTACHED, now))
                if linked is not None:
                    police_calls.carry(linked, _fields(request))
                if (
                    request.channel == Channel.POLICE110
                    and ticket.state == State.INTAKE
                    and ticket.channel == Channel.PHONE
                ):
                    # 110's record of the call 110 just put through: the call's draft is 110's.
                    ticket.channel = Channel.POLICE110.value
                self.service.audit(
                    session,
                    ticket,
                    "intake_contact",
                    actor,
                    ticket.state,
                    data=_event_data(request),
                )
                return Outcome(ticket.id, ATTACHED)
            ticket_id = self.service.numbers.next()
            ticket = Ticket(
                id=ticket_id,
                state=State.INTAKE.value,
                channel=request.channel.value,
                caller=request.phone,
                contact_phone=request.phone,
                did=request.did,
                category=request.category,
                citizen_name=request.citizen_name,
                occurred=request.occurred,
                location=request.location,
                description=request.description,
                opened_at=now,
            )
            session.add(ticket)
            session.flush()
            session.add(_intake_row(request, ticket_id, OPENED, now))
            self.service.audit(session, ticket, "open", actor, "", data=_event_data(request))
            return Outcome(ticket_id, OPENED)

    def tell_citizen(self, phone: str, outcome: Outcome) -> None:
        """The SMS that says which ticket the request opened or joined (none without SMS)."""
        if self.sms is None or outcome.replayed:
            return
        template = (
            self.settings.templates.opened
            if outcome.kind == OPENED
            else self.settings.templates.attached
        )
        self.sms.enqueue(
            phone,
            template.format(ticket_id=outcome.ticket_id),
            ticket_id=outcome.ticket_id,
            purpose=f"intake_{outcome.kind}",
        )

    # --- the web form ------------------------------------------------------------------------

    def request_code(self, phone: str, fields: Mapping[str, Any], address: str) -> PendingForm:
        """Check the form, count it against the address's and the number's hourly limits,
        keep it and send the code by SMS."""
        if self.sms is None:
            raise SmsUnavailable()
        request = self.clean_request(Channel.WEB, "web", "-", phone, fields)
        if not is_mobile(request.phone):
            raise Invalid(
                "mobile-required",
                "the confirmation code is sent by SMS: give a mobile number (1XXXXXXXXXX)",
                field="phone",
            )
        self.forget_expired()
        now = self.clock()
        hour_ago = now - timedelta(hours=1)
        with self.service.sessions.begin() as session:
            limits = (
                (IntakeCode.address, address, self.settings.web_per_address_per_hour, "address"),
                (IntakeCode.phone, request.phone, self.settings.web_per_phone_per_hour, "number"),
            )
            for column, value, limit, what in limits:
                if not value:
                    continue
                times = list(
                    session.scalars(
                        select(IntakeCode.created_at)
                        .where(column == value, IntakeCode.created_at >= hour_ago)
                        .order_by(IntakeCode.created_at.desc())
                        .limit(limit)
                    )
                )
                if len(times) >= limit:
                    wait = int((times[-1] + timedelta(hours=1) - now).total_seconds()) + 1
                    raise RateLimited(
                        f"too many requests from this {what} within the hour: try again in"
                        f" {max(1, wait // 60)} minutes, or call 12345",
                        max(1, wait),
                    )
            code = f"{secrets.randbelow(10**6):06d}"
            pending = IntakeCode(
                id=secrets.token_hex(16),
                phone=request.phone,
                address=address[:64],
                form={
                    "description": request.description,
                    "category": request.category,
                    "citizen_name": request.citizen_name,
                    "occurred": request.occurred,
                    "location": request.location,
                },
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.code_lifetime_s),
                attempts=0,
            )
            pending.code_hash = _hash(pending.id, code)
            session.add(pending)
            result = PendingForm(pending.id, request.phone, pending.expires_at)
        minutes = max(1, self.settings.code_lifetime_s // 60)
        self.sms.enqueue(
            request.phone,
            self.settings.templates.code.format(code=code, minutes=minutes),
            ticket_id=None,
            purpose="intake_code",
        )
        return result

    def confirm(self, pending_id: str, code: str) -> Outcome:
        """The web form's ticket, once the code is right; a wrong code counts an attempt."""
        now = self.clock()
        with self.service.sessions.begin() as session:
            row = session.get(IntakeCode, pending_id, with_for_update=True)
            if row is None or row.expires_at <= now:
                raise NotFound(
                    "code-expired", "this form has expired or does not exist: fill it in again"
                )
            if row.ticket_id is not None:
                return Outcome(row.ticket_id, OPENED, replayed=True)
            if row.attempts >= self.settings.code_attempts:
                raise ApiError(
                    429, "too-many-attempts", "the code was typed wrong too often: fill in again"
                )
            right = hmac.compare_digest(row.code_hash, _hash(row.id, code))
            if not right:
                row.attempts += 1
            left = self.settings.code_attempts - row.attempts
            phone, form = row.phone, dict(row.form)
        if not right:  # raised after the attempt was counted
            raise Invalid("wrong-code", f"the code is wrong: {left} attempts left")
        request = self.clean_request(Channel.WEB, "web", pending_id, phone, form)
        outcome = self.submit(request)
        with self.service.sessions.begin() as session:
            row = session.get(IntakeCode, pending_id)
            if row is not None:
                row.ticket_id = outcome.ticket_id
        self.tell_citizen(phone, outcome)
        return outcome

    def forget_expired(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Delete web forms older than ``older_than`` (their codes are long dead; the hourly
        counts read the last hour). Each new form does it first."""
        cutoff = self.clock() - older_than
        with self.service.sessions.begin() as session:
            result = session.execute(delete(IntakeCode).where(IntakeCode.created_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]


def police_handovers(
    sessions: sessionmaker[Session], after: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """12345 -> 110: the tickets handed over to 110 after the cursor ``after`` (an audit event
    id), oldest first, each with its content as it stood at the transfer."""
    with sessions() as session:
        events = list(
            session.scalars(
                select(TicketEvent)
                .where(TicketEvent.action == "transfer_police", TicketEvent.id > after)
                .order_by(TicketEvent.id)
                .limit(limit)
            )
        )
        result = []
        for event in events:
            data = event.data or {}
            content = data.get("handover")
            if content is None:  # handed over before the content was recorded with it
                ticket = session.get(Ticket, event.ticket_id)
                content = police_handover(ticket) if ticket is not None else {}
            result.append(
                {
                    "cursor": event.id,
                    "ticket_id": event.ticket_id,
                    "at": event.at.isoformat(),
                    "agent": event.actor,
                    "reason": event.reason,
                    "police_ref": data.get("police_ref", ""),
                    "ticket": content,
                }
            )
        return result


def _actor(request: Request) -> Actor:
    name = request.source if request.source in ("twilio", "web") else f"api:{request.source}"
    return Actor(f"intake:{name}"[:64], frozenset())


def _intake_row(request: Request, ticket_id: str, kind: str, now: datetime) -> TicketIntake:
    return TicketIntake(
        ticket_id=ticket_id,
        channel=request.channel.value,
        source=request.source,
        external_id=request.external_id,
        phone=request.phone,
        kind=kind,
        text=request.description,
        data=dict(request.data),
        received_at=now,
    )


def _fields(request: Request) -> dict[str, str]:
    return {
        "citizen_name": request.citizen_name,
        "occurred": request.occurred,
        "location": request.location,
        "description": request.description,
        "category": request.category,
    }


def _event_data(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": request.channel.value,
        "source": request.source,
        "external_id": request.external_id,
        "text": request.description,
    }
    if request.data:
        data["record"] = dict(request.data)
    return data


def _hash(pending_id: str, code: str) -> str:
    return hashlib.sha256(f"{pending_id}:{code}".encode()).hexdigest()
