"""The web simulator in a real browser: a woman talks to Hamroh in Tajik, by SMS and on Telegram."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright, expect

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
TAJIK_MENU_WORD = "Ҳуқуқҳои"  # "Your rights", the first entry of the main menu in locales/tg

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
            context = await browser.new_context(viewport={"width": 360, "height": 800}, locale="tg-TJ")
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
