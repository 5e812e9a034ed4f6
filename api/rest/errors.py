"""Answers for requests the API cannot read: 422 with the reasons, and never a 500 on the way.

FastAPI's own answer quotes the rejected input back, and fails with a 500 when that input holds what UTF-8
cannot encode (JSON may carry a lone surrogate). Ours gives where and why, without the input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute


class AsciiJSON(JSONResponse):
    """JSON escaped to ASCII: any string, however broken, can be written."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def reasons(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where each problem is and what it is, without the value that was sent."""
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": str(e["msg"]), "type": str(e["type"])}
        for e in exc.errors()
    ]


class ApiRoute(APIRoute):
    """A route of the JSON API: unreadable requests get our 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_readably(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                return AsciiJSON({"detail": reasons(exc)}, status_code=422)

        return handle_readably
