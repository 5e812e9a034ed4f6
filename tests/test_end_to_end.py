"""Whole paths: her message at the webhook, one turn, the outbox, the dispatcher, the provider's API.

The real python-telegram-bot and twilio SDKs talk HTTP to the fake servers; the app, the service, the
store and the dispatcher are Hamroh's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlmodel import col, select

from api.app import create_app
from bot.config import Settings
from bot.runtime import run_dispatcher
from bot.service import Hamroh
from bot.store import Contact, OutboxMessage
from bot.store.db import transaction
from tests.conftest import settings_for_tests
from tests.fakes.telegram_api import FakeTelegram, Her
from tests.fakes.twilio_api import FakeTwilio, inbound_sms_form, signed_request

PUBLIC = "https://hamroh.example.org"
HER_PHONE = "+992935551234"
OUR_NUMBER = "+15005550006"
SECRET = "e2e-secret"


def settings_for(tmp_path: Path, database_url: str, **channel: object) -> Settings:
    return settings_for_tests(
        tmp_path,
        database_url,
        public_url=PUBLIC,
        telegram_chat_messages_per_second=100,
        twilio_segments_per_second=100,
        **channel,
    )  # type: ignore[arg-type]


def telegram_settings(tmp_path: Path, database_url: str, telegram: FakeTelegram) -> Settings:
    return settings_for(
        tmp_path,
        database_url,
        telegram_token=telegram.token,
        telegram_secret=SECRET,
        telegram_api_url=telegram.api_url,
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    """A client that calls the app in process, as Telegram and Twilio would over HTTP."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@asynccontextmanager
async def sending(settings: Settings, hamroh: Hamroh) -> AsyncIterator[None]:
    """The dispatcher runs while the block does."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_dispatcher(settings, hamroh, stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def until_recorded(hamroh: Hamroh, count: int) -> None:
    """Wait until the dispatcher has recorded `count` provider ids, SMS SIDs or Telegram message ids (the
    fake servers have them a moment earlier)."""
    for _ in range(1500):
        async with transaction(hamroh.engine) as db:
            query = select(OutboxMessage).where(col(OutboxMessage.provider_id).is_not(None))
            if len((await db.exec(query)).all()) >= count:
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the dispatcher did not record the messages")


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Wait for `condition`; generous, because SMS leave at 1 segment a second and CI machines are busy."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_sms_from_webhook_to_twilio_and_erased_at_twilio_too(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    with FakeTwilio() as twilio:
        settings = settings_for(
            tmp_path,
            database_url,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from=OUR_NUMBER,
            twilio_api_url=twilio.api_url,
        )
        app = create_app(settings, hamroh)
        async with client(app) as web:

            async def she_texts(body: str) -> str:
                sid = twilio.receive(from_=HER_PHONE, body=body)  # Twilio keeps what she sent
                form = inbound_sms_form(
                    HER_PHONE, body, to=OUR_NUMBER, account_sid=twilio.account_sid, message_sid=sid
                )
                request = signed_request(twilio.auth_token, f"{PUBLIC}/webhooks/sms", form)
                answer = await web.post(request.path, content=request.body, headers=request.headers)
                assert answer.status_code == 200
                return sid

            async with sending(settings, hamroh):
                received = [await she_texts("Салом")]
                await until(lambda: len(twilio.messages) == 1)
                welcome = twilio.messages[0]
                assert welcome.to == HER_PHONE
                assert (
                    hamroh.flows.text("tg", "Hello! I am Hamroh, help for women. Language:") in welcome.body
                )
                assert welcome.status_callback is not None
                assert welcome.status_callback.startswith(f"{PUBLIC}/webhooks/sms/status#rc=")

                # Twilio reports delivery seconds later; here it could beat the dispatcher's own record.
                await until_recorded(hamroh, 1)
                report = twilio.status_callback(welcome.sid, "delivered")
                answer = await web.post(report.path, content=report.body, headers=report.headers)
                assert answer.status_code == 200
                async with transaction(hamroh.engine) as db:
                    row = (
                        await db.exec(select(OutboxMessage).where(OutboxMessage.provider_id == welcome.sid))
                    ).one()
                assert row.delivery == "delivered"

                received.append(await she_texts("1"))
                received.append(await she_texts("маълумоти маро нест кунед"))
                await until(lambda: len(twilio.messages) == 3)
                await until_recorded(hamroh, 3)  # she reads them before she erases; by then they are recorded
                received.append(await she_texts("1"))  # "Yes, delete"
                await until(lambda: len(twilio.messages) == 4 and len(twilio.deleted) == 7)
                sent = [m.sid for m in twilio.messages]
                assert set(twilio.deleted) == set(received) | set(sent[:3])  # all but the confirmation
                # The confirmation keeps only its SID, until Twilio reports it delivered: then it goes too.
                await until_recorded(hamroh, 1)
                report = twilio.status_callback(sent[3], "delivered")
                answer = await web.post(report.path, content=report.body, headers=report.headers)
                assert answer.status_code == 200
                await until(lambda: len(twilio.deleted) == 8)
            assert sent[3] in twilio.deleted
            async with transaction(hamroh.engine) as db:
                assert (await db.exec(select(Contact))).all() == []
                assert (await db.exec(select(OutboxMessage))).all() == []


async def test_telegram_from_webhook_to_the_bot_api_buttons_answers_and_clearing(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    with FakeTelegram() as telegram:
        settings = telegram_settings(tmp_path, database_url, telegram)
        app = create_app(settings, hamroh)
        her = Her(chat_id=424242)
        async with client(app) as web:

            async def delivers(update: dict[str, object]) -> None:
                answer = await web.post(
                    "/webhooks/telegram",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
                assert answer.status_code == 200

            async with sending(settings, hamroh):
                await delivers(her.says("Салом"))
                await until(lambda: len(telegram.calls_to("sendMessage")) == 1)
                greeting = telegram.calls_to("sendMessage")[0]
                assert greeting.chat_id == 424242
                await delivers(her.presses("lang:tg"))
                await until(lambda: len(telegram.calls_to("sendMessage")) == 2)
                assert len(telegram.calls_to("answerCallbackQuery")) == 1
                await delivers(her.says("/clear"))
                await until(lambda: len(telegram.calls_to("sendMessage")) == 3)
                await until_recorded(hamroh, 3)  # she reads the question before she answers: it is recorded
                await delivers(her.presses("main.clear_chat:clear_chat_done"))
                await until(
                    lambda: (
                        len(telegram.calls_to("deleteMessages")) == 1
                        and len(telegram.calls_to("sendMessage")) == 4
                    )
                )
            deleted = telegram.calls_to("deleteMessages")[0]
            assert deleted.chat_id == 424242
            assert len(deleted.params["message_ids"]) >= 5  # hers and the bot's of the last two days


async def test_serve_sends_through_its_own_dispatcher_by_default(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    with FakeTelegram() as telegram:
        settings = telegram_settings(tmp_path, database_url, telegram)
        app = create_app(settings, hamroh, dispatch=settings.dispatch_in_process)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as web,
        ):
            answer = await web.post(
                "/webhooks/telegram",
                json=Her(chat_id=515).says("Салом"),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
            assert answer.status_code == 200
            await until(lambda: len(telegram.calls_to("sendMessage")) == 1)
        assert telegram.calls_to("sendMessage")[0].chat_id == 515
