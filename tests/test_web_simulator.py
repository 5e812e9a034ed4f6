"""The web simulator in a real browser, on a small Android phone's screen (360 x 740): a woman talks to
Hamroh in Tajik, by SMS and on Telegram; the phone fits the screen, its text can be read, and a cleared
Telegram chat clears."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import FloatRect, Locator, Page, ViewportSize, async_playwright, expect

from api.app import create_app
from bot.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/hamroh-simulator.png")
SMALL_PHONE: ViewportSize = {"width": 360, "height": 740}
TAJIK_MENU_WORD = "Ҳуқуқҳои"  # "Your rights", the first entry of the main menu in locales/tg
AA = 4.5  # WCAG 2 contrast for normal text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs the system's Chromium at {CHROMIUM}"),
]


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free local port, in a background thread; yields its address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = uvicorn.Config(app, ws="none", lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
async def page(base_url: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=SMALL_PHONE, locale="tg-TJ")
            page = await context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            await page.goto(base_url)
            yield page
            assert problems == [], "the page reported errors"
        finally:
            await browser.close()


async def test_a_woman_talks_in_tajik_by_sms_and_on_telegram(page: Page) -> None:
    bot = page.locator(".message.bot .bubble")
    message = page.get_by_label("Message", exact=True)

    async def say(text: str) -> None:
        await message.fill(text)
        await message.press("Enter")

    await expect(page.get_by_role("note")).to_contain_text("Development simulator")
    await expect(page.get_by_label("Phone number")).to_have_value("+992900000001")

    # SMS: the greeting in both languages, then numbers.
    await say("Салом")
    await expect(bot).to_have_count(1)
    await expect(bot.last).to_contain_text("Салом!")
    await expect(bot.last).to_contain_text("Здравствуйте!")
    await expect(bot.last).to_contain_text("1 Тоҷикӣ")
    await expect(bot.last).to_contain_text("2 Русский")
    await expect(page.locator(".message.bot .note").last).to_have_text(
        re.compile(r"^\d SMS · ucs2 · \d+ characters$")
    )
    await say("1")
    await expect(bot).to_have_count(2)
    await expect(bot.last).to_contain_text(TAJIK_MENU_WORD)
    await say("1")
    await expect(bot).to_have_count(3)
    await expect(bot.last).to_contain_text("0 ")
    await expect(message).to_be_focused()

    # What she types is shown as text, never run as markup.
    await say("<b>бе</b><img src=x onerror=alert(1)>")
    await expect(page.locator(".message.her .bubble").last).to_have_text(
        "<b>бе</b><img src=x onerror=alert(1)>"
    )
    await expect(page.locator(".log img, .log b")).to_have_count(0)
    await expect(bot).to_have_count(4)

    # Telegram: another woman, with buttons.
    await page.get_by_label("Telegram").check()
    await expect(page.get_by_label("Telegram chat id")).to_have_value("tg:100001")
    await expect(bot).to_have_count(0)
    await say("Салом")
    await expect(bot).to_have_count(1)
    await page.get_by_role("button", name="Тоҷикӣ").click()
    await expect(bot).to_have_count(2)
    menu = page.locator(".message.bot").last
    await expect(menu.get_by_role("button", name=re.compile(TAJIK_MENU_WORD))).to_be_visible()
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    await menu.get_by_role("button").first.click()
    await expect(bot).to_have_count(3)
    await expect(page.locator(".message.bot .keyboard").last.get_by_role("button").first).to_be_visible()

    # Back to SMS: her conversation is still there.
    await page.get_by_label("SMS").check()
    await expect(bot).to_have_count(4)


# Helpers for the tests below: her words, what is on screen, and the colours of text.


async def says(page: Page, text: str) -> None:
    """She types a message and presses Enter; returns once the page has shown what came back."""
    message = page.get_by_label("Message", exact=True)
    await message.fill(text)
    await message.press("Enter")
    await settled(page)


async def taps(button: Locator) -> None:
    """She taps a Telegram button; returns once the page has shown what came back."""
    await button.click()
    await settled(button.page)


async def settled(page: Page) -> None:
    await expect(page.locator("#log")).not_to_have_attribute("aria-busy", "true")


async def box(locator: Locator) -> FloatRect:
    found = await locator.bounding_box()
    assert found is not None, f"{locator} is not rendered"
    return found


def within(inner: FloatRect, outer: FloatRect) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


SCREEN: FloatRect = {"x": 0, "y": 0, "width": SMALL_PHONE["width"], "height": SMALL_PHONE["height"]}

# The text colour of each visible element with text of its own under `root`, and the background colours
# behind it, from the element out to the page (all of them, since a see-through one shows what is below).
COLOURS = """(root, pseudo) => {
  const layers = (element) => {
    const backgrounds = [];
    for (let node = element; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== "none" || style.opacity !== "1" || style.filter !== "none") {
        return null;  // not a plain colour: the test cannot tell what is behind the text
      }
      backgrounds.push(style.backgroundColor);
    }
    return backgrounds;
  };
  if (pseudo) {
    return [{what: `${root.id || root.tagName}${pseudo}`, text: getComputedStyle(root, pseudo).color,
             backgrounds: layers(root)}];
  }
  const found = [];
  for (const element of [root, ...root.querySelectorAll("*")]) {
    const own = [...element.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!own || !element.checkVisibility()) continue;
    const text = element.textContent.trim().slice(0, 30);
    const what = `${element.tagName.toLowerCase()}.${element.className}: ${text}`;
    found.push({what, text: getComputedStyle(element).color, backgrounds: layers(element)});
  }
  return found;
}"""
RGBA = re.compile(r"rgba?\(([\d.]+), ([\d.]+), ([\d.]+)(?:, ([\d.]+))?\)")
Colour = tuple[float, float, float]


def parse(css: str) -> tuple[Colour, float]:
    found = RGBA.fullmatch(css)
    assert found, f"unexpected colour {css!r}"
    red, green, blue, alpha = found.groups()
    return (float(red), float(green), float(blue)), 1.0 if alpha is None else float(alpha)


def over(css: str, behind: Colour) -> Colour:
    """A colour, perhaps see-through, as it shows over what is behind it."""
    colour, alpha = parse(css)
    return (
        colour[0] * alpha + behind[0] * (1 - alpha),
        colour[1] * alpha + behind[1] * (1 - alpha),
        colour[2] * alpha + behind[2] * (1 - alpha),
    )


def luminance(colour: Colour) -> float:
    """WCAG 2 relative luminance of an sRGB colour (channels 0..255)."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: Colour, second: Colour) -> float:
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


