"""The dispatcher's HTTP client for the Bot API: python-telegram-bot's `Bot` over aiohttp.

Why not PTB's default `HTTPXRequest`: measured against the fake Bot API, a `send_message` through it costs
about 2 ms of CPU, 5 times as much as through this request class (0.4 ms), most of it in httpcore's pool
checking each idle connection's socket on every request; at Telegram's 30 messages a second that is a
few percent of a core, but it made the dispatcher the ceiling of a benchmark with the clock sped up, and
it is CPU taken from the webhooks on the same machine. `Bot` is unchanged: it still builds each call,
and reads each answer into the same errors (`RetryAfter`, `Forbidden`, ...); only the transport differs.
Set-up calls, polling and media downloads keep `HTTPXRequest`.

Timeouts as `HTTPXRequest` takes them: connecting, and waiting for a free connection, within
`connect_timeout` (a send not on the wire in time is `TimedOut`, "not sent"); each read of the answer
within `read_timeout`. aiohttp has no timeout for writing a request body; a message's is small. Proxies
come from the environment (HTTPS_PROXY, NO_PROXY), and servers are verified against the trust store that
httpx uses.
"""

from __future__ import annotations

import ssl
import urllib.request
from urllib.parse import urlsplit

import aiohttp
import httpx
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on one aiohttp session (opened on first use, in the running loop)."""

    def __init__(self, *, connections: int, connect_timeout: float, read_timeout: float) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,  # a free connection, and connecting
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._ssl: ssl.SSLContext | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used when a call names none."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Nothing to do before the first request: the session opens then."""

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # the trust store HTTPXRequest would use
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl)
        # Not trust_env: aiohttp would then read the proxy variables and ~/.netrc again for every request.
        return aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    def _proxy(self, url: str) -> str | None:
        """The proxy the environment names for this URL's scheme and host (read once for each)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            bypass = not key[1] or urllib.request.proxy_bypass(key[1])
            self._proxies[key] = None if bypass else urllib.request.getproxies().get(key[0])
        return self._proxies[key]

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One call to the Bot API: its HTTP status and body. Transport failures as PTB's errors."""
        if request_data is not None and request_data.contains_files:
            raise NetworkError("this client sends no files")  # the dispatcher never uploads any
        if self._session is None:
            self._session = self._open()
        data = request_data.json_parameters if request_data is not None else None
        timeout = _timeout(self._timeout, read_timeout, connect_timeout, pool_timeout)
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
                proxy=self._proxy(url),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise TimedOut from exc
        except (aiohttp.ClientError, OSError) as exc:
            # The class only: an error's text may quote the URL, which carries the bot token.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from None


def _timeout(
    default: aiohttp.ClientTimeout, read: object, connect: object, pool: object
) -> aiohttp.ClientTimeout:
    """A call's own timeouts where it names them (the dispatcher's calls do not), else the defaults.

    Always given to aiohttp: a request's `timeout=None` would mean no timeout at all.
    """
    connects = [value for value in (connect, pool) if isinstance(value, int | float)]
    if not connects and not isinstance(read, int | float):
        return default
    return aiohttp.ClientTimeout(
        total=None,
        connect=float(max(connects)) if connects else default.connect,
        sock_connect=float(connect) if isinstance(connect, int | float) else default.sock_connect,
        sock_read=float(read) if isinstance(read, int | float) else default.sock_read,
    )
