"""Twilio: the SMS provider behind `SmsProvider`, and reading Twilio's webhooks (signature, form fields).

Requests go through the twilio SDK's `*_async` methods on its aiohttp client, so nothing blocks the event
loop. The SDK's async client applies no timeout of its own (it passes none to aiohttp, which then waits
forever), so every call here runs under `asyncio.timeout`. The SDK logs each request at INFO (URL and
headers, never the form body); it is given a logger of its own, kept at WARNING, so none of that reaches
the logs even when Hamroh runs at DEBUG.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.sms import SmsProvider, SmsSender
from bot.config import Settings
from bot.receipts import CARRIER_OPT_OUT, DELIVERY_STATES
from bot.senders import Failed, RetryLater, SendResult, Sent
from bot.service import Inbound

TIMEOUT_SECONDS = 10.0
INBOUND_PATH = "/webhooks/sms"  # where Twilio posts her messages (configured on the number or service)
STATUS_PATH = "/webhooks/sms/status"  # where Twilio posts delivery reports (we name it with each message)
FALLBACK_PATH = "/webhooks/sms/fallback"  # where Twilio posts her message when INBOUND_PATH kept failing
# Twilio's connection overrides (the URL's fragment, read by Twilio, never sent in the request): without
# them Twilio does not retry an SMS webhook that answers 5xx or times out, and her message is dropped.
RETRIES = 5  # Twilio's most
CONNECT_TIMEOUT_MS = 5000
MOST_READ_TIMEOUT_MS = 15000  # Twilio's most; the turn's own limit is below it
NOT_YET_DELETABLE = "20009"  # Twilio: a message still being processed cannot be deleted yet
WAIT_TO_DELETE_SECONDS = 60.0  # Twilio asks to wait at least a minute before deleting a fresh message
WAIT_FOR_CREDENTIALS_SECONDS = 60.0
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")  # always fullmatch: "$" would let a "\n" through
_ERROR_CODE = re.compile(r"[0-9]{1,10}")
_COUNT = re.compile(r"[0-9]{1,4}")

# The SDK's request logging, kept out of every log (see the module docstring).
_SDK_LOG = logging.getLogger("bot.channels.twilio.sdk")
_SDK_LOG.setLevel(logging.WARNING)  # still propagates: a warning would pass the redacting handlers
# Any edge or region in the environment would rewrite the API host: the settings alone decide it.
_NO_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}
_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, json.JSONDecodeError)


class TwilioProvider:
    """Twilio's Messages API through the official SDK. Create it inside the running event loop."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        api_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        if not (from_ or messaging_service_sid):
            raise ValueError("Twilio needs a sender number or a messaging service")
        self.account_sid = account_sid
        self.timeout = timeout
        self._sender: dict[str, str] = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_ or ""}
        )
        if status_callback:
            self._sender["status_callback"] = status_callback
        self._http = sdk_http(timeout)
        self._client: Any = sdk_client(account_sid, auth_token, api_url, self._http)
        self._messages: Any = self._client.messages  # loads the SDK's modules now, not during a send

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> TwilioProvider:
        """The provider configured by HAMROH_TWILIO_* (and HAMROH_PUBLIC_URL for delivery reports)."""
        if not settings.sms_on or settings.twilio_account_sid is None or settings.twilio_auth_token is None:
            raise ValueError("SMS is off: set the Twilio account SID, auth token and a sender")
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_url=settings.twilio_api_url,
            status_callback=status_callback_url(settings),
            timeout=timeout,
        )

    @property
    def credential(self) -> str:
        """The account SID: not a secret, and one active sender per account keeps Twilio's rate."""
        return self.account_sid

    async def send(self, to: str, text: str) -> SendResult:
        """Create a message at Twilio; `Sent` carries its SID."""
        try:
            async with asyncio.timeout(self.timeout):
                message = await self._messages.create_async(to=to, body=text, **self._sender)
        except (TwilioRestException, TwilioServiceException) as exc:
            return _refused(exc)
        except _TRANSPORT_ERRORS as exc:
            # The message may have been created anyway; the dispatcher decides whether to send again.
            return RetryLater(f"twilio unreachable ({type(exc).__name__})")
        sid = getattr(message, "sid", None)
        return Sent((sid,) if isinstance(sid, str) and sid else ())

    async def delete(self, message_id: str) -> SendResult:
        """Delete one message (hers or ours) at Twilio; "not found" means it is already gone."""
        if not MESSAGE_SID.fullmatch(message_id):
            return Failed("not a Twilio message SID")  # it goes into the URL path: only well-formed SIDs
        try:
            async with asyncio.timeout(self.timeout):
                await self._messages(message_id).delete_async()
        except (TwilioRestException, TwilioServiceException) as exc:
            if exc.status == 404:
                return Sent()
            if _code(exc) == NOT_YET_DELETABLE:
                return RetryLater(f"{_describe(exc)} (not deletable yet)", after=WAIT_TO_DELETE_SECONDS)
            return _refused(exc)
        except _TRANSPORT_ERRORS as exc:
            return RetryLater(f"twilio unreachable ({type(exc).__name__})")
        return Sent()

    async def close(self) -> None:
        """Close the SDK's aiohttp session."""
        await self._http.close()


