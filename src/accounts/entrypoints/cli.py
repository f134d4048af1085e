"""The `accounts` command: serve, worker, migrate, token, events and interim sub-commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accounts.runtime import configure_logging
from accounts.settings import DEV_JWT_SECRET, ConfigurationError, Settings, get_settings

if TYPE_CHECKING:
    from accounts.domain.charges import ChargeRun
    from accounts.service.listener import Flag

log = logging.getLogger("accounts")
# `accounts demo load`'s defaults (accounts.demo.loader's, repeated so `--help` needs no import of it).
DEMO_TENURES, DEMO_WEEKS, DEMO_SEED = 300, 52, 1


def _stop_on_sigterm(stop: Flag) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("received signal %d: finishing the work in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from accounts.adapters.database.migrate import migrate

    before, after = migrate(settings.database_url)
    where = _safe_url(settings.database_url)
    if before == after:
        print(f"database schema is up to date (revision {after}): {where}")
    else:
        print(f"database schema brought up to date (revision {before or 'none'} -> {after}): {where}")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.entrypoints.http.auth import mint_token

    private_key = Path(args.private_key).read_text(encoding="utf-8") if args.private_key else None
    groups = args.group or settings.write_groups
    print(
        mint_token(
            settings,
            name=args.name,
            email=args.email,
            groups=groups,
            lifetime=timedelta(hours=args.hours),
            private_key=private_key,
        )
    )
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from accounts.bootstrap import bootstrap
    from accounts.entrypoints.http.app import create_app
    from accounts.entrypoints.http.auth import mint_token
    from accounts.entrypoints.worker import Worker
    from accounts.runtime import tune_garbage_collector

    application = bootstrap(settings, run_migrations=True)
    app = create_app(application)
    worker = None
    if settings.run_worker_in_serve and not args.no_worker:
        worker = Worker(application, sync_process=settings.worker_sync_process)
        worker.start()
        _stop_with_the_app(app, worker)
    if settings.environment != "production" and settings.jwt_secret == DEV_JWT_SECRET:
        token = mint_token(
            settings,
            name="Local Developer",
            email="developer@localhost",
            groups=sorted(set(settings.read_groups) | set(settings.write_groups)),
        )
        print(
            f"\nAccounts API on http://{settings.host}:{settings.port}/api/v1 "
            f"(docs at /api/v1/docs)\nA bearer token for trying it out (12 hours, read and write):\n\n"
            f"  export TOKEN={token}\n\n"
            f'  curl -H "Authorization: Bearer $TOKEN" http://{settings.host}:{settings.port}/api/v1/target-types\n\n'
            f"The pages: open http://{settings.host}:{settings.port}/sign-in and paste the token.\n",
            flush=True,
        )
    tune_garbage_collector()  # the API allocates quickly too: every request makes short-lived objects
    try:
        # log_config=None: uvicorn's loggers (uvicorn.error, uvicorn.access) go through the service's own
        # handler (`runtime.configure_logging`), in its format, each access line with its correlation id.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,
            workers=1,
        )
    finally:
        if worker is not None:
            worker.shutdown()
        application.close()
    return 0


def _stop_with_the_app(app: Any, worker: Any) -> None:
    """Stop the worker (finishing its batch in hand) as part of the app's shutdown.

    On SIGTERM uvicorn shuts the app down and then raises the signal again, which ends the
    process before any `finally` after `uvicorn.run` could stop the worker.
    """
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> Any:
        async with inner(application) as state:
            yield state
        await asyncio.to_thread(worker.shutdown)

    app.router.lifespan_context = lifespan


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap
    from accounts.entrypoints.worker import Worker

    application = bootstrap(settings, run_migrations=not args.no_migrate)
    worker = Worker(
        application,
        consume=not args.no_listen,
        relay=not args.no_relay,
        sync=not args.no_sync,
        sync_process=settings.worker_sync_process,
    )
    _stop_on_sigterm(worker.stop)
    if settings.metrics_port:
        application.metrics().serve(settings.host, settings.metrics_port)
        log.info("worker metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    log.info("worker started (broker %s)", _safe_url(settings.broker_url))
    code = worker.run_forever()
    application.close()
    log.info("worker stopped")
    return code


def read_envelopes(paths: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Envelopes from files holding a JSON object, a JSON array, or JSON lines ('-' is stdin)."""
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        stripped = text.strip()
        if not stripped:
            continue
        try:
            whole = json.loads(stripped)
        except ValueError:
            whole = None
        if isinstance(whole, dict):
            yield whole
        elif isinstance(whole, list):
            yield from whole
        else:
            for number, line in enumerate(stripped.splitlines(), 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as error:
                        raise SystemExit(f"{path}:{number}: not JSON: {error}") from None


def cmd_events_publish(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import open_broker
    from accounts.service.ports import TENURE_TOPIC

    count = 0
    batch: list[tuple[bytes, str, str]] = []
    with open_broker(settings) as broker:
        for envelope in read_envelopes(args.files):
            # Published as given: a malformed event is the listener's to dead-letter, with its reason.
            group = str(envelope.get("entityId") or "unknown") if isinstance(envelope, dict) else "unknown"
            message_id = str(envelope.get("id") or uuid.uuid4()) if isinstance(envelope, dict) else str(uuid.uuid4())
            batch.append((json.dumps(envelope).encode(), group, message_id))
            count += 1
            if len(batch) >= 500:
                broker.publish_many(TENURE_TOPIC, batch)
                batch.clear()
        if batch:
            broker.publish_many(TENURE_TOPIC, batch)
    print(f"published {count} events to {_safe_url(settings.broker_url)}")
    return 0


def cmd_events_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap

    application = bootstrap(settings)
    letters = application.dead_letters.list(include_replayed=args.all)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": letter.id,
                        "eventId": letter.event_id,
                        "eventType": letter.event_type,
                        "reason": letter.reason,
                        "attempts": letter.attempts,
                        "createdAt": letter.created_at.isoformat(),
                        "replayedAt": letter.replayed_at.isoformat() if letter.replayed_at else None,
                        "body": letter.body.decode("utf-8", "replace"),
                    }
                    for letter in letters
                ],
                indent=2,
            )
        )
    else:
        for letter in letters:
            state = f" replayed {letter.replayed_at:%Y-%m-%d %H:%M}" if letter.replayed_at else ""
            print(
                f"{letter.id}\t{letter.created_at:%Y-%m-%d %H:%M:%S}\t{letter.event_type or '-'}\t"
                f"{letter.event_id or '-'}\t{letter.reason}{state}"
            )
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    application.close()
    return 0


