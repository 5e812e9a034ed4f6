"""`/healthz` for load balancers, in every mode: the process answers and the database does too.

It answers within TIMEOUT_SECONDS whatever the database does: a database that hangs is as unhealthy as one
that refuses, and the checker must not hang with it (nor wait for the check's connection to unwind).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deadline import within
from api.deps import HamrohDep

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 2.0  # the README states it
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter()


@router.get("/healthz")
async def healthz(hamroh: HamrohDep) -> JSONResponse:
    """200 when the database answers within TIMEOUT_SECONDS, 503 when it does not."""
    try:
        await within(TIMEOUT_SECONDS, _database_answers(hamroh.engine))
    except Exception as exc:  # any failure to reach the database means "not healthy", never a 500
        # The class only: a driver's message may carry the database URL and its password.
        log.warning("health check: the database did not answer (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def _database_answers(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
