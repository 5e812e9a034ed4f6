"""Announcements before they leave: who the audience is, what it costs, quiet hours, approval, and counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import drafts
from bot.announcements.audience import Audience
from bot.announcements.drafts import (
    AnnouncementConflict,
    AnnouncementInvalid,
    AnnouncementNotFound,
)
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.store import Announcement, AuditEntry, Contact, CourseRow, Enrolment, Staff, Subscription
from bot.store.crypto import Vault
from bot.store.db import transaction

TEXT = {"tg": "Семинар дар бораи ҳуқуқҳо, 5 декабр", "ru": "Семинар о правах, 5 декабря"}
SETTINGS = Settings(sms_price_per_segment="0.35 TJS")


@dataclass(frozen=True)
class Woman:
    """A contact as a test wants her: subscribed to `topics` (none: not subscribed at all)."""

    channel: str = "telegram"
    lang: str | None = "tg"
    district: str | None = None
    script: str = "cyrillic"
    topics: tuple[str, ...] = ("training", "legal_aid", "health", "events")
    opted_out: bool = False
    reachable: bool = True
    safe_hours: str | None = None
    courses: tuple[int, ...] = ()


async def add_women(hamroh: Hamroh, women: Sequence[Woman], *, first: int = 0) -> list[int]:
    """Contacts (with their subscriptions and enrolments) written straight into the tables; their ids."""
    now = hamroh.clock()
    vault: Vault = hamroh.vault
    ids: list[int] = []
    async with transaction(hamroh.engine) as db:
        contacts = []
        for number, woman in enumerate(women, start=first):
            address = f"tg:{7000000 + number}" if woman.channel == "telegram" else f"+99290{number:07d}"
            contacts.append(
                Contact(
                    channel=woman.channel,
                    fingerprint=vault.fingerprint(address),
                    address=vault.seal(address),
                    lang=woman.lang,
                    district=woman.district,
                    script=woman.script,
                    subscribed=bool(woman.topics),
                    opted_out=woman.opted_out,
                    reachable=woman.reachable,
                    safe_hours=woman.safe_hours,
                    pseudonym="p",
                    pseudonym_month=now.strftime("%Y-%m"),
                    created_at=now,
                )
            )
        db.add_all(contacts)
        await db.flush()
        for contact, woman in zip(contacts, women, strict=True):
            assert contact.id is not None
            ids.append(contact.id)
            db.add_all(Subscription(contact_id=contact.id, topic=t, created_at=now) for t in woman.topics)
            db.add_all(
                Enrolment(
                    contact_id=contact.id, course_id=c, status="enrolled", created_at=now, updated_at=now
                )
                for c in woman.courses
            )
    return ids


async def add_staff(hamroh: Hamroh, *names: str) -> list[Staff]:
    """Coordinators, one for each name."""
    async with transaction(hamroh.engine) as db:
        people = [
            Staff(name=n, role="coordinator", password_hash="-", created_at=hamroh.clock()) for n in names
        ]
        db.add_all(people)
    return people


async def add_course(hamroh: Hamroh) -> int:
    """A course to filter by."""
    async with transaction(hamroh.engine) as db:
        course = CourseRow(title_tg="Дӯзандагӣ", title_ru="Шитьё", created_at=hamroh.clock())
        db.add(course)
        await db.flush()
        assert course.id is not None
        return course.id


async def count(hamroh: Hamroh, data: dict[str, list[object]]) -> int:
    audience = Audience.from_json(data, hamroh.flows)
    async with transaction(hamroh.engine) as db:
        return (await drafts.preview(db, hamroh.flows, SETTINGS, text=TEXT, audience=audience)).audience


def test_filters_are_checked_against_what_hamroh_knows(flows: FlowSet) -> None:
    audience = Audience.from_json(
        {"regions": ["sughd"], "districts": ["dushanbe"], "topics": ["health"]}, flows
    )
    assert audience.to_json()["regions"] == ["sughd"]
    assert Audience.from_json(audience.to_json(), flows) == audience
    assert "khujand" in (audience.district_ids(flows) or ())
    assert Audience().district_ids(flows) is None
    bad_filters: list[tuple[dict[str, Any], str]] = [
        ({"districts": ["atlantis"]}, "unknown district 'atlantis'"),
        ({"regions": ["mars"]}, "unknown region 'mars'"),
        ({"langs": ["en"]}, "unknown lang 'en'"),
        ({"channels": ["fax"]}, "unknown channel 'fax'"),
        ({"topics": ["gossip"]}, "unknown topic 'gossip'"),
        ({"courses": ["one"]}, "courses is a list of course ids"),
        ({"courses": [True]}, "courses is a list of course ids"),
        ({"districts": "dushanbe"}, "districts is a list"),
        ({"everyone": []}, "unknown audience filter 'everyone'"),
    ]
    for bad, reason in bad_filters:
        with pytest.raises(AnnouncementInvalid, match=reason) as caught:
            Audience.from_json(bad, flows)
        assert caught.value.reason


async def send(
    db: AsyncSession,
    hamroh: Hamroh,
    announcement_id: int,
    author: Staff,
    settings: Settings = SETTINGS,
    *,
    at: datetime | None = None,
    override_reason: str | None = None,
    now: datetime | None = None,
) -> Announcement:
    """`drafts.send` with this service's vault, flows and clock."""
    return await drafts.send(
        db,
        hamroh.vault,
        hamroh.flows,
        settings,
        announcement_id=announcement_id,
        staff=author,
        at=at,
        override_reason=override_reason,
        now=now or hamroh.clock(),
    )


