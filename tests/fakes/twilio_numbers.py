"""The fake Twilio's configuration resources: phone numbers and Messaging Services, as `hamroh sms
configure` sets them, and the inbound SMS Twilio would then post to the URL configured.

Served by FakeTwilio (tests/fakes/twilio_api.py) beside the Messages API, at the same address:
- GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json?PhoneNumber=+...  -> a page of numbers
- POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json  SmsUrl, SmsMethod, SmsFallbackUrl,
       SmsFallbackMethod, SmsApplicationSid -> 200 the number; 404 code 20404 for an unknown SID
- POST /v1/Services/{Sid}  InboundRequestUrl, InboundMethod, FallbackUrl, FallbackMethod, StatusCallback,
       UseInboundWebhookOnNumber -> 200 the service; 404 code 20404 for an unknown SID

    sid = fake.numbers.add("+15005550006")        # or: fake.numbers.add_service() -> "MG..."
    fake.numbers.number(sid).sms_url              # what was set
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_VERSION = "2010-04-01"
NUMBER_FIELDS = {
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
    "SmsApplicationSid": "sms_application_sid",
}
SERVICE_FIELDS = {
    "InboundRequestUrl": "inbound_request_url",
    "InboundMethod": "inbound_method",
    "FallbackUrl": "fallback_url",
    "FallbackMethod": "fallback_method",
    "StatusCallback": "status_callback",
    "UseInboundWebhookOnNumber": "use_inbound_webhook_on_number",
}

Check = Callable[[Request], "tuple[int, int] | None"]  # the fake's credentials check: None when allowed
Refuse = Callable[[Request, dict[str, str], int, int], Response]  # the fake's error answer (and record)


@dataclass(frozen=True)
class Number:
    """A phone number of the account and its SMS configuration."""

    sid: str
    phone_number: str
    sms_url: str | None = None
    sms_method: str = "POST"
    sms_fallback_url: str | None = None
    sms_fallback_method: str = "POST"
    sms_application_sid: str | None = None


@dataclass(frozen=True)
class Service:
    """A Messaging Service and its inbound configuration."""

    sid: str
    inbound_request_url: str | None = None
    inbound_method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"
    status_callback: str | None = None
    use_inbound_webhook_on_number: str = "true"


@dataclass
class NumbersAndServices:
    """The account's numbers and services; `updates` counts the changes made through the API."""

    account_sid: str
    new_sid: Callable[[str], str]
    _numbers: dict[str, Number] = field(default_factory=dict)
    _services: dict[str, Service] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    updates: int = 0

    def add(self, phone_number: str, *, sms_application_sid: str | None = None) -> str:
        """A number of the account; returns its SID ("PN...")."""
        number = Number(self.new_sid("PN"), phone_number, sms_application_sid=sms_application_sid)
        with self._lock:
            self._numbers[number.sid] = number
        return number.sid

    def add_service(self) -> str:
        """A Messaging Service of the account; returns its SID ("MG...")."""
        service = Service(self.new_sid("MG"))
        with self._lock:
            self._services[service.sid] = service
        return service.sid

    def number(self, sid: str) -> Number:
        with self._lock:
            return self._numbers[sid]

    def service(self, sid: str) -> Service:
        with self._lock:
            return self._services[sid]

    def routes(self, check: Check, refuse: Refuse) -> list[Route]:
        """The endpoints, answering through the fake's own credentials check and error answers."""
        base = f"/{API_VERSION}/Accounts/{{account}}/IncomingPhoneNumbers"

        async def list_numbers(request: Request) -> Response:
            refused = check(request)
            if refused is not None:
                return refuse(request, {}, *refused)
            wanted = request.query_params.get("PhoneNumber")
            with self._lock:
                found = [n for n in self._numbers.values() if wanted in (None, n.phone_number)]
            uri = f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"
            return JSONResponse(
                {
                    "incoming_phone_numbers": [self._number_resource(n) for n in found],
                    "start": 0,
                    "end": max(len(found) - 1, 0),
                    "page": 0,
                    "page_size": 50,
                    "first_page_uri": f"{uri}?PageSize=50&Page=0",
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "uri": uri,
                }
            )

        async def update_number(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            refused = check(request)
            if refused is not None:
                return refuse(request, form, *refused)
            changes = {NUMBER_FIELDS[k]: (v or None) for k, v in form.items() if k in NUMBER_FIELDS}
            with self._lock:
                number = self._numbers.get(request.path_params["sid"])
                if number is not None:
                    number = self._numbers[number.sid] = replace(number, **changes)
                    self.updates += 1
            if number is None:
                return refuse(request, form, 404, 20404)
            return JSONResponse(self._number_resource(number))

        async def update_service(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            refused = check(request)
            if refused is not None and refused[1] != 20404:  # no account in this path: credentials only
                return refuse(request, form, *refused)
            changes = {SERVICE_FIELDS[k]: v for k, v in form.items() if k in SERVICE_FIELDS}
            with self._lock:
                service = self._services.get(request.path_params["sid"])
                if service is not None:
                    service = self._services[service.sid] = replace(service, **changes)
                    self.updates += 1
            if service is None:
                return refuse(request, form, 404, 20404)
            return JSONResponse(self._service_resource(service))

        return [
            Route(f"{base}.json", list_numbers, methods=["GET"]),
            Route(f"{base}/{{sid}}.json", update_number, methods=["POST"]),
            Route("/v1/Services/{sid}", update_service, methods=["POST"]),
        ]

    def _number_resource(self, number: Number) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "sid": number.sid,
            "phone_number": number.phone_number,
            "friendly_name": number.phone_number,
            "sms_url": number.sms_url or "",
            "sms_method": number.sms_method,
            "sms_fallback_url": number.sms_fallback_url or "",
            "sms_fallback_method": number.sms_fallback_method,
            "sms_application_sid": number.sms_application_sid or "",
            "capabilities": {"sms": True, "mms": False, "voice": True},
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{number.sid}.json",
        }

    def _service_resource(self, service: Service) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "sid": service.sid,
            "friendly_name": "Hamroh",
            "inbound_request_url": service.inbound_request_url,
            "inbound_method": service.inbound_method,
            "fallback_url": service.fallback_url,
            "fallback_method": service.fallback_method,
            "status_callback": service.status_callback,
            "use_inbound_webhook_on_number": service.use_inbound_webhook_on_number == "true",
            "url": f"https://messaging.twilio.com/v1/Services/{service.sid}",
        }


def without_fragment(url: str) -> str:
    """The URL as an HTTP client requests it: the fragment (Twilio's connection overrides) left off."""
    return urlunsplit(urlsplit(url)._replace(fragment=""))
