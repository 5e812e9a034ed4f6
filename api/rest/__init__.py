"""The JSON API for integrations, under /api: bearer tokens only (never the console's cookie, so no CSRF),
and an OpenAPI schema of its own at /api/openapi.json (the rest of the app publishes none)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.openapi.utils import get_openapi

from api.rest import announcements, cases, courses, reports
from api.rest.errors import ApiRoute

TITLE = "Hamroh API"
VERSION = "1"

router = APIRouter(prefix="/api", route_class=ApiRoute)
for part in (cases.router, announcements.router, courses.router, reports.router):
    router.include_router(part)


@cache
def schema() -> dict[str, Any]:
    """The API's OpenAPI schema, built once from its own routes."""
    document = get_openapi(
        title=TITLE,
        version=VERSION,
        description="Cases, for counsellors' tools; announcements, courses and reports, for coordinators' "
        "tools. Send `Authorization: Bearer <token>` (a token from `hamroh staff token NAME`).",
        routes=router.routes,
    )
    document.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    document["security"] = [{"bearer": []}]
    return document


@router.get("/openapi.json", include_in_schema=False)
async def openapi() -> dict[str, Any]:
    """The schema, for code generators and for people."""
    return schema()