def sdk_client(account_sid: str, auth_token: str, api_url: str, http: AsyncTwilioHttpClient) -> Any:
    """The SDK's client on `http`, every API it calls (REST and Messaging) at `api_url`."""
    client: Any = Client(
        account_sid,
        auth_token,
        http_client=http,
        environment=_NO_ENVIRONMENT,
        credential_provider=_BasicAuthHeader(account_sid, auth_token),
    )
    base = api_url.rstrip("/")
    client.api.base_url = base
    if base != "https://api.twilio.com":  # a test server serves every Twilio API at one address
        client.messaging.base_url = base
    return client


def sdk_http(timeout: float = TIMEOUT_SECONDS) -> AsyncTwilioHttpClient:
    """The SDK's aiohttp client, logging to a logger kept quiet (see the module docstring)."""
    return AsyncTwilioHttpClient(timeout=timeout, logger=_SDK_LOG)


class _BasicAuthHeader:
    """The account's credentials as an Authorization header, through the SDK's credential-provider hook.

    Without it the SDK hands aiohttp a `BasicAuth`, which aiohttp 3.14 deprecates (a warning on every
    request). The SDK never logs Authorization headers.
    """

    def __init__(self, account_sid: str, auth_token: str) -> None:
        pair = f"{account_sid}:{auth_token}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode("ascii")

    def to_auth_strategy(self) -> _BasicAuthHeader:
        return self

    def get_auth_string(self) -> str:
        return self._header


def sms_sender(settings: Settings, *, timeout: float = TIMEOUT_SECONDS) -> SmsSender:
    """The dispatcher's SMS sender for these settings, through Twilio (inside the running event loop)."""
    provider: SmsProvider = TwilioProvider.from_settings(settings, timeout=timeout)
    return SmsSender(provider)


def connection_overrides(turn_timeout_seconds: float) -> str:
    """The fragment that makes Twilio retry a webhook on any failure: 5xx, 4xx, refused or slow.

    Twilio waits a little longer than a turn may take, so a turn that hits its limit is answered 503 (and
    retried) rather than cut off; a message retried after it landed is dropped as a duplicate.
    """
    read_ms = min(MOST_READ_TIMEOUT_MS, round(turn_timeout_seconds * 1000) + 2000)
    return f"rc={RETRIES}&rp=all&ct={CONNECT_TIMEOUT_MS}&rt={read_ms}"


def webhook_url(settings: Settings, path: str) -> str:
    """The URL Twilio should call for `path`: the public URL, the path, and the connection overrides."""
    if not settings.public_url:
        raise ValueError("HAMROH_PUBLIC_URL is not set")
    return f"{settings.public_url.rstrip('/')}{path}#{connection_overrides(settings.turn_timeout_seconds)}"


def status_callback_url(settings: Settings) -> str | None:
    """Where Twilio should post delivery reports, with the connection overrides (a report answered 503
    while the database stumbles is retried, not lost); None without a public URL (no reports then)."""
    return webhook_url(settings, STATUS_PATH) if settings.public_url else None


