"""`hamroh check --deploy`, `hamroh facts confirm`, and the same check when `hamroh serve` starts.

Only the standard library and the settings are imported up front: the `hamroh` command builds this parser
on every run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from bot.config import Settings, load_settings

if TYPE_CHECKING:
    from bot.conversation.flows import FlowSet
    from bot.readiness.check import Finding

log = logging.getLogger("hamroh")


def register(commands: Any) -> None:
    """Add the `check` and `facts` commands to the subcommands of the `hamroh` parser."""
    check = commands.add_parser("check", help="what is not ready for production (exit 1 on errors)")
    check.add_argument(
        "--deploy", action="store_true", required=True, help="check these settings for production"
    )
    check.set_defaults(run=_check, load_settings=settings_as_configured)

    facts = commands.add_parser("facts", help="facts the deploying organisation confirms before launch")
    facts_commands = facts.add_subparsers(required=True, metavar="COMMAND")
    confirm = facts_commands.add_parser(
        "confirm",
        help="record in HAMROH_CONFIRMATIONS_FILE that NAME confirmed these facts as they are now",
    )
    confirm.add_argument("ids", nargs="+", metavar="ID", help="as `hamroh flows check --pending` lists them")
    confirm.add_argument("--by", required=True, metavar="NAME", help="who confirmed them")
    confirm.set_defaults(run=_confirm)


class _AsConfigured(Settings):
    """The settings without the refusals that stop other commands at once: the check lists them all."""

    # A validator of the same name replaces the one it overrides.
    @model_validator(mode="after")
    def _production_needs_keys(self) -> _AsConfigured:
        return self

    @model_validator(mode="after")
    def _telegram_secret_is_usable(self) -> _AsConfigured:
        return self


def settings_as_configured() -> Settings:
    """The settings as the environment gives them, even those `hamroh serve` would refuse."""
    from pydantic import ValidationError

    try:
        return _AsConfigured()
    except ValidationError:
        return load_settings()  # a value that cannot be read at all: the usual clear error


def findings_for(settings: Settings, flows: FlowSet) -> list[Finding]:
    """Everything not ready for production, the confirmations file read now."""
    from bot.readiness import confirmations
    from bot.readiness.check import deploy_check

    try:
        confirmed = confirmations.read(settings.confirmations_file)
    except confirmations.ConfirmationsError as exc:
        return deploy_check(settings, flows, [], unreadable=str(exc))
    return deploy_check(settings, flows, confirmed)


def before_serving(settings: Settings, flows: FlowSet) -> bool:
    """Whether serve may start. In production, errors refuse (one line each) and warnings are logged."""
    from bot.readiness.check import errors, summary

    findings = findings_for(settings, flows)
    if settings.env != "production":
        if findings:
            log.info("not ready for production: %s (see `hamroh check --deploy`)", summary(findings))
        return True
    refusals = errors(findings)
    for finding in refusals:
        print(f"hamroh: {finding}", file=sys.stderr)
    if refusals:
        print(f"hamroh: not started: {summary(findings)} (see `hamroh check --deploy`)", file=sys.stderr)
        return False
    for finding in findings:
        log.warning("%s: %s", finding.subject, finding.problem)  # the log line says WARNING already
    return True


def pending_facts(settings: Settings, flows: FlowSet) -> list[str]:
    """`hamroh flows check --pending`: each fact to verify, by id, and whether a confirmation covers it."""
    from bot.readiness import confirmations
    from bot.readiness.facts import facts_to_confirm, standings

    try:
        confirmed = confirmations.read(settings.confirmations_file)
    except confirmations.ConfirmationsError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        confirmed = []
    facts = []
    for standing in standings(facts_to_confirm(flows), confirmed):
        fact, by = standing.fact, standing.confirmation
        said = f"confirmed by {by.by} on {by.at}" if by else "not confirmed"
        facts.append(
            f"{fact.id}  ({fact.where}, reviewed {fact.reviewed}; {said})\n"
            f"    {fact.what}\n    source: {fact.source}"
        )
    return facts


def _check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.readiness.check import errors, summary
    from bot.runtime import load_content

    findings = findings_for(settings, load_content(settings))
    for finding in findings:
        print(finding)
    verdict = "not ready for production" if errors(findings) else "ready for production"
    print(f"{verdict}: {summary(findings)}")
    return 1 if errors(findings) else 0


def _confirm(settings: Settings, args: argparse.Namespace) -> int:
    from bot.conversation.hours import DUSHANBE
    from bot.readiness import confirmations
    from bot.readiness.facts import confirm, facts_to_confirm, standings
    from bot.runtime import load_content, utc_now

    by = " ".join(args.by.split())
    if settings.confirmations_file is None:
        print("hamroh: set HAMROH_CONFIRMATIONS_FILE first (where confirmations are kept)", file=sys.stderr)
        return 2
    if not by:
        print("hamroh: --by names who confirmed the facts", file=sys.stderr)
        return 2
    facts = {fact.id: fact for fact in facts_to_confirm(load_content(settings))}
    unknown = [i for i in args.ids if i not in facts]
    if unknown:
        print(
            f"hamroh: no fact marked verify: true is called {', '.join(unknown)} "
            "(`hamroh flows check --pending` lists them)",
            file=sys.stderr,
        )
        return 2
    today = utc_now().astimezone(DUSHANBE).date()
    try:
        known = confirmations.read(settings.confirmations_file)
        for standing in standings([facts[i] for i in dict.fromkeys(args.ids)], known):
            if standing.confirmation is not None:
                print(f"{standing.fact.id}: already confirmed by {standing.confirmation.by}")
                continue
            confirmations.append(settings.confirmations_file, confirm(standing.fact, by=by, today=today))
            print(f"{standing.fact.id}: confirmed as reviewed {standing.fact.reviewed}, by {by}, on {today}")
    except (confirmations.ConfirmationsError, OSError) as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1
    return 0
