"""Bad input is a 4xx (or a safe 200), never a 503 that the provider delivers again forever.

Telegram redelivers every update answered with anything but 2xx, and Twilio retries a 5xx when its URL
asks for it: an update that can never succeed must not look like a passing failure. Only a real transient
failure (the database is down) is a 503.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from api.app import create_app
from bot.config import Settings
from bot.service import Hamroh
from bot.store import Contact, Delivery
from bot.store.db import create_engine, transaction
from tests.conftest import settings_for_tests
from tests.fakes.twilio_api import inbound_sms_form, signed_request

SECRET = "bad-input-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
TOKEN = "123456:TEST-token"
PUBLIC = "https://hamroh.example.org"
ACCOUNT = "AC" + "1" * 32
TWILIO_TOKEN = "t" * 32
OUR_NUMBER = "+15005550006"
BIG = 2**63


def chat(chat_id: object = 7, kind: object = "private") -> dict[str, object]:
    return {"id": chat_id, "type": kind}


def message(**fields: object) -> dict[str, object]:
    """A message of hers as Telegram sends it, with any field replaced."""
    return {"message_id": 5, "date": 1_700_000_000, "chat": chat(), "text": "Салом"} | fields


def pressed(**fields: object) -> dict[str, object]:
    """A pressed button as Telegram sends it, with any field replaced."""
    user = {"id": 7, "is_bot": False, "first_name": "x"}
    return {
        "id": "42",
        "from": user,
        "chat_instance": "1",
        "data": "lang:tg",
        "message": message(text="Language:"),
    } | fields


NEVER_SUCCEED: dict[str, dict[str, Any]] = {
    "an empty my_chat_member": {"update_id": 1, "my_chat_member": {}},
    "my_chat_member without its chat": {
        "update_id": 1,
        "my_chat_member": {"new_chat_member": {"status": "kicked", "user": {"id": 1}}},
    },
    "my_chat_member of an absurd chat": {
        "update_id": 1,
        "my_chat_member": {
            "chat": chat(BIG * 4),
            "from": {"id": 7, "is_bot": False, "first_name": "x"},
            "date": 1_700_000_000,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True, "first_name": "b"}},
            "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True, "first_name": "b"}},
        },
    },
    "a message id of 2^63": {"update_id": 1, "message": message(message_id=BIG)},
    "a message id of -2^63 - 1": {"update_id": 1, "message": message(message_id=-BIG - 1)},
    "a message id as a string": {"update_id": 1, "message": message(message_id="5")},
    "an update id of 2^63": {"update_id": BIG, "message": message()},
    "an update id of 10^200": {"update_id": 10**200, "message": message()},
    "a negative update id": {"update_id": -1, "message": message()},
    "a chat id of 2^70": {"update_id": 1, "message": message(chat=chat(2**70))},
    "a chat id as a float": {"update_id": 1, "message": message(chat=chat(7.5))},
    "a chat without its type": {"update_id": 1, "message": message(chat={"id": 7})},
    "a chat that is a list": {"update_id": 1, "message": message(chat=[7])},
    "a message that is a string": {"update_id": 1, "message": "hi"},
    "a message without its chat": {"update_id": 1, "message": {"message_id": 5, "date": 0, "text": "x"}},
    "text that is a number": {"update_id": 1, "message": message(text=12)},
    "text that is an object": {"update_id": 1, "message": message(text={"a": 1})},
    "text with a lone surrogate": {"update_id": 1, "message": message(text="\ud800 hi")},
    "text with a NUL": {"update_id": 1, "message": message(text="hi\u0000there")},
    "a date of year 10^12": {"update_id": 1, "message": message(date=10**20)},
    "a date as text": {"update_id": 1, "message": message(date="yesterday")},
    "a photo that is a string": {"update_id": 1, "message": message(text=None, photo="p")},
    "a photo of absurd sizes": {
        "update_id": 1,
        "message": message(text=None, photo=[{"file_id": 1, "width": "w"}]),
    },
    "a caption with a lone surrogate": {
        "update_id": 1,
        "message": message(
            text=None,
            caption="\udfff",
            photo=[{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
        ),
    },
    "a button without its sender": {
        "update_id": 1,
        "callback_query": {k: v for k, v in pressed().items() if k != "from"},
    },
    "a button with absurd data": {"update_id": 1, "callback_query": pressed(data="\ud800" * 10)},
    "a button with data of 10,000 characters": {"update_id": 1, "callback_query": pressed(data="x" * 10_000)},
    "a button with an object for data": {"update_id": 1, "callback_query": pressed(data={"a": 1})},
    "a button with an id of 10,000 characters": {"update_id": 1, "callback_query": pressed(id="9" * 10_000)},
    "a button under a message of id 2^63": {
        "update_id": 1,
        "callback_query": pressed(message=message(message_id=BIG)),
    },
    "a button in an absurd chat": {
        "update_id": 1,
        "callback_query": pressed(message=message(chat=chat(-(2**80)))),
    },
    "an edit of 2^63": {"update_id": 1, "edited_message": message(message_id=BIG)},
    "nothing but an id": {"update_id": 1},
    "an update id that is true": {"update_id": True, "message": message()},
}


def telegram_settings(tmp_path: Path, database_url: str, **more: Any) -> Settings:
    return settings_for_tests(tmp_path, database_url, telegram_token=TOKEN, telegram_secret=SECRET, **more)  # type: ignore[arg-type]


def web(settings: Settings, hamroh: Hamroh | None = None) -> httpx.AsyncClient:
    app = create_app(settings, hamroh)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_an_update_that_can_never_succeed_is_not_answered_503(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    settings = telegram_settings(tmp_path, database_url)
    answered: dict[str, list[int]] = {}
    async with web(settings, hamroh) as client:
        for name, update in NEVER_SUCCEED.items():
            for _ in (1, 2):  # the same again, as Telegram would: the same answer, nothing twice
                answer = await client.post("/webhooks/telegram", content=json.dumps(update), headers=HEADERS)
                answered.setdefault(name, []).append(answer.status_code)
                assert "method" not in answer.text, name
        retried = {name: codes for name, codes in answered.items() if any(c >= 500 for c in codes)}
        assert retried == {}
        # And the webhook still works for her.
        ok = {"update_id": 99, "message": message(message_id=6)}
        answer = await client.post(
            "/webhooks/telegram", json=ok, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        assert answer.status_code == 200
    async with transaction(hamroh.engine) as db:
        assert "u99" in [d.provider_id for d in (await db.exec(select(Delivery))).all()]


async def test_a_database_that_is_down_is_still_503(
    tmp_path: Path, flows: Any, vault: Any, clock: Any
) -> None:
    """The one transient failure: her update is not acknowledged, so Telegram delivers it again."""
    settings = telegram_settings(tmp_path, "sqlite:///" + str(tmp_path / "missing" / "no.db"))
    engine = create_engine(settings.database_url)
    hamroh = Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=lambda: "p")
    try:
        async with web(settings, hamroh) as client:
            answer = await client.post(
                "/webhooks/telegram",
                json={"update_id": 1, "message": message()},
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
        assert answer.status_code == 503
    finally:
        await engine.dispose()


SMS_ABSURD: dict[str, dict[str, str]] = {
    "a sender that is no number": {"From": "not-a-number"},
    "a sender of 400 digits": {"From": "+" + "9" * 400},
    "a message SID of 10,000 characters": {"MessageSid": "SM" + "a" * 10_000},
    "an empty message SID": {"MessageSid": ""},
    "a body with a NUL": {"Body": "hi\u0000there"},
    "a body of 100,000 characters": {"Body": "ы" * 20_000},
    "media of 10^9 items": {"NumMedia": "1000000000"},
    "media that is no number": {"NumMedia": "many"},
    "segments of -1": {"NumSegments": "-1"},
}


@pytest.mark.parametrize("name", list(SMS_ABSURD))
async def test_absurd_sms_is_not_answered_5xx(
    tmp_path: Path, database_url: str, hamroh: Hamroh, name: str
) -> None:
    settings = settings_for_tests(
        tmp_path,
        database_url,
        public_url=PUBLIC,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_from=OUR_NUMBER,
    )
    form = inbound_sms_form(
        "+992935551234", "Салом", to=OUR_NUMBER, account_sid=ACCOUNT, message_sid="SM" + "b" * 32
    )
    form = {**form, **SMS_ABSURD[name]}
    request = signed_request(TWILIO_TOKEN, f"{PUBLIC}/webhooks/sms", form)
    async with web(settings, hamroh) as client:
        for _ in (1, 2):
            answer = await client.post(request.path, content=request.body, headers=request.headers)
            assert answer.status_code < 500, f"{name}: {answer.status_code}"
    async with transaction(hamroh.engine) as db:
        assert len((await db.exec(select(Contact))).all()) <= 1
