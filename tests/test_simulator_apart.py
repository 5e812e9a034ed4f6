"""The simulator never touches a real woman: typing her number or her chat id reaches a contact of its
own, and nothing it causes (her replies, clearing a chat, deleting SMS at Twilio, a counsellor's words)
leaves through a real channel.

A real woman writes by SMS and on Telegram, through the webhooks, to fake Twilio and Telegram servers;
then someone at the web simulator types her number and her chat id, subscribes, stops, clears the chat,
asks for a counsellor, and erases. Her contacts are untouched and the servers hear nothing more.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from api.app import create_app
from bot import outbox
from bot.cases import actions
from bot.channels.simulated import is_simulated, simulated_address
from bot.config import Settings
from bot.dispatcher import Dispatcher, Limits
from bot.service import Hamroh
from bot.store import Case, Contact, ConversationState, OutboxMessage, Staff
from bot.store.db import transaction
from tests.conftest import Clock, settings_for_tests
from tests.fakes.telegram_api import FakeTelegram, Her
from tests.fakes.twilio_api import FakeTwilio, inbound_sms_form, signed_request
from tests.test_end_to_end import client, sending, until

PUBLIC = "https://hamroh.example.org"
HER_PHONE = "+992935551234"
HER_CHAT = 424242
OUR_NUMBER = "+15005550006"
SECRET = "apart-secret"


def both_channels(tmp_path: Path, database_url: str, twilio: FakeTwilio, telegram: FakeTelegram) -> Settings:
    return settings_for_tests(
        tmp_path,
        database_url,
        public_url=PUBLIC,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from=OUR_NUMBER,
        twilio_api_url=twilio.api_url,
        telegram_token=telegram.token,
        telegram_secret=SECRET,
        telegram_api_url=telegram.api_url,
        telegram_chat_messages_per_second=100,
        twilio_segments_per_second=100,
    )


async def her_records(hamroh: Hamroh) -> list[tuple[Any, ...]]:
    """Her real contacts as they stand: who, language, subscription, opt-out, and where she is."""
    async with transaction(hamroh.engine) as db:
        contacts = (await db.exec(select(Contact).order_by(col(Contact.id)))).all()
        real = [c for c in contacts if not is_simulated(hamroh.vault.open(c.address))]
        states = {s.contact_id: s.state for s in (await db.exec(select(ConversationState))).all()}
    return [(c.id, c.fingerprint, c.lang, c.subscribed, c.opted_out, states.get(c.id)) for c in real]


def number_of(reply: str, label: str) -> str:
    """The number an SMS list gives an option."""
    for line in reply.splitlines():
        number, _, text = line.partition(" ")
        if text == label and number.isdigit():
            return number
    raise AssertionError(f"{label!r} not in\n{reply}")


def button_of(reply: dict[str, Any], label: str) -> str:
    """The callback data of a Telegram button, by its label."""
    rows = reply["reply_markup"]["inline_keyboard"]
    found = {b["text"]: b["callback_data"] for row in rows for b in row}
    assert label in found, f"{label!r} not among {list(found)}"
    return str(found[label])


async def test_the_simulator_typing_her_number_never_reaches_her(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    t = lambda msgid: hamroh.flows.text("tg", msgid)  # noqa: E731
    with FakeTwilio() as twilio, FakeTelegram() as telegram:
        settings = both_channels(tmp_path, database_url, twilio, telegram)
        app = create_app(settings, hamroh)
        her_phone = Her(chat_id=HER_CHAT)
        async with client(app) as web, sending(settings, hamroh):

            async def she_texts(body: str) -> None:
                sid = twilio.receive(from_=HER_PHONE, body=body)
                form = inbound_sms_form(
                    HER_PHONE, body, to=OUR_NUMBER, account_sid=twilio.account_sid, message_sid=sid
                )
                request = signed_request(twilio.auth_token, f"{PUBLIC}/webhooks/sms", form)
                answer = await web.post(request.path, content=request.body, headers=request.headers)
                assert answer.status_code == 200

            async def she_writes_on_telegram(update: dict[str, object]) -> None:
                headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
                answer = await web.post("/webhooks/telegram", json=update, headers=headers)
                assert answer.status_code == 200

            # She is real: by SMS and on Telegram, in Tajik, subscribed to news on SMS.
            await she_texts("Салом")
            await she_texts("1")
            await she_texts("обуна")
            await she_texts("1")
            await she_writes_on_telegram(her_phone.says("Салом"))
            await she_writes_on_telegram(her_phone.presses("lang:tg"))
            await until(lambda: len(twilio.messages) == 4 and len(telegram.calls_to("sendMessage")) == 2)
            await asyncio.sleep(0.5)  # the dispatcher records what it sent
            before = await her_records(hamroh)
            assert [subscribed for _, _, _, subscribed, _, _ in before] == [True, False]  # SMS: news on
            calls_at_twilio, calls_at_telegram = len(twilio.calls), len(telegram.calls)

            async def simulates(channel: str, address: str, text: str = "", button: str | None = None) -> Any:
                message = {"channel": channel, "address": address, "text": text, "button": button}
                answer = await web.post("/simulator/messages", json=message)
                assert answer.status_code == 200, answer.text
                return answer.json()

            async def sms(text: str) -> str:
                return str((await simulates("sms", "+992 93 555 12 34", text))["replies"][-1]["text"])

            # Someone types her number at the simulator: a contact of the simulator's own.
            welcome = await sms("Салом")
            assert welcome.startswith(t("Hello! I am Hamroh, help for women. Language:"))  # not her menu
            await sms("1")
            news = await sms("обуна")
            await sms(number_of(news, t("Stop news")))
            assert (await sms("СТОП")).startswith(
                t("Done. You will get no more messages. Write START to come back.")
            )
            assert (await sms("start")).startswith(t("Welcome back. Messages are on again."))
            question = await sms("маълумоти маро нест кунед")
            assert (await sms(number_of(question, t("Yes, delete")))).startswith(
                t("Your data has been deleted.")
            )

            # And her chat id: clear the chat, then ask for a counsellor.
            async def tg(text: str = "", button: str | None = None) -> Any:
                return await simulates("telegram", str(HER_CHAT), text, button)

            await tg("/start")
            await tg(button="lang:tg")
            ask = await tg("/clear")
            cleared = await tg(button=button_of(ask["replies"][-1], t("Yes, delete")))
            assert [c["op"] for c in cleared["commands"]] == ["clear_chat"]
            counsellor = (await tg("консультант"))["replies"][-1]
            await tg(button=button_of(counsellor, t("I feel bad")))

            # A counsellor answers the simulated case: the simulator shows it, no channel sends it.
            async with transaction(hamroh.engine) as db:
                (case,) = (await db.exec(select(Case))).all()
                staff = Staff(name="dilnoza", role="counsellor", password_hash="-", created_at=hamroh.clock())
                db.add(staff)
                await db.flush()
                assert case.id is not None
                await actions.claim(db, case_id=case.id, staff=staff, now=hamroh.clock())
                await actions.reply(
                    db,
                    hamroh.vault,
                    case_id=case.id,
                    staff=staff,
                    text="Салом",
                    now=hamroh.clock(),
                    send_now=True,
                )
            await asyncio.sleep(1.0)  # the dispatcher is woken by the row: time to do harm, if it would
            assert "Салом" in [r["text"] for r in (await tg("ташаккур"))["replies"]]

            await asyncio.sleep(0.5)
            assert len(twilio.calls) == calls_at_twilio, "the simulator reached Twilio"
            assert len(telegram.calls) == calls_at_telegram, "the simulator reached Telegram"
            assert twilio.deleted == []
        assert await her_records(hamroh) == before  # her screen, subscription and opt-out as she left them


async def test_the_dispatcher_never_sends_a_row_addressed_to_the_simulator(
    tmp_path: Path, database_url: str, hamroh: Hamroh, clock: Clock
) -> None:
    """Whatever wrote it: a queued row to a simulated address fails, and the provider hears nothing."""
    from bot.runtime import senders_for

    with FakeTwilio() as twilio, FakeTelegram() as telegram:
        settings = both_channels(tmp_path, database_url, twilio, telegram)
        async with transaction(hamroh.engine) as db:
            rows = [
                outbox.row(
                    hamroh.vault,
                    contact_id=None,
                    channel=channel,
                    sealed_address=hamroh.vault.seal(simulated_address(address)),
                    body=body,
                    now=clock(),
                    kind=kind,
                )
                for channel, address, body, kind in [
                    ("sms", HER_PHONE, {"op": "delete_sms", "sids": ["SM" + "0" * 32]}, "command"),
                    ("sms", HER_PHONE, {"text": "hello"}, "reply"),
                    ("telegram", f"tg:{HER_CHAT}", {"op": "clear_chat", "message_ids": [1, 2]}, "command"),
                    ("telegram", f"tg:{HER_CHAT}", {"text": "hello"}, "reply"),
                ]
            ]
            await outbox.add(db, rows)
        senders = senders_for(settings)
        dispatcher = Dispatcher(
            hamroh.engine, hamroh.vault, senders, Limits({}, {}), clock, poll_interval=0.02
        )
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            await until(lambda: dispatcher.counts.failed == 4, within=10)
        finally:
            stop.set()
            await task
            for sender in senders:
                await sender.close()
        assert twilio.calls == []
        assert telegram.calls == []
        async with transaction(hamroh.engine) as db:
            statuses = [r.status for r in (await db.exec(select(OutboxMessage))).all()]
        assert statuses == [outbox.FAILED] * 4