async def contrasts(locator: Locator, pseudo: str | None = None) -> dict[str, float]:
    """The contrast ratio of each visible text in the element (or of its pseudo-element's text)."""
    ratios: dict[str, float] = {}
    for found in await locator.evaluate(COLOURS, pseudo):
        assert found["backgrounds"] is not None, f"{found['what']}: not on a plain colour"
        behind: Colour = (255.0, 255.0, 255.0)  # the canvas
        for layer in reversed(found["backgrounds"]):
            behind = over(layer, behind)
        ratios[found["what"]] = round(contrast(over(found["text"], behind), behind), 2)
    return ratios


def too_faint(ratios: dict[str, Any]) -> dict[str, float]:
    return {what: ratio for what, ratio in ratios.items() if ratio < AA}


def test_the_contrast_arithmetic_matches_wcag() -> None:
    white, black = (255.0, 255.0, 255.0), (0.0, 0.0, 0.0)
    assert contrast(white, black) == pytest.approx(21)
    assert contrast((118.0, 118.0, 118.0), white) == pytest.approx(4.54, abs=0.01)  # #767676, the AA grey
    assert over("rgba(0, 0, 0, 0.5)", white) == (127.5, 127.5, 127.5)


# 1. A small phone's screen


async def test_the_phone_fits_a_small_screen_with_the_message_box_in_view(page: Page) -> None:
    log = page.locator("#log")
    bot = page.locator(".message.bot")
    message = page.get_by_label("Message", exact=True)
    send = page.get_by_role("button", name="Send")
    for text in ["Салом", "1", "1", "0", "1", "0"]:
        await says(page, text)
    await expect(bot).to_have_count(6)

    # The conversation is longer than the phone and scrolls inside it, to the latest message.
    assert await log.evaluate("log => log.scrollHeight > log.clientHeight + 100")
    await page.wait_for_function(
        "() => { const log = document.getElementById('log');"
        " return log.scrollTop + log.clientHeight >= log.scrollHeight - 1; }"
    )
    latest = await box(bot.last)
    assert within(latest, await box(log)), "the latest message is in view"

    # The whole phone, the message box and its Send button are on the screen, the page unscrolled.
    assert await page.evaluate("() => [window.scrollY, document.documentElement.scrollHeight]") == [
        0,
        SMALL_PHONE["height"],
    ]
    for part in (page.locator(".phone"), page.locator(".phone-bar"), log, message, send, bot.last):
        assert within(await box(part), SCREEN), f"{part} is off the screen"
    for control in (message, send):  # nothing covers them
        assert await control.evaluate(
            "e => { const r = e.getBoundingClientRect();"
            " return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === e; }"
        )
    assert (await box(message))["height"] >= 40  # big enough to tap
    assert (await box(send))["height"] >= 40
    await page.screenshot(path="/tmp/hamroh-simulator-360x740.png")

    # And it works: she types and taps Send.
    await message.click()
    await page.keyboard.type("1")
    await send.click()
    await settled(page)
    await expect(bot).to_have_count(7)
    await expect(message).to_have_value("")
    await page.wait_for_function(
        "() => { const log = document.getElementById('log');"
        " return log.scrollTop + log.clientHeight >= log.scrollHeight - 1; }"
    )
    assert within(await box(bot.last), await box(log))
    assert await page.evaluate("window.scrollY") == 0


