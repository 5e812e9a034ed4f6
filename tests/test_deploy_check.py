"""Before going live: `hamroh check --deploy` says what is not ready, and serve in production refuses it.

The deploying organisation's IT person runs the real command; the facts are the real content's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest

from bot.conversation.flows import FlowSet
from bot.readiness import confirmations
from bot.readiness.check import fact_findings
from bot.readiness.confirmations import ConfirmationsError
from bot.readiness.facts import confirm, facts_to_confirm, standings
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, run_hamroh

TELEGRAM_TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"
GOOD_SECRET = "a-long-webhook-secret_0123456789"
TODAY = dt.date(2026, 12, 1)

# Ready for production but for the facts: keys, Telegram with a good secret, an https URL, no simulator.
PRODUCTION = {
    "HAMROH_ENV": "production",
    "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
    "HAMROH_HASH_KEY": TEST_HASH_KEY,
    "HAMROH_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
    "HAMROH_TELEGRAM_SECRET": GOOD_SECRET,
    "HAMROH_PUBLIC_URL": "https://hamroh.example.org",
}


def said(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """What the check said of each subject: {"HAMROH_HASH_KEY": "ERROR ... : repeated characters", ...}."""
    lines = [line for line in result.stdout.splitlines() if line.startswith(("ERROR ", "WARNING "))]
    return {line.split(" ", 1)[1].split(": ", 1)[0]: line for line in lines}


def confirm_all(flows: FlowSet, path: Path) -> None:
    for fact in facts_to_confirm(flows):
        confirmations.append(path, confirm(fact, by="Dilnoza Karimova (lawyer)", today=TODAY))


def test_a_careless_configuration_gets_one_line_per_problem_and_exit_1(tmp_path: Path) -> None:
    careless = {
        "HAMROH_HASH_KEY": "ab" * 20,
        "HAMROH_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "HAMROH_TELEGRAM_SECRET": "short-secret",
        "HAMROH_PUBLIC_URL": "http://hamroh.example.org",
        "HAMROH_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "HAMROH_TWILIO_AUTH_TOKEN": "   ",
        "HAMROH_TWILIO_FROM": "+15005550006",
    }
    result = run_hamroh(["check", "--deploy"], tmp_path, **careless)

    assert result.returncode == 1, result.stderr
    lines = said(result)
    assert lines["HAMROH_ENCRYPTION_KEY"].startswith("ERROR HAMROH_ENCRYPTION_KEY: missing")
    assert lines["HAMROH_HASH_KEY"] == "ERROR HAMROH_HASH_KEY: repeated characters"
    assert lines["HAMROH_TELEGRAM_SECRET"] == "ERROR HAMROH_TELEGRAM_SECRET: shorter than 16 characters"
    assert lines["HAMROH_TWILIO_AUTH_TOKEN"] == "ERROR HAMROH_TWILIO_AUTH_TOKEN: blank while SMS is on"
    assert lines["HAMROH_PUBLIC_URL"] == "ERROR HAMROH_PUBLIC_URL: not https while a channel is on"
    assert lines["HAMROH_SIMULATOR"].startswith("ERROR")  # development: on unless told otherwise
    assert any(s.startswith("fact ") and line.startswith("ERROR") for s, line in lines.items())
    assert lines["directory.gulrukhsor"].startswith("WARNING directory.gulrukhsor: no number")
    assert result.stdout.splitlines()[-1].startswith("not ready for production: ")
    for secret in ("abab", "short-secret", TELEGRAM_TOKEN):
        assert secret not in result.stdout + result.stderr


def test_what_production_refuses_at_once_is_listed_with_everything_else(tmp_path: Path) -> None:
    result = run_hamroh(
        ["check", "--deploy"], tmp_path, HAMROH_ENV="production", HAMROH_TELEGRAM_TOKEN=TELEGRAM_TOKEN
    )

    assert result.returncode == 1, result.stderr
    lines = said(result)
    assert lines["HAMROH_ENCRYPTION_KEY"].startswith("ERROR")
    assert lines["HAMROH_HASH_KEY"].startswith("ERROR")
    assert lines["HAMROH_TELEGRAM_SECRET"] == "ERROR HAMROH_TELEGRAM_SECRET: missing while Telegram is on"
    assert lines["HAMROH_PUBLIC_URL"] == "ERROR HAMROH_PUBLIC_URL: missing: Telegram and Twilio call it"
    assert "HAMROH_SIMULATOR" not in lines  # off in production
    assert "Traceback" not in result.stderr


def test_a_ready_configuration_with_every_fact_confirmed_passes_with_warnings(
    tmp_path: Path, flows: FlowSet
) -> None:
    confirmed = tmp_path / "confirmations.yaml"
    confirm_all(flows, confirmed)

    file = {"HAMROH_CONFIRMATIONS_FILE": str(confirmed)}
    result = run_hamroh(["check", "--deploy"], tmp_path, **file, **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = said(result)
    assert lines
    assert all(line.startswith("WARNING directory.") for line in lines.values())
    assert result.stdout.splitlines()[-1] == f"ready for production: 0 errors, {len(lines)} warnings"
    assert GOOD_SECRET not in result.stdout


def test_a_pilot_may_go_live_with_unconfirmed_facts_as_warnings(tmp_path: Path, flows: FlowSet) -> None:
    result = run_hamroh(["check", "--deploy"], tmp_path, HAMROH_ALLOW_UNCONFIRMED="true", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    first = facts_to_confirm(flows)[0]
    line = said(result)[f"fact {first.id} ({first.where})"]
    assert line.startswith(f"WARNING fact {first.id}")
    assert line.endswith(f"not confirmed: hamroh facts confirm {first.id} --by NAME")


def test_serve_in_production_refuses_to_start_with_one_line_per_error(tmp_path: Path) -> None:
    result = run_hamroh(["serve", "--port", "1"], tmp_path, **(PRODUCTION | {"HAMROH_HASH_KEY": " " * 40}))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "hamroh: ERROR HAMROH_HASH_KEY: blank" in lines
    assert any(line.startswith("hamroh: ERROR fact ") for line in lines)
    assert lines[-1].startswith("hamroh: not started: ")
    assert all(line.startswith("hamroh: ") for line in lines)
    assert "Traceback" not in result.stderr
    assert GOOD_SECRET not in result.stdout + result.stderr


def test_the_deployer_confirms_a_fact_by_its_id_and_pending_then_says_so(
    tmp_path: Path, flows: FlowSet
) -> None:
    fact = facts_to_confirm(flows)[0]
    file = {"HAMROH_CONFIRMATIONS_FILE": str(tmp_path / "confirmations.yaml")}

    result = run_hamroh(["facts", "confirm", fact.id, "--by", "Dilnoza Karimova (lawyer)"], tmp_path, **file)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{fact.id}: confirmed as reviewed {fact.reviewed}, by Dilnoza Karimova")
    [kept] = confirmations.read(tmp_path / "confirmations.yaml")
    assert (kept.fact, kept.reviewed, kept.by) == (fact.id, fact.reviewed, "Dilnoza Karimova (lawyer)")

    pending = run_hamroh(["flows", "check", "--pending"], tmp_path, **file).stdout
    assert f"{fact.id}  ({fact.where}, reviewed {fact.reviewed}; confirmed by Dilnoza Karimova" in pending


def test_an_unknown_fact_is_not_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "confirmations.yaml"

    result = run_hamroh(
        ["facts", "confirm", "legal.no_such_fact", "--by", "Dilnoza"],
        tmp_path,
        HAMROH_CONFIRMATIONS_FILE=str(path),
    )

    assert result.returncode == 2
    assert "legal.no_such_fact" in result.stderr
    assert not path.exists()


def test_a_confirmation_lapses_when_the_fact_is_reviewed_again(tmp_path: Path, flows: FlowSet) -> None:
    fact = facts_to_confirm(flows)[0]
    path = tmp_path / "confirmations.yaml"
    confirmations.append(path, confirm(fact, by="Dilnoza", today=TODAY))
    assert standings([fact], confirmations.read(path))[0].confirmed

    edited = dataclasses.replace(fact, reviewed=dt.date(2027, 3, 1))
    [standing] = standings([edited], confirmations.read(path))

    assert not standing.confirmed
    [finding] = fact_findings([standing], allow=False)
    assert str(finding) == (
        f"ERROR fact {fact.id} ({fact.where}): confirmed by Dilnoza as reviewed {fact.reviewed}, "
        f"changed since (now reviewed 2027-03-01): hamroh facts confirm {fact.id} --by NAME"
    )


def test_the_confirmations_file_reads_as_a_record_one_line_each(tmp_path: Path, flows: FlowSet) -> None:
    path = tmp_path / "confirmations.yaml"
    fact = facts_to_confirm(flows)[0]
    confirmations.append(path, confirm(fact, by="Zarina Rahimova, lawyer: Khujand", today=TODAY))
    confirmations.append(path, confirm(fact, by="Dilnoza", today=TODAY))

    entries = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("- ")]

    assert entries[1] == f"- {{fact: {fact.id}, reviewed: {fact.reviewed}, by: Dilnoza, at: 2026-12-01}}"
    assert [c.by for c in confirmations.read(path)] == ["Zarina Rahimova, lawyer: Khujand", "Dilnoza"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- {fact: legal.alimony, by: Dilnoza, at: 2026-12-01}\n", "entry 1: needs exactly fact, reviewed"),
        ("- {fact: legal.alimony, reviewed: soon, by: Dilnoza, at: 2026-12-01}\n", "reviewed is a date"),
        ("fact: legal.alimony\n", "a list of confirmations"),
        ("- {fact: [\n", "not valid YAML"),
    ],
)
def test_a_confirmations_file_written_wrong_is_refused_with_the_entry(text: str, problem: str) -> None:
    with pytest.raises(ConfirmationsError, match=problem):
        confirmations.parse(text, "confirmations.yaml")


def test_a_file_in_another_yaml_form_is_never_left_unreadable(tmp_path: Path, flows: FlowSet) -> None:
    path = tmp_path / "confirmations.yaml"
    path.write_text("[]\n", encoding="utf-8")

    with pytest.raises(ConfirmationsError, match=re.escape("one `- {fact: ...}` line per entry")):
        confirmations.append(path, confirm(facts_to_confirm(flows)[0], by="Dilnoza", today=TODAY))

    assert path.read_text(encoding="utf-8") == "[]\n"