def _code(exc: TwilioRestException | TwilioServiceException) -> str | None:
    code = str(exc.code) if exc.code is not None else ""
    return code if _ERROR_CODE.fullmatch(code) else None


def _describe(exc: TwilioRestException | TwilioServiceException) -> str:
    """Status and Twilio error code only: Twilio's message may quote her number ("The 'To' number ...")."""
    code = _code(exc)
    status = int(exc.status)
    return f"twilio {status}" if code in (None, str(status)) else f"twilio {status} error {code}"


def _refused(exc: TwilioRestException | TwilioServiceException) -> SendResult:
    status = int(exc.status)
    reason = _describe(exc)
    if status == 429 or status >= 500:
        return RetryLater(reason)
    if status == 401:
        # Our credentials, not her message: keep it until someone fixes the auth token.
        return RetryLater(
            f"{reason} (check the account SID and auth token)", after=WAIT_FOR_CREDENTIALS_SECONDS
        )
    if _code(exc) == CARRIER_OPT_OUT:
        return Failed(f"{reason} (she opted out at the carrier)", unreachable=True)
    return Failed(reason)


# --- webhooks ----------------------------------------------------------------------------------------------

Form = Mapping[str, Sequence[str]]  # a parsed form: every field with all its values, in order


class WebhookError(ValueError):
    """A webhook form Hamroh cannot use; the message names the field, never its value."""


@dataclass(frozen=True)
class DeliveryStatus:
    """A status callback: which message, its status, and Twilio's error code if any."""

    message_sid: str
    status: str
    error_code: str | None


class _MultiParams(dict[str, list[str]]):
    """A form as RequestValidator reads a multi-valued mapping (it looks for `getlist`)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def signature_valid(
    auth_token: str, url: str, form: Form, signature: str, *, overrides: str | None = None
) -> bool:
    """Whether X-Twilio-Signature is Twilio's signature of this URL and form, under our auth token.

    `url` is the URL as requested (a fragment never reaches the server). Twilio's docs do not say whether
    it signs the configured URL with its connection overrides or without them, so both are accepted: the
    fragment tried is our own (`overrides`), never one taken from the request, so no forgery gains by it.
    """
    params = _MultiParams({name: list(values) for name, values in form.items()})
    validator = RequestValidator(auth_token)
    candidates = [url] + ([f"{url}#{overrides}"] if overrides else [])
    return any(validator.validate(candidate, params, signature) for candidate in candidates)


def inbound(form: Form) -> Inbound:
    """Her message as the service takes it: From, Body, whether it is only media, and the MessageSid."""
    sender = _one(form, "From")
    if sender is None:
        raise WebhookError("From and MessageSid are required")
    sid = _message_sid(form)
    body = _one(form, "Body") or ""
    media = _one(form, "NumMedia") or "0"
    if not _COUNT.fullmatch(media):
        raise WebhookError("NumMedia is not a number")
    return Inbound("sms", sender, text=body, media=int(media) > 0 and not body, provider_id=sid)


def _message_sid(form: Form) -> str:
    sid = _one(form, "MessageSid")
    if sid is None:
        raise WebhookError("MessageSid is required")
    if not MESSAGE_SID.fullmatch(sid):
        raise WebhookError("MessageSid is not a message SID")
    return sid


def delivery_status(form: Form) -> DeliveryStatus:
    """A status callback's MessageSid, MessageStatus and ErrorCode, checked."""
    status = _one(form, "MessageStatus")
    if status is None:
        raise WebhookError("MessageSid and MessageStatus are required")
    sid = _message_sid(form)
    if status not in DELIVERY_STATES:
        raise WebhookError("MessageStatus is not a known status")
    error_code = _one(form, "ErrorCode") or None
    if error_code is not None and not _ERROR_CODE.fullmatch(error_code):
        raise WebhookError("ErrorCode is not a number")
    return DeliveryStatus(sid, status, error_code)


def _one(form: Form, name: str) -> str | None:
    values = form.get(name, ())
    if len(values) > 1:
        raise WebhookError(f"{name} is given more than once")
    return values[0] if values else None
