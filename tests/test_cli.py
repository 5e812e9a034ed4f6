"""The `hamroh` command as an IT person or a content editor uses it: real processes, real exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import ROOT
from tests.conftest import run_hamroh

run = run_hamroh


def broken_flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", folder)
    path = folder / "legal.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("nodes:", "nodes: [", 1), encoding="utf-8")
    return folder


def test_flows_check_passes_on_the_real_content(tmp_path: Path) -> None:
    result = run(["flows", "check"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("ok:")
    assert "ru cyrillic: " in result.stdout  # the share of SMS screens that fit one segment


def test_flows_check_names_file_and_line_of_a_broken_flow(tmp_path: Path) -> None:
    result = run(["flows", "check"], tmp_path, HAMROH_FLOWS_DIR=str(broken_flows(tmp_path)))
    assert result.returncode == 1
    assert "legal.yaml:" in result.stderr
    assert "not valid YAML" in result.stderr


def test_serve_refuses_to_start_with_a_broken_flow(tmp_path: Path) -> None:
    result = run(["serve", "--port", "1"], tmp_path, HAMROH_FLOWS_DIR=str(broken_flows(tmp_path)))
    assert result.returncode == 1
    assert "nothing was started" in result.stderr
    assert "legal.yaml:" in result.stderr


def test_pending_lists_the_facts_to_verify(tmp_path: Path) -> None:
    result = run(["flows", "check", "--pending"], tmp_path)
    assert result.returncode == 0
    assert "facts to verify before launch" in result.stdout
    assert "1313" in result.stdout


def test_production_without_keys_refuses_and_prints_no_secret(tmp_path: Path) -> None:
    result = run(["serve"], tmp_path, HAMROH_ENV="production", HAMROH_HASH_KEY="very-secret-hash-key-" * 3)
    assert result.returncode == 2
    assert "HAMROH_ENCRYPTION_KEY" in result.stderr
    assert "very-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_a_scripted_sms_chat_prints_replies_with_their_cost(tmp_path: Path, lang: str) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["chat", "--channel", "sms", "--lang", lang], tmp_path, stdin="алимент\n0\n")
    assert result.returncode == 0, result.stderr
    assert "> алимент" in result.stdout
    assert "SMS, ucs2" in result.stdout
    assert "\n1 " in result.stdout
    assert "\n0 " in result.stdout


def test_telegram_chat_shows_buttons_and_a_number_taps_one(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["chat", "--channel", "telegram", "--lang", "ru", "--from", "555"], tmp_path, stdin="1\n")
    assert result.returncode == 0, result.stderr
    menu, _, after = result.stdout.partition("> 1")
    assert "[1: " in menu
    assert after.strip()


def test_two_addresses_are_two_conversations(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    run(["chat", "--lang", "ru", "--from", "+992900000011"], tmp_path, stdin="")
    second = run(["chat", "--from", "+992900000012"], tmp_path, stdin="hello\n")
    assert "Тоҷикӣ" in second.stdout  # a new woman is greeted and asked for her language


def test_serve_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    result = run(["serve", "--port", "1"], tmp_path)
    assert result.returncode == 1
    assert "run `hamroh db upgrade` first" in result.stderr


def test_example_courses_are_refused_outside_development(tmp_path: Path) -> None:
    keys = {
        "HAMROH_ENCRYPTION_KEY": "x8Jm2C0j0W2oQ2gQJ3bq1V5xvJt0m7Ykq3d7S0xwZ3U=",
        "HAMROH_HASH_KEY": "h" * 40,
    }
    result = run(["demo"], tmp_path, HAMROH_ENV="production", **keys)
    assert result.returncode == 2
    assert "development only" in result.stderr


def test_sms_segments_prints_encoding_segments_and_length(tmp_path: Path) -> None:
    result = run(["sms", "segments", "Салом", "hello €", "x" * 161], tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["ucs2 1 5", "gsm7 1 7", "gsm7 2 161"]


def test_outbox_status_counts_without_showing_anyone(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    assert run(["outbox", "status"], tmp_path).stdout.strip() == "the outbox is empty"
    run(["chat", "--from", "+992900000013"], tmp_path, stdin="hello\n")
    report = run(["outbox", "status"], tmp_path).stdout
    assert report.split() == ["sms", "reply", "sent", "1"]
    assert "992" not in report


def test_telegram_set_webhook_registers_the_public_url_with_its_secret(tmp_path: Path) -> None:
    from tests.fakes.telegram_api import FakeTelegram

    with FakeTelegram() as fake:
        env = {
            "HAMROH_TELEGRAM_TOKEN": fake.token,
            "HAMROH_TELEGRAM_SECRET": "cli-webhook-secret",
            "HAMROH_TELEGRAM_API_URL": fake.api_url,
            "HAMROH_PUBLIC_URL": "https://hamroh.example.org",
        }
        result = run(["telegram", "set-webhook"], tmp_path, **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "webhook set: https://hamroh.example.org/webhooks/telegram"
        assert fake.webhook is not None
        assert fake.webhook["url"] == "https://hamroh.example.org/webhooks/telegram"
        assert fake.webhook["secret_token"] == "cli-webhook-secret"
        assert fake.token not in result.stdout + result.stderr


def test_telegram_commands_refuse_without_credentials(tmp_path: Path) -> None:
    for command in (["telegram", "set-webhook"], ["telegram", "poll"]):
        result = run(command, tmp_path)
        assert result.returncode == 2
        assert "HAMROH_TELEGRAM_TOKEN" in result.stderr


def test_purge_deletes_only_cases_closed_long_ago(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    # A danger message opens an urgent case; leaving with "0" closes it (outcome "left").
    run(["chat", "--from", "+992900000014", "--lang", "ru"], tmp_path, stdin="мард маро мезанад\n0\n")
    assert run(["purge"], tmp_path).stdout.strip() == "closed cases purged: 0"  # closed just now
    assert (
        run(["purge"], tmp_path, HAMROH_TRANSCRIPT_DAYS="0.000001").stdout.strip() == "closed cases purged: 1"
    )