def cmd_events_parked(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap

    application = bootstrap(settings)
    try:
        with application.uow(read_only=True) as uow:
            parked, total = uow.parked.list(args.limit), uow.parked.count()
    finally:
        application.close()
    for item in parked:
        event = item.event
        print(
            f"{event.id}  {event.event_type}  tenure {event.entity_id}  happened {event.date_time.isoformat()}  "
            f"parked {item.parked_at.isoformat()}: {item.reason}"
        )
    print(
        f"{total} event(s) waiting for their tenure's create"
        + (f" ({args.limit} listed)" if total > args.limit else "")
    )
    return 0


def cmd_events_replay(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap
    from accounts.service.dead_letters import NoSuchDeadLetter

    if not args.all and not args.id:
        print("nothing to replay: give --id N (see `accounts events dead-letters`) or --all", file=sys.stderr)
        return 1
    application = bootstrap(settings)
    broker = application.broker()
    try:
        chosen = application.dead_letters.replay(broker, None if args.all else args.id)
    except NoSuchDeadLetter as error:
        print(f"nothing replayed: {error} (see `accounts events dead-letters`)", file=sys.stderr)
        return 1
    finally:
        broker.close()
        application.close()
    if not chosen:
        print("nothing to replay: no dead letter waits", file=sys.stderr)
        return 1
    print(f"replayed {len(chosen)} dead letter(s)")
    return 0


def cmd_interim_rebuild(settings: Settings, _args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap

    application = bootstrap(settings, run_migrations=True)
    try:
        application.interim.enable_sinks()
        report = application.interim.rebuild()
    finally:
        application.close()
    removed = "".join(
        f"; removed {count} row(s) no account has from {name}" for name, count in report.removed.items() if count
    )
    print(
        f"rebuilt {', '.join(sink.name for sink in application.interim.sinks) or 'no sink'} from the sync table: "
        f"{report.queued} row(s) queued, {report.refreshed} sync row(s) corrected from the accounts{removed}"
    )
    stuck = {name: count for name, count in report.pending.items() if count}
    if stuck:
        print(f"still pending (the sink failed or is busy; see the log): {stuck}", file=sys.stderr)
        return 1
    return 0


def cmd_interim_import_sheet(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.adapters.sinks.xlsx_workbook import read_workbook
    from accounts.bootstrap import open_sink
    from accounts.service.ports import TransientError

    url = args.database_url or settings.interim_database_url
    if not url:
        print("set ACCOUNTS_INTERIM_DATABASE_URL (or --database-url) to the interim database", file=sys.stderr)
        return 2
    try:
        rows = read_workbook(Path(args.file))
    except (OSError, ValueError) as error:
        print(f"cannot import {args.file}: {error}", file=sys.stderr)
        return 2
    tabs: dict[str, list[str]] = {}
    for row in rows:
        tabs.setdefault(row.payment_ref, []).append(row.rent_group)
    repeated = {ref: where for ref, where in tabs.items() if len(where) > 1}
    if repeated:
        for ref, where in sorted(repeated.items())[:20]:
            print(f"payment ref {ref} appears {len(where)} times, on {', '.join(where)}", file=sys.stderr)
        print(f"not imported: {len(repeated)} payment ref(s) appear more than once in {args.file}", file=sys.stderr)
        return 1
    try:
        with open_sink("database", settings.model_copy(update={"interim_database_url": url})) as sink:
            sink.deliver(rows)  # the sink's own merge, as when the listener's changes are delivered
    except TransientError as error:
        print(f"not imported: {error}", file=sys.stderr)
        return 1
    print(f"loaded {len(rows)} tenancy agreement row(s) from {args.file} into the interim database")
    return 0


def cmd_interim_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap

    application = bootstrap(settings)
    try:
        _, found = application.reconciliations.run(_login_name("accounts interim reconcile"))
        pending = application.interim.pending_counts()
    finally:
        application.close()  # and with it every sink it built
    differences = found.differences
    for difference in differences[: args.limit]:
        print(difference.describe())
    if len(differences) > args.limit:
        print(f"... and {len(differences) - args.limit} more")
    checked = ", ".join(found.targets)
    waiting = {name: count for name, count in pending.items() if count}
    if waiting:
        print(f"note: rows still waiting for delivery (differences may be in flight): {waiting}")
    if differences:
        kinds: dict[str, int] = {}
        for difference in differences:
            kinds[difference.kind] = kinds.get(difference.kind, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        print(f"{len(differences)} difference(s) ({summary}) between the accounts and: {checked}")
        return 1
    print(f"the accounts agree with: {checked}")
    return 0


def cmd_ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap

    application = bootstrap(settings)
    try:
        differences = list(application.ledger.verify())
    finally:
        application.close()
    for difference in differences[: args.limit]:
        print(
            f"account {difference.account_id}: balance {difference.account_balance}, "
            f"its transactions add up to {difference.ledger_balance}"
        )
    if len(differences) > args.limit:
        print(f"... and {len(differences) - args.limit} more")
    if differences:
        print(f"{len(differences)} account(s) whose balance is not the sum of their transactions")
        return 1
    print("every account's balance is the sum of its transactions")
    return 0


def cmd_payments_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import a payment file: progress on stderr; the counts and every suspense and rejected line on stdout."""
    import time

    from accounts.bootstrap import bootstrap
    from accounts.domain.account import Actor
    from accounts.domain.payment_file import PaymentFileRefused
    from accounts.service.payment_files import ImportReport

    path = Path(args.file)
    try:
        size = path.stat().st_size
        raw = path.open("rb")
    except OSError as error:
        print(f"cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    bar = ProgressBar()

    def progress(report: ImportReport) -> None:
        bar.show(raw.tell() / size if size else 1.0, f"{path.name}: {report.lines:,} line(s)")

    application = bootstrap(settings, run_migrations=True)
    try:
        # Undecodable bytes become U+FFFD: their line is rejected ("is not UTF-8 text"), the rest imported.
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text:
            report = application.payment_files.import_file(
                text, Actor(args.by, ""), uuid.uuid4(), progress=None if args.quiet else progress
            )
    except PaymentFileRefused as refused:
        print(f"\nnot imported: {refused.reason}", file=sys.stderr)
        return 1
    finally:
        application.close()
    if not args.quiet:
        bar.done()
    print(f"imported {path.name} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if args.json:
        from accounts.entrypoints.http.payment_files import report_wire

        print(json.dumps(report_wire(report), default=str, indent=1))
        return 0
    print(report.summary())
    for suspended in report.suspended:
        item = suspended.item
        print(
            f"suspense line {suspended.line}: {item.amount} on {item.payment_date} ({item.method}, reference "
            f"{item.reference}): {item.reason_text} [item {item.id}]"
        )
    for rejected in report.rejected:
        print(f"rejected line {rejected.line}: {rejected.reason}")
    return 0


def _week_starting(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"weekStarting must be a date such as 2026-04-06, got {text!r}") from None


class ProgressBar:
    """A plain-text bar on stderr: redrawn in place (a carriage return) on a terminal, a line a step
    otherwise (a log file); no dependency. `show(share, words)` draws it; `done()` ends its line."""

    WIDTH = 30

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.interactive = self.stream.isatty()

    def show(self, share: float, words: str) -> None:
        share = min(max(share, 0.0), 1.0)
        filled = int(share * self.WIDTH)
        line = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {share:4.0%} {words}, {time.monotonic() - self.started:.1f} s"
        self.stream.write(f"\r{line}" if self.interactive else f"{line}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def charge_run(self, run: ChargeRun) -> None:
        """A charge run's progress (its accounts done of all), as `ChargeRunService.run` reports it."""
        total = max(run.accounts_total, run.accounts_done, 1)
        share = 1.0 if run.finished else run.accounts_done / total
        self.show(share, f"{run.accounts_done:,}/{total:,} accounts, {run.charges_posted:,} charges posted")
        if run.finished:
            self.done()


def _login_name(command: str = "accounts charges run") -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name to be found (a container without a user entry)
        return command


def cmd_charges_run(settings: Settings, args: argparse.Namespace) -> int:
    from accounts.bootstrap import bootstrap
    from accounts.domain.account import Actor
    from accounts.domain.errors import ValidationProblem
    from accounts.runtime import tune_garbage_collector
    from accounts.service.ports import TransientError

    application = bootstrap(settings)
    tune_garbage_collector()  # a batch of 500 postings makes some 100,000 short-lived objects
    try:
        try:
            who = Actor(args.user or _login_name(), args.email or "")
            run = application.charge_runs.start(args.week_starting, who)
        except ValidationProblem as problem:
            print(f"{problem.field} {problem.rule}: {args.week_starting.isoformat()}", file=sys.stderr)
            return 2
        if run.accounts_done:
            print(f"carrying on charge run {run.id}: {run.accounts_done:,} accounts done", file=sys.stderr)
        run = application.charge_runs.run(run.id, progress=None if args.quiet else ProgressBar().charge_run)
    except TransientError as error:
        print(f"the charge run stopped: {error}; run the command again to carry it on", file=sys.stderr)
        return 1
    finally:
        application.close()
    print(f"charge run {run.id} for {run.week.label} (week starting {run.week.starts.isoformat()}): {run.status}")
    print(
        f"accounts: {run.accounts_done:,} looked at, {run.accounts_charged:,} charged, "
        f"{run.accounts_not_charged:,} not active on the Monday"
    )
    print(
        f"charges: {run.charges_posted:,} posted, {run.amount_posted:,} in total; "
        f"{run.charges_skipped:,} posted before (skipped); {run.charges_refused:,} refused"
    )
    for refusal in run.refusals[: args.limit]:
        print(f"refused: account {refusal.account_id} {refusal.charge_type}: {refusal.reason}")
    if run.charges_refused > min(len(run.refusals), args.limit):
        print(f"... and {run.charges_refused - min(len(run.refusals), args.limit):,} more refused")
    return 0


def cmd_demo_load(settings: Settings, args: argparse.Namespace) -> int:
    """Load the demonstration data (accounts.demo.loader); progress on stderr, one line of counts on stdout."""
    from accounts.bootstrap import bootstrap
    from accounts.runtime import tune_garbage_collector

    if settings.environment == "production":
        print("not loaded: demonstration data is never loaded into a production database", file=sys.stderr)
        return 2
    if args.tenures < 1 or args.weeks < 1:
        print("--tenures and --weeks must be 1 or more", file=sys.stderr)
        return 2
    started = time.monotonic()
    bar = None if args.quiet else ProgressBar()
    # The bar says how far it has got: not a log line for each of the 104 charge runs and payment files.
    service_log = logging.getLogger("accounts.service")
    level = service_log.level
    service_log.setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    application = bootstrap(settings, run_migrations=True)
    tune_garbage_collector()
    try:
        report = application.demo.load(args.tenures, args.weeks, args.seed, progress=None if bar is None else bar.show)
    finally:
        application.close()
        service_log.setLevel(level)  # as it was: the command may run inside a longer-lived process (the tests)
    if bar is not None:
        bar.done()
    for rejected in report.rejected[:20]:
        print(f"rejected: {rejected}", file=sys.stderr)
    print(f"{report.summary()} ({_safe_url(settings.database_url)}, {time.monotonic() - started:.1f} s)")
    return 0


def _safe_url(url: str) -> str:
    """A URL fit for a log line: no password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accounts", description="Housing finance accounts service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and the listener, relay and sinks) on ACCOUNTS_HOST:PORT")
    serve.add_argument("--no-worker", action="store_true", help="the API alone")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run the listener, the outbox relay and the interim sinks")
    worker.add_argument("--no-listen", action="store_true")
    worker.add_argument("--no-relay", action="store_true")
    worker.add_argument("--no-sync", action="store_true")
    worker.add_argument("--no-migrate", action="store_true")
    worker.set_defaults(handler=cmd_worker)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(handler=cmd_migrate)

    token = commands.add_parser("token", help="mint a bearer token signed with the configured secret")
    token.add_argument("--name", required=True)
    token.add_argument("--email", required=True)
    token.add_argument("--group", action="append", help="repeat for several groups (default: the write groups)")
    token.add_argument("--hours", type=float, default=12.0)
    token.add_argument("--private-key", help="an RSA private key (PEM) for an RS256 token")
    token.set_defaults(handler=cmd_token)

    events = commands.add_parser("events", help="publish, list and replay tenure events").add_subparsers(
        dest="events_command", required=True
    )
    publish = events.add_parser("publish", help="publish envelopes (JSON, JSON array or JSON lines) to the broker")
    publish.add_argument("files", nargs="+")
    publish.set_defaults(handler=cmd_events_publish)
    dead = events.add_parser("dead-letters", help="list the events that could not be processed, with the reason")
    dead.add_argument("--all", action="store_true", help="include those already replayed")
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(handler=cmd_events_dead_letters)
    parked = events.add_parser("parked", help="list the events waiting for their tenure's create")
    parked.add_argument("--limit", type=int, default=100, help="list at most this many")
    parked.set_defaults(handler=cmd_events_parked)
    replay = events.add_parser("replay", help="publish dead letters again")
    replay.add_argument("--id", type=int, action="append", default=[])
    replay.add_argument("--all", action="store_true")
    replay.set_defaults(handler=cmd_events_replay)

    interim = commands.add_parser("interim", help="the interim finance sync").add_subparsers(
        dest="interim_command", required=True
    )
    interim.add_parser("rebuild", help="rewrite every interim sink from the sync table").set_defaults(
        handler=cmd_interim_rebuild
    )
    load = interim.add_parser("import-sheet", help="load a workbook into the interim database")
    load.add_argument("file")
    load.add_argument("--database-url")
    load.set_defaults(handler=cmd_interim_import_sheet)
    check = interim.add_parser("reconcile", help="compare the accounts with the workbook and the interim database")
    check.add_argument("--limit", type=int, default=200, help="print at most this many differences")
    check.set_defaults(handler=cmd_interim_reconcile)

    ledger = commands.add_parser("ledger", help="the accounts' activity ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    verify = ledger.add_parser("verify", help="check every balance is the sum of its account's transactions")
    verify.add_argument("--limit", type=int, default=50, help="list at most this many accounts that differ")
    verify.set_defaults(handler=cmd_ledger_verify)

    payments = commands.add_parser("payments", help="payment files from the bank and the paypoints").add_subparsers(
        dest="payments_command", required=True
    )
    payments_import = payments.add_parser(
        "import", help="post a payment file (CSV: paymentReference,amount,paymentDate,method,reference)"
    )
    payments_import.add_argument("file")
    payments_import.add_argument("--by", default="accounts payments import", help="who imports, for the audit")
    payments_import.add_argument("--json", action="store_true", help="the answer as JSON, as the API gives it")
    payments_import.add_argument("--quiet", action="store_true", help="no progress on stderr")
    payments_import.set_defaults(handler=cmd_payments_import)
    charges = commands.add_parser("charges", help="the weekly rent charges").add_subparsers(
        dest="charges_command", required=True
    )
    charge_run = charges.add_parser(
        "run", help="charge a rent week to every account active on its Monday (a rerun posts nothing twice)"
    )
    charge_run.add_argument("--week-starting", required=True, type=_week_starting, help="a Monday: YYYY-MM-DD")
    charge_run.add_argument("--user", help="whose name the charges are posted in (default: your login name)")
    charge_run.add_argument("--email", help="their email (events carry it)")
    charge_run.add_argument("--limit", type=int, default=50, help="list at most this many refused charges")
    charge_run.add_argument("--quiet", action="store_true", help="no progress bar")
    charge_run.set_defaults(handler=cmd_charges_run)
    demo = commands.add_parser("demo", help="demonstration data for trying the service out").add_subparsers(
        dest="demo_command", required=True
    )
    demo_load = demo.add_parser(
        "load",
        help="tenures, a year of weekly charges and payments (some in arrears, some in suspense), "
        "through the service's own paths; running it again doubles nothing",
    )
    demo_load.add_argument("--tenures", type=int, default=DEMO_TENURES, help="how many tenures (default %(default)s)")
    demo_load.add_argument(
        "--weeks", type=int, default=DEMO_WEEKS, help="rent weeks up to this one (default %(default)s)"
    )
    demo_load.add_argument("--seed", type=int, default=DEMO_SEED, help="the same seed, the same data")
    demo_load.add_argument("--quiet", action="store_true", help="no progress bar")
    demo_load.set_defaults(handler=cmd_demo_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return int(args.handler(settings, args))
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