async def test_the_audience_is_who_asked_for_news_and_can_be_reached(hamroh: Hamroh) -> None:
    course = await add_course(hamroh)
    await add_women(
        hamroh,
        [
            Woman(district="khujand"),  # sughd
            Woman(district="isfara", lang="ru", channel="sms"),  # sughd
            Woman(district="dushanbe", topics=("health",)),
            Woman(district=None, lang="ru"),  # unknown district: news everywhere
            Woman(district="dushanbe", topics=()),  # never asked for news
            Woman(district="dushanbe", opted_out=True),
            Woman(district="dushanbe", reachable=False),  # blocked the bot
            Woman(district="khujand", channel="sms", courses=(course,)),
            Woman(district="dushanbe", lang=None),  # no language yet: she gets the Tajik text
            Woman(district="dushanbe", topics=(), courses=(course,)),  # no news, but on the course
            Woman(district="dushanbe", topics=(), courses=(course,), opted_out=True),
        ],
    )
    assert await count(hamroh, {}) == 6
    assert await count(hamroh, {"regions": ["sughd"]}) == 4  # three in sughd and the one of unknown district
    assert await count(hamroh, {"districts": ["dushanbe"]}) == 3
    assert await count(hamroh, {"regions": ["sughd"], "districts": ["dushanbe"]}) == 6  # OR within place
    assert await count(hamroh, {"langs": ["ru"]}) == 2
    assert await count(hamroh, {"langs": ["tg"]}) == 4
    assert await count(hamroh, {"channels": ["sms"]}) == 2
    assert await count(hamroh, {"channels": ["sms"], "langs": ["ru"]}) == 1  # AND across keys
    assert await count(hamroh, {"topics": ["health"]}) == 6
    assert await count(hamroh, {"topics": ["training"]}) == 5
    assert await count(hamroh, {"topics": ["training", "health"]}) == 6
    # Enrolling asked for word of her course: a course alone reaches the women on it, news or not;
    # with topics too, only those of them who also asked for news of those topics.
    assert await count(hamroh, {"courses": [course]}) == 2
    assert await count(hamroh, {"courses": [course], "topics": ["training"]}) == 1
    assert await count(hamroh, {"courses": [course + 1]}) == 0
    assert await count(hamroh, {"regions": ["khatlon"], "langs": ["tg"]}) == 0


async def test_segments_in_each_letters_choice_and_the_cost_of_the_sms(hamroh: Hamroh) -> None:
    await add_women(
        hamroh,
        [
            Woman(channel="sms", script="cyrillic"),
            Woman(channel="sms", script="latin"),
            Woman(channel="sms", script="latin", lang="ru"),
            Woman(channel="telegram", script="latin"),  # Telegram costs nothing per message
        ],
    )
    text = {"tg": "Ҳуқуқ " * 20, "ru": "Права и помощь"}  # 120 characters of Cyrillic: two UCS-2 parts
    async with transaction(hamroh.engine) as db:
        seen = await drafts.preview(db, hamroh.flows, SETTINGS, text=text, audience=Audience())
    assert seen.audience == 4
    assert seen.segments == {
        "tg": {"cyrillic": 2, "plain": 2, "latin": 1},
        "ru": {"cyrillic": 1, "plain": 1, "latin": 1},
    }
    assert seen.estimated_cost == "1.40 TJS"  # 2 (tg cyrillic) + 1 (tg latin) + 1 (ru latin) segments
    async with transaction(hamroh.engine) as db:
        free = await drafts.preview(db, hamroh.flows, Settings(), text=text, audience=Audience())
    assert free.estimated_cost is None


