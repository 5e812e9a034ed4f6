"""The FastAPI application. Routes are thin: they parse, call the service, and answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import auth, console, coordinate, health, rest, simulator, sms, telegram
from api.deps import LoginRequired
from api.templating import static_files
from bot.cases.listen import Listener
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.leader import serve_background
from bot.runtime import build, load_content
from bot.service import Hamroh

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    hamroh: Hamroh | None = None,
    *,
    flows: FlowSet | None = None,
    dispatch: bool = False,
    case_jobs: bool = False,
) -> FastAPI:
    """The app for these settings. Content loads now, so a broken flow file stops start-up here.

    With `dispatch`, the app's lifespan also runs the dispatcher (what `hamroh serve` does by default);
    with `case_jobs`, the jobs loop: case alerts, timeouts and purge, retention, reminders, the announcement
    schedule (`hamroh serve` always runs them). Both run in one process at a time across every process and
    worker on the database (bot.leader).
    """
    service = hamroh if hamroh is not None else build(settings, flows or load_content(settings))
    listener = Listener(service.engine)  # the console's live feed: one per process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        listener.start()
        console.end_streams_at_exit(listener)
        background = None
        if dispatch or case_jobs:  # in whichever process leads, one across every worker on the database
            background = asyncio.create_task(
                serve_background(settings, service, stop, dispatch=dispatch, case_jobs=case_jobs)
            )
            background.add_done_callback(_say_if_it_died)
        yield
        stop.set()
        await listener.stop()
        if background is not None:
            await background
        if hamroh is None:
            await service.engine.dispose()

    app = FastAPI(title="Hamroh", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.hamroh = service
    app.state.listener = listener
    app.include_router(health.router)
    # The webhooks first: routes are matched in order, and they take most of the requests.
    if settings.telegram_on:
        app.include_router(telegram.router)
    if settings.sms_on:
        app.include_router(sms.router)
    app.include_router(console.router)
    app.include_router(coordinate.router)
    app.mount("/static", static_files, name="static")
    app.add_exception_handler(LoginRequired, auth.to_login)
    app.include_router(auth.router)
    app.include_router(rest.router)
    if settings.simulator_on:
        app.include_router(simulator.router)
    return app


def _say_if_it_died(task: asyncio.Task[None]) -> None:
    """The dispatcher and the jobs should only end at shutdown; if they die, say so loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the dispatcher and the jobs stopped: nothing will be sent until Hamroh restarts",
            exc_info=task.exception(),
        )
