"""`hamroh sms configure`: point Twilio's inbound SMS at Hamroh, retry-safe, through Twilio's API.

Twilio does not retry an SMS webhook that fails unless its URL asks for it, so the URLs set here carry
connection overrides (`twilio.connection_overrides`): a 5xx, a refused connection or a slow answer is
tried again, then the fallback URL is called; a message that landed on a try is dropped as a duplicate.

With HAMROH_TWILIO_MESSAGING_SERVICE_SID the service's inbound and fallback URLs are set (and it is told
to use them rather than each number's); otherwise those of the number HAMROH_TWILIO_FROM, found by its
phone number. Delivery reports need no set-up: every message names its status callback.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioException, TwilioRestException

from bot.channels import twilio
from bot.config import Settings


class SetupError(Exception):
    """Twilio refused, or the settings cannot say what to configure; the message says which."""


@dataclass(frozen=True)
class Configured:
    """What was set at Twilio, to show the deployer (URLs shown without any credentials in them)."""

    target: str  # "number +15005550006 (PN...)" or "messaging service MG..."
    inbound_url: str
    fallback_url: str
    status_callback: str | None

    def lines(self) -> list[str]:
        """One line per URL set."""
        said = [
            f"{self.target}: inbound SMS -> POST {shown(self.inbound_url)}",
            f"{self.target}: fallback -> POST {shown(self.fallback_url)}",
        ]
        if self.status_callback:
            said.append(f"{self.target}: delivery reports -> POST {shown(self.status_callback)}")
        return said


async def configure(settings: Settings) -> Configured:
    """Set the inbound and fallback URLs, with connection overrides, on the service or the number."""
    if not settings.sms_on or settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        raise SetupError("set HAMROH_TWILIO_ACCOUNT_SID, HAMROH_TWILIO_AUTH_TOKEN and a sender first")
    if not settings.public_url:
        raise SetupError("set HAMROH_PUBLIC_URL (the https address at which Twilio reaches Hamroh) first")
    inbound = twilio.webhook_url(settings, twilio.INBOUND_PATH)
    fallback = twilio.webhook_url(settings, twilio.FALLBACK_PATH)
    http = twilio.sdk_http(settings.twilio_timeout_seconds)
    client = twilio.sdk_client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_api_url,
        http,
    )
    try:
        async with asyncio.timeout(settings.twilio_timeout_seconds * 3):
            service = settings.twilio_messaging_service_sid
            if service:
                return await _service(client, service, inbound, fallback, settings)
            assert settings.twilio_from is not None  # sms_on: a sender number or a service
            return await _number(client, settings.twilio_from, inbound, fallback)
    except TwilioException as exc:  # a refused update, or a refused page of the number list
        raise SetupError(f"Twilio refused: {_describe(exc)}") from None
    except TimeoutError:
        raise SetupError(f"Twilio did not answer within {settings.twilio_timeout_seconds * 3:g} s") from None
    finally:
        await http.close()


async def _service(client: Any, sid: str, inbound: str, fallback: str, settings: Settings) -> Configured:
    status = twilio.status_callback_url(settings)
    await client.messaging.v1.services(sid).update_async(
        inbound_request_url=inbound,
        inbound_method="POST",
        fallback_url=fallback,
        fallback_method="POST",
        use_inbound_webhook_on_number=False,  # else a number's own URL would win over these
        **({"status_callback": status} if status else {}),
    )
    return Configured(f"messaging service {sid}", inbound, fallback, status)


async def _number(client: Any, number: str, inbound: str, fallback: str) -> Configured:
    found = await client.incoming_phone_numbers.list_async(phone_number=number, limit=2)
    exact = [n for n in found if getattr(n, "phone_number", None) == number]
    if len(exact) != 1:
        raise SetupError(f"the account has no number {number} (HAMROH_TWILIO_FROM)")
    sid = exact[0].sid
    await client.incoming_phone_numbers(sid).update_async(
        sms_url=inbound,
        sms_method="POST",
        sms_fallback_url=fallback,
        sms_fallback_method="POST",
        sms_application_sid="",  # an SMS application on the number would take its messages instead
    )
    return Configured(f"number {number} ({sid})", inbound, fallback, None)


def shown(url: str) -> str:
    """A URL fit to print: any user and password in it left out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: TwilioException) -> str:
    """Status and Twilio's error code: never the message, which may quote what was sent."""
    if isinstance(exc, TwilioRestException):
        status, code = exc.status, exc.code
    else:  # the SDK's pages raise the plain exception, with the response as its second argument
        response = exc.args[1] if len(exc.args) > 1 else None
        status = getattr(response, "status_code", "?")
        try:
            code = json.loads(getattr(response, "text", "") or "{}").get("code")
        except (ValueError, AttributeError):
            code = None
    return f"HTTP {status}" + (f" error {code}" if code is not None else "")
