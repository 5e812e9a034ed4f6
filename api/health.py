"""`/healthz` for load balancers, in every mode: the process answers and the database does too."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import HamrohDep

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5  # a database that hangs is as unhealthy as one that refuses; the checker must not hang
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter()


@router.get("/healthz")
async def healthz(hamroh: HamrohDep) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), hamroh.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not healthy", never a 500
        # The class only: a driver's message may carry the database URL and its password.
        log.warning("health check: the database did not answer (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
    return JSONResponse({"status": "ok"}, headers=NO_STORE)
