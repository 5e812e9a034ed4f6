"""The coordinators' pages under /coordinate: announcements, training courses and reach reports.

Thin routes over bot.announcements and bot.reports; Jinja2 templates in api/templates/coordinate/. Nothing
here ever shows an address or her words.
"""

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from api.coordinate import announcements, courses, reports
from api.coordinate.common import Coordinator

router = APIRouter()
for part in (announcements.router, courses.router, reports.router):
    router.include_router(part)


@router.get("/coordinate", include_in_schema=False)
async def home(staff: Coordinator) -> RedirectResponse:
    """A coordinator's home: the announcements."""
    return RedirectResponse("/coordinate/announcements", status_code=303)


__all__ = ["router"]
