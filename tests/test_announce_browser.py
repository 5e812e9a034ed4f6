"""An announcement in a real browser, end to end: a coordinator writes it in Tajik and Russian, watches the
audience and the SMS segments change as she types and ticks, saves it, is refused inside quiet hours and
gives a reason, and the real dispatcher takes it to the fake Telegram and Twilio servers within their
limits while the counts on her page move by themselves; a second one is scheduled and cancelled.

The app runs under uvicorn with its dispatcher; the women who asked for news are rows in the database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from api.app import create_app
from bot.channels.sms import in_script
from bot.config import Settings
from bot.conversation.hours import DUSHANBE
from bot.staff.passwords import hash_password
from bot.store import Contact, Staff, Subscription
from bot.store.crypto import make_vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.test_web_simulator import CHROMIUM, CHROMIUM_ARGS, serving

PUBLIC = "https://hamroh.example.org"
OUR_NUMBER = "+15005550006"
NAME, PASSWORD = "zarina", "a long and quiet password"
TG = "Ҳамроҳ: омӯзиши нав барои занон дар Хуҷанд, рӯзи шанбе соати 10. Ройгон. Ҷойҳо маҳдуд."
RU = "Хамрох: бесплатное обучение для женщин в Худжанде, в субботу в 10."
CHAT = 5551001
SMS_RU, SMS_LATIN = "+992935550001", "+992935550002"
SCREENSHOTS = Path("/tmp")  # hamroh-announce-compose.png, -sending.png: to look at after a run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs the system's Chromium at {CHROMIUM}"),
]


async def prepare(database_url: str) -> None:
    """A coordinator, and three women who asked for news (and one who stopped it)."""
    vault = make_vault(TEST_ENCRYPTION_KEY, TEST_HASH_KEY)
    now = datetime.now(UTC)
    women = [
        ("telegram", f"tg:{CHAT}", "tg", "khujand", "cyrillic", False),
        ("sms", SMS_RU, "ru", "bokhtar", "cyrillic", False),
        ("sms", SMS_LATIN, "tg", None, "latin", False),
        ("telegram", "tg:5551002", "tg", "khujand", "cyrillic", True),  # she stopped the news
    ]
    engine = create_engine(database_url)
    try:
        async with transaction(engine) as db:
            db.add(
                Staff(
                    name=NAME, role="coordinator", password_hash=await hash_password(PASSWORD), created_at=now
                )
            )
            for channel, address, lang, district, script, stopped in women:
                contact = Contact(
                    channel=channel,
                    fingerprint=vault.fingerprint(address),
                    address=vault.seal(address),
                    lang=lang,
                    district=district,
                    script=script,
                    subscribed=not stopped,
                    opted_out=stopped,
                    pseudonym="p",
                    pseudonym_month=now.strftime("%Y-%m"),
                    created_at=now,
                )
                db.add(contact)
                await db.flush()
                assert contact.id is not None
                db.add(Subscription(contact_id=contact.id, topic="training", created_at=now))
    finally:
        await engine.dispose()


def quiet_now() -> str:
    """Quiet hours around this very minute, so that "send now" is refused until a reason is given."""
    here = datetime.now(DUSHANBE)
    return f"{here - timedelta(hours=1):%H:%M}-{here + timedelta(hours=1):%H:%M}"


async def test_a_coordinator_announces_and_the_women_receive_it(tmp_path: Path, database_url: str) -> None:
    await prepare(database_url)
    with FakeTelegram(enforce_limits=True) as telegram, FakeTwilio() as twilio:
        # Twilio's one segment a second for a long code, as the settings say; the leeway is the network's
        # jitter between the dispatcher's clock and the fake's.
        twilio.limit_rate(1.0, leeway=0.25)
        settings = Settings(
            env="development",
            database_url=database_url,
            var_dir=tmp_path,
            public_url=PUBLIC,
            encryption_key=TEST_ENCRYPTION_KEY,
            hash_key=TEST_HASH_KEY,
            telegram_token=telegram.token,
            telegram_secret="announce-secret",
            telegram_api_url=telegram.api_url,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from=OUR_NUMBER,
            twilio_api_url=twilio.api_url,
            sms_price_per_segment="0.35 TJS",
            announce_quiet_hours=quiet_now(),
            jobs_interval_seconds=1,  # the job that calls an announcement sent once nothing waits
        )
        with serving(create_app(settings, dispatch=True, case_jobs=True)) as base_url:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 390, "height": 900})
                    problems: list[str] = []
                    page.on("pageerror", lambda error: problems.append(str(error)))
                    page.on("console", lambda m: _note(problems, m))
                    await _announce(page, base_url)
                    await _until(lambda: len(telegram.sent_texts(CHAT)) == 1 and len(twilio.messages) == 2)
                    await _counted(page)
                    await _schedule_and_cancel(page)
                    assert problems == [], "the page reported errors"
                finally:
                    await browser.close()
        assert telegram.sent_texts(CHAT) == [TG]  # Telegram keeps her Tajik letters
        assert telegram.sent_texts(5551002) == []  # she stopped the news
        by_number = {m.to: m.body for m in twilio.messages}
        assert by_number == {SMS_RU: RU, SMS_LATIN: in_script(TG, "latin")}
        assert telegram.throttled == 0
        assert twilio.rate_limited == 0


async def _announce(page: Page, base_url: str) -> None:
    # She logs in and lands on the announcements.
    await page.goto(f"{base_url}/coordinate/announcements")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("Name").fill(NAME)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/coordinate/announcements$"))
    audience = page.locator("#preview [data-audience]")
    await expect(audience).to_have_text("3")  # counted before a word is written

    # The preview follows what she types and ticks, without a reload.
    await page.evaluate("window.sameDocument = true")
    await page.get_by_label("Text in Tajik").fill(TG)
    await page.get_by_label("Text in Russian").fill(RU)
    tajik = page.locator('#preview tr[data-lang="tg"]')
    await expect(tajik.locator('[data-script="cyrillic"]')).to_have_text("2")  # UCS-2: 67 letters a part
    await expect(tajik.locator('[data-script="latin"]')).to_have_text("1")
    await expect(page.locator("#preview [data-cost]")).to_have_text("0.70 TJS")  # 2 SMS of 1 part each
    await page.get_by_label("Tajik", exact=True).check()
    await expect(audience).to_have_text("2")
    await page.get_by_label("Tajik", exact=True).uncheck()
    await expect(audience).to_have_text("3")
    assert await page.evaluate("window.sameDocument") is True
    await page.screenshot(path=str(SCREENSHOTS / "hamroh-announce-compose.png"), full_page=True)

    # Saved, then refused inside quiet hours until she says why.
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.get_by_text("Draft saved.")).to_be_visible()
    await page.get_by_role("button", name="Send now").click()
    await expect(page.get_by_role("alert")).to_contain_text("inside the quiet hours")
    await page.get_by_label("Reason to send inside quiet hours").fill("The course starts tomorrow.")
    await page.get_by_role("button", name="Send now").click()
    await expect(page.get_by_text("Sending:")).to_be_visible()


async def _counted(page: Page) -> None:
    # The counts on her page move by themselves while it sends, until all three have left.
    sent = page.locator('#counts [data-count="sent"]')
    await expect(sent).to_have_text("3", timeout=10_000)
    await expect(page.locator('#counts [data-count="queued"]')).to_have_text("0")
    await expect(page.locator("#counts [data-status]")).to_have_text("sent", timeout=5_000)
    await expect(page.get_by_role("button", name="Cancel the announcement")).to_have_count(0)  # all left
    await page.screenshot(path=str(SCREENSHOTS / "hamroh-announce-sending.png"), full_page=True)


async def _schedule_and_cancel(page: Page) -> None:
    await page.get_by_role("link", name="All announcements").click()
    await page.get_by_label("Text in Tajik").fill("Ҳамроҳ: рӯзи машварати ҳуқуқӣ.")
    await page.get_by_label("Text in Russian").fill("Хамрох: день правовой помощи.")
    # The segments and cost appear once both texts are written and push the buttons down: a click while
    # they arrive can land beside the button, so she clicks once the preview has them.
    await expect(page.locator("#preview [data-cost]")).to_have_text("0.70 TJS")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.get_by_text("Draft saved.")).to_be_visible()
    later = datetime.now(DUSHANBE) + timedelta(days=1, hours=3)  # well outside the quiet hours
    await page.get_by_label("Date and time (Dushanbe)").fill(f"{later:%Y-%m-%dT%H:%M}")
    await page.get_by_role("button", name="Schedule").click()
    await expect(page.get_by_text("Scheduled.")).to_be_visible()
    await expect(page.locator("[data-status]")).to_have_text("scheduled")
    await expect(page.locator("#counts")).to_contain_text(f"{later:%d %b %H:%M}".lstrip("0"))
    await page.get_by_role("button", name="Cancel the announcement").click()
    await expect(page.get_by_text("Cancelled:")).to_be_visible()
    await page.get_by_role("link", name="All announcements").click()
    rows = page.locator("table.announcements tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0).locator(".status")).to_have_text("cancelled")
    await expect(rows.nth(1).locator(".status")).to_have_text("sent")


def _note(problems: list[str], message: ConsoleMessage) -> None:
    # The quiet-hours refusal is a page answered 409 on purpose; the browser logs any 4xx it loads.
    refused = "status of 409" in message.text
    if message.type in ("error", "warning") and not refused:
        problems.append(message.text)


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")
