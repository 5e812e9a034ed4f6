"""The reports over the JSON API (coordinators and admins): each table as JSON or CSV, small counts hidden
exactly as on the page (bot.reports)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from api.coordinate.common import ApiCoordinator
from api.deps import HamrohDep, SettingsDep
from api.rest.errors import ApiRoute
from bot.reports import report
from bot.reports.export import as_csv, as_json
from bot.reports.suppress import TooFine

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API token"},
    403: {"description": "this role may not read reports"},
    404: {"description": "no such table"},
    422: {"description": "an unknown key or a month that is not YYYY-MM; the detail says which"},
}
TableName = Annotated[str, Path(description=f"one of: {', '.join(report.TABLES)}")]
By = Annotated[
    str | None,
    Query(description="requests only: keys among topic, month, region, channel, lang, comma-separated"),
]
From = Annotated[str | None, Query(alias="from", description="first month, YYYY-MM (Asia/Dushanbe)")]
To = Annotated[str | None, Query(description="last month, YYYY-MM, included")]

router = APIRouter(prefix="/reports", tags=["reports"], responses=REFUSALS, route_class=ApiRoute)


async def _published(
    name: str, hamroh: HamrohDep, settings: SettingsDep, by: str | None, first: str | None, last: str | None
) -> report.Published:
    if name not in report.TABLES:
        raise HTTPException(404, f"no table {name!r}: one of {', '.join(report.TABLES)}")
    try:
        keys = report.parse_by(by)
        period = report.parse_period(first, last)
        regions = {d.id: d.region for d in hamroh.flows.districts.values()}
        (published,) = await report.load(
            hamroh.engine,
            [name],
            regions=regions,
            period=period,
            now=hamroh.clock(),
            threshold=settings.report_min_cell,
            by=keys,
        )
    except (ValueError, TooFine) as exc:
        raise HTTPException(422, str(exc)) from None
    return published


@router.get("/{table}.csv", response_class=Response)
async def table_csv(
    table: TableName,
    staff: ApiCoordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    by: By = None,
    first: From = None,
    to: To = None,
) -> Response:
    """The table as CSV: a hidden count is an empty value, explained in the note column."""
    published = await _published(table, hamroh, settings, by, first, to)
    return Response(
        as_csv(published),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{published.slug}.csv"'},
    )


@router.get("/{table}")
async def table_json(
    table: TableName,
    staff: ApiCoordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    by: By = None,
    first: From = None,
    to: To = None,
) -> dict[str, Any]:
    """The table as JSON: `requests?by=topic,month` and the others (women, escalations, outcomes, claims,
    announcements, enrolments); a hidden count is null."""
    return as_json(await _published(table, hamroh, settings, by, first, to))
