"""Announcements through the JSON API as an integration uses them: a draft with its audience, segments and
cost; sent, scheduled, approved and cancelled; the counts; and every refusal (401, 403, 404, 409, 422 with
a reason, never a 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from api.app import create_app
from api.deps import SESSION_COOKIE
from bot.config import Settings
from bot.service import Hamroh
from bot.staff.accounts import get_staff, issue_token
from bot.staff.sessions import start_session
from bot.store import Announcement, AuditEntry, Contact, CourseRow, Enrolment, Staff, Subscription
from bot.store.crypto import Vault
from bot.store.db import transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock

BASE = "http://hamroh.test"
# 14:00 in Dushanbe when the tests' clock starts (09:00 UTC): outside the default quiet hours.
TEXT = {
    "tg": "Ҳамроҳ: омӯзиши нав барои занон дар Хуҷанд, рӯзи шанбе соати 10. Ройгон. Ҷойҳо маҳдуд.",
    "ru": "Hamroh: free training for women in Khujand on Saturday at 10.",
}


@dataclass(frozen=True)
class Her:
    channel: str
    lang: str
    district: str | None
    topics: tuple[str, ...]
    script: str = "cyrillic"
    opted_out: bool = False
    reachable: bool = True


WOMEN = {
    "khujand_telegram_tg": Her("telegram", "tg", "khujand", ("training", "events")),
    "bokhtar_sms_ru": Her("sms", "ru", "bokhtar", ("health",)),
    "nowhere_sms_tg_latin": Her("sms", "tg", None, ("training",), script="latin"),
    # Never in any audience: she stopped news, never asked for it, or blocked the bot.
    "dushanbe_opted_out": Her("telegram", "tg", "dushanbe", ("training",), opted_out=True),
    "khujand_never_asked": Her("telegram", "ru", "khujand", ()),
    "khujand_blocked_bot": Her("telegram", "ru", "khujand", ("training",), reachable=False),
}


async def add_women(hamroh: Hamroh, vault: Vault, clock: Clock) -> None:
    async with transaction(hamroh.engine) as db:
        for number, (name, her) in enumerate(WOMEN.items()):
            address = f"+99293555{number:04d}" if her.channel == "sms" else f"tg:{700_000 + number}"
            contact = Contact(
                channel=her.channel,
                fingerprint=vault.fingerprint(address),
                address=vault.seal(address),
                lang=her.lang,
                district=her.district,
                script=her.script,
                subscribed=bool(her.topics),
                opted_out=her.opted_out,
                reachable=her.reachable,
                pseudonym=name[:32],
                pseudonym_month=clock.now.strftime("%Y-%m"),
                created_at=clock.now,
            )
            db.add(contact)
            await db.flush()
            assert contact.id is not None
            db.add_all(Subscription(contact_id=contact.id, topic=t, created_at=clock.now) for t in her.topics)


def app_for(hamroh: Hamroh, database_url: str, tmp_path: Path, **more: Any) -> FastAPI:
    settings = Settings(
        env="production",
        database_url=database_url,
        var_dir=tmp_path,
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
        sms_price_per_segment="0.35 TJS",
        **more,
    )
    return create_app(settings, hamroh)


@pytest.fixture
async def tokens(hamroh: Hamroh, vault: Vault, clock: Clock) -> dict[str, dict[str, str]]:
    """An Authorization header for each member of staff, and the women who asked for news."""
    await add_women(hamroh, vault, clock)
    headers = {}
    async with transaction(hamroh.engine) as db:
        for name, role in (
            ("zarina", "coordinator"),
            ("malika", "coordinator"),
            ("root", "admin"),
            ("nodira", "counsellor"),
            ("sitora", "supervisor"),
        ):
            db.add(Staff(name=name, role=role, password_hash="-", created_at=clock.now))  # no hashing: fast
            await db.flush()
            headers[name] = {"Authorization": f"Bearer {await issue_token(db, name=name, now=clock.now)}"}
    return headers


@pytest.fixture
async def client(hamroh: Hamroh, database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(hamroh, database_url, tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def draft(client: httpx.AsyncClient, who: dict[str, str], **audience: list[Any]) -> dict[str, Any]:
    answer = await client.post("/api/announcements", json={"text": TEXT, "audience": audience}, headers=who)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_draft_says_who_it_reaches_and_what_it_costs_then_goes_out_and_is_counted(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    zarina = tokens["zarina"]
    created = await draft(client, zarina)
    assert created["status"] == "draft"
    assert created["audience"] == 3  # the three who asked, can be reached and did not stop
    tg, ru = created["segments"]["tg"], created["segments"]["ru"]
    assert set(tg) == set(ru) == {"cyrillic", "plain", "latin"}
    assert tg["cyrillic"] == tg["plain"] == 2  # 91 letters, Tajik ones among them: UCS-2, 67 a part
    assert tg["latin"] == 1  # the same in Latin letters fits one GSM-7 part
    assert ru == {"cyrillic": 1, "plain": 1, "latin": 1}
    # SMS go to the woman in Bokhtar (Russian, 1 part) and the one who reads Latin (Tajik, 1 part).
    assert created["estimated_cost"] == "0.70 TJS"

    second = await draft(client, zarina, topics=["health"])
    listed = (await client.get("/api/announcements", headers=zarina)).json()["announcements"]
    assert [a["id"] for a in listed] == [second["id"], created["id"]]  # newest first
    latest = (await client.get("/api/announcements?limit=1", headers=zarina)).json()["announcements"]
    assert [a["id"] for a in latest] == [second["id"]]
    assert (await client.get("/api/announcements?limit=0", headers=zarina)).status_code == 422
    one = (await client.get(f"/api/announcements/{created['id']}", headers=zarina)).json()
    assert one["status"] == "draft"
    assert one["text"] == TEXT
    assert one["created_by"] == "zarina"
    assert one["audience"]["districts"] == []
    assert set(one["counts"]) >= {"queued", "held", "sent", "delivered", "failed", "blocked", "in_doubt"}
    assert sum(one["counts"].values()) == 0

    sent = await client.post(f"/api/announcements/{created['id']}/send", headers=zarina)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "sending"
    assert sent.json()["counts"]["queued"] == 3
    assert sent.json()["enqueued_at"] is not None

    again = await client.post(f"/api/announcements/{created['id']}/send", headers=zarina)
    assert again.status_code == 409
    assert "sending" in again.json()["detail"]

    cancelled = await client.post(f"/api/announcements/{created['id']}/cancel", headers=tokens["root"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"]["queued"] == 0
    assert cancelled.json()["counts"]["cancelled"] == 3
    twice = await client.post(f"/api/announcements/{created['id']}/cancel", headers=zarina)
    assert twice.status_code == 409

    async with transaction(hamroh.engine) as db:
        actions = [e.action for e in (await db.exec(select(AuditEntry))).all()]
    assert actions.count("announcement.create") == 2
    assert actions.count("announcement.send") == 1
    assert actions.count("announcement.cancel") == 1


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ({}, 3),
        ({"regions": ["sughd"]}, 2),  # Khujand, and the woman whose district is unknown
        ({"districts": ["bokhtar"], "langs": ["ru"]}, 1),
        ({"channels": ["sms"]}, 2),
        ({"topics": ["health", "events"]}, 2),  # OR within a key
        ({"channels": ["sms"], "topics": ["training"]}, 1),  # AND across keys
        ({"regions": ["gbao"], "channels": ["telegram"]}, 0),
    ],
)
async def test_filters_narrow_the_audience(
    client: httpx.AsyncClient,
    tokens: dict[str, dict[str, str]],
    audience: dict[str, list[str]],
    expected: int,
) -> None:
    assert (await draft(client, tokens["zarina"], **audience))["audience"] == expected


async def test_a_time_inside_quiet_hours_needs_a_reason_and_a_time_needs_its_offset(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    zarina = tokens["zarina"]
    created = await draft(client, zarina)
    send = f"/api/announcements/{created['id']}/send"

    naive = await client.post(send, json={"at": "2026-11-28T22:30:00"}, headers=zarina)
    assert naive.status_code == 422
    assert naive.json()["detail"][0]["loc"] == ["body", "at"]

    night = "2026-11-28T22:30:00+05:00"
    refused = await client.post(send, json={"at": night}, headers=zarina)
    assert refused.status_code == 409
    assert "quiet hours" in refused.json()["detail"]
    assert (await client.get(f"/api/announcements/{created['id']}", headers=zarina)).json()[
        "status"
    ] == "draft"

    past = await client.post(send, json={"at": "2026-11-27T12:00:00+05:00"}, headers=zarina)
    assert past.status_code == 422
    assert "past" in past.json()["detail"]

    reason = "The training moved to tomorrow morning; they must know tonight."
    scheduled = await client.post(send, json={"at": night, "override_reason": reason}, headers=zarina)
    assert scheduled.status_code == 202, scheduled.text
    body = scheduled.json()
    assert body["status"] == "scheduled"
    assert body["send_at"].startswith("2026-11-28T17:30:00")  # 22:30 in Dushanbe is 17:30 UTC
    assert body["override_reason"] == reason
    assert sum(body["counts"].values()) == 0  # nobody is queued before its time

    cancelled = await client.post(f"/api/announcements/{created['id']}/cancel", headers=zarina)
    assert cancelled.json()["status"] == "cancelled"
    async with transaction(hamroh.engine) as db:
        row = await db.get(Announcement, created["id"])
        assert row is not None
        assert row.enqueued_at is None


async def test_with_approval_on_a_second_coordinator_approves_before_it_is_sent(
    hamroh: Hamroh, database_url: str, tmp_path: Path, tokens: dict[str, dict[str, str]]
) -> None:
    app = app_for(hamroh, database_url, tmp_path, announce_needs_approval=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        zarina, malika = tokens["zarina"], tokens["malika"]
        created = await draft(client, zarina, channels=["telegram"])
        base = f"/api/announcements/{created['id']}"

        early = await client.post(f"{base}/send", headers=zarina)
        assert early.status_code == 409
        assert "approve" in early.json()["detail"]
        own = await client.post(f"{base}/approve", headers=zarina)
        assert own.status_code == 409
        assert "author" in own.json()["detail"]

        approved = await client.post(f"{base}/approve", headers=malika)
        assert approved.status_code == 200
        assert approved.json()["status"] == "approved"
        assert approved.json()["approved_by"] == "malika"
        assert (await client.post(f"{base}/approve", headers=malika)).status_code == 409

        sent = await client.post(f"{base}/send", json={}, headers=zarina)
        assert sent.status_code == 202
        assert sent.json()["counts"]["queued"] == 1


async def test_refusals_are_4xx_with_a_reason(
    client: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    zarina = tokens["zarina"]
    body = {"text": TEXT}

    assert (await client.get("/api/announcements")).status_code == 401
    assert (await client.post("/api/announcements", json=body)).headers["www-authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer not-a-token"}
    assert (await client.get("/api/announcements", headers=wrong)).status_code == 401
    for name in ("nodira", "sitora"):  # the console's people do not announce
        refused = await client.post("/api/announcements", json=body, headers=tokens[name])
        assert refused.status_code == 403
        assert refused.json()["detail"]
        assert (await client.get("/api/announcements/1", headers=tokens[name])).status_code == 403

    for step in ("send", "approve", "cancel"):
        missing = await client.post(f"/api/announcements/424242/{step}", headers=zarina)
        assert missing.status_code == 404, step
        assert "424242" in missing.json()["detail"]
    assert (await client.get("/api/announcements/424242", headers=zarina)).status_code == 404
    assert (await client.get("/api/announcements/0", headers=zarina)).status_code == 422
    assert (await client.get("/api/announcements/99999999999", headers=zarina)).status_code == 422

    invalid: list[tuple[object, str]] = [
        ({}, "text"),
        ({"text": {"tg": "Салом"}}, "ru"),
        ({"text": TEXT, "extra": 1}, "extra"),
        ({"text": TEXT, "audience": {"planets": ["mars"]}}, "planets"),
        ({"text": TEXT, "audience": {"courses": ["one"]}}, "courses"),
        ({"text": TEXT, "audience": {"districts": "khujand"}}, "districts"),
        ({"text": {"tg": " ", "ru": "Привет"}}, "tg text is empty"),
        ({"text": {"tg": "Салом", "ru": "П" * 1601}}, "at most 1600"),
        ({"text": TEXT, "audience": {"districts": ["atlantis"]}}, "atlantis"),
        ({"text": TEXT, "audience": {"topics": ["gossip"]}}, "gossip"),
        ({"text": TEXT, "audience": {"langs": ["fr"]}}, "fr"),
        ([], "body"),
    ]
    for payload, why in invalid:
        answer = await client.post("/api/announcements", json=payload, headers=zarina)
        assert answer.status_code == 422, payload
        assert why in answer.text, (payload, answer.text)
    as_json = {**zarina, "content-type": "application/json"}
    for raw in (
        b'{"text": {"tg": "\\ud800", "ru": "x"}',  # not JSON at all
        b'{"text": {"tg": "\\ud800", "ru": "x"}}',  # a lone surrogate: no UTF-8 can carry it
        b'{"text": {"tg": "hi", "ru": "x"}, "audience": {"districts": ["\\ud800"]}}',
    ):
        broken = await client.post("/api/announcements", content=raw, headers=as_json)
        assert broken.status_code == 422, raw

    created = await draft(client, zarina)
    send = f"/api/announcements/{created['id']}/send"
    for payload in (
        {"at": "tomorrow"},
        {"at": "2026-11-29T10:00:00+05:00", "why": "x"},
        {"override_reason": ""},
        {"override_reason": "x" * 201},
        {"at": "2028-11-29T10:00:00+05:00"},  # more than a year ahead
    ):
        answer = await client.post(send, json=payload, headers=zarina)
        assert answer.status_code == 422, payload
    assert (await client.get(f"/api/announcements/{created['id']}", headers=zarina)).json()[
        "status"
    ] == "draft"


async def test_the_schema_describes_announcements_courses_and_reports(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    for word in ("announcements", "courses", "reports"):
        assert word in schema["info"]["description"].lower()
    paths = schema["paths"]
    assert {"/api/announcements", "/api/announcements/{announcement_id}/send"} <= set(paths)
    assert set(paths["/api/announcements"]["post"]["responses"]) >= {"201", "401", "403", "409", "422"}
    assert "at" in schema["components"]["schemas"]["Sending"]["properties"]


# The page, without JavaScript: plain forms, each with the session's csrf token.


@dataclass
class Browser:
    client: httpx.AsyncClient
    csrf: str

    async def post(
        self, path: str, form: dict[str, Any] | list[tuple[str, str]], **headers: str
    ) -> httpx.Response:
        fields = list(form.items()) if isinstance(form, dict) else list(form)
        body = urlencode([("csrf", self.csrf), *fields])
        kind = {"content-type": "application/x-www-form-urlencoded"}
        return await self.client.post(path, content=body, headers={**kind, **headers})


async def logged_in(client: httpx.AsyncClient, hamroh: Hamroh, name: str) -> Browser:
    async with transaction(hamroh.engine) as db:
        staff = await get_staff(db, name=name)
        login = await start_session(db, staff=staff, now=hamroh.clock())
    client.cookies.set(SESSION_COOKIE, login.token)
    return Browser(client, login.csrf)


async def test_the_page_previews_saves_refuses_quiet_hours_then_schedules_and_cancels(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    zarina = await logged_in(client, hamroh, "zarina")
    page = await client.get("/coordinate/announcements")
    assert page.status_code == 200
    assert 'value="khujand"' in page.text
    assert 'value="sughd"' in page.text
    assert "No announcements yet." in page.text
    assert "3</strong>" in page.text  # the audience counts before a word is written

    form = [("text_tg", TEXT["tg"]), ("text_ru", "<b>" + TEXT["ru"] + "</b>"), ("channels", "sms")]
    preview = await zarina.post("/coordinate/announcements/preview", form)
    assert preview.status_code == 200
    assert "<html" in preview.text  # the whole page again, for a browser without JavaScript
    assert "2</strong>" in preview.text
    assert "0.70 TJS" in preview.text
    assert 'value="sms" checked' in preview.text
    assert "&lt;b&gt;Hamroh" in preview.text  # what was typed is kept, as text
    live = await zarina.post("/coordinate/announcements/preview", form, **{"HX-Request": "true"})
    assert "<html" not in live.text
    assert "0.70 TJS" in live.text
    assert '<td data-script="latin">1</td>' in live.text

    empty_ru = await zarina.post("/coordinate/announcements", [("text_tg", TEXT["tg"]), ("text_ru", " ")])
    assert empty_ru.status_code == 422
    assert "the ru text is empty" in empty_ru.text
    assert TEXT["tg"] in empty_ru.text
    unknown = await zarina.post("/coordinate/announcements", [*form, ("districts", "atlantis")])
    assert unknown.status_code == 422
    assert "atlantis" in unknown.text
    assert (await zarina.post("/coordinate/announcements", [*form, ("courses", "x")])).status_code == 422

    saved = await zarina.post("/coordinate/announcements", form)
    assert saved.status_code == 303
    where = saved.headers["location"]
    assert where.endswith("?done=saved")
    one = await client.get(where)
    assert "Draft saved" in one.text
    assert "&lt;b&gt;" in one.text
    assert "<b>Hamroh" not in one.text
    assert "Channel: SMS" in one.text
    path = where.split("?")[0]

    night = {"when": "at", "at": "2026-11-28T22:30"}  # read as Dushanbe time
    refused = await zarina.post(f"{path}/send", night)
    assert refused.status_code == 409
    assert "quiet hours" in refused.text
    assert 'name="override_reason"' in refused.text
    assert 'value="2026-11-28T22:30"' in refused.text
    bad = await zarina.post(f"{path}/send", {"when": "at", "at": "tomorrow"})
    assert bad.status_code == 422
    assert "choose a date" in bad.text
    assert 'name="override_reason"' not in bad.text

    reason = "The venue changed; they must know tonight."
    scheduled = await zarina.post(f"{path}/send", {**night, "override_reason": reason})
    assert scheduled.status_code == 303
    assert scheduled.headers["location"].endswith("?done=scheduled")
    async with transaction(hamroh.engine) as db:
        row = (await db.exec(select(Announcement))).one()
    assert row.status == "scheduled"
    assert row.override_reason == reason
    assert row.send_at is not None
    assert row.send_at.replace(tzinfo=UTC) == datetime(2026, 11, 28, 17, 30, tzinfo=UTC)
    listed = await client.get("/coordinate/announcements/list")
    assert 'hx-trigger="every 3s"' in listed.text
    assert "scheduled" in listed.text
    counts = await client.get(f"{path}/counts")
    assert 'hx-trigger="every 2s"' in counts.text

    assert (await client.post(f"{path}/cancel", data={"csrf": "wrong"})).status_code == 403
    cancelled = await zarina.post(f"{path}/cancel", {})
    assert cancelled.headers["location"].endswith("?done=cancelled")
    assert "hx-trigger" not in (await client.get("/coordinate/announcements/list")).text
    again = await zarina.post(f"{path}/cancel", {})
    assert again.status_code == 409
    assert "cancelled" in again.text
    assert (await client.get("/coordinate/announcements/424242")).status_code == 404
    assert (await zarina.post("/coordinate/announcements/424242/send", {})).status_code == 404


async def test_the_page_offers_approval_to_a_second_coordinator_only(
    hamroh: Hamroh, database_url: str, tmp_path: Path, tokens: dict[str, dict[str, str]]
) -> None:
    app = app_for(hamroh, database_url, tmp_path, announce_needs_approval=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        created = await draft(client, tokens["zarina"])
        path = f"/coordinate/announcements/{created['id']}"
        zarina = await logged_in(client, hamroh, "zarina")
        own = await client.get(path)
        assert "Another coordinator approves it" in own.text
        assert "/send" not in own.text
        assert "/approve" not in own.text
        assert (await zarina.post(f"{path}/approve", {})).status_code == 409

        malika = await logged_in(client, hamroh, "malika")
        assert f'action="{path}/approve"' in (await client.get(path)).text
        approved = await malika.post(f"{path}/approve", {})
        assert approved.headers["location"].endswith("?done=approved")
        after = await client.get(approved.headers["location"])
        assert "approved by malika" in after.text
        sent = await malika.post(f"{path}/send", {"when": "now"})
        assert sent.headers["location"].endswith("?done=sending")
        counts = await client.get(f"{path}/counts")
        assert '<dd data-count="queued">3</dd>' in counts.text


async def test_the_page_offers_active_courses_and_their_women(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    async with transaction(hamroh.engine) as db:
        sewing = CourseRow(
            title_tg="Дӯзандагӣ", title_ru="Швейное дело", title_en="Sewing", created_at=clock.now
        )
        old = CourseRow(
            title_tg="Кӯҳна", title_ru="Старый", title_en="Old course", active=False, created_at=clock.now
        )
        db.add_all([sewing, old])
        await db.flush()
        her = (await db.exec(select(Contact).where(Contact.pseudonym == "khujand_telegram_tg"))).one()
        assert sewing.id is not None
        assert her.id is not None
        db.add(
            Enrolment(
                course_id=sewing.id,
                contact_id=her.id,
                status="enrolled",
                created_at=clock.now,
                updated_at=clock.now,
            )
        )
    zarina = await logged_in(client, hamroh, "zarina")
    page = (await client.get("/coordinate/announcements")).text
    assert f'name="courses" value="{sewing.id}"> Sewing' in page
    assert "Old course" not in page
    chosen = [("text_tg", TEXT["tg"]), ("text_ru", TEXT["ru"]), ("courses", str(sewing.id))]
    live = await zarina.post("/coordinate/announcements/preview", chosen, **{"HX-Request": "true"})
    assert "1</strong>" in live.text  # the one woman on the course who asked for news
    saved = await zarina.post("/coordinate/announcements", chosen)
    assert "Course: Sewing" in (await client.get(saved.headers["location"])).text
