"""A fake Telegram Bot API server over real HTTP, and the updates a woman's phone would cause.

    with FakeTelegram() as fake:                 # uvicorn on 127.0.0.1, a free port, a background thread
        sender = TelegramSender(fake.token, api_url=fake.api_url)
        fake.flood(times=1, retry_after=3)       # the next call is answered 429, parameters.retry_after 3
        ...
        fake.calls_to("sendMessage")             # [Call(method, chat_id, text, params, at, status), ...]

Server: `FakeTelegram(token=TOKEN, *, enforce_limits=False, rate_scale=1.0, messages_per_second=30,
chat_messages_per_second=1, burst=None, chat_burst=1, slack=0.1)`; `start()`/`stop()` or `with`.
`.api_url` ("http://127.0.0.1:PORT", what Settings.telegram_api_url and TelegramSender take), `.token`,
`.bot_id`. Paths `/bot<token>/<method>`, POST or GET, parameters as form fields (what python-telegram-bot
sends: values JSON-encoded), a JSON body, or a query string. Another token: 404 `{"ok": false,
"error_code": 404, "description": "Not Found"}`, as Telegram answers; an unknown method likewise.

Methods: sendMessage (validates chat_id, 1-4,096 characters of text, callback_data of at most 64 bytes;
answers a message object, message ids counting up per chat), deleteMessages (1-100 ids), answerCallbackQuery,
setWebhook / deleteWebhook / getWebhookInfo (while a webhook is set, getUpdates answers 409 as Telegram
does), getUpdates (serves what `push_update` queued; `offset` confirms and drops older ones; a long poll
waits up to `timeout` seconds; allowed_updates is recorded, not applied), getMe, getFile (a file that
`add_file(file_id, content)` registered, with its `file_path`; another id: 400 "Bad Request: invalid
file_id"). Files download from GET `/file/bot<token>/<file_path>` (another token or path: 404); each
download is recorded as a call of method "download" (params: {"file_path": ...}).

Record: every call, as it arrives, in a thread-safe list: `calls` (a copy), `calls_to(method)`,
`sent_texts(chat_id=None)` (texts of sendMessage calls answered 200), `await wait_for(method, count)`.
`Call.status` is the HTTP status once answered (None while it hangs). `reset()` forgets calls and faults.

Script (the next calls of `method`, or of any method but getUpdates when method is None, in order):
`flood(times, retry_after, method)` 429 with `parameters.retry_after`; `server_error(times, status=500)`;
`block(times)` 403 "Forbidden: bot was blocked by the user"; `bad_request(description, times)` 400;
`fail(status, description, times, method, retry_after)` any of these; `hang(times, seconds=None)` holds
the request open until `release()` (or `seconds`), then answers normally. `stop()` releases every hang.

Limits (with enforce_limits=True): token buckets of `messages_per_second` overall (burst `burst`, default
one second's worth) and `chat_messages_per_second` per chat (burst `chat_burst`), both times `rate_scale`
so a benchmark can speed the clock up; `slack` (in messages) absorbs network jitter. A sendMessage over
a limit is answered 429 with a whole-second retry_after (at least 1, as Telegram) and counted in
`throttled`. Rejected messages spend nothing.

Updates: `Her(chat_id)` builds what Telegram would post for her: `says(text)`, `sends("photo", caption=None)`
(and voice, sticker, document, location, contact, video, audio), `presses(callback_data)`, `edits(text)`,
`blocks_the_bot()`, `unblocks_the_bot()`, `says_in_group(text)`, `posts_in_channel(text)`,
`edits_channel_post(text)`, `inline_query(text)`, `poll_update()`, `unknown_update()`; update ids and
message ids count up per `Her`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "7000000001:AAHfakeTokenForTestsOnly_abcdefghij12"  # shaped like a real one (bot.logs knows it)
BLOCKED = "Forbidden: bot was blocked by the user"
DATE = 1_795_000_000  # a fixed Unix time for updates (November 2026)
_RAW = {"text", "callback_query_id", "url", "secret_token", "query", "description", "caption"}
_NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    chat_id: int | str | None = None
    text: str | None = None
    status: int | None = None  # None while it hangs


@dataclass
class _Fault:
    method: str | None
    status: int
    description: str = ""
    retry_after: int | None = None
    hang: bool = False
    seconds: float | None = None


@dataclass
class _Bucket:
    """`rate` messages a second, bursts up to `burst`."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    last: float | None = None

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def refill(self, now: float) -> None:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def wait(self, slack: float) -> float:
        """0 when a message may go now, else the seconds until it could."""
        return 0.0 if self.tokens >= 1 - slack else (1 - slack - self.tokens) / self.rate


