"""A fake Twilio REST API on 127.0.0.1, for tests and benchmarks: the real twilio SDK talks to it over HTTP.

Start it (a uvicorn server in a background thread, on a free port), point Hamroh at it and read what it
was asked:

    with FakeTwilio() as fake:                         # or: fake = FakeTwilio().start(); ...; fake.stop()
        settings = Settings(..., twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                            twilio_from="+15005550006", twilio_api_url=fake.api_url)
        ...                                            # send through bot.channels.twilio
        fake.messages                                  # messages created, in order: Message(sid, to, ...)
        fake.calls                                     # every answered request, in order: Call(...)

Endpoints (HTTP basic auth account_sid:auth_token, else 401 code 20003; another account's path: 404):
- POST   /2010-04-01/Accounts/{AccountSid}/Messages.json        form To, From or MessagingServiceSid, Body,
         StatusCallback -> 201, a message resource as Twilio returns it ("SM" + 32 hex SID, status "queued",
         num_segments counted by text.sms_segments). Refused like Twilio: no To 21604, no Body 21602,
         neither From nor MessagingServiceSid 21603, To not E.164 21211 (whose message quotes the number,
         as Twilio's does: a test can check it never reaches a log), Body over 1600 characters 21617.
- GET    /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  -> 200 the resource, or 404 code 20404.
- DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  -> 204, or 404 code 20404 when unknown or
         deleted already. `fake.receive()` registers a message she sent, so it can be deleted too.

Scripts for the next calls, used up call by call in the order given (`method="POST"` or `"DELETE"` limits
a script to those calls; scripted calls do not create or delete anything unless they are answered as usual):
- fake.fail_next(status, code=None, times=1, method=None)  e.g. fail_next(429), fail_next(500),
  fail_next(400, code=21610), fail_next(400, code=21211), fail_next(400, code=20009, method="DELETE").
- fake.hang_next(times=1, seconds=None, method=None): hold the request open until fake.release() (or
  `seconds`, or stop()); then it is answered as usual: a message is still created, the "in doubt" case of a
  client that gave up waiting. fake.held counts the requests being held now.
- fake.limit_rate(segments_per_second, rate_scale=1.0, burst=1.0, leeway=0.01): Twilio's sending rate,
  `rate_scale` times faster (benchmarks run a 1 segment/s number at 50). A token bucket of `burst` segments
  refilled at segments_per_second * rate_scale; a message passes when the bucket holds its segments (or is
  full: a long message is not refused forever), arriving up to `leeway` seconds early; it takes its
  segments (the bucket may go below zero). Refused: 429 code 20429, counted in fake.rate_limited.
  fake.limit_rate(None) lifts it.
- fake.reset() forgets calls, messages and scripts.

Phone numbers and Messaging Services (what `hamroh sms configure` sets): `fake.numbers`, see
tests/fakes/twilio_numbers.py.

Waiting from async tests (the server runs in its own thread, so the test's loop stays free):
`await fake.wait_for_calls(n, within=5.0)`, `await fake.wait_until_held(n, within=5.0)`.

Webhooks as Twilio sends them, signed with the twilio SDK's own RequestValidator.compute_signature:
`signed_request(auth_token, url, params)` -> SignedRequest(url, path, headers, body);
`inbound_sms_form(...)` and `status_callback_form(...)` give Twilio's fields; `fake.status_callback(sid,
status, error_code=None)` signs the report Twilio would post to the message's StatusCallback URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from bot.conversation.text import sms_segments
from tests.fakes.twilio_numbers import NumbersAndServices

API_VERSION = "2010-04-01"
MAX_BODY = 1600
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
HOLD_AT_MOST_SECONDS = 60.0  # a hang nobody releases still ends, so a forgotten one cannot wedge a run
ERRORS = {
    20003: "Authenticate",
    20009: "Cannot delete this resource before it is complete",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service temporarily unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
DEFAULT_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def new_sid(prefix: str = "SM") -> str:
    """A fresh Twilio-style SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class Message:
    """A message resource the fake holds: created through the API, or received (`fake.receive()`)."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    segments: int
    direction: str = "outbound-api"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Call:
    """One request the fake answered: what was asked and what it said (times from time.monotonic())."""

    method: str
    path: str
    form: dict[str, str]
    status: int
    code: int | None = None
    sid: str | None = None  # the message created, deleted or asked for
    started: float = 0.0
    ended: float = 0.0
    scripted: bool = False  # answered by a script (fail_next) or the rate limit, not by the API's logic


@dataclass(frozen=True)
class SignedRequest:
    """A webhook as Twilio would post it: `path` (with its query) to post to any test client's base URL."""

    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]


