"""Serving on uvicorn: in this process, or (`hamroh serve --workers N`, PostgreSQL) in N worker processes
that accept on one socket.

With workers, serve binds the socket and listens before any worker starts, so a connection made while a
worker starts (or restarts) waits in the kernel's queue rather than being refused, and `--port 0` works:
the kernel picks one port and every worker accepts on it. What serve decided from its command line reaches
the workers through the environment they inherit (HAMROH_HOST, and HAMROH_PORT as bound); each worker is
spawned (a fresh interpreter, as uvicorn does) and builds its own app from that environment with
`worker_app`. A worker that dies is replaced; one that never started stops serve. Which worker runs the
dispatcher and the jobs is decided in the database (bot.leader), never here.

Why not uvicorn's own `workers=`: it binds the socket itself, so with port 0 nobody could say which port was
picked, and its supervisor's interface has changed from version to version.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import heap

log = logging.getLogger("hamroh")
FACTORY = "api.workers:worker_app"
WORKER_HEADER = b"x-hamroh-worker"  # the pid of the worker that answered, to find its lines in the log
STOP_SECONDS = 20.0  # a worker's orderly stop: requests cut after 5 s, then the dispatcher finishes its sends


def config(app: ASGIApp | str, host: str, port: int, **more: object) -> uvicorn.Config:
    """The uvicorn settings of `hamroh serve`, with one worker or several."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # At a stop, a request still running after a few seconds is cut (event streams end at once by
        # themselves), so the dispatcher stops in order before a container's stop timeout kills it.
        timeout_graceful_shutdown=5,
        **more,  # type: ignore[arg-type]
    )


class Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once a connection succeeds."""

    def __init__(self, config: uvicorn.Config, said: str) -> None:
        super().__init__(config)
        self.said = said

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # only now does a connection succeed: whoever waits for the line may call
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            log.info("serving on http://%s:%s (%s)", host, port, self.said)


def serve(app: ASGIApp, host: str, port: int, said: str) -> int:
    """Serve `app` in this process until SIGINT or SIGTERM."""
    heap.settle()  # the app is built: what it holds is kept out of later collections
    Server(config(app, host, port), said).run()
    return 0


@dataclass
class Worker:
    """A worker process, as serve watches it."""

    process: SpawnProcess
    ready: Event  # set once the worker's server has started


def serve_workers(host: str, port: int, count: int, said: str) -> int:
    """Serve in `count` worker processes until SIGINT or SIGTERM; 1 if a worker could not start."""
    shared = config(FACTORY, host, port, factory=True, workers=count)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listening = socket.create_server((host, port), family=family, backlog=shared.backlog)
    except OSError as exc:  # as uvicorn says it with one worker
        log.error("cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
        return 1
    host, port = listening.getsockname()[:2]
    os.environ |= {"HAMROH_HOST": host, "HAMROH_PORT": str(port)}
    log.info("serving on http://%s:%s (%s; %d workers)", host, port, said, count)

    spawn = multiprocessing.get_context("spawn")

    def start() -> Worker:
        ready = spawn.Event()
        process = spawn.Process(target=_work, args=(shared, listening, ready), name="hamroh-worker")
        process.start()
        return Worker(process, ready)

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # serve sleeps until a worker ends or a signal comes: the signal's byte on this pipe wakes it.
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    previous_wake = signal.set_wakeup_fd(wake)
    workers = [start() for _ in range(count)]
    failed = False
    try:
        while not stopping:
            wait([woken, *(worker.process.sentinel for worker in workers)])
            if woken in wait([woken], timeout=0):
                os.read(woken, 512)
            for n, worker in enumerate(workers):
                if worker.process.is_alive():
                    continue
                if not worker.ready.is_set():  # it would fail the same way again: say so and stop
                    log.error("a worker could not start (exit status %s): stopping", worker.process.exitcode)
                    failed = stopping = True
                    break
                log.warning("worker %s ended (%s): starting another", worker.process.pid, _how(worker))
                workers[n] = start()
    finally:
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker stops in order
        for worker in workers:
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        listening.close()
        signal.set_wakeup_fd(previous_wake)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(woken)
        os.close(wake)
    return 1 if failed else 0


def _how(worker: Worker) -> str:
    code = worker.process.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class WorkerServer(uvicorn.Server):
    """uvicorn's server in a worker: it says when it answers, to the log and to serve."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()
            log.info("worker %d ready", os.getpid())


def _work(shared: uvicorn.Config, listening: socket.socket, ready: Event) -> None:
    """A worker process: logging as serve's, then uvicorn on the shared socket."""
    from bot.config import load_settings
    from bot.logs import configure_logging

    configure_logging(load_settings().log_level)
    shared.configure_logging()  # uvicorn's own loggers, as in serve (access log off)
    WorkerServer(shared, ready).run(sockets=[listening])


def worker_app() -> ASGIApp:
    """The app of one worker, built from the environment (uvicorn calls this in each worker): webhooks,
    pages, and the dispatcher and the jobs when this worker leads."""
    from api.app import create_app
    from bot.config import load_settings

    settings = load_settings()
    app = create_app(settings, dispatch=settings.dispatch_in_process, case_jobs=True)
    heap.settle()  # the app is built: what it holds is kept out of later collections
    return NamesWorker(app)


class NamesWorker:
    """Adds the worker's pid to every answer (WORKER_HEADER)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, named)
