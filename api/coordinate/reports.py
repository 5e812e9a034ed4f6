"""The coordinators' reports page: charts (server-drawn SVG) and tables of reach, each table with its CSV,
small counts hidden as in the API (bot.reports). Thin: the tables come from bot.reports.report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.coordinate.common import Coordinator, page
from api.deps import HamrohDep, SettingsDep
from api.templating import PAGE_HEADERS
from bot.config import Settings
from bot.reports import report
from bot.reports.charts import bar_chart
from bot.reports.export import as_csv, footnote
from bot.reports.rollup import Period
from bot.reports.suppress import TooFine
from bot.service import Hamroh

router = APIRouter(prefix="/coordinate/reports")

From = Annotated[str | None, Query(alias="from")]
To = Annotated[str | None, Query()]


def _regions(hamroh: Hamroh) -> dict[str, str]:
    return {d.id: d.region for d in hamroh.flows.districts.values()}


def _common(settings: Settings) -> dict[str, Any]:
    threshold = settings.report_min_cell
    return {"threshold": threshold, "footnote": footnote(threshold), "key_titles": report.KEY_TITLES}


@router.get("", response_class=HTMLResponse)
async def reports_page(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    first: From = None,
    to: To = None,
) -> HTMLResponse:
    """Every table of the report, each with its chart and its CSV, for whole months (Asia/Dushanbe)."""
    try:
        period = report.parse_period(first or None, to or None)
    except ValueError as exc:  # the page again, with the reason and nothing counted
        context = {"here": "reports", "sections": [], "period": Period(), "query": "", "error": str(exc)}
        return page(request, "coordinate/reports.html", _common(settings) | context, status_code=422)
    tables = await report.load(
        hamroh.engine,
        ["page"],
        regions=_regions(hamroh),
        period=period,
        now=hamroh.clock(),
        threshold=settings.report_min_cell,
    )
    query = "&".join(
        f"{name}={value}" for name, value in (("from", period.first), ("to", period.last)) if value
    )
    sections = [(t, bar_chart(t)) for t in tables]
    return page(
        request,
        "coordinate/reports.html",
        _common(settings) | {"here": "reports", "sections": sections, "period": period, "query": query},
    )


@router.get("/{table}.csv", response_class=Response)
async def report_csv(
    table: Annotated[str, Path()],
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    by: str | None = None,
    first: From = None,
    to: To = None,
) -> Response:
    """One table as CSV, as the page shows it (the API gives the same to integrations)."""
    if table not in report.TABLES:
        raise HTTPException(404, "no such table")
    try:
        (published,) = await report.load(
            hamroh.engine,
            [table],
            regions=_regions(hamroh),
            period=report.parse_period(first or None, to or None),
            now=hamroh.clock(),
            threshold=settings.report_min_cell,
            by=report.parse_by(by),
        )
    except (ValueError, TooFine) as exc:
        raise HTTPException(422, str(exc)) from None
    headers = {**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{published.slug}.csv"'}
    return Response(as_csv(published), media_type="text/csv; charset=utf-8", headers=headers)
