"""Routes of the intake paths that are no call (``tickets.intake``).

- ``POST /api/sms/inbound``: twilio's webhook for citizens' texts to the hotline's number.
  No session: the request is admitted by its ``X-Twilio-Signature`` (twilio's own
  ``RequestValidator`` over ``[intake] sms_inbound_url`` and the form parameters); a forged
  signature, another account's message or a MessageSid seen before is a 403 and stores
  nothing. A signed message that cannot become a ticket (empty, too long, no mainland
  number) gets its reason back as the TwiML reply and stores nothing.
- ``GET /intake``, ``POST /api/intake/web``, ``POST /api/intake/web/confirm``: the public
  web form, limited per address and per phone number an hour; the ticket is opened once the
  code sent by SMS is typed back.
- ``POST /api/tickets``: the intake API of other systems (WeChat back-ends, 110), admitted
  by the bearer token of an ``[[intake.clients]]`` entry, never by a person's session.

These routes take no CSRF token (``console.app.CSRF_EXEMPT``): they act on no session, so a
forged cross-site request can do nothing its sender could not do directly. Bodies are read
up to ``MAX_BODY`` bytes; larger ones are refused before anything is parsed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator

from console.validation import MAX_ID
from cti.errors import ApiError, Forbidden, Invalid
from tickets.channels import API_CHANNELS, Channel
from tickets.intake import SHORT_FIELDS, Intake
from tickets.intake import police_handovers as handovers
from tickets.settings import IntakeClient, IntakeSettings

MAX_BODY = 32 * 1024
_SID = re.compile(r"^(SM|MM|SMS)[0-9A-Za-z]{10,61}$")
_EXTERNAL_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,64}$")
_PENDING_ID = re.compile(r"^[0-9a-f]{32}$")
_CODE = re.compile(r"^[0-9]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What 110's record may carry beside the request's fields (12号文): a flat object of text.
MAX_RECORD_KEYS, MAX_RECORD_VALUE = 20, 500
TEXT = {"type": "string"}
_FIELDS_SCHEMA = {
    "phone": {"type": "string", "maxLength": 20},
    "description": {"type": "string", "maxLength": 20_000},
    **{name: {"type": "string", "maxLength": size} for name, size in SHORT_FIELDS.items()},
}
WEB_KEYS = {"phone", "description", *SHORT_FIELDS}
API_KEYS = {"channel", "external_id", "record", *WEB_KEYS}
WEB_SCHEMA = {
    "type": "object",
    "required": ["phone", "description"],
    "properties": _FIELDS_SCHEMA,
    "additionalProperties": False,
}
CONFIRM_SCHEMA = {
    "type": "object",
    "required": ["id", "code"],
    "properties": {"id": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": False,
}
API_SCHEMA = {
    "type": "object",
    "required": ["channel", "external_id", "phone", "description"],
    "properties": {
        "channel": {"type": "string", "enum": list(API_CHANNELS)},
        "external_id": {"type": "string", "maxLength": 64},
        **_FIELDS_SCHEMA,
        "record": {"type": "object", "additionalProperties": TEXT},
    },
    "additionalProperties": False,
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, or a 413 once it is longer than ``limit`` (declared or sent)."""
    too_large = ApiError(
        413, "too-large", f"the request is larger than {limit // 1024} KB: shorten the text"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_object(request: Request) -> dict[str, Any]:
    raw = await read_body(request)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Invalid("not-json", "the request body must be a JSON object in UTF-8") from None
    if not isinstance(data, dict):
        raise Invalid("not-json", "the request body must be a JSON object in UTF-8")
    return data


def _fields(data: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise Invalid("unknown-field", f"no field {unknown[0][:40]!r} in this request")
    return {k: v for k, v in data.items() if k in SHORT_FIELDS or k == "description"}


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise Invalid("invalid-field", f"{name} must be text", field=name)
    return value


def _twiml(message: str = "") -> Response:
    body = f"<Message>{escape(message)}</Message>" if message else ""
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return Response(xml, media_type="text/xml")


def intake_client(settings: IntakeSettings) -> Callable[[Request], IntakeClient]:
    """A dependency admitting the systems of ``[[intake.clients]]`` by their bearer token."""

    def dependency(request: Request) -> IntakeClient:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if getattr(request.state, "user", None) is not None:
                raise Forbidden(
                    "intake-token-required",
                    "tickets are opened here by other systems with their intake token;"
                    " people open them at the desk",
                )
            raise ApiError(
                401, "not-authenticated", "send Authorization: Bearer <token of an intake client>"
            )
        given = token.strip().encode()
        for client in settings.clients:
            if hmac.compare_digest(given, client.token.get_secret_value().encode()):
                return client
        raise ApiError(401, "bad-token", "the bearer token is not an intake client's")

    # Read by the route audit tests: no role of a person passes.
    dependency.required_roles = ("intake-client",)  # type: ignore[attr-defined]
    return dependency


def router(hotline: Any, renderer: Any, client_address: Callable[[Request], str]) -> APIRouter:
    settings: IntakeSettings = hotline.settings.intake
    sms = getattr(hotline, "sms", None)
    intake = Intake(hotline.tickets, settings, sms)
    api = APIRouter()
    by_token = Depends(intake_client(settings))

    @api.post("/api/tickets", status_code=201, openapi_extra=_json_body(API_SCHEMA))
    async def open_by_api(request: Request, client: IntakeClient = by_token) -> Response:
        """A ticket from another system: a WeChat back-end, the 110 linkage (its record in
        ``record``). The same ``external_id`` sent again answers 200 with the same ticket."""
        data = await read_object(request)
        fields = _fields(data, API_KEYS)
        channel = _text(data, "channel")
        if channel not in API_CHANNELS:
            raise Invalid("unknown-channel", f"channel must be one of {', '.join(API_CHANNELS)}")
        if channel not in client.channels:
            raise Forbidden(
                "channel-not-allowed", f"intake client {client.name} may not open {channel} tickets"
            )
        external_id = _text(data, "external_id")
        if not _EXTERNAL_ID.match(external_id):
            raise Invalid(
                "invalid-external-id",
                "external_id is your record's id: 1 to 64 letters, digits or _ . : -",
            )
        record = data.get("record", {})
        if not isinstance(record, dict) or len(record) > MAX_RECORD_KEYS:
            raise Invalid(
                "invalid-record", f"record must be an object of at most {MAX_RECORD_KEYS} texts"
            )
        for key, value in record.items():
            if (
                not isinstance(value, str)
                or len(key) > 64
                or len(value) > MAX_RECORD_VALUE
                or _CONTROL.search(key + value.replace("\n", ""))
            ):
                raise Invalid(
                    "invalid-record",
                    f"record values are single texts of at most {MAX_RECORD_VALUE} characters",
                )
        req = intake.clean_request(
            Channel(channel),
            client.name,
            external_id,
            _text(data, "phone"),
            fields,
            data=record,
        )
        outcome = await asyncio.to_thread(intake.submit, req)
        return JSONResponse(outcome.to_dict(), status_code=200 if outcome.replayed else 201)

    check_token = intake_client(settings)

    @api.get("/api/police/handovers")
    def police_handovers(
        request: Request,
        after: int = Query(0, ge=0, le=MAX_ID, description="the last cursor read"),
        limit: int = Query(100, ge=1, le=500),
    ) -> list[dict[str, Any]]:
        """12345 -> 110: the tickets handed over to 110 after ``after``, oldest first, with
        their content (the five elements, the category, the contact); for 110's system.
        The token is checked in the route, after the parameters (as ``/metrics`` does)."""
        client = check_token(request)
        if Channel.POLICE110.value not in client.channels:
            raise Forbidden("channel-not-allowed", f"intake client {client.name} is not 110's")
        return handovers(hotline.tickets.sessions, after, limit)

    if sms is None:
        return api  # the webhook, the form and its codes need SMS

    validator = RequestValidator(sms.settings.auth_token.get_secret_value())

    @api.post("/api/sms/inbound")
    async def sms_inbound(request: Request) -> Response:
        """twilio's webhook: a citizen's text becomes a ticket, or joins the open one."""
        raw = await read_body(request)
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature", "")
        url = settings.sms_inbound_url or str(request.url)
        if not signature or not validator.validate(url, params, signature):
            raise Forbidden("bad-signature", "the X-Twilio-Signature does not match")
        if params.get("AccountSid", "") != sms.settings.account_sid:
            raise Forbidden("wrong-account", "the message is not for this hotline's account")
        sid = params.get("MessageSid", "")
        if not _SID.match(sid):
            raise Invalid("no-message-sid", "the message has no MessageSid")
        templates = settings.templates
        sender = params.get("From", "")
        try:
            req = intake.clean_request(
                Channel.SMS, "twilio", sid, sender, {"description": params.get("Body", "")}
            )
        except Invalid as exc:
            reply = {
                "empty-description": templates.empty_sms,
                "phone-required": templates.unknown_sender,
                "invalid-phone": templates.unknown_sender,
            }.get(exc.error_id, templates.unreadable_sms)
            return _twiml(reply)
        req = dataclasses.replace(req, did=_CONTROL.sub("", params.get("To", ""))[:32])
        outcome = await asyncio.to_thread(intake.submit, req)
        if outcome.replayed:
            raise Forbidden("replayed", f"message {sid} was received before")
        await asyncio.to_thread(intake.tell_citizen, req.phone, outcome)
        return _twiml()

    @api.get("/intake")
    def form_page(request: Request) -> Response:
        minutes = max(1, settings.code_lifetime_s // 60)
        response: Response = renderer.render(
            "intake", request, title_key="intake.title", config={"code_minutes": minutes}
        )
        return response

    @api.post("/api/intake/web", status_code=201, openapi_extra=_json_body(WEB_SCHEMA))
    async def web_form(request: Request) -> dict[str, Any]:
        """The form's request: checked, counted, kept; the code goes to the phone by SMS."""
        data = await read_object(request)
        fields = _fields(data, WEB_KEYS)
        pending = await asyncio.to_thread(
            intake.request_code, _text(data, "phone"), fields, client_address(request)
        )
        return {
            "id": pending.id,
            "phone": pending.phone[:3] + "****" + pending.phone[-4:],
            "expires_at": pending.expires_at.isoformat(),
        }

    @api.post("/api/intake/web/confirm", openapi_extra=_json_body(CONFIRM_SCHEMA))
    async def web_confirm(request: Request) -> dict[str, Any]:
        data = await read_object(request)
        _fields(data, {"id", "code"})
        pending_id, code = _text(data, "id"), _text(data, "code").strip()
        if not _PENDING_ID.match(pending_id):
            raise Invalid("code-expired", "this form has expired or does not exist: fill it in")
        if not _CODE.match(code):
            raise Invalid("wrong-code", "the code is the 6 digits sent to your phone by SMS")
        outcome = await asyncio.to_thread(intake.confirm, pending_id, code)
        return outcome.to_dict()

    return api