@dataclass
class _Script:
    kind: str  # "fail" | "hang"
    times: int
    method: str | None
    status: int = 0
    code: int | None = None
    seconds: float | None = None


@dataclass
class _Bucket:
    rate: float  # segments per second, scaled
    burst: float
    leeway: float
    tokens: float
    at: float

    def take(self, segments: int, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        needed = min(float(segments), self.burst) - self.leeway * self.rate
        if self.tokens < needed:
            return False
        self.tokens -= segments
        return True


class FakeTwilio:
    """The fake API server. See the module docstring for its endpoints, scripts and helpers."""

    def __init__(self, *, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.port = 0
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._messages: dict[str, Message] = {}
        self._created: list[Message] = []
        self._deleted: list[str] = []
        self._scripts: list[_Script] = []
        self._bucket: _Bucket | None = None
        self._rate_limited = 0
        self._held = 0
        self._releases = 0
        self._stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.numbers = NumbersAndServices(self.account_sid, new_sid)  # see tests/fakes/twilio_numbers.py
        base = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        self.app = Starlette(
            routes=[
                Route(f"{base}.json", self._create, methods=["POST"]),
                Route(f"{base}/{{sid}}.json", self._fetch, methods=["GET"]),
                Route(f"{base}/{{sid}}.json", self._delete, methods=["DELETE"]),
                *self.numbers.routes(
                    self._check,
                    lambda request, form, status, code: self._answer(
                        request, form, time.monotonic(), status, code
                    ),
                ),
            ]
        )

    # --- running ---------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The base URL to give the SDK ("http://127.0.0.1:PORT")."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTwilio:
        """Serve in a background thread; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket, self.port = sock, sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            log_config=None,  # leave the test run's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server, self._stopping = server, False
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Twilio server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Release held requests and stop the server."""
        self._stopping = True
        self.release()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- scripting -------------------------------------------------------------------------------------

    def fail_next(
        self, status: int, *, code: int | None = None, times: int = 1, method: str | None = None
    ) -> None:
        """Answer the next `times` calls with this HTTP status and Twilio error code."""
        with self._lock:
            self._scripts.append(_Script("fail", times, method, status, code or DEFAULT_CODES.get(status)))

    def hang_next(self, *, times: int = 1, seconds: float | None = None, method: str | None = None) -> None:
        """Hold the next `times` calls open until release() (or `seconds`), then answer them as usual."""
        with self._lock:
            self._scripts.append(_Script("hang", times, method, seconds=seconds))

    def release(self) -> None:
        """Let every request held now go on."""
        with self._lock:
            self._releases += 1

    def limit_rate(
        self,
        segments_per_second: float | None,
        *,
        rate_scale: float = 1.0,
        burst: float = 1.0,
        leeway: float = 0.01,
    ) -> None:
        """Refuse messages (429, code 20429) that come faster than the rate; None lifts the limit."""
        with self._lock:
            if segments_per_second is None:
                self._bucket = None
            else:
                rate = segments_per_second * rate_scale
                self._bucket = _Bucket(rate, burst, leeway, burst, time.monotonic())

    def receive(self, *, from_: str = "+992900000001", body: str = "", sid: str | None = None) -> str:
        """Register a message she sent (inbound), as Twilio keeps it; returns its SID."""
        message = Message(
            sid or new_sid(), "+15005550006", from_, None, body, None, sms_segments(body).segments, "inbound"
        )
        with self._lock:
            self._messages[message.sid] = message
        return message.sid

    def reset(self) -> None:
        """Forget calls, messages, scripts, the rate limit and its count."""
        with self._lock:
            self._calls.clear()
            self._messages.clear()
            self._created.clear()
            self._deleted.clear()
            self._scripts.clear()
            self._bucket, self._rate_limited = None, 0

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every answered request, in the order answered."""
        with self._lock:
            return list(self._calls)

    @property
    def messages(self) -> list[Message]:
        """Messages created through the API, in order (deleted ones too)."""
        with self._lock:
            return list(self._created)

    @property
    def deleted(self) -> list[str]:
        """SIDs deleted, in order."""
        with self._lock:
            return list(self._deleted)

    @property
    def stored(self) -> list[str]:
        """SIDs of the messages the fake still keeps (created or received, not deleted)."""
        with self._lock:
            return list(self._messages)

    @property
    def rate_limited(self) -> int:
        """How many messages the rate limit refused."""
        with self._lock:
            return self._rate_limited

    @property
    def held(self) -> int:
        """How many requests are being held open now."""
        with self._lock:
            return self._held

    async def wait_for_calls(self, count: int, within: float = 5.0) -> list[Call]:
        """The calls, once at least `count` were answered (TimeoutError after `within` seconds)."""
        await _until(lambda: len(self.calls) >= count, within, f"{count} calls")
        return self.calls

    async def wait_until_held(self, count: int = 1, within: float = 5.0) -> None:
        """Return once `count` requests are being held open."""
        await _until(lambda: self.held >= count, within, f"{count} held requests")

    def status_callback(self, sid: str, status: str, error_code: int | str | None = None) -> SignedRequest:
        """The signed delivery report Twilio would post for a message created with a StatusCallback."""
        with self._lock:
            message = next((m for m in self._created if m.sid == sid), None)
        if message is None or not message.status_callback:
            raise LookupError("no message with that SID and a StatusCallback")
        params = status_callback_form(
            sid,
            status,
            account_sid=self.account_sid,
            to=message.to,
            from_=message.from_ or "",
            error_code=error_code,
        )
        return signed_request(self.auth_token, message.status_callback, params)

    # --- the API ---------------------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        started = time.monotonic()
        form = {key: str(value) for key, value in (await request.form()).items()}
        refused = self._check(request)
        if refused is not None:
            return self._answer(request, form, started, *refused)
        scripted = await self._script(request)
        if scripted is not None:
            return self._answer(request, form, started, *scripted, scripted=True, to=form.get("To", ""))
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From") or None, form.get("MessagingServiceSid") or None
        invalid = _invalid(to, body, sender or service)
        if invalid is not None:
            return self._answer(request, form, started, 400, invalid, to=to)
        segments = sms_segments(body).segments
        message = Message(new_sid(), to, sender, service, body, form.get("StatusCallback") or None, segments)
        with self._lock:
            if self._bucket is not None and not self._bucket.take(segments, time.monotonic()):
                self._rate_limited += 1
                refused_by_rate = True
            else:
                refused_by_rate = False
                self._messages[message.sid] = message
                self._created.append(message)
        if refused_by_rate:
            return self._answer(request, form, started, 429, 20429, scripted=True)
        self._record(Call("POST", request.url.path, form, 201, None, message.sid, started, time.monotonic()))
        return JSONResponse(self._resource(message), status_code=201)

    async def _fetch(self, request: Request) -> Response:
        started = time.monotonic()
        sid = request.path_params["sid"]
        refused = self._check(request) or await self._script(request)
        with self._lock:
            message = self._messages.get(sid)
        if refused is None and message is None:
            refused = (404, 20404)
        if refused is not None:
            return self._answer(request, {}, started, *refused, sid=sid)
        assert message is not None
        self._record(Call("GET", request.url.path, {}, 200, None, sid, started, time.monotonic()))
        return JSONResponse(self._resource(message))

    async def _delete(self, request: Request) -> Response:
        started = time.monotonic()
        sid = request.path_params["sid"]
        refused = self._check(request)
        scripted = None if refused is not None else await self._script(request)
        if refused is None and scripted is None:
            with self._lock:
                gone = self._messages.pop(sid, None)
                if gone is not None:
                    self._deleted.append(sid)
            if gone is None:
                refused = (404, 20404)
        if refused is not None or scripted is not None:
            status, code = scripted or refused or (500, None)
            return self._answer(request, {}, started, status, code, sid=sid, scripted=scripted is not None)
        self._record(Call("DELETE", request.url.path, {}, 204, None, sid, started, time.monotonic()))
        return Response(status_code=204)

    def _check(self, request: Request) -> tuple[int, int] | None:
        """401 without the account's credentials, 404 for another account's path."""
        user, _, password = _basic_auth(request.headers.get("authorization", ""))
        if not (
            secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
        ):
            return 401, 20003
        if request.path_params.get("account") != self.account_sid:
            return 404, 20404
        return None

    async def _script(self, request: Request) -> tuple[int, int | None] | None:
        """Run the first script that applies to this call: a failure to answer with, or a hang."""
        with self._lock:
            script = next((s for s in self._scripts if s.method in (None, request.method)), None)
            if script is not None:
                script.times -= 1
                if script.times <= 0:
                    self._scripts.remove(script)
        if script is None:
            return None
        if script.kind == "fail":
            return script.status, script.code
        await self._hold(script.seconds)
        return None

    async def _hold(self, seconds: float | None) -> None:
        with self._lock:
            self._held += 1
            releases = self._releases
        deadline = time.monotonic() + (HOLD_AT_MOST_SECONDS if seconds is None else seconds)
        try:
            while time.monotonic() < deadline and not self._stopping:
                with self._lock:
                    if self._releases != releases:
                        break
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                self._held -= 1

    def _answer(
        self,
        request: Request,
        form: dict[str, str],
        started: float,
        status: int,
        code: int | None,
        *,
        sid: str | None = None,
        to: str = "",
        scripted: bool = False,
    ) -> Response:
        self._record(
            Call(
                request.method, request.url.path, form, status, code, sid, started, time.monotonic(), scripted
            )
        )
        text = ERRORS.get(code or 0, "Error").format(to=to, path=request.url.path)
        payload: dict[str, Any] = {"message": text, "status": status}
        if code is not None:
            payload |= {"code": code, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return JSONResponse(payload, status_code=status)

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _resource(self, message: Message) -> dict[str, Any]:
        when = format_datetime(message.created)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": when,
            "date_sent": None,
            "date_updated": when,
            "direction": message.direction,
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(message.segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": "queued" if message.direction == "outbound-api" else "received",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }


# --- webhooks ----------------------------------------------------------------------------------------------


def signed_request(auth_token: str, url: str, params: Mapping[str, str]) -> SignedRequest:
    """A form-encoded POST signed the way Twilio signs its webhooks (X-Twilio-Signature)."""
    signature = RequestValidator(auth_token).compute_signature(url, dict(params))
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature}
    return SignedRequest(url, path, headers, urlencode(params).encode("ascii"), dict(params))


def inbound_sms_form(
    from_: str,
    body: str,
    *,
    to: str,
    account_sid: str,
    message_sid: str | None = None,
    num_media: int = 0,
    messaging_service_sid: str | None = None,
) -> dict[str, str]:
    """The fields Twilio posts for an incoming SMS."""
    sid = message_sid or new_sid("MM" if num_media else "SM")
    form = {
        "ToCountry": "US",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": str(num_media),
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "TJ",
        "To": to,
        "ToZip": "",
        "NumSegments": str(sms_segments(body).segments),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    for n in range(num_media):
        form[f"MediaContentType{n}"] = "image/jpeg"
        form[f"MediaUrl{n}"] = (
            f"https://api.twilio.com/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media/ME{n}"
        )
    if messaging_service_sid:
        form["MessagingServiceSid"] = messaging_service_sid
    return form


def status_callback_form(
    message_sid: str,
    status: str,
    *,
    account_sid: str,
    to: str = "+992900000001",
    from_: str = "+15005550006",
    error_code: int | str | None = None,
) -> dict[str, str]:
    """The fields Twilio posts to a StatusCallback URL."""
    form = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


def _invalid(to: str, body: str, sender: str | None) -> int | None:
    """The error code Twilio gives a message it will not take, in the order Twilio checks."""
    if not to:
        return 21604
    if not body:
        return 21602
    if not sender:
        return 21603
    if not E164.match(to):
        return 21211
    if len(body) > MAX_BODY:
        return 21617
    return None


def _basic_auth(header: str) -> tuple[str, str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", "", ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", "", ""


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {within} s for {what}")
        await asyncio.sleep(0.005)