async def test_a_draft_is_saved_counted_and_audited(hamroh: Hamroh) -> None:
    (author,) = await add_staff(hamroh, "malika")
    await add_women(hamroh, [Woman(), Woman(lang="ru")])
    async with transaction(hamroh.engine) as db:
        audience = Audience.from_json({"langs": ["ru"]}, hamroh.flows)
        announcement, seen = await drafts.create(
            db,
            hamroh.vault,
            hamroh.flows,
            SETTINGS,
            staff=author,
            text=TEXT,
            audience=audience,
            now=hamroh.clock(),
        )
    assert (announcement.status, announcement.audience_size, seen.audience) == ("draft", 1, 1)
    assert json.loads(announcement.audience)["langs"] == ["ru"]
    assert announcement.id is not None
    async with transaction(hamroh.engine) as db:
        assert [a.id for a in await drafts.listing(db)] == [announcement.id]
        counted = await drafts.counts(db, announcement_id=announcement.id)
        assert counted == dict.fromkeys(
            ("queued", "held", "sent", "delivered", "failed", "blocked", "in_doubt", "cancelled"), 0
        )
        entries = (await db.exec(select(AuditEntry))).all()
    assert [(e.action, e.staff_name) for e in entries] == [("announcement.create", "malika")]
    assert "1 women" in entries[0].detail
    assert "Семинар" not in entries[0].detail
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementNotFound):
            await drafts.counts(db, announcement_id=announcement.id + 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ({"tg": "", "ru": "x"}, "the tg text is empty"),
        ({"tg": "x", "ru": "   "}, "the ru text is empty"),
        ({"tg": "x"}, "the ru text is empty"),
        ({"tg": "x", "ru": "y" * 1601}, "the ru text has 1601 characters"),
        ({"tg": "x", "ru": "y", "en": "z"}, "unknown language 'en'"),
    ],
)
async def test_a_text_that_cannot_be_sent_is_refused(
    sqlite_url: str, flows: FlowSet, vault: Vault, text: dict[str, str], reason: str
) -> None:
    from bot.store.db import create_engine

    engine = create_engine(sqlite_url)
    try:
        async with transaction(engine) as db:
            with pytest.raises(AnnouncementInvalid, match=reason):
                await drafts.preview(db, flows, SETTINGS, text=text, audience=Audience())
    finally:
        await engine.dispose()


async def draft(hamroh: Hamroh, author: Staff) -> int:
    async with transaction(hamroh.engine) as db:
        announcement, _ = await drafts.create(
            db,
            hamroh.vault,
            hamroh.flows,
            SETTINGS,
            staff=author,
            text=TEXT,
            audience=Audience(),
            now=hamroh.clock(),
        )
    assert announcement.id is not None
    return announcement.id


async def test_quiet_hours_need_a_reason(hamroh: Hamroh) -> None:
    (author,) = await add_staff(hamroh, "malika")
    first = await draft(hamroh, author)
    quiet = Settings(announce_quiet_hours="21:00-08:00")
    evening = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)  # 22:30 in Dushanbe
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementConflict, match="22:30 in Dushanbe is inside the quiet hours"):
            await send(db, hamroh, first, author, quiet, at=evening)
    async with transaction(hamroh.engine) as db:
        sent = await send(
            db,
            hamroh,
            first,
            author,
            quiet,
            at=evening,
            override_reason="the court moved the hearing to tomorrow morning",
        )
        assert (sent.status, sent.send_at, sent.override_reason) == (
            "scheduled",
            evening,
            "the court moved the hearing to tomorrow morning",
        )
        entry = (await db.exec(select(AuditEntry).where(AuditEntry.action == "announcement.send"))).one()
        assert "in quiet hours: the court moved" in entry.detail
    second = await draft(hamroh, author)
    afternoon = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # 15:00 in Dushanbe
    async with transaction(hamroh.engine) as db:
        ok = await send(db, hamroh, second, author, quiet, at=afternoon)
        assert ok.status == "scheduled"
    third = await draft(hamroh, author)
    async with transaction(hamroh.engine) as db:  # no quiet hours at all
        late = await send(db, hamroh, third, author, Settings(announce_quiet_hours=""), at=evening)
        assert late.override_reason is None