class FakeTelegram:
    """The Bot API as tests need it: realistic answers, every call recorded, failures on demand."""

    def __init__(
        self,
        token: str = TOKEN,
        *,
        enforce_limits: bool = False,
        rate_scale: float = 1.0,
        messages_per_second: float = 30.0,
        chat_messages_per_second: float = 1.0,
        burst: float | None = None,
        chat_burst: float = 1.0,
        slack: float = 0.1,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.enforce_limits = enforce_limits
        self.throttled = 0
        self.webhook: dict[str, Any] | None = None
        self._rate = messages_per_second * rate_scale
        self._chat_rate = chat_messages_per_second * rate_scale
        self._burst = burst if burst is not None else messages_per_second
        self._chat_burst = chat_burst
        self._slack = slack
        self._global = _Bucket(self._rate, self._burst)
        self._chats: dict[Any, _Bucket] = {}
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[Any, Iterator[int]] = {}
        self._release = threading.Event()
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.api_url = ""

    # --- running -------------------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        """Serve on a free port of 127.0.0.1 in a background thread; returns when it accepts calls."""
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only then (else each answer waits 40 ms for an ACK).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}"
        app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,  # paths carry the token
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-telegram", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Telegram server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self._release.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what happened -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in order of arrival (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method (case as Telegram: any)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts of the messages the fake accepted, to one chat or to all."""
        return [
            c.text or ""
            for c in self.calls_to("sendMessage")
            if c.status == 200 and (chat_id is None or c.chat_id == chat_id)
        ]

    async def wait_for(self, method: str, count: int = 1, within: float = 5.0) -> list[Call]:
        """Wait (without blocking the event loop) until `count` calls of `method` were answered."""
        deadline = time.monotonic() + within
        while True:
            answered = [c for c in self.calls_to(method) if c.status is not None]
            if len(answered) >= count:
                return answered
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(answered)} answered {method} calls, not {count}")
            await asyncio.sleep(0.01)

    def reset(self) -> None:
        """Forget calls, faults, queued updates and the 429 count."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._updates.clear()
            self.throttled = 0

    # --- scripting -----------------------------------------------------------------------------------

    def add_file(self, file_id: str, content: bytes, *, file_path: str | None = None) -> str:
        """Make a file she sent available to getFile and for download; returns its file_path."""
        path = file_path or f"files/{file_id}"
        with self._lock:
            self._files[file_id] = (path, content)
        return path

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (an update_id is given when it has none); returns its id."""
        with self._lock:
            if "update_id" not in update:
                update = {"update_id": next(self._update_ids), **update}
            self._updates.append(update)
            return int(update["update_id"])

    def fail(
        self,
        status: int,
        description: str = "",
        *,
        times: int = 1,
        method: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` calls (of `method`, or of any method but getUpdates) with an error."""
        with self._lock:
            self._faults.extend(
                _Fault(method, status, description or _phrase(status), retry_after) for _ in range(times)
            )

    def flood(self, times: int = 1, retry_after: int = 1, method: str | None = None) -> None:
        """429 Too Many Requests with parameters.retry_after."""
        description = f"Too Many Requests: retry after {retry_after}"
        self.fail(429, description, times=times, method=method, retry_after=retry_after)

    def server_error(self, times: int = 1, status: int = 500, method: str | None = None) -> None:
        """A 5xx."""
        self.fail(status, times=times, method=method)

    def block(self, times: int = 1, method: str | None = None) -> None:
        """403: she blocked the bot."""
        self.fail(403, BLOCKED, times=times, method=method)

    def bad_request(
        self, description: str = "Bad Request: chat not found", times: int = 1, method: str | None = None
    ) -> None:
        """400 with Telegram's description."""
        self.fail(400, description, times=times, method=method)

    def hang(self, times: int = 1, seconds: float | None = None, method: str | None = None) -> None:
        """Hold the next calls open until `release()` (or for `seconds`), then answer them normally."""
        with self._lock:
            self._release.clear()
            self._faults.extend(_Fault(method, 200, hang=True, seconds=seconds) for _ in range(times))

    def release(self) -> None:
        """Let every hung call go on."""
        self._release.set()

    # --- the server ----------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        params = await _params(request)
        chat_id = params.get("chat_id")
        text = params.get("text")
        call = Call(method, params, time.monotonic(), chat_id, text if isinstance(text, str) else None)
        with self._lock:
            self._calls.append(call)
        status, body = await self._answer(request.path_params["token"], method, params)
        call.status = status
        return JSONResponse(body, status_code=status)

    async def _answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if token != self.token:
            return 404, _NOT_FOUND
        fault = self._take_fault(method)
        if fault is not None and fault.hang:
            # `release()` and `stop()` come from the test's thread: wait for them in a thread too.
            await asyncio.to_thread(self._release.wait, fault.seconds)
        elif fault is not None:
            parameters = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
            return fault.status, _error(fault.status, fault.description, parameters)
        name = method.lower()
        if name == "sendmessage":
            return self._send_message(params)
        if name == "getupdates":
            return await self._get_updates(params)
        if name == "deletemessages":
            ids = params.get("message_ids")
            if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
                return 400, _error(400, "Bad Request: message_ids must contain 1-100 message identifiers")
            return 200, _ok(True)
        if name == "answercallbackquery":
            return 200, _ok(True)
        if name == "setwebhook":
            with self._lock:
                self.webhook = dict(params)
            return 200, {**_ok(True), "description": "Webhook was set"}
        if name == "deletewebhook":
            with self._lock:
                self.webhook = None
                if params.get("drop_pending_updates") is True:
                    self._updates.clear()
            return 200, {**_ok(True), "description": "Webhook was deleted"}
        if name == "getwebhookinfo":
            url = (self.webhook or {}).get("url", "")
            return 200, _ok({"url": url, "has_custom_certificate": False, "pending_update_count": 0})
        if name == "getme":
            return 200, _ok(self._bot_user())
        if name == "getfile":
            with self._lock:
                known = self._files.get(str(params.get("file_id", "")))
            if known is None:
                return 400, _error(400, "Bad Request: invalid file_id")
            file_id = str(params["file_id"])
            return 200, _ok(
                {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "file_size": len(known[1]),
                    "file_path": known[0],
                }
            )
        return 404, _NOT_FOUND

    async def _download(self, request: Request) -> Response:
        path = request.path_params["path"]
        call = Call("download", {"file_path": path}, time.monotonic())
        with self._lock:
            self._calls.append(call)
            content = next((c for p, c in self._files.values() if p == path), None)
        if request.path_params["token"] != self.token or content is None:
            call.status = 404
            return JSONResponse(_NOT_FOUND, status_code=404)
        call.status = 200
        return Response(content, media_type="application/octet-stream")

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.method is None and method.lower() != "getupdates":
                    return self._faults.pop(index)
                if fault.method is not None and fault.method.lower() == method.lower():
                    return self._faults.pop(index)
        return None

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id, text = params.get("chat_id"), params.get("text")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            return 400, _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return 400, _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else None
            buttons = [b for row in rows or [] for b in row]
            if rows is None or any(len(str(b.get("callback_data", "")).encode()) > 64 for b in buttons):
                return 400, _error(400, "Bad Request: BUTTON_DATA_INVALID")
        if self.enforce_limits:
            wait = self._over_limit(chat_id)
            if wait:
                retry_after = max(1, math.ceil(wait))
                with self._lock:
                    self.throttled += 1
                description = f"Too Many Requests: retry after {retry_after}"
                return 429, _error(429, description, {"retry_after": retry_after})
        with self._lock:
            counter = self._message_ids.setdefault(chat_id, itertools.count(1))
            message_id = next(counter)
        message = {
            "message_id": message_id,
            "from": self._bot_user(),
            "chat": {"id": chat_id, "type": "private", "first_name": "Her"},
            "date": int(time.time()),
            "text": text,
        }
        if markup is not None:
            message["reply_markup"] = markup
        return 200, _ok(message)

    def _over_limit(self, chat_id: int) -> float:
        now = time.monotonic()
        with self._lock:
            chat = self._chats.setdefault(chat_id, _Bucket(self._chat_rate, self._chat_burst))
            self._global.refill(now)
            chat.refill(now)
            wait = max(self._global.wait(self._slack), chat.wait(self._slack))
            if not wait:  # a refused message spends nothing
                self._global.tokens -= 1
                chat.tokens -= 1
            return wait

    async def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.webhook is not None:
            description = (
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
            return 409, _error(409, description)
        offset = params.get("offset")
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        wait = params.get("timeout") if isinstance(params.get("timeout"), int | float) else 0
        deadline = time.monotonic() + float(wait)
        while True:
            with self._lock:
                if isinstance(offset, int):
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            if ready or time.monotonic() >= deadline or self._stopping:
                return 200, _ok(ready)
            await asyncio.sleep(0.01)

    @property
    def _stopping(self) -> bool:
        return self._server is not None and self._server.should_exit

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Hamroh", "username": "hamroh_test_bot"}


async def _params(request: Request) -> dict[str, Any]:
    """The call's parameters: query string, then a JSON body or form fields (values JSON-decoded)."""
    raw: dict[str, Any] = dict(parse_qsl(request.url.query))
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        body = await request.body()
        loaded = json.loads(body) if body else {}
        return {**raw, **(loaded if isinstance(loaded, dict) else {})}
    if "form" in content_type:
        form = await request.form()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    return {k: v if k in _RAW or not isinstance(v, str) else _decoded(v) for k, v in raw.items()}


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def _phrase(status: int) -> str:
    return {
        400: "Bad Request",
        403: "Forbidden",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }.get(status, f"Error {status}")


# --- updates -------------------------------------------------------------------------------------------

_MEDIA: dict[str, Any] = {
    "photo": [{"file_id": "AgACphoto", "file_unique_id": "AQADphoto", "width": 90, "height": 90}],
    "voice": {"file_id": "AwACvoice", "file_unique_id": "AgADvoice", "duration": 3, "mime_type": "audio/ogg"},
    "sticker": {
        "file_id": "CAACsticker",
        "file_unique_id": "AgADsticker",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    },
    "document": {
        "file_id": "BQACdoc",
        "file_unique_id": "AgADdoc",
        "file_name": "a.pdf",
        "mime_type": "application/pdf",
    },
    "location": {"latitude": 38.5598, "longitude": 68.787},
    "contact": {"phone_number": "+992900000002", "first_name": "Friend"},
    "video": {
        "file_id": "BAACvideo",
        "file_unique_id": "AgADvideo",
        "width": 320,
        "height": 240,
        "duration": 2,
    },
    "audio": {"file_id": "CQACaudio", "file_unique_id": "AgADaudio", "duration": 60},
}
MEDIA_KINDS = tuple(_MEDIA)


@dataclass
class Her:
    """A woman's Telegram account: the updates Telegram posts when she does something."""

    chat_id: int = 100001
    first_name: str = "Zarina"
    bot_id: int = int(TOKEN.split(":", 1)[0])
    update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.chat_id, "is_bot": False, "first_name": self.first_name, "language_code": "tg"}

    @property
    def chat(self) -> dict[str, Any]:
        return {"id": self.chat_id, "type": "private", "first_name": self.first_name}

    def says(self, text: str) -> dict[str, Any]:
        return self._update(message=self._message(text=text))

    def sends(self, kind: str, caption: str | None = None) -> dict[str, Any]:
        """Something that is not text: one of MEDIA_KINDS, with a caption if given."""
        extra = {"caption": caption} if caption is not None else {}
        return self._update(message=self._message(**{kind: _MEDIA[kind]}, **extra))

    def presses(self, callback_data: str, *, on_message_id: int = 1) -> dict[str, Any]:
        """She taps a button under one of the bot's messages."""
        update_id = next(self.update_ids)
        bot_message = {
            "message_id": on_message_id,
            "date": DATE,
            "chat": self.chat,
            "from": self._bot(),
            "text": "…",
        }
        query = {
            "id": f"{self.chat_id}{update_id:06d}",
            "from": self.user,
            "chat_instance": "-8000000000000000001",
            "message": bot_message,
            "data": callback_data,
        }
        return {"update_id": update_id, "callback_query": query}

    def edits(self, text: str) -> dict[str, Any]:
        return self._update(edited_message={**self._message(text=text), "edit_date": DATE + 60})

    def blocks_the_bot(self) -> dict[str, Any]:
        return self._member("member", {"status": "kicked", "until_date": 0})

    def unblocks_the_bot(self) -> dict[str, Any]:
        return self._member("kicked", {"status": "member"})

    def says_in_group(self, text: str) -> dict[str, Any]:
        group = {"id": -1001234567890, "type": "supergroup", "title": "Neighbours"}
        return self._update(message={**self._message(text=text), "chat": group})

    def posts_in_channel(self, text: str) -> dict[str, Any]:
        channel = {"id": -1009876543210, "type": "channel", "title": "News"}
        message = {"message_id": next(self.message_ids), "date": DATE, "chat": channel, "text": text}
        return self._update(channel_post=message)

    def edits_channel_post(self, text: str) -> dict[str, Any]:
        channel = {"id": -1009876543210, "type": "channel", "title": "News"}
        message = {"message_id": 1, "date": DATE, "chat": channel, "text": text, "edit_date": DATE + 60}
        return self._update(edited_channel_post=message)

    def inline_query(self, text: str) -> dict[str, Any]:
        return self._update(inline_query={"id": "4000", "from": self.user, "query": text, "offset": ""})

    def poll_update(self) -> dict[str, Any]:
        poll = {
            "id": "5000",
            "question": "?",
            "options": [{"text": "a", "voter_count": 0}, {"text": "b", "voter_count": 0}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
        }
        return self._update(poll=poll)

    def unknown_update(self) -> dict[str, Any]:
        """A kind of update newer than our SDK."""
        return self._update(something_new={"id": 1})

    def _update(self, **body: Any) -> dict[str, Any]:
        return {"update_id": next(self.update_ids), **body}

    def _message(self, **fields: Any) -> dict[str, Any]:
        return {
            "message_id": next(self.message_ids),
            "date": DATE,
            "chat": self.chat,
            "from": self.user,
            **fields,
        }

    def _bot(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Hamroh", "username": "hamroh_test_bot"}

    def _member(self, old: str, new: dict[str, Any]) -> dict[str, Any]:
        bot = self._bot()
        change = {
            "chat": self.chat,
            "from": self.user,
            "date": DATE,
            "old_chat_member": {"status": old, "user": bot, **({"until_date": 0} if old == "kicked" else {})},
            "new_chat_member": {**new, "user": bot},
        }
        return self._update(my_chat_member=change)
