"""The console in a real browser, end to end: an urgent SMS reaches a counsellor's open queue by itself (with
a chime and a desktop notification), she claims it, answers, the answer leaves through Twilio, the woman's
reply appears by itself, markup she types stays text, and the case is closed.

The app runs under uvicorn with its dispatcher, on SQLite and on PostgreSQL (where the live update crosses
LISTEN/NOTIFY); Twilio is the fake server, and her messages come as signed webhooks.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from api.app import create_app
from bot.config import Settings
from bot.staff.passwords import hash_password
from bot.store import Staff
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY
from tests.fakes.twilio_api import FakeTwilio, inbound_sms_form, signed_request
from tests.test_web_simulator import CHROMIUM, CHROMIUM_ARGS, serving

PUBLIC = "https://hamroh.example.org"
OUR_NUMBER = "+15005550006"
HER_PHONE = "+992935557788"
NAME, PASSWORD = "nodira", "a long and quiet password"
DANGER = "мард маро мекушад"
HER_ANSWER = "Раҳмат. Ман ҳоло дар хонаи модарам ҳастам."
MARKUP = '<script>window.ran = 1</script><img src=x onerror="window.ran = 2"> <b>бе</b>'
CANNED_TG = "Ман дар ин ҷо ҳастам. Ба ман нависед, ман мехонам."  # flows/canned.yaml, "here", in Tajik
SCREENSHOTS = Path("/tmp")  # hamroh-console-queue.png, -case.png: to look at after a run
Texts = Callable[[str], Awaitable[None]]

# Records every chime and notification the page makes (the real ones still run).
RECORDER = """
window.recorded = {played: [], notified: []};
const realPlay = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  window.recorded.played.push(this.currentSrc || this.src);
  return realPlay.apply(this, arguments);
};
if ("Notification" in window) {
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options) {
      window.recorded.notified.push({title: title, body: (options || {}).body});
      super(title, options);
    }
  }
  window.Notification = Recorded;
}
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs the system's Chromium at {CHROMIUM}"),
]


@pytest.fixture
async def counsellor(database_url: str) -> None:
    """A counsellor's account in the database the app will use."""
    engine = create_engine(database_url)
    try:
        async with transaction(engine) as db:
            password_hash = await hash_password(PASSWORD)
            db.add(
                Staff(name=NAME, role="counsellor", password_hash=password_hash, created_at=datetime.now(UTC))
            )
    finally:
        await engine.dispose()


async def test_an_urgent_sms_reaches_the_console_and_is_answered(
    tmp_path: Path, database_url: str, counsellor: None
) -> None:
    with FakeTwilio() as twilio:
        settings = Settings(
            env="development",
            database_url=database_url,
            var_dir=tmp_path,
            public_url=PUBLIC,
            encryption_key=TEST_ENCRYPTION_KEY,
            hash_key=TEST_HASH_KEY,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from=OUR_NUMBER,
            twilio_api_url=twilio.api_url,
            twilio_segments_per_second=100,
        )
        with serving(create_app(settings, dispatch=True)) as base_url:
            async with httpx.AsyncClient(base_url=base_url) as webhooks:

                async def she_texts(body: str) -> None:
                    sid = twilio.receive(from_=HER_PHONE, body=body)
                    form = inbound_sms_form(
                        HER_PHONE, body, to=OUR_NUMBER, account_sid=twilio.account_sid, message_sid=sid
                    )
                    signed = signed_request(twilio.auth_token, f"{PUBLIC}/webhooks/sms", form)
                    answer = await webhooks.post(signed.path, content=signed.body, headers=signed.headers)
                    assert answer.status_code == 200

                await _in_the_browser(base_url, twilio, she_texts)


async def _in_the_browser(base_url: str, twilio: FakeTwilio, she_texts: Texts) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            context = await browser.new_context(viewport={"width": 360, "height": 800}, locale="tg-TJ")
            await context.grant_permissions(["notifications"], origin=base_url)
            await context.add_init_script(RECORDER)
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda m: _note(problems, m))
            await _the_case(page, base_url, twilio, she_texts)
            assert problems == [], "the page reported errors"
        finally:
            await browser.close()