def test_quiet_hours_are_checked_when_settings_load() -> None:
    assert Settings(announce_quiet_hours=" 22-7 ").announce_quiet_hours == "22-7"
    assert Settings(announce_quiet_hours="").announce_quiet_hours == ""
    for bad in ("late", "25-07", "always"):
        with pytest.raises(ValidationError, match="HAMROH_ANNOUNCE_QUIET_HOURS"):
            Settings(announce_quiet_hours=bad)
    assert drafts.in_quiet_hours("21:00-08:00", datetime(2026, 11, 28, 2, 59, tzinfo=UTC))  # 07:59
    assert not drafts.in_quiet_hours("21:00-08:00", datetime(2026, 11, 28, 3, 0, tzinfo=UTC))  # 08:00
    assert not drafts.in_quiet_hours("", datetime(2026, 11, 28, 20, 0, tzinfo=UTC))


async def test_a_bad_time_is_refused(hamroh: Hamroh) -> None:
    (author,) = await add_staff(hamroh, "malika")
    first = await draft(hamroh, author)
    now = hamroh.clock()
    for at, reason in [
        (datetime(2026, 11, 28, 10, 0), "needs an offset"),
        (now - timedelta(hours=1), "in the past"),
        (now + timedelta(days=400), "more than a year ahead"),
    ]:
        async with transaction(hamroh.engine) as db:
            with pytest.raises(AnnouncementInvalid, match=reason):
                await send(db, hamroh, first, author, SETTINGS, at=at, now=now)


async def test_a_second_coordinator_approves_when_the_setting_asks(hamroh: Hamroh) -> None:
    author, second = await add_staff(hamroh, "malika", "nigora")
    strict = Settings(announce_needs_approval=True, announce_quiet_hours="")
    announcement_id = await draft(hamroh, author)
    tomorrow = hamroh.clock() + timedelta(days=1)

    async def schedule() -> Announcement:
        async with transaction(hamroh.engine) as db:
            return await send(db, hamroh, announcement_id, author, strict, at=tomorrow)

    with pytest.raises(AnnouncementConflict, match="a second coordinator must approve it before"):
        await schedule()
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementConflict, match="not its author"):
            await drafts.approve(
                db, strict, announcement_id=announcement_id, staff=author, now=hamroh.clock()
            )
    async with transaction(hamroh.engine) as db:
        approved = await drafts.approve(
            db, strict, announcement_id=announcement_id, staff=second, now=hamroh.clock()
        )
        assert (approved.status, approved.approved_by) == ("approved", second.id)
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementConflict, match="only a draft can be approved"):
            await drafts.approve(
                db, strict, announcement_id=announcement_id, staff=second, now=hamroh.clock()
            )
    assert (await schedule()).status == "scheduled"
    async with transaction(hamroh.engine) as db:
        actions = [e.action for e in (await db.exec(select(AuditEntry).order_by(AuditEntry.id))).all()]  # type: ignore[arg-type]
    assert actions == ["announcement.create", "announcement.approve", "announcement.send"]
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementNotFound):
            await drafts.approve(
                db, strict, announcement_id=announcement_id + 9, staff=second, now=hamroh.clock()
            )


async def test_cancel_before_it_leaves_and_not_after(hamroh: Hamroh) -> None:
    (author,) = await add_staff(hamroh, "malika")
    announcement_id = await draft(hamroh, author)
    async with transaction(hamroh.engine) as db:
        cancelled = await drafts.cancel(db, announcement_id=announcement_id, staff=author, now=hamroh.clock())
        assert (cancelled.status, cancelled.cancelled_at) == ("cancelled", hamroh.clock())
    async with transaction(hamroh.engine) as db:
        with pytest.raises(AnnouncementConflict, match="it cannot be cancelled: it is cancelled"):
            await drafts.cancel(db, announcement_id=announcement_id, staff=author, now=hamroh.clock())
        with pytest.raises(AnnouncementConflict, match="it cannot be sent: it is cancelled"):
            await send(db, hamroh, announcement_id, author, SETTINGS)


def test_saved_filters_are_read_back_even_if_the_flows_changed_since(flows: FlowSet) -> None:
    audience = Audience.from_json({"regions": ["sughd"], "topics": ["health"], "courses": [3]}, flows)
    assert Audience.stored(json.dumps(audience.to_json())) == audience
    gone = Audience.stored('{"districts": ["atlantis"], "courses": [1, "x", true], "langs": null}')
    assert gone == Audience(districts=("atlantis",), courses=(1,))
    assert gone.district_ids(flows) == ("atlantis",)  # matches only women whose district is unknown
