"""The counsellors' console: the live queue, one case at a time, and the steps taken on cases.

Thin routes over bot.cases (actions, views, the feed and its listener); pages are Jinja2 templates in
api/templates/console/, made live by the vendored htmx and its server-sent events extension. Her words are
only ever rendered as escaped text.
"""

from fastapi import APIRouter

from api.console import audit, events, forms, media, pages
from api.console.events import end_streams_at_exit

router = APIRouter()
for part in (pages.router, forms.router, events.router, media.router, audit.router):
    router.include_router(part)

__all__ = ["end_streams_at_exit", "router"]