# 2. Text that can be read


async def test_every_text_on_the_telegram_and_sms_screens_has_a_contrast_of_at_least_4_5(page: Page) -> None:
    phone = page.locator(".phone")
    await expect(phone.locator(".empty")).to_be_visible()
    ratios = await contrasts(page.locator("body"))  # the page around the phone too
    ratios |= await contrasts(page.get_by_label("Message", exact=True), "::placeholder")

    await page.get_by_role("radio", name="Telegram").check()
    await expect(phone.locator(".empty")).to_be_visible()
    ratios |= {f"telegram {k}": v for k, v in (await contrasts(phone)).items()}
    await says(page, "Салом")
    await taps(page.get_by_role("button", name="Тоҷикӣ"))
    await says(page, "алимент")
    keyboard = page.locator(".message.bot .keyboard").last
    button = keyboard.get_by_role("button").first
    await expect(button).to_be_visible()
    await expect(page.locator(".message.her")).to_have_count(2)
    await expect(page.locator(".press")).to_have_count(1)
    telegram = await contrasts(phone)
    assert any(what.startswith("button.:") for what in telegram), telegram  # the buttons were measured
    ratios |= {f"telegram {k}": v for k, v in telegram.items()}
    await button.hover()
    ratios |= {f"telegram hovered {k}": v for k, v in (await contrasts(button)).items()}

    await page.get_by_role("radio", name="SMS").check()
    await says(page, "Салом")
    await says(page, "1")
    await expect(page.locator(".message.bot .note").last).to_be_visible()
    ratios |= {f"sms {k}": v for k, v in (await contrasts(phone)).items()}

    assert len(ratios) > 15
    assert too_faint(ratios) == {}


# 3. "Clear this chat" on Telegram


async def answered(page: Page, action: Awaitable[None]) -> dict[str, Any]:
    """What the server answered to the message that `action` sends (the page shows it)."""
    async with page.expect_response(lambda r: r.url.endswith("/simulator/messages")) as response:
        await action
    body: dict[str, Any] = await (await response.value).json()
    await settled(page)
    return body


async def test_a_cleared_telegram_chat_clears_leaving_only_the_confirmation(page: Page) -> None:
    shown = page.locator("#log > :not(.empty)")
    bot = page.locator(".message.bot")
    await page.get_by_role("radio", name="SMS").check()
    await says(page, "Салом")  # another woman, by SMS, whose conversation stays

    await page.get_by_role("radio", name="Telegram").check()
    await says(page, "Салом")
    await taps(page.get_by_role("button", name="Тоҷикӣ"))
    await says(page, "алимент")
    await taps(bot.last.get_by_role("button").first)
    await expect(page.locator(".message.her")).to_have_count(2)
    await expect(page.locator(".press")).to_have_count(2)
    assert await bot.count() >= 3

    # She asks by the word, and confirms by typing the number of "Yes, delete": her "1" goes too.
    await says(page, "очистить")
    await expect(bot.last.get_by_role("button")).not_to_have_count(0)
    messages = await page.locator(".message").count()
    done = await answered(page, says(page, "1"))
    (command,) = done["commands"]
    assert command["op"] == "clear_chat"
    assert len(command["message_ids"]) == messages + 1  # every message shown, and her "1"
    (confirmation,) = done["replies"]
    assert confirmation["message_id"] not in command["message_ids"]
    await expect(shown).to_have_count(1)
    await expect(bot.locator(".bubble")).to_have_text(confirmation["text"])

    # Again, confirming with the button: the first confirmation goes as well, and so does her tap.
    asked = await answered(page, says(page, "clear"))
    await expect(shown).to_have_count(3)
    question = [m["message_id"] for m in asked["replies"]]
    on_screen = {confirmation["message_id"], asked["message_id"], *question}
    done = await answered(page, taps(bot.last.get_by_role("button").first))
    assert on_screen <= set(done["commands"][0]["message_ids"])
    await expect(shown).to_have_count(1)
    await expect(bot.locator(".bubble")).to_have_text(done["replies"][0]["text"])
    await expect(page.locator("#log")).to_be_focused()  # not lost with the button she tapped

    # It stays cleared when she comes back to it; the SMS conversation was not touched.
    await page.get_by_role("radio", name="SMS").check()
    await expect(bot).to_have_count(1)
    await expect(page.locator(".message.her")).to_have_count(1)
    await page.get_by_role("radio", name="Telegram").check()
    await expect(shown).to_have_count(1)
    await expect(bot.locator(".bubble")).to_have_text(done["replies"][0]["text"])
