"""Reading a request's body with a limit, for the routes that parse it themselves (webhooks, simulator)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.requests import ClientDisconnect


async def read_body(request: Request, limit: int, too_large: str) -> bytes:
    """The body, refused with 413 (`too_large`) as soon as it passes `limit` bytes, announced or not.

    A client that hangs up before its body ends gets a 400 nobody reads, rather than a traceback in the log.
    """
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise HTTPException(413, too_large)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, too_large)
    except ClientDisconnect:
        raise HTTPException(400, "the request ended before its body did") from None
    return bytes(body)
