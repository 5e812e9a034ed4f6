"""The coordinators' courses pages: the list with its counts, a form to create or edit a course, taking a
course off (every woman on it told), and the partner's list as CSV (audited).

Every form carries the session's CSRF token (checked by the staff dependency before anything runs). A form
that cannot be saved is shown again, saying why, with what was typed kept.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.coordinate.common import Coordinator, page
from api.deps import DbDep, HamrohDep
from api.rest.courses import csv_response
from bot.announcements import courses
from bot.announcements.courses import CourseFields, CourseInvalid, CourseNotFound
from bot.announcements.enrolment import DUSHANBE
from bot.conversation.flows import FlowSet
from bot.store.courses import PARTNER_FIELDS, CourseRow

router = APIRouter(prefix="/coordinate/courses")

CourseId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an int4 column
TEXT_FIELDS = ("title_tg", "title_ru", "title_en", "description_tg", "description_ru", "place", "partner")
FORM_MAX = 5_000  # the courses module refuses what is too long, and says so; this only stops absurd posts
# What the page says after a step went well: looked up, never echoed from the address bar.
DONE = {
    "created": "Course created. Women of its district see it now.",
    "saved": "Course saved.",
    "activated": "The course is listed again.",
}
PARTNER_LABELS = {"name": "Her name", "phone": "Her phone number"}


@router.get("", response_class=HTMLResponse)
async def list_page(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    db: DbDep,
    done: str | None = None,
    told: int | None = None,
) -> HTMLResponse:
    """Every course with how many women hold a place and how many wait."""
    now = hamroh.clock()
    summaries = await courses.list_courses(db)
    message = DONE.get(done or "")
    if done == "deactivated" and told is not None:
        message = f"The course is taken off. Women told it will not take place: {max(told, 0)}."
    return page(
        request,
        "coordinate/courses.html",
        {
            "here": "courses",
            "summaries": summaries,
            "begun": {s.course.id for s in summaries if courses.has_begun(s.course, now)},
            "done": message,
            "districts": _district_names(hamroh.flows),
        },
    )


@router.get("/new", response_class=HTMLResponse)
async def new_page(request: Request, staff: Coordinator, hamroh: HamrohDep) -> HTMLResponse:
    """An empty form for a new course."""
    return _form(request, hamroh.flows, values={"partner_fields": ["phone"]}, course_id=None)


@router.post("", response_class=HTMLResponse)
async def create(request: Request, staff: Coordinator, hamroh: HamrohDep, db: DbDep) -> Response:
    """Create the course of the form, or show the form again saying why not."""
    values = await _values(request)
    now = hamroh.clock()
    try:
        async with db.begin_nested():
            await courses.create(
                db,
                hamroh.flows,
                fields=_fields(values),
                today=now.astimezone(DUSHANBE).date(),
                now=now,
            )
    except CourseInvalid as exc:
        return _form(request, hamroh.flows, values=values, course_id=None, error=str(exc), status_code=422)
    return RedirectResponse("/coordinate/courses?done=created", status_code=303)


@router.get("/{course_id}", response_class=HTMLResponse)
async def edit_page(
    request: Request, course_id: CourseId, staff: Coordinator, hamroh: HamrohDep, db: DbDep
) -> HTMLResponse:
    """The form of one course, filled in, with its counts and what may be done to it."""
    try:
        summary = await courses.get(db, course_id)
    except CourseNotFound:
        return _missing(request)
    return _form(
        request, hamroh.flows, values=_values_of(summary.course), course_id=course_id, summary=summary
    )


@router.post("/{course_id}", response_class=HTMLResponse)
async def save(
    request: Request, course_id: CourseId, staff: Coordinator, hamroh: HamrohDep, db: DbDep
) -> Response:
    """Save the edited course, or show the form again saying why not."""
    values = await _values(request)
    try:
        async with db.begin_nested():
            fields = _fields(values)
            changes = {name: getattr(fields, name) for name in CourseFields.__dataclass_fields__}
            await courses.update(
                db, hamroh.vault, hamroh.flows, course_id=course_id, changes=changes, now=hamroh.clock()
            )
    except CourseNotFound:
        return _missing(request)
    except CourseInvalid as exc:
        summary = await courses.get(db, course_id)
        return _form(
            request,
            hamroh.flows,
            values=values,
            course_id=course_id,
            summary=summary,
            error=str(exc),
            status_code=422,
        )
    return RedirectResponse("/coordinate/courses?done=saved", status_code=303)


@router.post("/{course_id}/deactivate", response_class=HTMLResponse)
async def deactivate(
    request: Request, course_id: CourseId, staff: Coordinator, hamroh: HamrohDep, db: DbDep
) -> Response:
    """Take the course off the lists; every woman on it or waiting is told it will not take place."""
    try:
        taken = await courses.deactivate(
            db, hamroh.vault, hamroh.flows, course_id=course_id, now=hamroh.clock()
        )
    except CourseNotFound:
        return _missing(request)
    return RedirectResponse(f"/coordinate/courses?done=deactivated&told={taken.told}", status_code=303)


@router.post("/{course_id}/activate", response_class=HTMLResponse)
async def activate(
    request: Request, course_id: CourseId, staff: Coordinator, hamroh: HamrohDep, db: DbDep
) -> Response:
    """List the course again."""
    try:
        await courses.reactivate(db, course_id=course_id, now=hamroh.clock())
    except CourseNotFound:
        return _missing(request)
    return RedirectResponse("/coordinate/courses?done=activated", status_code=303)


@router.get("/{course_id}/enrolments.csv", response_class=Response)
async def enrolments_csv(
    request: Request, course_id: CourseId, staff: Coordinator, hamroh: HamrohDep, db: DbDep
) -> Response:
    """The list for the training partner (audited), as the API gives it."""
    try:
        export = await courses.export(db, hamroh.vault, course_id=course_id, staff=staff, now=hamroh.clock())
    except CourseNotFound:
        return _missing(request)
    return csv_response(export)


async def _values(request: Request) -> dict[str, Any]:
    """What the form sent, as text (the CSRF check has read it already; Starlette keeps it)."""
    form = await request.form()
    values: dict[str, Any] = {}
    for name in (*TEXT_FIELDS, "district", "starts_on", "ends_on", "capacity"):
        value = form.get(name)
        values[name] = value[:FORM_MAX] if isinstance(value, str) else ""
    values["partner_fields"] = [v for v in form.getlist("partner_fields") if isinstance(v, str)]
    return values


def _fields(values: dict[str, Any]) -> CourseFields:
    """The form's text as a course's fields (CourseInvalid for a date or a number that is none)."""
    return CourseFields(
        **{name: values[name] for name in TEXT_FIELDS},
        district=values["district"] or None,
        starts_on=_day(values["starts_on"], "starts_on"),
        ends_on=_day(values["ends_on"], "ends_on"),
        capacity=_number(values["capacity"]),
        partner_fields=tuple(values["partner_fields"]),
    )


def _day(text: str, name: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CourseInvalid(f"{name}: write the day as 2027-01-31") from None


def _number(text: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isascii() or not text.strip().isdigit():
        raise CourseInvalid("capacity: a whole number of places, or empty for no limit")
    return int(text.strip()[:9])


def _values_of(course: CourseRow) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(course, name) for name in TEXT_FIELDS}
    values |= {
        "district": course.district or "",
        "starts_on": course.starts_on.isoformat() if course.starts_on else "",
        "ends_on": course.ends_on.isoformat() if course.ends_on else "",
        "capacity": "" if course.capacity is None else str(course.capacity),
        "partner_fields": list(courses.partner_fields(course)),
    }
    return values


def _district_names(flows: FlowSet) -> dict[str, str]:
    """District id -> its English name (Russian where none), in alphabetical order."""
    names = {d.id: d.names.get("en") or d.names.get("ru") or d.id for d in flows.districts.values()}
    return dict(sorted(names.items(), key=lambda item: item[1]))


def _form(
    request: Request,
    flows: FlowSet,
    *,
    values: dict[str, Any],
    course_id: int | None,
    summary: courses.CourseSummary | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "coordinate/courses_form.html",
        {
            "here": "courses",
            "values": values,
            "course_id": course_id,
            "summary": summary,
            "error": error,
            "districts": _district_names(flows),
            "partner_fields": [(name, PARTNER_LABELS.get(name, name)) for name in PARTNER_FIELDS],
        },
        status_code=status_code,
    )


def _missing(request: Request) -> HTMLResponse:
    return page(request, "coordinate/courses_missing.html", {"here": "courses"}, status_code=404)
