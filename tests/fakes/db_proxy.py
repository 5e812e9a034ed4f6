"""A TCP proxy in front of PostgreSQL that resets, cuts or pauses connections when a test says so.

    with DatabaseProxy.to(postgres_url) as proxy:      # asyncio on 127.0.0.1, a free port, its own thread
        engine = create_engine(proxy.url)              # the same URL, through the proxy
        proxy.reset_on(b"UPDATE outbox", times=1)      # the next connection that sends this is reset (RST),
                                                       # before the server sees the message
        proxy.reset_all()                              # every open connection is reset now
        proxy.pause(); proxy.resume()                  # bytes wait (both ways) until resumed: a hung database
        proxy.resets                                   # connections reset so far

Resets are real: the socket to the client closes with RST and the one to the server is closed, as when a
router or a server restart drops them; the client's driver sees a connection reset mid-command.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

CHUNK = 65536


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class DatabaseProxy:
    """Forwards 127.0.0.1:port to the database, with faults on demand (thread-safe controls)."""

    def __init__(self, host: str, port: int, url: str = "") -> None:
        self.target = (host, port)
        self.resets = 0
        self._url = url
        self._patterns: list[bytes] = []
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()  # of the proxy's own loop; set and cleared there only
        self._flowing.set()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    def to(cls, url: str) -> DatabaseProxy:
        """A proxy in front of the database of this URL."""
        parsed = make_url(url)
        return cls(parsed.host or "127.0.0.1", parsed.port or 5432, url)

    @property
    def url(self) -> str:
        """The database URL, pointed at the proxy."""
        parsed = make_url(self._url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def start(self) -> DatabaseProxy:
        """Listen on a free port; returns when connections are accepted."""
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="db-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._thread is None:
            return
        self.resume()

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for link in list(self._links):
                self._close(link, reset=False)
            if self._server is not None:
                await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    def __enter__(self) -> DatabaseProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_on(self, pattern: bytes, times: int = 1) -> None:
        """Reset the next `times` connections whose client sends `pattern`, before it is forwarded."""
        self._loop.call_soon_threadsafe(self._patterns.extend, [pattern] * times)

    def reset_all(self) -> int:
        """Reset every open connection now; how many there were."""

        async def reset() -> int:
            links = list(self._links)
            for link in links:
                self._close(link, reset=True)
            return len(links)

        return asyncio.run_coroutine_threadsafe(reset(), self._loop).result(10)

    def pause(self) -> None:
        """Hold every byte, both ways (new connections wait too), until `resume`."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        """Forward again what was held."""
        self._loop.call_soon_threadsafe(self._flowing.set)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._rst(writer)
            return
        link = _Link(writer, server_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, server_writer, link, watch=True)),
            asyncio.create_task(self._pump(server_reader, writer, link, watch=False)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, watch: bool
    ) -> None:
        tail = b""
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if watch and self._patterns:
                    seen = tail + data
                    pattern = next((p for p in self._patterns if p in seen), None)
                    if pattern is not None:
                        self._patterns.remove(pattern)
                        self._close(link, reset=True)
                        return
                    tail = seen[-256:]
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        self._close(link, reset=False)

    def _close(self, link: _Link, *, reset: bool) -> None:
        if link not in self._links:
            return
        self._links.discard(link)
        if reset:
            self.resets += 1
            self._rst(link.client)
        else:
            link.client.close()
        link.server.transport.abort()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()

    @staticmethod
    def _rst(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
