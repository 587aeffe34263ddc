"""SMS through twilio: the citizen gets the ticket number and the reply; a department's
contact gets new dispatches and reminders.

Every message is a row of ``sms_messages`` before any network traffic, so nothing is lost
when the gateway is down: the worker (``run``) sends due rows off the event loop in a
thread, retries temporary failures (network, HTTP 429 and 5xx) with exponential backoff up to
``max_attempts``, and marks permanent ones (a bad number: HTTP 400) failed at once. Failed
rows stay visible (``messages(status="failed")``) and can be retried by hand.

Every CTI process runs a worker on the same table. An attempt is claimed by one UPDATE
(``queued``/``retrying`` -> ``sending``), so one process sends it. A row left ``sending`` by a
process that died is sent again by any worker once its claim is ``SENDING_LEASE`` old; a
claim younger than that belongs to a process that may be talking to twilio right now.

Delivery reports arrive at ``status_callback_url`` (``POST /api/sms/status``); they carry no
user session, so each is checked against ``X-Twilio-Signature`` with twilio's
``RequestValidator`` and the auth token. Behind a TLS proxy the URL twilio signed is the
public one, which is why it is configured rather than taken from the request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from cti.db import utcnow
from cti.errors import Conflict, NotFound
from tickets.models import SmsMessage
from tickets.settings import SmsSettings

log = logging.getLogger(__name__)

# Twilio's delivery states in order; a late "sent" must not undo "delivered".
_RANK = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}
FINAL = {"delivered", "read", "failed", "undelivered"}
PENDING = ("queued", "retrying")
# How long an attempt may take before another worker decides its process died. Twilio's
# client has no timeout of its own: longer than any answer that still counts.
SENDING_LEASE = timedelta(minutes=10)
# Messages whose body carries a secret: the web form's confirmation code. Whoever reads the
# outbox (GET /api/sms, a supervisor; a database backup) must not be able to confirm a form
# in a citizen's name. The row keeps the code only while it waits to be sent: every CTI's
# worker sends from the table, and a retry after a restart needs the text; once twilio has
# the message (or it failed for good) nothing needs the code any more and it is masked.
SECRET_PURPOSES = frozenset({"intake_code"})
_CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")  # the six digits of tickets.intake's codes
MASK = "******"


def masked(purpose: str, body: str) -> str:
    """The body as the outbox shows it: a confirmation code replaced by ``MASK``."""
    return _CODE.sub(MASK, body) if purpose in SECRET_PURPOSES else body


class SmsNotifier:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: SmsSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        client: Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        token = settings.auth_token.get_secret_value()
        self.client = client or Client(settings.account_sid or None, token or None)
        if settings.api_base_url:
            self.client.api.base_url = settings.api_base_url.rstrip("/")
        self._validator = RequestValidator(token)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._send_lock = threading.Lock()

    # --- queueing ---------------------------------------------------------------------

    def notify(self, purpose: str, to: str, ticket_id: str, **fields: str) -> None:
        template = getattr(self.settings.templates, purpose, None)
        if template is None:
            raise ValueError(f"no SMS template for {purpose!r}")
        body = template.format(ticket_id=ticket_id, **fields)
        self.enqueue(to, body, ticket_id=ticket_id, purpose=purpose)

    def enqueue(self, to: str, body: str, *, ticket_id: str | None, purpose: str) -> int:
        now = self.clock()
        with self.sessions.begin() as session:
            row = SmsMessage(
                ticket_id=ticket_id,
                purpose=purpose,
                to=_e164(to),
                body=body,
                status="queued",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            message_id = row.id
        self._poke()
        return message_id

    def retry(self, message_id: int) -> None:
        """Send a failed message again (from the console)."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(SmsMessage, message_id, with_for_update=True)
            if row is None:
                raise NotFound("no-such-sms", f"no SMS {message_id}")
            if row.status == "sending":
                # A worker is sending it now: queued again, it would go twice.
                raise Conflict("sms-sending", f"SMS {message_id} is being sent")
            if row.purpose in SECRET_PURPOSES and masked(row.purpose, row.body) == row.body:
                raise Conflict(
                    "sms-code-gone",
                    f"SMS {message_id} carried a confirmation code, which is not kept once the"
                    " message is sent or has failed: the citizen asks for a new code on the form",
                )
            row.status, row.attempts, row.next_attempt_at, row.updated_at = "queued", 0, now, now
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # --- sending (blocking: run in a thread) -----------------------------------------

    def send_due(self) -> int:
        """Attempt every message whose time has come; returns how many were attempted."""
        with self._send_lock:
            self._reclaim_abandoned()
            now = self.clock()
            with self.sessions() as session:
                ids = list(
                    session.scalars(
                        select(SmsMessage.id)
                        .where(
                            SmsMessage.status.in_(PENDING),
                            or_(
                                SmsMessage.next_attempt_at.is_(None),
                                SmsMessage.next_attempt_at <= now,
                            ),
                        )
                        .order_by(SmsMessage.id)
                        .limit(200)
                    )
                )
            for message_id in ids:
                self._attempt(message_id)
            return len(ids)

    def _attempt(self, message_id: int) -> None:
        with self.sessions.begin() as session:
            claimed = session.execute(
                update(SmsMessage)
                .where(SmsMessage.id == message_id, SmsMessage.status.in_(PENDING))
                .values(status="sending", attempts=SmsMessage.attempts + 1, updated_at=self.clock())
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return
            row = session.get(SmsMessage, message_id)
            assert row is not None
            to, body, attempts = row.to, row.body, row.attempts
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self.settings.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.settings.messaging_service_sid
        else:
            kwargs["from_"] = self.settings.from_number
        if self.settings.status_callback_url:
            kwargs["status_callback"] = self.settings.status_callback_url
        sid = status = code = error = ""
        permanent = False
        try:
            message = self.client.messages.create(**kwargs)
            sid, status = message.sid or "", message.status or "queued"
        except TwilioRestException as exc:
            code, error = str(exc.code or exc.status), str(exc.msg)
            permanent = 400 <= exc.status < 500 and exc.status != 429
        except (TwilioException, OSError) as exc:  # requests' errors are OSErrors
            code, error = "network", f"{type(exc).__name__}: {exc}"
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(SmsMessage, message_id, with_for_update=True)
            assert row is not None
            if row.status != "sending" or row.attempts != attempts:
                # Our claim outlived SENDING_LEASE and another worker took the row over.
                log.warning(
                    "SMS %s: attempt %d ended after its lease (%s %s)",
                    message_id,
                    attempts,
                    sid or code,
                    error,
                )
                return
            row.updated_at = now
            if sid:
                row.sid = sid
                row.status = _later(
                    row.status, status if status in _RANK or status in FINAL else "sent"
                )
                if row.status == "sending":
                    row.status = "sent"
                row.error_code = row.error_message = ""
                row.next_attempt_at = None
                row.body = masked(row.purpose, row.body)
                return
            row.error_code, row.error_message = code, error[:1000]
            if permanent or attempts >= self.settings.max_attempts:
                row.status, row.next_attempt_at = "failed", None
                row.body = masked(row.purpose, row.body)
                log.warning(
                    "SMS %s to ticket %s failed: %s %s", message_id, row.ticket_id, code, error
                )
            else:
                delay = self.settings.retry_backoff_s * (2 ** (attempts - 1))
                row.status, row.next_attempt_at = "retrying", now + timedelta(seconds=delay)

    # --- the worker (owned by whoever starts it) -------------------------------------

    def start(self, poll_s: float = 5.0) -> None:
        """Start the sending worker in the running loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self.run(poll_s), name="sms-sender")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def run(self, poll_s: float) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                await asyncio.to_thread(self.send_due)
            except Exception:
                log.exception("SMS worker pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), poll_s)
            except TimeoutError:
                pass

    def _reclaim_abandoned(self) -> None:
        # A send interrupted by a crash may or may not have left: send it again (a duplicate
        # text is better than a lost one). Only once its claim is older than the lease: a
        # younger one may be another CTI's send in progress.
        now = self.clock()
        with self.sessions.begin() as session:
            session.execute(
                update(SmsMessage)
                .where(SmsMessage.status == "sending", SmsMessage.updated_at < now - SENDING_LEASE)
                .values(status="retrying", next_attempt_at=now, updated_at=now)
            )

    # --- delivery reports -------------------------------------------------------------

    def verify(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        url = self.settings.status_callback_url or url
        return bool(signature) and bool(self._validator.validate(url, dict(params), signature))

    def handle_status(self, params: Mapping[str, str]) -> bool:
        """Apply a (verified) delivery report; False when the message is unknown."""
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        if not sid or not status:
            return False
        with self.sessions.begin() as session:
            row = session.scalar(select(SmsMessage).where(SmsMessage.sid == sid))
            if row is None:
                return False
            row.status = _later(row.status, status)
            if status in ("failed", "undelivered"):
                row.error_code = params.get("ErrorCode", "") or row.error_code
                row.error_message = params.get("ErrorMessage", "") or status
            row.updated_at = self.clock()
        return True

    def messages(
        self, *, status: str | None = None, ticket_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(min(limit, 1000))
        if status:
            query = query.where(SmsMessage.status == status)
        if ticket_id:
            query = query.where(SmsMessage.ticket_id == ticket_id)
        with self.sessions() as session:
            return [
                {
                    "id": m.id,
                    "ticket_id": m.ticket_id,
                    "purpose": m.purpose,
                    "to": m.to,
                    "body": masked(m.purpose, m.body),
                    "status": m.status,
                    "attempts": m.attempts,
                    "sid": m.sid,
                    "error_code": m.error_code,
                    "error_message": m.error_message,
                    "next_attempt_at": m.next_attempt_at,
                    "created_at": m.created_at,
                    "updated_at": m.updated_at,
                }
                for m in session.scalars(query)
            ]


def _later(current: str, new: str) -> str:
    if current in FINAL and new not in FINAL:
        return current
    if new in _RANK and current in _RANK and _RANK[new] < _RANK[current]:
        return current
    return new


def _e164(number: str) -> str:
    """Mainland numbers to E.164 (+86...), which twilio requires."""
    digits = number.replace("-", "").replace(" ", "")
    if digits.startswith("+"):
        return digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+86" + digits[1:]
    return "+86" + digits
