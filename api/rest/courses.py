"""Training courses over the JSON API (coordinators and admins): list, create, change, take off, delete,
and the partner's list as CSV (audited). Thin: each route calls one step of bot.announcements.courses and
turns its refusals into 422 (with the reason) and 404."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.coordinate.common import ApiCoordinator
from api.deps import DbDep, HamrohDep
from api.rest.errors import ApiRoute
from bot.announcements import courses
from bot.announcements.courses import CourseFields, CourseInvalid, CourseNotFound, CourseSummary, Export
from bot.announcements.enrolment import DUSHANBE
from bot.store.courses import PARTNER_FIELDS

CourseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the course's id")]  # an int4 column
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API token"},
    403: {"description": "this role may not manage courses"},
    404: {"description": "no such course"},
    422: {"description": "the request is not valid; the detail says why"},
}
NULLABLE = frozenset({"district", "ends_on", "capacity"})  # null: every district, no last day, no limit
# Excel reads a CSV without this mark as the local code page, and her name in Cyrillic as noise.
BOM = "\ufeff"

router = APIRouter(prefix="/courses", tags=["courses"], responses=REFUSALS, route_class=ApiRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Titles(_Body):
    """A course's title in each language (English optional: staff and the simulator read it)."""

    tg: str
    ru: str
    en: str = ""


class TitlesChange(_Body):
    """The titles to change; those left out stay."""

    tg: str | None = None
    ru: str | None = None
    en: str | None = None


class Descriptions(_Body):
    """What the course is, in each language women read."""

    tg: str = ""
    ru: str = ""


class DescriptionsChange(_Body):
    """The descriptions to change; those left out stay."""

    tg: str | None = None
    ru: str | None = None


class NewCourse(_Body):
    """A course to create."""

    title: Titles
    description: Descriptions = Field(default_factory=Descriptions)
    district: str | None = Field(None, description="a district id of the flows; null: every district")
    place: str = ""
    starts_on: date
    ends_on: date | None = None
    capacity: int | None = Field(None, description="places; null: no limit")
    partner: str = ""
    partner_fields: list[str] = Field(
        default_factory=lambda: ["phone"], description=f"what the partner needs, of {PARTNER_FIELDS}"
    )


class CourseChange(_Body):
    """Fields to change; those left out stay. `active: false` takes the course off, telling every woman on
    it or waiting."""

    title: TitlesChange | None = None
    description: DescriptionsChange | None = None
    district: str | None = None
    place: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    capacity: int | None = None
    partner: str | None = None
    partner_fields: list[str] | None = None
    active: bool | None = None


class Course(BaseModel):
    """A course with how many women hold a place and how many wait."""

    id: int
    title: Titles
    description: Descriptions
    district: str | None
    place: str
    starts_on: date | None
    ends_on: date | None
    capacity: int | None
    partner: str
    partner_fields: list[str]
    active: bool
    example: bool = Field(description="a development demo course")
    enrolled: int
    waiting: int
    told: int | None = Field(
        None, description="women told it will not take place, when this request took the course off"
    )

    @classmethod
    def of(cls, summary: CourseSummary, told: int | None = None) -> Course:
        """The API's form of a course."""
        c = summary.course
        assert c.id is not None
        return cls(
            id=c.id,
            title=Titles(tg=c.title_tg, ru=c.title_ru, en=c.title_en),
            description=Descriptions(tg=c.description_tg, ru=c.description_ru),
            district=c.district,
            place=c.place,
            starts_on=c.starts_on,
            ends_on=c.ends_on,
            capacity=c.capacity,
            partner=c.partner,
            partner_fields=list(courses.partner_fields(c)),
            active=c.active,
            example=c.example,
            enrolled=summary.enrolled,
            waiting=summary.waiting,
            told=told,
        )


class CourseList(BaseModel):
    """Every course, active ones first, soonest first."""

    courses: list[Course]


