"""Courses as coordinators run them, through the JSON API and the /coordinate/courses pages: created,
changed, taken off with every woman told, the partner's list exported (exact columns, audited, without a
woman who erased her data); bad input refused with its reason; and the demo's courses kept to development."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from api.deps import SESSION_COOKIE
from bot import cli
from bot.announcements import courses, enrolment
from bot.service import Hamroh
from bot.staff.sessions import start_session
from bot.store import AuditEntry, Contact, OutboxMessage, Staff, erase
from bot.store.courses import CourseRow, Enrolment
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock, telegram_contact
from tests.test_rest_api import bearer_tokens, production_app

BASE = "http://hamroh.test"
JSON = {"content-type": "application/json"}
# The clock of the tests reads 28 November 2026, 14:00 in Dushanbe.
SEWING: dict[str, Any] = {
    "title": {"tg": "Дӯзандагӣ", "ru": "Швейное дело"},
    "description": {"tg": "Се моҳ, ройгон.", "ru": "Три месяца, бесплатно."},
    "district": "bokhtar",
    "place": "Бохтар, ул. Айнӣ 12",
    "starts_on": "2027-01-11",
    "ends_on": "2027-04-09",
    "capacity": 2,
    "partner": "Partner NGO",
    "partner_fields": ["name", "phone"],
}


@pytest.fixture
def app(hamroh: Hamroh, database_url: str, tmp_path: Path) -> FastAPI:
    return production_app(hamroh, database_url, tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.fixture
async def tokens(hamroh: Hamroh) -> dict[str, dict[str, str]]:
    """An Authorization header for each member of the team (zarina coordinates, dilnoza counsels)."""
    return await bearer_tokens(hamroh)


async def woman(hamroh: Hamroh, address: str, lang: str = "ru", **fields: Any) -> int:
    async with transaction(hamroh.engine) as db:
        contact = telegram_contact(hamroh.vault, address, hamroh.clock())
        contact.lang = lang
        for name, value in fields.items():
            setattr(contact, name, value)
        db.add(contact)
        await db.flush()
        assert contact.id is not None
        return contact.id


async def enrol(hamroh: Hamroh, course: int, contact: int, **details: str) -> str:
    async with transaction(hamroh.engine) as db:
        return await enrolment.enrol(
            db, hamroh.vault, course_id=course, contact_id=contact, details=details, now=hamroh.clock()
        )


async def outbox_texts(hamroh: Hamroh) -> list[tuple[int | None, str]]:
    async with transaction(hamroh.engine) as db:
        rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    return [(r.contact_id, json.loads(hamroh.vault.open(r.body))["text"]) for r in rows]


def rows_of(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


async def test_a_course_through_the_api(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    zarina = tokens["zarina"]
    created = await client.post("/api/courses", json=SEWING, headers=zarina)
    assert created.status_code == 201, created.text
    course = created.json()
    assert course | {"id": 0} == {
        **SEWING,
        "id": 0,
        "title": SEWING["title"] | {"en": ""},
        "active": True,
        "example": False,
        "enrolled": 0,
        "waiting": 0,
        "told": None,
    }
    first, second, third = [await woman(hamroh, f"tg:90000{n}") for n in range(3)]
    for contact in (first, second, third):
        await enrol(hamroh, course["id"], contact)

    listed = (await client.get("/api/courses", headers=zarina)).json()["courses"]
    assert [(c["id"], c["enrolled"], c["waiting"]) for c in listed] == [(course["id"], 2, 1)]

    # One more place: the woman waiting is moved up and told, in her language.
    changed = await client.patch(
        f"/api/courses/{course['id']}", json={"capacity": 3, "title": {"ru": "Шитьё"}}, headers=zarina
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enrolled"], changed.json()["waiting"], changed.json()["title"]) == (
        3,
        0,
        {"tg": "Дӯзандагӣ", "ru": "Шитьё", "en": ""},
    )
    ((told, text),) = await outbox_texts(hamroh)
    assert told == third
    assert "Шитьё" in text
    assert "11 января 2027" in text


async def test_bad_input_is_refused_with_its_reason(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    zarina = tokens["zarina"]
    refused = {
        "title_ru: a title is needed": SEWING | {"title": {"tg": "Дӯзандагӣ", "ru": "  "}},
        "district: no district 'atlantis'": SEWING | {"district": "atlantis"},
        "ends_on: the course cannot end before it starts": SEWING | {"ends_on": "2027-01-10"},
        "capacity: from 1": SEWING | {"capacity": 0},
        "partner_fields: 'passport'": SEWING | {"partner_fields": ["phone", "passport"]},
        "starts_on: the course would have started already": SEWING | {"starts_on": "2026-11-27"},
        "title_tg: at most 200 characters": SEWING | {"title": {"tg": "ҳ" * 201, "ru": "x"}},
        "starts_on": SEWING | {"starts_on": "11.01.2027"},
        "colour": SEWING | {"colour": "red"},
        "place: holds a character that is not text": SEWING | {"place": "Бохтар \ud800"},
    }
    for reason, body in refused.items():
        # As JSON on the wire: escaped, so that a lone surrogate can be sent at all.
        answer = await client.post("/api/courses", content=json.dumps(body), headers=zarina | JSON)
        assert answer.status_code == 422, reason
        assert reason in answer.text, answer.text
    assert (await client.get("/api/courses", headers=zarina)).json() == {"courses": []}

    course = (await client.post("/api/courses", json=SEWING, headers=zarina)).json()["id"]
    for contact in [await woman(hamroh, f"tg:91000{n}") for n in range(2)]:
        await enrol(hamroh, course, contact)
    patch = f"/api/courses/{course}"
    for body, reason in (
        ({"capacity": 1}, "capacity: 2 women hold a place already"),
        ({"title": {"tg": None}}, "title.tg: give a text"),
        ({"starts_on": None}, "starts_on: a course needs its first day"),
        ({"place": None}, "place: give a value, or leave it out"),
        ({"partner_fields": None}, "partner_fields: give a value"),
        ({"partner_fields": ["email"]}, "partner_fields: 'email'"),
        ({"active": "perhaps"}, "active"),
    ):
        answer = await client.patch(patch, json=body, headers=zarina)
        assert answer.status_code == 422, body
        assert reason in answer.text, answer.text
    assert (await client.get("/api/courses", headers=zarina)).json()["courses"][0]["capacity"] == 2

    for method, path in (
        ("PATCH", "/api/courses/999999"),
        ("DELETE", "/api/courses/999999"),
        ("GET", "/api/courses/999999/enrolments.csv"),
    ):
        answer = await client.request(
            method, path, json={"place": "x"} if method == "PATCH" else None, headers=zarina
        )
        assert answer.status_code == 404, path
        assert answer.json() == {"detail": "no course 999999"}
    assert (await client.get("/api/courses/0/enrolments.csv", headers=zarina)).status_code == 422


async def test_only_coordinators_and_admins(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    course = (await client.post("/api/courses", json=SEWING, headers=tokens["rustam"])).json()["id"]
    calls = (
        ("GET", "/api/courses", None),
        ("POST", "/api/courses", SEWING),
        ("PATCH", f"/api/courses/{course}", {"place": "x"}),
        ("GET", f"/api/courses/{course}/enrolments.csv", None),
        ("DELETE", f"/api/courses/{course}", None),
    )
    for method, path, body in calls:
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert (await client.request(method, path, json=body, headers=tokens["dilnoza"])).status_code == 403
    async with transaction(hamroh.engine) as db:
        assert (await db.exec(select(CourseRow.place))).all() == ["Бохтар, ул. Айнӣ 12"]
        assert (await db.exec(select(AuditEntry))).all() == []


async def test_the_partners_list_holds_only_what_she_agreed_to_share(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    course = (await client.post("/api/courses", json=SEWING, headers=tokens["zarina"])).json()["id"]
    gulnora, madina, nigora, parvina = [await woman(hamroh, f"tg:92000{n}") for n in range(4)]
    await enrol(hamroh, course, gulnora, name="Гулнора", phone="+992901112233")
    await enrol(hamroh, course, madina, name="=HYPERLINK(1)")  # no phone given on Telegram; and mischief
    clock.advance(days=1)
    await enrol(hamroh, course, nigora, name="Нигора", phone="+992902223344")
    await enrol(hamroh, course, parvina, phone="+992903334455")
    async with transaction(hamroh.engine) as db:
        await enrolment.cancel(
            db, hamroh.vault, hamroh.flows, course_id=course, contact_id=parvina, now=hamroh.clock()
        )

    answer = await client.get(f"/api/courses/{course}/enrolments.csv", headers=tokens["zarina"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert f'filename="course-{course}-enrolments.csv"' in answer.headers["content-disposition"]
    assert rows_of(answer.text) == [
        ["course", "name", "phone", "status", "enrolled_on"],
        ["Швейное дело", "Гулнора", "+992901112233", "enrolled", "2026-11-28"],
        ["Швейное дело", "'=HYPERLINK(1)", "", "enrolled", "2026-11-28"],
        ["Швейное дело", "Нигора", "+992902223344", "waiting", "2026-11-29"],
    ]

    # The partner of a course that asks only for phones gets no names, whatever she shared.
    patched = await client.patch(
        f"/api/courses/{course}", json={"partner_fields": ["phone"]}, headers=tokens["zarina"]
    )
    assert patched.status_code == 200
    by_admin = await client.get(f"/api/courses/{course}/enrolments.csv", headers=tokens["rustam"])
    assert rows_of(by_admin.text)[:2] == [
        ["course", "phone", "status", "enrolled_on"],
        ["Швейное дело", "+992901112233", "enrolled", "2026-11-28"],
    ]

    async with transaction(hamroh.engine) as db:
        entries = (await db.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    assert [(e.staff_name, e.action, e.detail, e.case_id) for e in entries] == [
        ("zarina", "exported_enrolments", f"course {course}: 3 rows", None),
        ("rustam", "exported_enrolments", f"course {course}: 3 rows", None),
    ]

    # She erases her data: the next list is without her.
    async with transaction(hamroh.engine) as db:
        await erase.everything(db, gulnora)
    after = await client.get(f"/api/courses/{course}/enrolments.csv", headers=tokens["zarina"])
    assert [row[1] for row in rows_of(after.text)] == ["phone", "", "+992902223344"]
    assert "+992901112233" not in after.text


async def test_taking_a_course_off_tells_every_woman_on_it(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    zarina = tokens["zarina"]
    first = (await client.post("/api/courses", json=SEWING, headers=zarina)).json()["id"]
    second = (await client.post("/api/courses", json=SEWING | {"capacity": None}, headers=zarina)).json()[
        "id"
    ]
    ru = await woman(hamroh, "tg:930001")
    tg = await woman(hamroh, "tg:930002", lang="tg")
    waiting = await woman(hamroh, "tg:930003")
    stopped = await woman(hamroh, "tg:930004", opted_out=True)
    for contact in (ru, tg, waiting, stopped):
        await enrol(hamroh, first, contact, phone="+992900000000")
    await enrol(hamroh, second, ru)

    off = await client.patch(f"/api/courses/{first}", json={"active": False}, headers=zarina)
    assert off.status_code == 200
    assert (off.json()["active"], off.json()["told"], off.json()["enrolled"], off.json()["waiting"]) == (
        False,
        3,
        0,
        0,
    )
    texts = await outbox_texts(hamroh)
    assert [contact for contact, _ in texts] == [ru, tg, waiting]  # she stopped all messages: not written to
    assert texts[0][1] == hamroh.flows.text("ru", hamroh.flows.strings["course_cancelled"]).format(
        course="Швейное дело"
    )
    assert texts[1][1] == hamroh.flows.text("tg", hamroh.flows.strings["course_cancelled"]).format(
        course="Дӯзандагӣ"
    )
    async with transaction(hamroh.engine) as db:
        left = (await db.exec(select(Enrolment).where(Enrolment.course_id == first))).all()
    assert {e.status for e in left} == {"cancelled"}
    assert {e.details for e in left} == {None}
    assert await enrol(hamroh, first, ru) == "closed"

    removed = await client.delete(f"/api/courses/{second}", headers=zarina)
    assert removed.json() == {"id": second, "women": 1, "told": 1}
    assert (await client.delete(f"/api/courses/{second}", headers=zarina)).status_code == 404
    assert len(await outbox_texts(hamroh)) == 4

    # Put away once it has begun (09:00 in Dushanbe on its first day): the women took part, nobody is told.
    third = (await client.post("/api/courses", json=SEWING, headers=zarina)).json()["id"]
    await enrol(hamroh, third, tg)
    clock.now = datetime(2027, 1, 11, 4, 0, tzinfo=UTC)
    put_away = await client.patch(f"/api/courses/{third}", json={"active": False}, headers=zarina)
    assert (put_away.json()["told"], put_away.json()["enrolled"]) == (0, 1)
    assert (await client.delete(f"/api/courses/{third}", headers=zarina)).json() == {
        "id": third,
        "women": 0,
        "told": 0,
    }
    assert len(await outbox_texts(hamroh)) == 4


async def coordinator_login(hamroh: Hamroh, client: httpx.AsyncClient, name: str) -> str:
    """Log `name` in on the client (the session cookie); the csrf token of the courses page."""
    async with transaction(hamroh.engine) as db:
        staff = (await db.exec(select(Staff).where(Staff.name == name))).one()
        login = await start_session(db, staff=staff, now=hamroh.clock())
    client.cookies.set(SESSION_COOKIE, login.token)
    return login.csrf


async def test_the_courses_page(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    csrf = await coordinator_login(hamroh, client, "zarina")
    form = {
        "csrf": csrf,
        "title_tg": "Нонпазӣ",
        "title_ru": "Выпечка",
        "district": "khujand",
        "place": "Хуҷанд",
        "starts_on": "2027-02-01",
        "capacity": "1",
        "partner": "Bakers <b>Union</b>",
        "partner_fields": ["phone", "name"],
    }
    bad = await client.post("/coordinate/courses", data=form | {"capacity": "ten"})
    assert bad.status_code == 422
    assert "capacity: a whole number of places" in bad.text
    assert 'value="Нонпазӣ"' in bad.text  # what was typed is kept
    assert (await client.post("/coordinate/courses", data=form | {"csrf": "x"})).status_code == 403

    made = await client.post("/coordinate/courses", data=form)
    assert (made.status_code, made.headers["location"]) == (303, "/coordinate/courses?done=created")
    async with transaction(hamroh.engine) as db:
        course = (await db.exec(select(CourseRow))).one()
    assert (course.title_ru, course.capacity, course.partner_fields) == ("Выпечка", 1, "name,phone")
    assert course.id is not None
    for n in range(2):
        await enrol(hamroh, course.id, await woman(hamroh, f"tg:94000{n}"), name=f"Woman {n}")

    listing = await client.get("/coordinate/courses")
    assert listing.status_code == 200
    assert "Bakers &lt;b&gt;Union&lt;/b&gt;" in listing.text
    assert re.search(r'class="number">1 of 1</td>\s*<td class="number">1</td>', listing.text)
    assert 'aria-current="page">Courses' in listing.text
    assert "Take off and tell 2 women" in listing.text

    edit = await client.get(f"/coordinate/courses/{course.id}")
    assert 'value="Выпечка"' in edit.text
    saved = await client.post(f"/coordinate/courses/{course.id}", data=form | {"title_ru": "Пекарня"})
    assert saved.headers["location"] == "/coordinate/courses?done=saved"
    shrunk = await client.post(
        f"/coordinate/courses/{course.id}", data=form | {"capacity": "", "ends_on": "2027"}
    )
    assert shrunk.status_code == 422
    assert "ends_on: write the day as 2027-01-31" in shrunk.text
    assert (await client.get("/coordinate/courses/999999")).status_code == 404

    page_csv = await client.get(f"/coordinate/courses/{course.id}/enrolments.csv")
    api_csv = await client.get(f"/api/courses/{course.id}/enrolments.csv", headers=tokens["zarina"])
    assert page_csv.text == api_csv.text
    assert rows_of(page_csv.text)[0] == ["course", "name", "phone", "status", "enrolled_on"]

    off = await client.post(f"/coordinate/courses/{course.id}/deactivate", data={"csrf": csrf})
    assert off.headers["location"] == "/coordinate/courses?done=deactivated&told=2"
    told = await client.get(off.headers["location"])
    assert "Women told it will not take place: 2." in told.text
    assert "List again" in told.text

    await coordinator_login(hamroh, client, "dilnoza")
    assert (await client.get("/coordinate/courses")).status_code == 403


def test_example_courses_stay_in_development(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command's own entry point, in this process.
    for name in [k for k in os.environ if k.startswith("HAMROH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    env = {
        "HAMROH_DATABASE_URL": sqlite_url,
        "HAMROH_VAR_DIR": str(tmp_path),
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    async def courses_now() -> list[CourseRow]:
        engine = create_engine(sqlite_url)
        try:
            async with transaction(engine) as db:
                return list((await db.exec(select(CourseRow))).all())
        finally:
            await engine.dispose()

    monkeypatch.setenv("HAMROH_ENV", "production")
    assert cli.main(["demo"]) == 2
    assert "example courses are for development only" in capsys.readouterr().err
    assert asyncio.run(courses_now()) == []

    monkeypatch.setenv("HAMROH_ENV", "development")
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo"]) == 0  # once only
    examples = asyncio.run(courses_now())
    assert len(examples) == 3
    assert all(c.example for c in examples)
    assert all(c.title_ru.startswith("ПРИМЕР") for c in examples)


async def test_contacts_are_never_in_the_list(hamroh: Hamroh) -> None:
    """Guard for the columns: nothing that finds her (contact id, fingerprint, address) is exported."""
    async with transaction(hamroh.engine) as db:
        contact = Contact(
            channel="sms",
            fingerprint=hamroh.vault.fingerprint("+992905556677"),
            address=hamroh.vault.seal("+992905556677"),
            lang="tg",
            pseudonym="p",
            pseudonym_month="2026-11",
            created_at=hamroh.clock(),
        )
        course = CourseRow(
            title_tg="т",
            title_ru="р",
            starts_on=date(2027, 1, 11),
            partner_fields="name",
            created_at=hamroh.clock(),
        )
        db.add_all([contact, course])
        await db.flush()
        assert contact.id is not None
        assert course.id is not None
        await enrolment.enrol(
            db, hamroh.vault, course_id=course.id, contact_id=contact.id, details={}, now=hamroh.clock()
        )
        staff = Staff(name="zarina", role="coordinator", password_hash="-", created_at=hamroh.clock())
        db.add(staff)
        await db.flush()
        export = await courses.export(db, hamroh.vault, course_id=course.id, staff=staff, now=hamroh.clock())
    assert export.text.splitlines() == ["course,name,status,enrolled_on", "р,,enrolled,2026-11-28"]
    assert contact.fingerprint not in export.text
