"""The FastAPI application. Routes are thin: they parse, call the service, and answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import health, simulator, sms, telegram
from bot.config import Settings
from bot.flows import FlowSet
from bot.runtime import build, load_content, run_dispatcher
from bot.service import Hamroh

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, hamroh: Hamroh | None = None, *, flows: FlowSet | None = None, dispatch: bool = False
) -> FastAPI:
    """The app for these settings. Content loads now, so a broken flow file stops start-up here.

    With `dispatch`, the app's lifespan also runs the dispatcher (what `hamroh serve` does by default).
    """
    service = hamroh if hamroh is not None else build(settings, flows or load_content(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        sending = None
        if dispatch:  # `hamroh serve` sends too, unless a separate `hamroh dispatch` does
            sending = asyncio.create_task(run_dispatcher(settings, service, stop))
            sending.add_done_callback(_say_if_it_died)
        yield
        stop.set()
        if sending is not None:
            await sending
        if hamroh is None:
            await service.engine.dispose()

    app = FastAPI(title="Hamroh", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.hamroh = service
    app.include_router(health.router)
    if settings.telegram_on:
        app.include_router(telegram.router)
    if settings.sms_on:
        app.include_router(sms.router)
    if settings.simulator_on:
        app.include_router(simulator.router)
    return app


def _say_if_it_died(task: asyncio.Task[None]) -> None:
    """The in-process dispatcher should only end at shutdown; if it dies, say so loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the dispatcher stopped: nothing will be sent until Hamroh restarts", exc_info=task.exception()
        )