class Removed(BaseModel):
    """A deleted course: how many women were on it or waiting, and how many were told."""

    id: int
    women: int
    told: int


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal of the courses module as its HTTP status, with its reason."""
    try:
        yield
    except CourseNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except CourseInvalid as exc:
        raise HTTPException(422, str(exc)) from None


def csv_response(export: Export) -> Response:
    """The partner's list as a download, never cached."""
    return Response(
        BOM + export.text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("")
async def list_courses(staff: ApiCoordinator, db: DbDep) -> CourseList:
    """Every course with its counts."""
    return CourseList(courses=[Course.of(s) for s in await courses.list_courses(db)])


@router.post("", status_code=201)
async def create(new: NewCourse, staff: ApiCoordinator, hamroh: HamrohDep, db: DbDep) -> Course:
    """A new course, listed to women of its district (or every district) at once."""
    now = hamroh.clock()
    fields = CourseFields(
        title_tg=new.title.tg,
        title_ru=new.title.ru,
        title_en=new.title.en,
        description_tg=new.description.tg,
        description_ru=new.description.ru,
        district=new.district,
        place=new.place,
        starts_on=new.starts_on,
        ends_on=new.ends_on,
        capacity=new.capacity,
        partner=new.partner,
        partner_fields=tuple(new.partner_fields),
    )
    with refusals():
        course = await courses.create(
            db, hamroh.flows, fields=fields, today=now.astimezone(DUSHANBE).date(), now=now
        )
    return Course.of(CourseSummary(course, 0, 0))


@router.patch("/{course_id}")
async def change(
    course_id: CourseId, change: CourseChange, staff: ApiCoordinator, hamroh: HamrohDep, db: DbDep
) -> Course:
    """Change a course; `active: false` takes it off and says how many women were told."""
    now = hamroh.clock()
    given = change.model_dump(exclude_unset=True)
    active = given.pop("active", None)
    changes: dict[str, Any] = {}
    for group in ("title", "description"):
        for lang, value in (given.pop(group, None) or {}).items():
            if value is None:
                raise HTTPException(422, f"{group}.{lang}: give a text, or leave it out")
            changes[f"{group}_{lang}"] = value
    if "starts_on" in given and given["starts_on"] is None:
        raise HTTPException(422, "starts_on: a course needs its first day")
    for name in sorted(set(given) - NULLABLE):
        if given[name] is None:
            raise HTTPException(422, f"{name}: give a value, or leave it out")
    changes |= {k: tuple(v) if k == "partner_fields" else v for k, v in given.items()}
    told = None
    with refusals():
        if changes:
            await courses.update(
                db, hamroh.vault, hamroh.flows, course_id=course_id, changes=changes, now=now
            )
        if active is False:
            told = (
                await courses.deactivate(db, hamroh.vault, hamroh.flows, course_id=course_id, now=now)
            ).told
        elif active is True:
            await courses.reactivate(db, course_id=course_id, now=now)
        summary = await courses.get(db, course_id)
    return Course.of(summary, told)


@router.delete("/{course_id}")
async def delete(course_id: CourseId, staff: ApiCoordinator, hamroh: HamrohDep, db: DbDep) -> Removed:
    """Delete a course and its enrolments; every woman on it or waiting is told it will not take place."""
    with refusals():
        taken = await courses.delete(db, hamroh.vault, hamroh.flows, course_id=course_id, now=hamroh.clock())
    return Removed(id=course_id, women=taken.women, told=taken.told)


@router.get("/{course_id}/enrolments.csv", response_class=Response)
async def enrolments_csv(
    course_id: CourseId, staff: ApiCoordinator, hamroh: HamrohDep, db: DbDep
) -> Response:
    """The list for the training partner: per woman only what she agreed to share, her status and the day
    she enrolled. Every export is audited."""
    with refusals():
        export = await courses.export(db, hamroh.vault, course_id=course_id, staff=staff, now=hamroh.clock())
    return csv_response(export)
