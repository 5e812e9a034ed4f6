"""The reports page in a real browser: a coordinator logs in, opens /coordinate/reports and sees bar charts
(SVG, drawn by the server) beside tables with the same numbers, small counts marked "<5" in both, and a CSV
link for each table; the page loads nothing from outside and reports no error (its CSP allows no inline
style or script)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from api.app import create_app
from bot.staff.passwords import hash_password
from bot.store import RequestLogEntry, Staff
from bot.store.db import create_engine, transaction
from tests.conftest import settings_for_tests
from tests.test_web_simulator import CHROMIUM, CHROMIUM_ARGS, serving

NAME, PASSWORD = "zarina", "a long and quiet password"
SCREENSHOT = Path("/tmp/hamroh-reports.png")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs the system's Chromium at {CHROMIUM}"),
]


def asked(now: datetime) -> list[tuple[datetime, str, int]]:
    """Many ask about alimony, this month and before; nine about a crisis and two about divorce, which are
    hidden: two of three, so that the total does not give divorce back."""
    before = now - timedelta(days=40)
    return [
        (now, "legal.alimony", 30),
        (before, "legal.alimony", 12),
        (now, "help.crisis", 9),
        (now, "legal.divorce", 2),
    ]


async def seed(database_url: str) -> None:
    """A coordinator, and requests of this month and an earlier one."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    engine = create_engine(database_url)
    try:
        async with transaction(engine) as db:
            db.add(
                Staff(
                    name=NAME, role="coordinator", password_hash=await hash_password(PASSWORD), created_at=now
                )
            )
            for hour, topic, count in asked(now):
                db.add_all(
                    RequestLogEntry(
                        hour=hour,
                        topic=topic,
                        channel="telegram",
                        lang="tg",
                        district="khujand",
                        pseudonym=f"p{i}",
                    )
                    for i in range(count)
                )
    finally:
        await engine.dispose()


async def test_a_coordinator_sees_the_charts_and_the_hidden_marks(tmp_path: Path, database_url: str) -> None:
    await seed(database_url)
    with serving(create_app(settings_for_tests(tmp_path, database_url))) as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1200, "height": 900})
                problems: list[str] = []
                outside: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on(
                    "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
                )
                page.on("request", lambda r: None if r.url.startswith(base_url) else outside.append(r.url))

                await page.goto(f"{base_url}/coordinate/reports")
                await expect(page).to_have_url(re.compile(r"/login$"))
                await page.get_by_label("Name").fill(NAME)
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Log in").click()
                await page.goto(f"{base_url}/coordinate/reports")
                await expect(page.get_by_role("heading", name="Reach reports")).to_be_visible()

                # Requests by topic: a chart with a bar for alimony; crisis and divorce hidden as "<5".
                section = page.locator("section#requests-topic")
                chart = section.get_by_role("img", name=re.compile("Requests by topic"))
                await expect(chart).to_be_visible()
                await expect(chart.locator("rect.bar")).not_to_have_count(0)
                box = await chart.locator("rect.bar").first.bounding_box()
                assert box is not None
                assert box["width"] > 100  # the longest bar spans the chart
                await expect(chart.locator("rect.bar")).to_have_count(1)
                await expect(chart.locator("text.suppressed")).to_have_text(["<5", "<5"])
                table = section.locator("table")
                await expect(table.locator("tr", has_text="legal.alimony").locator("td").first).to_have_text(
                    "42"
                )
                await expect(table.locator("tr", has_text="legal.divorce").locator("td").first).to_have_text(
                    "<5"
                )
                # Months: one chart bar each, numbers beside them.
                months = page.locator("section#requests-month")
                await expect(months.locator("svg rect.bar")).to_have_count(2)
                await expect(page.locator("section.report svg")).not_to_have_count(0)

                # Each table has its CSV, which downloads with the same hidden mark (an empty value).
                link = section.get_by_role("link", name=re.compile(r"\(CSV\)"))
                href = await link.get_attribute("href")
                assert href == "/coordinate/reports/requests.csv?by=topic"
                cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
                async with httpx.AsyncClient(base_url=base_url, cookies=cookies) as client:
                    answer = await client.get(href)
                assert answer.status_code == 200
                assert "legal.divorce,," in answer.text

                await page.screenshot(path=str(SCREENSHOT), full_page=True)
                assert problems == [], "the page reported errors"
                assert outside == [], "the page loaded something from outside"
            finally:
                await browser.close()