def _note(problems: list[str], message: ConsoleMessage) -> None:
    # A stream that ends (every two minutes, or at a test's end) is reconnected by design; htmx logs that.
    if message.type in ("error", "warning") and "htmx:sseError" not in message.text:
        problems.append(message.text)


async def _the_case(page: Page, base_url: str, twilio: FakeTwilio, she_texts: Texts) -> None:

    # She logs in and waits at the queue; nobody is there yet.
    await page.goto(f"{base_url}/console")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("Name").fill(NAME)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/console$"))
    await expect(page.locator("#live-state")).to_have_text("Live")
    await expect(page.get_by_text("Nobody is waiting")).to_be_visible()
    await page.evaluate("window.sameDocument = true")

    # An urgent SMS: the queue shows it without a reload, with a chime and a notification.
    await she_texts(DANGER)
    card = page.locator(".case-card.urgent")
    await expect(card).to_have_count(1, timeout=10_000)
    await expect(card).to_contain_text("Urgent")
    await expect(card).to_contain_text("support queue")
    assert await page.evaluate("window.sameDocument") is True
    await expect(page.locator("#urgent-banner")).to_be_visible()
    await page.wait_for_function("window.recorded.played.length > 0")
    played = await page.evaluate("window.recorded.played")
    assert played[0].endswith("/static/urgent.wav")
    notified = await page.evaluate("window.recorded.notified")
    assert notified[0]["title"] == "Hamroh: an urgent case"
    assert DANGER not in str(notified)  # never her words on a screen others may see
    await page.screenshot(path=str(SCREENSHOTS / "hamroh-console-queue.png"), full_page=True)
    await asyncio.sleep(0.3)
    assert len(await page.evaluate("window.recorded.played")) == 1  # one chime for one case

    # She opens it, claims it and answers with a ready reply.
    await card.locator("a").click()
    await expect(page.locator(".line.her .text").first).to_have_text(DANGER)
    await page.get_by_role("button", name="Claim this case").click()
    await expect(page.get_by_text("You have this case now")).to_be_visible()
    reply = page.get_by_label("Your message to her")
    await page.get_by_text("Ready replies").click()
    await (
        page.locator(".canned li", has_text="I am here, you can write")
        .get_by_role("button", name="Тоҷикӣ")
        .click()
    )
    await expect(reply).to_have_value(CANNED_TG)
    await expect(page.locator("#cost")).to_contain_text("1 SMS · 50 characters · Cyrillic (UCS-2)")
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.get_by_text("Sent.")).to_be_visible()
    await expect(page.locator(".line.staff .text").last).to_have_text(CANNED_TG)
    await _until(lambda: any(CANNED_TG in m.body and m.to == HER_PHONE for m in twilio.messages))

    # Her answer appears by itself; what she types as markup stays text.
    await page.evaluate("window.sameDocument = true")
    await she_texts(HER_ANSWER)
    await expect(page.locator(".line.her .text").last).to_have_text(HER_ANSWER, timeout=10_000)
    await she_texts(MARKUP)
    await expect(page.locator(".line.her .text").last).to_have_text(MARKUP, timeout=10_000)
    assert await page.evaluate("window.sameDocument") is True
    await expect(page.locator("#transcript img, #transcript b, #transcript script")).to_have_count(0)
    assert await page.evaluate("window.ran") is None
    await page.screenshot(path=str(SCREENSHOTS / "hamroh-console-case.png"), full_page=True)

    # Closed with an outcome and a note; the queue is empty again.
    await page.locator("summary", has_text="Close the case").click()
    await page.get_by_label("Outcome").select_option("safety_plan")
    await page.get_by_label("Closing note").fill("She is with her mother tonight.")
    await page.get_by_role("button", name="Close the case").click()
    await expect(page).to_have_url(re.compile(r"/console\?done=closed$"))
    await expect(page.get_by_text("Case closed.")).to_be_visible()
    await expect(page.locator(".case-card")).to_have_count(0)


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")
