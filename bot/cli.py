"""The `hamroh` command: serve, chat, flows check, db upgrade, demo, staff accounts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from signal import SIGINT, SIGTERM
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings
from bot.conversation.flowspec import FlowError
from bot.logs import configure_logging
from bot.readiness.cli import register as add_readiness_commands
from bot.staff.cli import register as add_staff_commands

if TYPE_CHECKING:
    from bot.service import Hamroh

log = logging.getLogger("hamroh")
DATABASE_PROBE_SECONDS = 10.0
UNREACHABLE = "the database cannot be reached: check HAMROH_DATABASE_URL and that the database is running"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hamroh` console command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = getattr(args, "load_settings", load_settings)()  # `check --deploy` reads them as they are
    except ConfigError as exc:
        print(f"hamroh: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if not _may_start(settings, getattr(args, "starts", None)):
        return 1
    try:
        result: int = args.run(settings, args)
        return result
    except FlowError as exc:
        print("hamroh: the flow files have problems; nothing was started:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _unreachable(exc):
            raise
        print(f"hamroh: {UNREACHABLE}", file=sys.stderr)  # never the driver's message: it may quote the URL
        return 1


def _may_start(settings: Settings, starts: str | None) -> bool:
    """Whether a command that starts Hamroh ("channels": it talks to them; "keys": it opens her data) may:
    the same rules as `hamroh check --deploy`, one line each when it may not."""
    from bot.readiness.check import startup_refusals, summary

    if starts is None:
        return True
    refusals = startup_refusals(settings, channels=starts == "channels")
    for finding in refusals:
        print(f"hamroh: {finding}", file=sys.stderr)
    if refusals:
        print(f"hamroh: not started: {summary(refusals)} (see `hamroh check --deploy`)", file=sys.stderr)
        return False
    return starts != "channels" or _database_ready(settings)


def _database_ready(settings: Settings) -> bool:
    """Whether the database answers at start; one line on stderr if it does not."""
    if asyncio.run(_database_answers(settings.database_url)):
        return True
    print(f"hamroh: {UNREACHABLE}", file=sys.stderr)
    return False


async def _database_answers(url: str) -> bool:
    """Whether the database answers a query within DATABASE_PROBE_SECONDS (it is asked once, at start)."""
    import sqlalchemy as sa

    from bot.store.db import create_engine

    engine = None
    try:
        engine = create_engine(url)  # SQLite: makes the file's folder, which may fail too
        async with asyncio.timeout(DATABASE_PROBE_SECONDS), engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # the class only: the driver's message may quote the URL, password and all
        log.debug("database probe failed: %s", type(exc).__name__)
        return False
    finally:
        if engine is not None:
            await engine.dispose()
    return True


def _unreachable(exc: BaseException) -> bool:
    """Whether an error (or one it came from) says the database could not be reached."""
    import sqlalchemy as sa

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | socket.gaierror | TimeoutError | sa.exc.InterfaceError):
            return True
        if isinstance(seen, sa.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hamroh", description="Hamroh, a helpline chatbot.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the web app (webhooks, simulator, health)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers", type=_at_least_one, default=1, help="worker processes (PostgreSQL only; default 1)"
    )
    serve.set_defaults(run=_serve)  # refuses what `check --deploy` calls errors, facts too

    chat = commands.add_parser("chat", help="talk to the bot in the terminal, as SMS or Telegram renders it")
    chat.add_argument("--channel", choices=("sms", "telegram"), default="sms")
    chat.add_argument("--lang", choices=("tg", "ru", "en"))
    chat.add_argument("--from", dest="address", help="her phone number or chat id (default: a test one)")
    chat.set_defaults(run=_chat, starts="keys")

    flows = commands.add_parser("flows", help="content tools")
    flows_commands = flows.add_subparsers(required=True, metavar="COMMAND")
    check = flows_commands.add_parser("check", help="report every problem in the flow files")
    check.add_argument("--pending", action="store_true", help="list the facts still to verify")
    check.add_argument("--budget", type=int, help="SMS segments a screen may take (default: settings)")
    check.set_defaults(run=_flows_check)

    db = commands.add_parser("db", help="database tools")
    db_commands = db.add_subparsers(required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser("upgrade", help="apply migrations up to the newest")
    upgrade.set_defaults(run=_db_upgrade)

    purge = commands.add_parser(
        "purge",
        help="delete now what is past its time: closed cases and transcripts, sent messages, message ids, "
        "menu history, inactive contacts (as serve does every few seconds)",
    )
    purge.set_defaults(run=_purge, starts="keys")

    demo = commands.add_parser("demo", help="development only: add clearly marked example courses")
    demo.set_defaults(run=_demo)

    dispatch = commands.add_parser("dispatch", help="send the outbox in a process of its own")
    dispatch.set_defaults(run=_dispatch, starts="channels")

    outbox = commands.add_parser("outbox", help="what the outbox holds")
    outbox_commands = outbox.add_subparsers(required=True, metavar="COMMAND")
    status = outbox_commands.add_parser("status", help="messages by channel and status, and those in doubt")
    status.set_defaults(run=_outbox_status)

    telegram = commands.add_parser("telegram", help="Telegram tools")
    telegram_commands = telegram.add_subparsers(required=True, metavar="COMMAND")
    webhook = telegram_commands.add_parser("set-webhook", help="register HAMROH_PUBLIC_URL with Telegram")
    webhook.set_defaults(run=_telegram_set_webhook)
    poll = telegram_commands.add_parser("poll", help="development: fetch updates instead of a webhook")
    poll.set_defaults(run=_telegram_poll)

    sms = commands.add_parser("sms", help="SMS tools")
    sms_commands = sms.add_subparsers(required=True, metavar="COMMAND")
    segments = sms_commands.add_parser("segments", help="encoding, segments and length of each text")
    segments.add_argument("texts", nargs="+", metavar="TEXT")
    segments.set_defaults(run=_sms_segments)
    configure = sms_commands.add_parser(
        "configure", help="set the number's (or service's) inbound SMS URLs at Twilio, with retries"
    )
    configure.set_defaults(run=_sms_configure)

    triage = commands.add_parser("triage", help="say which texts crisis triage finds urgent, and why")
    triage.add_argument("texts", nargs="+", metavar="TEXT")
    triage.set_defaults(run=_triage)
    add_staff_commands(commands)
    add_readiness_commands(commands)
    return parser


def _at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from api import workers
    from api.app import create_app
    from bot.readiness.cli import before_serving
    from bot.runtime import channels_said, load_content
    from bot.store.db import async_url
    from bot.store.migrate import behind

    if args.workers > 1 and async_url(settings.database_url).get_backend_name() == "sqlite":
        print(
            f"hamroh: --workers {args.workers} needs PostgreSQL: SQLite has a single writer and its file is "
            "for one process (serve with one worker, or set HAMROH_DATABASE_URL to PostgreSQL)",
            file=sys.stderr,
        )
        return 2
    flows = load_content(settings)  # a broken flow file stops here, before anything listens
    if not before_serving(settings, flows):  # production refuses what `hamroh check --deploy` calls errors
        return 1
    if not _database_ready(settings):
        return 1
    if asyncio.run(behind(settings.database_url)):
        print("hamroh: the database is not up to date: run `hamroh db upgrade` first", file=sys.stderr)
        return 1
    log.info("channels on: %s", channels_said(settings))
    said = f"{settings.env}; simulator {'on' if settings.simulator_on else 'off'}"
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port  # 0: any free port, said once bound
    if args.workers > 1:  # each worker builds its own app; the dispatcher and the jobs run in one of them
        return workers.serve_workers(host, port, args.workers, said)
    app = create_app(settings, flows=flows, dispatch=settings.dispatch_in_process, case_jobs=True)
    return workers.serve(app, host, port, said)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.simulator import Conversation, chat, stdin
    from bot.runtime import build
    from bot.store.crypto import AddressError, normalise_address
    from bot.store.migrate import upgrade

    if not settings.simulator_on:
        print("hamroh: the simulator is off (production)", file=sys.stderr)
        return 2
    default = "tg:100001" if args.channel == "telegram" else "+992900000001"
    try:
        normalise_address(args.channel, args.address or default)
    except AddressError as exc:
        example = "a chat id such as 100001" if args.channel == "telegram" else "such as +992900000001"
        print(f"hamroh: --from: {exc} ({example})", file=sys.stderr)
        return 2

    if settings.env == "development":
        upgrade(settings.database_url)  # the embedded demo database: make it ready rather than fail

    async def run() -> None:
        hamroh = build(settings)
        try:
            await chat(
                Conversation(hamroh, args.channel, args.address or default), args.lang, stdin(), sys.stdout
            )
        finally:
            await hamroh.engine.dispose()

    asyncio.run(run())
    return 0


def _flows_check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.flowcheck import check, shares
    from bot.readiness.cli import pending_facts
    from bot.runtime import load_content

    flows = load_content(settings)
    if args.pending:
        facts = pending_facts(settings, flows)  # by the id `hamroh facts confirm` takes
        print("\n".join([*facts, f"{len(facts)} facts to verify before launch"]))
        return 0
    problems = check(flows, settings.flows_dir, budget=args.budget or settings.sms_segment_budget)
    for problem in problems:
        print(problem)
    for share in shares(flows):  # what her SMS cost: the share of screens that fit one segment
        print(share)
    nodes = len(flows.nodes)
    if problems:
        print(f"{len(problems)} problems in {len(flows.files)} files ({nodes} nodes)", file=sys.stderr)
        return 1
    print(f"ok: {len(flows.files)} files, {nodes} nodes, every screen within the SMS budget, all translated")
    return 0


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from bot.store.migrate import upgrade

    upgrade(settings.database_url)
    log.info("database is up to date")
    return 0


def _purge(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cases.jobs import purge
    from bot.retention import Done, sweep
    from bot.runtime import case_timing, retention_policy, utc_now, vault_for
    from bot.store.db import create_engine, transaction

    async def run() -> tuple[int, Done]:
        engine = create_engine(settings.database_url)
        vault, policy, done = vault_for(settings), retention_policy(settings), Done()
        try:
            async with transaction(engine) as db:
                cases = await purge(db, case_timing(settings).transcript_kept, utc_now())
            while True:  # in bounded rounds, each its own short transaction
                async with transaction(engine) as db:
                    round_done = await sweep(db, vault, policy, utc_now())
                done.add(round_done)
                if not round_done:
                    return cases, done
        finally:
            await engine.dispose()

    cases, done = asyncio.run(run())
    print(f"closed cases purged: {cases}")
    said = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in vars(done).items() if count)
    log.info("retention: %s", said or "nothing was due")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.demo import seed_example_courses
    from bot.runtime import utc_now
    from bot.store.db import create_engine

    if settings.env != "development":
        print("hamroh: example courses are for development only", file=sys.stderr)
        return 2

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await seed_example_courses(engine, utc_now())
        finally:
            await engine.dispose()

    added = asyncio.run(run())
    log.info("example courses: %d added", added)
    return 0


def _until_signalled(settings: Settings, work: Callable[[Hamroh, asyncio.Event], Awaitable[object]]) -> None:
    """Run `work` with the service until SIGINT or SIGTERM sets its stop event; then close the database."""
    from bot.runtime import build

    async def run() -> None:
        hamroh = build(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal in (SIGINT, SIGTERM):
            loop.add_signal_handler(signal, stop.set)
        try:
            await work(hamroh, stop)
        finally:
            stop.set()
            await hamroh.engine.dispose()

    asyncio.run(run())


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import channels_said, run_dispatcher

    log.info("dispatching for: %s", channels_said(settings))
    _until_signalled(settings, lambda hamroh, stop: run_dispatcher(settings, hamroh, stop))
    return 0


def _outbox_status(settings: Settings, args: argparse.Namespace) -> int:
    from bot.outbox_report import report

    for line in asyncio.run(report(settings.database_url)):
        print(line)
    return 0


def _telegram_set_webhook(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.telegram import SetupError, set_webhook

    if not settings.telegram_on or not settings.public_url:
        print(
            "hamroh: set HAMROH_TELEGRAM_TOKEN, HAMROH_TELEGRAM_SECRET and HAMROH_PUBLIC_URL first",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(set_webhook(settings))
    except SetupError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1
    print(f"webhook set: {settings.public_url.rstrip('/')}/webhooks/telegram")
    return 0


def _telegram_poll(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.telegram import SetupError
    from bot.channels.telegram_updates import poll
    from bot.runtime import run_dispatcher

    if not settings.telegram_on:
        print("hamroh: set HAMROH_TELEGRAM_TOKEN and HAMROH_TELEGRAM_SECRET first", file=sys.stderr)
        return 2

    def work(hamroh: Hamroh, stop: asyncio.Event) -> Awaitable[object]:
        # Replies leave through the dispatcher, as always.
        return asyncio.gather(poll(settings, hamroh, stop=stop), run_dispatcher(settings, hamroh, stop))

    try:
        _until_signalled(settings, work)
    except SetupError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1
    return 0


def _sms_segments(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.sms import segments_report

    for line in segments_report(args.texts):
        print(line)
    return 0


def _sms_configure(settings: Settings, args: argparse.Namespace) -> int:
    from bot.channels.twilio_setup import SetupError, configure

    try:
        configured = asyncio.run(configure(settings))
    except SetupError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1
    for line in configured.lines():
        print(line)
    return 0


def _triage(settings: Settings, args: argparse.Namespace) -> int:
    """One line per text, in order: `urgent CATEGORY: RULE` or `normal`. Reads only triage.yaml."""
    from bot.conversation.triage import LEXICON_FILE, classify, load_lexicon

    lexicon = load_lexicon(settings.flows_dir / LEXICON_FILE)
    for text in args.texts:
        verdict = classify(lexicon, text)
        print(f"urgent {verdict.category}: {verdict.rule}" if verdict else "normal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
