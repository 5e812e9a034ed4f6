"""Twilio's webhooks: her SMS in, delivery reports back. Signed, form-encoded, thin.

The signature is checked against the configured public URL, not the Host header, so it holds behind a
reverse proxy. Nothing is read into the service before the signature is good. Replies never go back in
the webhook's answer (an empty TwiML `<Response/>`): they leave through the outbox like every message.

A turn that fails or passes HAMROH_TURN_TIMEOUT_SECONDS is rolled back and answered 503; Twilio sends it
again because `hamroh sms configure` puts connection overrides on the URLs it sets (retries, then the
fallback URL, which is handled the same way).
"""

from __future__ import annotations

import logging
from email.message import Message
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from api.bodies import read_body
from api.deadline import TooSlow, within
from api.deps import hamroh_of, settings_of
from bot.channels import twilio
from bot.config import Settings
from bot.receipts import delivery_report
from bot.store.crypto import AddressError

log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_FIELDS = 100  # Twilio sends about 20; a form of thousands of fields is not Twilio's

router = APIRouter()


async def signed_form(request: Request, settings: Settings) -> twilio.Form:
    """The webhook's form, once Twilio's signature of it is verified; a 4xx saying what is wrong otherwise."""
    signature = request.headers.get("x-twilio-signature")
    token = settings.twilio_auth_token
    if not signature or token is None:
        raise HTTPException(403, "not signed by Twilio")
    if not _is_form(request.headers.get("content-type", "")):
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    limit = settings.max_request_bytes
    body = await read_body(request, limit, f"the body is over {limit} bytes")
    form = _parse(body)
    overrides = twilio.connection_overrides(settings.turn_timeout_seconds)
    url = _signed_url(request, settings.public_url)
    if not twilio.signature_valid(token.get_secret_value(), url, form, signature, overrides=overrides):
        raise HTTPException(403, "not signed by Twilio")
    return form


# The webhooks call their checks in order rather than declare them as dependencies: they take most
# requests, and resolving dependencies cost them more than the checks themselves.


@router.post(twilio.INBOUND_PATH)
@router.post(twilio.FALLBACK_PATH)
async def inbound_sms(request: Request) -> Response:
    """Her SMS: one turn; 503 if it fails, so Twilio delivers it again (its MessageSid is handled once)."""
    settings, hamroh = settings_of(request), hamroh_of(request)
    form = await signed_form(request, settings)
    try:
        message = twilio.inbound(form)
    except twilio.WebhookError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        await within(settings.turn_timeout_seconds, hamroh.handle(message))
    except AddressError:
        return _twiml()  # not a phone number (a short code, a channel address): nobody to answer
    except TooSlow:
        log.warning("SMS turn took too long (the database?); Twilio will deliver it again")
        return _try_again(f"not handled within {settings.turn_timeout_seconds:g} s")
    except Exception as exc:  # the turn rolled back; Twilio retries on 5xx
        # The class only: a database error's message may carry the statement's parameters.
        log.warning("SMS turn failed (%s); Twilio will deliver it again", type(exc).__name__)
        return _try_again("not handled now")
    return _twiml()


@router.post(twilio.STATUS_PATH)
async def delivery_status(request: Request) -> Response:
    """A delivery report for a message we sent; 21610 (she opted out at the carrier) stops further SMS."""
    settings, hamroh = settings_of(request), hamroh_of(request)
    form = await signed_form(request, settings)
    try:
        status = twilio.delivery_status(form)
    except twilio.WebhookError as exc:
        raise HTTPException(400, str(exc)) from None
    report = delivery_report(
        hamroh, provider_id=status.message_sid, status=status.status, error_code=status.error_code
    )
    try:
        await within(settings.turn_timeout_seconds, report)
    except Exception as exc:
        log.warning("delivery report not recorded (%s); Twilio may send it again", type(exc).__name__)
        return _try_again("not recorded now")
    return _twiml()


def _twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


def _try_again(reason: str) -> Response:
    """503 with the reason (never her words, never a database's message): Twilio sends the request again."""
    return Response(f"try again later: {reason}", status_code=503, media_type="text/plain")


def _is_form(content_type: str) -> bool:
    if content_type == "application/x-www-form-urlencoded":  # as Twilio sends it: nothing to parse
        return True
    header = Message()
    header["content-type"] = content_type
    return header.get_content_type() == "application/x-www-form-urlencoded"


def _parse(body: bytes) -> twilio.Form:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError:  # not UTF-8, a field without "=", bad percent-escapes, or too many fields
        raise HTTPException(400, "the body is not a valid form") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _signed_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio signed: the public URL and the path under the app (and the query, if any).

    Without a public URL, the URL the request arrived at (right only when no proxy stands in front).
    """
    if public_url is None:
        return str(request.url)
    root = request.scope.get("root_path", "")
    path = request.url.path
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.url.query
    return f"{public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
