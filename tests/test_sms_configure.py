"""`hamroh sms configure`: Twilio is told to retry her SMS, and the retried, overridden URL still verifies.

The real twilio SDK sets the URLs at the fake Twilio (tests/fakes/twilio_numbers.py); then the inbound SMS
Twilio would post to the URL it was given is posted, signed, to the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from bot.channels import twilio
from bot.channels.twilio_setup import SetupError, configure, shown
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.store.crypto import Vault
from bot.store.db import create_engine
from tests.conftest import Clock, Tokens, run_hamroh, settings_for_tests
from tests.fakes.twilio_api import FakeTwilio, inbound_sms_form, signed_request
from tests.fakes.twilio_numbers import without_fragment

PUBLIC_URL = "https://hamroh.example.org"
NUMBER = "+15005550006"
OVERRIDES = "rc=5&rp=all&ct=5000&rt=10000"  # what an 8 s turn limit asks of Twilio


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


def sms_settings(tmp_path: Path, sqlite_url: str, fake: FakeTwilio, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_from": NUMBER,
        "twilio_api_url": fake.api_url,
    }
    return settings_for_tests(tmp_path, sqlite_url, **(values | more))


# Setting the URLs at Twilio


def test_configure_points_her_number_at_hamroh_with_retries_and_says_what_it_set(
    tmp_path: Path, fake: FakeTwilio
) -> None:
    sid = fake.numbers.add(NUMBER, sms_application_sid="AP" + "0" * 32)
    fake.numbers.add("+15005550007")  # another number of the account stays as it was

    done = run_hamroh(
        ["sms", "configure"],
        tmp_path,
        HAMROH_PUBLIC_URL=PUBLIC_URL,
        HAMROH_TWILIO_ACCOUNT_SID=fake.account_sid,
        HAMROH_TWILIO_AUTH_TOKEN=fake.auth_token,
        HAMROH_TWILIO_FROM=NUMBER,
        HAMROH_TWILIO_API_URL=fake.api_url,
    )

    assert done.returncode == 0, done.stderr
    number = fake.numbers.number(sid)
    assert number.sms_url == f"{PUBLIC_URL}/webhooks/sms#{OVERRIDES}"
    assert number.sms_fallback_url == f"{PUBLIC_URL}/webhooks/sms/fallback#{OVERRIDES}"
    assert (number.sms_method, number.sms_fallback_method) == ("POST", "POST")
    assert number.sms_application_sid is None  # an SMS application would have taken her messages
    assert fake.numbers.updates == 1
    assert done.stdout.splitlines() == [
        f"number {NUMBER} ({sid}): inbound SMS -> POST {PUBLIC_URL}/webhooks/sms#{OVERRIDES}",
        f"number {NUMBER} ({sid}): fallback -> POST {PUBLIC_URL}/webhooks/sms/fallback#{OVERRIDES}",
    ]
    assert fake.auth_token not in done.stdout + done.stderr


async def test_configure_sets_a_messaging_service_and_tells_it_to_use_its_own_urls(
    tmp_path: Path, sqlite_url: str, fake: FakeTwilio
) -> None:
    service = fake.numbers.add_service()
    settings = sms_settings(
        tmp_path, sqlite_url, fake, twilio_from=None, twilio_messaging_service_sid=service
    )

    configured = await configure(settings)

    set_ = fake.numbers.service(service)
    assert set_.inbound_request_url == f"{PUBLIC_URL}/webhooks/sms#{OVERRIDES}"
    assert set_.fallback_url == f"{PUBLIC_URL}/webhooks/sms/fallback#{OVERRIDES}"
    assert set_.use_inbound_webhook_on_number == "false"
    assert set_.status_callback == f"{PUBLIC_URL}/webhooks/sms/status#{OVERRIDES}"
    assert configured.lines()[-1] == (
        f"messaging service {service}: delivery reports -> POST {PUBLIC_URL}/webhooks/sms/status#{OVERRIDES}"
    )


async def test_configure_says_when_the_number_is_not_in_the_account_or_twilio_refuses(
    tmp_path: Path, sqlite_url: str, fake: FakeTwilio
) -> None:
    fake.numbers.add("+15005550007")
    with pytest.raises(SetupError, match=r"no number \+15005550006"):
        await configure(sms_settings(tmp_path, sqlite_url, fake))
    fake.numbers.add(NUMBER)
    with pytest.raises(SetupError, match="HTTP 401 error 20003"):
        await configure(sms_settings(tmp_path, sqlite_url, fake, twilio_auth_token="f" * 32))
    assert fake.numbers.updates == 0


async def test_configure_needs_the_public_address(tmp_path: Path, sqlite_url: str, fake: FakeTwilio) -> None:
    with pytest.raises(SetupError, match="HAMROH_PUBLIC_URL"):
        await configure(sms_settings(tmp_path, sqlite_url, fake, public_url=None))


def test_a_printed_url_never_shows_a_password() -> None:
    assert shown("https://user:secret@hamroh.example.org:8443/webhooks/sms#rc=5") == (
        "https://hamroh.example.org:8443/webhooks/sms#rc=5"
    )


def test_twilio_waits_longer_than_a_turn_may_take_but_never_past_its_own_limit() -> None:
    assert twilio.connection_overrides(8) == OVERRIDES
    assert twilio.connection_overrides(14) == "rc=5&rp=all&ct=5000&rt=15000"


# Her SMS at the URL Twilio was given


@pytest.fixture
async def client(
    tmp_path: Path, sqlite_url: str, fake: FakeTwilio, flows: FlowSet, vault: Vault, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(sqlite_url)
    hamroh = Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    app = create_app(sms_settings(tmp_path, sqlite_url, fake), hamroh)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c
    await engine.dispose()


async def her_sms_to_the_configured_url(
    fake: FakeTwilio, client: httpx.AsyncClient, *, url: str, body: str = "Салом"
) -> httpx.Response:
    form = inbound_sms_form("+992937711942", body, to=NUMBER, account_sid=fake.account_sid)
    request = signed_request(fake.auth_token, url, form)  # the fragment is never part of the request
    return await client.post(request.path, content=request.body, headers=request.headers)


@pytest.mark.parametrize("signed_with_the_fragment", [True, False])
@pytest.mark.parametrize("path", ["/webhooks/sms", "/webhooks/sms/fallback"])
async def test_her_sms_is_taken_whether_twilio_signs_the_overrides_or_not(
    fake: FakeTwilio,
    client: httpx.AsyncClient,
    tmp_path: Path,
    sqlite_url: str,
    path: str,
    signed_with_the_fragment: bool,
) -> None:
    fake.numbers.add(NUMBER)
    configured = await configure(sms_settings(tmp_path, sqlite_url, fake))
    url = configured.inbound_url if path == "/webhooks/sms" else configured.fallback_url
    assert url.endswith(f"{path}#{OVERRIDES}")

    response = await her_sms_to_the_configured_url(
        fake, client, url=url if signed_with_the_fragment else without_fragment(url)
    )

    assert response.status_code == 200, response.text


async def test_a_signature_over_a_fragment_not_ours_is_refused(
    fake: FakeTwilio, client: httpx.AsyncClient
) -> None:
    other = f"{PUBLIC_URL}/webhooks/sms#rc=1&rp=ct"
    assert (await her_sms_to_the_configured_url(fake, client, url=other)).status_code == 403
