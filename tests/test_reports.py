"""Reach reports on SQLite and PostgreSQL: counts from the request log (its closed months through the
rollup, the open month live), case events, announcement outcomes and enrolments; Dushanbe months; the
page and the API (401, 403, 422 with a reason), CSV columns, and no pseudonym anywhere."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from api.app import create_app
from api.deps import SESSION_COOKIE
from bot.reports import aggregate, report
from bot.reports.rollup import Period, live_months, month_of, month_start, refresh
from bot.service import Hamroh
from bot.staff.accounts import get_staff, issue_token
from bot.staff.sessions import start_session
from bot.store import (
    Announcement,
    AnnouncementRecipient,
    CaseEvent,
    CourseRow,
    Enrolment,
    RequestLogEntry,
    RequestMonth,
    Staff,
)
from bot.store.crypto import Vault
from bot.store.db import transaction
from tests.conftest import Clock, settings_for_tests, telegram_contact

BASE = "http://hamroh.test"
OCT = datetime(2026, 10, 10, 8, tzinfo=UTC)
NOV = datetime(2026, 11, 20, 8, tzinfo=UTC)
# 19:00 UTC on 30 September is midnight of 1 October in Dushanbe; 20:00 UTC on 31 October is 01:00 of
# 1 November there: these rows belong to the later month.
EDGE_OCT = datetime(2026, 9, 30, 19, tzinfo=UTC)
EDGE_NOV = datetime(2026, 10, 31, 20, tzinfo=UTC)
# (hour, topic, channel, lang, district, how many, women among them)
ROWS = [
    (OCT, "legal.alimony", "telegram", "tg", "khujand", 12, 4),
    (OCT, "legal.alimony", "sms", "ru", "dushanbe", 7, 3),
    (OCT, "legal.divorce", "sms", None, None, 3, 1),
    (EDGE_OCT, "help.crisis", "telegram", "tg", "atlantis", 2, 2),
    (EDGE_NOV, "legal.alimony", "telegram", "tg", "khujand", 6, 2),
    (NOV, "legal.alimony", "telegram", "ru", "bokhtar", 20, 5),
    (NOV, "help.crisis", "sms", "tg", None, 1, 1),
]
SECRET_PSEUDONYM = "pseudo-never-shown"


async def add_requests(hamroh: Hamroh) -> None:
    async with transaction(hamroh.engine) as db:
        for number, (hour, topic, channel, lang, district, count, women) in enumerate(ROWS):
            for i in range(count):
                pseudonym = f"{SECRET_PSEUDONYM}-{number}-{i % women}"
                db.add(
                    RequestLogEntry(
                        hour=hour,
                        topic=topic,
                        channel=channel,
                        lang=lang,
                        district=district,
                        pseudonym=pseudonym,
                    )
                )


def regions(hamroh: Hamroh) -> dict[str, str]:
    return {d.id: d.region for d in hamroh.flows.districts.values()}


async def requests_by(hamroh: Hamroh, *by: str, period: Period | None = None) -> dict[tuple[str, ...], int]:
    async with transaction(hamroh.engine) as db:
        table = await aggregate.requests(
            db, regions(hamroh), by=by, period=period or Period(), now=hamroh.clock()
        )
    return dict(table.counts)


async def test_requests_are_counted_by_dushanbe_month_region_channel_and_language(hamroh: Hamroh) -> None:
    await add_requests(hamroh)
    # Live: nothing rolled up yet.
    live = await requests_by(hamroh, "month")
    assert live == {("2026-10",): 24, ("2026-11",): 27}
    async with transaction(hamroh.engine) as db:
        before = await aggregate.requests_by_each(
            db, regions(hamroh), keys=aggregate.KEYS, period=Period(), now=hamroh.clock()
        )
    assert before["month"].counts == live
    assert await refresh(hamroh.engine, now=hamroh.clock()) == ["2026-10"]
    assert await refresh(hamroh.engine, now=hamroh.clock()) == []  # a closed month is counted once
    async with transaction(hamroh.engine) as db:
        rolled = (await db.exec(select(RequestMonth))).all()
    assert [(m.month, m.requests, m.women) for m in rolled] == [("2026-10", 24, 10)]

    # The same answers from the rollup and the open month.
    assert await requests_by(hamroh, "month") == live
    assert await requests_by(hamroh, "region") == {
        ("sughd",): 18,
        ("dushanbe",): 7,
        ("unknown",): 6,
        ("khatlon",): 20,
    }
    assert await requests_by(hamroh, "channel", "lang") == {
        ("telegram", "tg"): 20,
        ("sms", "ru"): 7,
        ("sms", "unknown"): 3,
        ("telegram", "ru"): 20,
        ("sms", "tg"): 1,
    }
    assert await requests_by(hamroh, "topic", "month") == {
        ("legal.alimony", "2026-10"): 19,
        ("legal.divorce", "2026-10"): 3,
        ("help.crisis", "2026-10"): 2,
        ("legal.alimony", "2026-11"): 26,
        ("help.crisis", "2026-11"): 1,
    }
    november = Period(first="2026-11", last="2026-11")
    assert await requests_by(hamroh, "topic", period=november) == {
        ("legal.alimony",): 26,
        ("help.crisis",): 1,
    }
    october = Period(first="2026-10", last="2026-10")
    assert await requests_by(hamroh, "topic", period=october) == {
        ("legal.alimony",): 19,
        ("legal.divorce",): 3,
        ("help.crisis",): 2,
    }
    # The page's one-key tables, read together, say the same, with and without a period.
    for period in (Period(), november, october):
        async with transaction(hamroh.engine) as db:
            each = await aggregate.requests_by_each(
                db, regions(hamroh), keys=aggregate.KEYS, period=period, now=hamroh.clock()
            )
        for key in aggregate.KEYS:
            assert each[key].counts == await requests_by(hamroh, key, period=period), (key, period)
    async with transaction(hamroh.engine) as db:
        women = await aggregate.women(db, period=Period(), now=hamroh.clock())
    assert dict(women.counts) == {("2026-10",): 10, ("2026-11",): 8}


async def test_escalations_announcements_and_enrolments(hamroh: Hamroh, vault: Vault, clock: Clock) -> None:
    now = clock.now
    async with transaction(hamroh.engine) as db:

        def event(kind: str, priority: str, **more: Any) -> CaseEvent:
            return CaseEvent(
                kind=kind,
                hour=NOV,
                priority=priority,
                queue="support",
                category="violence",
                channel="sms",
                **more,
            )

        db.add_all(event("opened", "urgent") for _ in range(7))
        db.add_all(event("opened", "normal") for _ in range(2))
        db.add_all(event("closed", "urgent", outcome="referred") for _ in range(6))
        db.add_all(event("closed", "normal", outcome="resolved") for _ in range(2))
        db.add_all(event("claimed", "urgent", seconds_to_claim=s) for s in (30, 60, 90, 120, 600, 45))
        db.add_all(event("claimed", "normal", seconds_to_claim=s) for s in (3000, 4000))
        announcement = Announcement(text_tg="т", text_ru="р", audience="{}", created_at=now)
        db.add(announcement)
        await db.flush()
        assert announcement.id is not None
        for outcome, count in (("delivered", 40), ("sent", 6), ("failed", 2), ("queued", 9)):
            db.add_all(
                AnnouncementRecipient(
                    announcement_id=announcement.id, channel="sms", lang="tg", outcome=outcome, updated_at=NOV
                )
                for _ in range(count)
            )
        course = CourseRow(title_tg="Дӯзандагӣ", title_ru="Шитьё", created_at=now)
        db.add(course)
        await db.flush()
        assert course.id is not None
        for i, status in enumerate(["enrolled"] * 10 + ["waiting"] * 3 + ["cancelled"] * 6):
            contact = telegram_contact(vault, str(900_000 + i), now)
            db.add(contact)
            await db.flush()
            assert contact.id is not None
            at = EDGE_NOV if i == 0 else OCT
            db.add(
                Enrolment(
                    course_id=course.id, contact_id=contact.id, status=status, created_at=at, updated_at=at
                )
            )

    async with transaction(hamroh.engine) as db:
        opened = await aggregate.escalations_opened(db, period=Period())
        closed = await aggregate.escalations_closed(db, period=Period())
        times = await aggregate.claim_times(db, period=Period())
        sent = await aggregate.announcements(db, period=Period())
        enrolled = await aggregate.enrolments(db, period=Period())
    assert dict(opened.counts) == {("urgent",): 7, ("normal",): 2}
    assert dict(closed.counts) == {("urgent", "referred"): 6, ("normal", "resolved"): 2}
    assert dict(times.claims.counts) == {("urgent",): 6, ("normal",): 2}
    assert times.median == {"urgent": 75, "normal": 3500}
    assert times.p90 == {"urgent": 600, "normal": 4000}
    assert dict(sent.counts) == {
        ("2026-11", "delivered"): 40,
        ("2026-11", "sent"): 6,
        ("2026-11", "failed"): 2,
    }
    assert sent.axes[1] == ("sent", "delivered", "failed")
    assert dict(enrolled.counts) == {
        ("2026-10", "enrolled"): 9,
        ("2026-11", "enrolled"): 1,
        ("2026-10", "waiting"): 3,
        ("2026-10", "cancelled"): 6,
    }

    # Released: two waits of normal priority are two women's waits, and the total would give them back
    # from the urgent ones; neither count nor median is shown, only the total.
    async with transaction(hamroh.engine) as db:
        claims = await report.publish(
            db, "claims", regions=regions(hamroh), period=Period(), now=now, threshold=5
        )
    assert claims.table.cells == {("urgent",): None, ("normal",): None}
    assert claims.table.total == 8
    assert dict(claims.extra)["median_seconds"] == {"urgent": None, "normal": None}


# The API and the page.


def app_for(hamroh: Hamroh, database_url: str, tmp_path: Path) -> FastAPI:
    return create_app(settings_for_tests(tmp_path, database_url), hamroh)


@pytest.fixture
async def headers(hamroh: Hamroh, clock: Clock) -> dict[str, dict[str, str]]:
    out = {}
    async with transaction(hamroh.engine) as db:
        for name, role in (("zarina", "coordinator"), ("root", "admin"), ("nodira", "counsellor")):
            # No password: these accounts use tokens and sessions made here (hashing one takes a second).
            db.add(Staff(name=name, role=role, password_hash="-", created_at=clock.now))
            await db.flush()
            out[name] = {"Authorization": f"Bearer {await issue_token(db, name=name, now=clock.now)}"}
    await add_requests(hamroh)
    return out


@pytest.fixture
async def client(hamroh: Hamroh, database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(hamroh, database_url, tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def test_the_api_gives_each_table_with_small_counts_hidden(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    answer = await client.get("/api/reports/requests?by=topic,month", headers=headers["zarina"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert SECRET_PSEUDONYM not in answer.text
    assert body["keys"] == ["topic", "month"]
    assert body["threshold"] == 5
    cells = {(c["topic"], c["month"]): c["requests"] for c in body["cells"]}
    # divorce (3, then none) and crisis (2, then 1) are small, and make a box of four hidden cells: the
    # totals of the months and of alimony say only what each pair adds up to.
    assert cells == {
        ("legal.alimony", "2026-10"): 19,
        ("legal.alimony", "2026-11"): 26,
        ("legal.divorce", "2026-10"): None,
        ("legal.divorce", "2026-11"): None,
        ("help.crisis", "2026-10"): None,
        ("help.crisis", "2026-11"): None,
    }
    assert body["totals"]["topic"] == {"legal.alimony": 45, "legal.divorce": None, "help.crisis": None}
    assert body["totals"]["month"] == {"2026-10": 24, "2026-11": 27}
    assert body["total"] == 51
    assert [c.get("suppressed") for c in body["cells"]] == [None, None, True, True, True, True]

    by_region = (await client.get("/api/reports/requests?by=region", headers=headers["root"])).json()
    assert {c["region"]: c["requests"] for c in by_region["cells"]} == {
        "khatlon": 20,
        "sughd": 18,
        "dushanbe": 7,
        "unknown": 6,
    }
    # The order given is the order of the keys; from/to choose whole months.
    swapped = await client.get(
        "/api/reports/requests?by=month,channel&from=2026-11&to=2026-11", headers=headers["zarina"]
    )
    assert swapped.json()["keys"] == ["month", "channel"]
    assert {(c["month"], c["channel"]) for c in swapped.json()["cells"]} == {
        ("2026-11", "telegram"),
        ("2026-11", "sms"),
    }

    # Three keys or more: cells only (the tables of fewer keys give the totals, hidden alike).
    three = await client.get("/api/reports/requests?by=topic,month,region", headers=headers["zarina"])
    assert three.status_code == 200
    assert "totals" not in three.json()
    assert "total" not in three.json()
    shown = {(c["topic"], c["month"], c["region"]): c["requests"] for c in three.json()["cells"]}
    assert len(shown) == 3 * 2 * 4  # every combination of the values seen: zeros are small counts too
    assert shown[("legal.divorce", "2026-10", "unknown")] is None
    assert all(v is None or v >= 5 for v in shown.values())

    for name in ("women", "escalations", "outcomes", "claims", "announcements", "enrolments"):
        one = await client.get(f"/api/reports/{name}", headers=headers["zarina"])
        assert one.status_code == 200, (name, one.text)
        assert one.json()["table"] == name


async def test_the_api_refuses_with_reasons(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    zarina = headers["zarina"]
    for query, reason in (
        ("by=topic,planet", "unknown key 'planet'"),
        ("by=topic,topic", "each once"),
        ("by=topic&from=2026-13", "from is a month"),
        ("by=topic&from=2026-11&to=2026-10", "from comes after to"),
    ):
        for path in ("/api/reports/requests", "/api/reports/requests.csv"):
            answer = await client.get(f"{path}?{query}", headers=zarina)
            assert answer.status_code == 422, (path, query)
            assert reason in answer.json()["detail"]
    assert (await client.get("/api/reports/planets", headers=zarina)).status_code == 404
    assert (await client.get("/api/reports/requests", headers=headers["nodira"])).status_code == 403
    anonymous = await client.get("/api/reports/requests.csv")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"


async def test_csv_has_the_keys_the_count_and_a_note_for_hidden_ones(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    answer = await client.get("/api/reports/requests.csv?by=topic", headers=headers["zarina"])
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="requests-topic.csv"' in answer.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == ["topic", "requests", "note"]
    rows = {line[0]: line[1:] for line in lines[1:]}
    assert rows["legal.alimony"] == ["45", ""]
    # divorce 3 and crisis 3: both small; the total 51 stays (it cannot give either back).
    assert rows["legal.divorce"][0] == rows["help.crisis"][0] == ""
    assert rows["legal.divorce"][1].startswith("hidden: fewer than 5")
    assert rows["(all)"] == ["51", ""]
    assert SECRET_PSEUDONYM not in answer.text

    two = await client.get("/api/reports/enrolments.csv", headers=headers["zarina"])
    assert next(csv.reader(io.StringIO(two.text))) == ["month", "status", "enrolments", "note"]


async def test_the_page_shows_charts_and_tables_with_marks(
    client: httpx.AsyncClient, hamroh: Hamroh, headers: dict[str, dict[str, str]], clock: Clock
) -> None:
    async def log_in() -> None:
        async with transaction(hamroh.engine) as db:
            login = await start_session(db, staff=await get_staff(db, name="zarina"), now=clock.now)
        client.cookies.set(SESSION_COOKIE, login.token)

    async with transaction(hamroh.engine) as db:  # a table of two keys: grouped bars and a legend
        for priority, outcome, count in (
            ("urgent", "referred", 9),
            ("urgent", "resolved", 7),
            ("normal", "resolved", 12),
            ("normal", "referred", 8),
            ("normal", "other", 2),
        ):
            db.add_all(
                CaseEvent(
                    kind="closed",
                    hour=NOV,
                    priority=priority,
                    queue="support",
                    category="violence",
                    channel="sms",
                    outcome=outcome,
                )
                for _ in range(count)
            )
    await log_in()
    page = await client.get("/coordinate/reports")
    assert page.status_code == 200, page.text
    html = page.text
    assert SECRET_PSEUDONYM not in html
    assert html.count("<svg") >= 5
    assert 'class="bar series-0"' in html
    assert "&lt;5" in html
    assert 'href="/coordinate/reports/requests.csv?by=topic"' in html
    outcomes = html[html.index('id="outcomes"') :]
    outcomes = outcomes[: outcomes.index("</section>")]
    assert outcomes.count('class="legend"') == 3  # other, referred, resolved
    # "other" (2) is hidden with "referred", the next smallest outcome: the legend's three keys, and the
    # bars of "resolved" alone.
    assert outcomes.count('<rect class="bar series-') == 3 + 2
    csv_answer = await client.get("/coordinate/reports/requests.csv?by=region")
    assert csv_answer.status_code == 200
    assert csv_answer.text.splitlines()[0] == "region,requests,note"
    refused = await client.get("/coordinate/reports?from=11-2026")
    assert refused.status_code == 422
    assert "from is a month written YYYY-MM" in refused.text
    clock.advance(days=10)  # December: November closes and is rolled up by the page itself
    await log_in()
    assert (await client.get("/coordinate/reports")).status_code == 200
    async with transaction(hamroh.engine) as db:
        months = (await db.exec(select(RequestMonth.month))).all()
    assert sorted(months) == ["2026-10", "2026-11"]


def test_months_are_dushanbe_months() -> None:
    midnight = datetime(2026, 10, 31, 19, tzinfo=UTC)  # 1 November begins in Dushanbe
    assert month_of(midnight) == "2026-11"
    assert month_of(midnight - timedelta(seconds=1)) == "2026-10"
    assert month_start("2026-12") == datetime(2026, 11, 30, 19, tzinfo=UTC)
    assert month_start("2026-01") == datetime(2025, 12, 31, 19, tzinfo=UTC)


async def test_the_open_month_and_months_not_rolled_up_are_read_live(hamroh: Hamroh) -> None:
    await add_requests(hamroh)
    async with transaction(hamroh.engine) as db:
        everything = await live_months(db, Period(), [], hamroh.clock())
        assert everything == ["2026-10", "2026-11"]
        assert await live_months(db, Period(first="2026-09"), ["2026-10"], hamroh.clock()) == ["2026-11"]
        assert await live_months(db, Period(last="2026-10"), [], hamroh.clock()) == ["2026-10"]
