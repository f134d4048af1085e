"""`python -m bench`: run the benchmarks on both topologies, print the tables, write docs/benchmarks.md.

    python -m bench                      # everything, both topologies, the issue's sizes (writes docs/benchmarks.md)
    python -m bench --smoke              # tiny sizes, seconds: checks the scripts and the tables, no time limits
    python -m bench --only listener      # one group: reads (items 1, 3), writes (2), listener (4, 5), ledger, intake
    python -m bench --topology production --only reads
    python -m bench --sizes 10000,100000,1000000 --listener-sizes 1000,10000,50000

The embedded topology is the default `accounts serve` (SQLite, the queue in the database);
the production one is PostgreSQL + RabbitMQ on this machine (BENCH_POSTGRES_URL, a
maintenance database such as .../postgres, and BENCH_RABBITMQ_URL to point elsewhere), in
databases and queues of the benchmark's own (`bench_*`, `bench-*`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import http_items, intake, ledger, ledger_verify, listener, servers
from bench.cpu import BENCH as BENCH_PROCESS
from bench.cpu import LOADGEN, POSTGRES, POSTGRES_OTHER, RABBITMQ, SERVICE, CpuUse, bound
from bench.cpu import OTHER as OTHER_PROCESSES
from bench.loadgen import has_wrk
from bench.seed import seeded_database
from bench.table import Row, check_markdown, markdown, number, plain, ratio
from bench.topology import EMBEDDED, POSTGRES_URL, RABBITMQ_URL, Topology, production, reachable

ROOT = servers.ROOT
LISTENER_SIZES = (1_000, 10_000, 100_000)  # tenures (each a create and an update): the 100,000 at the largest
GROUPS = {
    "reads": "reads",
    "arrears": "reads",
    "writes": "writes",
    "listener": "listener",
    "spreadsheet": "workbook",
    "workbook": "workbook",
    "1": "reads",
    "2": "writes",
    "3": "reads",
    "4": "listener",
    "5": "workbook",
    "7": "reads",
    "ledger": "ledger",
    "intake": "intake",
}
MB = 1024 * 1024
READ_TARGET = {"embedded": 0.6, "production": 0.5}  # the issue's: share of the bare-Starlette ceiling


@dataclass
class Outcome:
    """What one topology's run measured."""

    topology: Topology
    reads: list[http_items.ReadRun] = field(default_factory=list)
    ceiling: tuple[object, int] | None = None
    writes: http_items.WriteRun | None = None
    listener: list[listener.ListenerRun] = field(default_factory=list)
    workbook: listener.WorkbookRun | None = None
    ledger: ledger.LedgerRun | None = None
    verify: ledger.VerifyRun | None = None
    intake: intake.IntakeRun | None = None
    seed_seconds: dict[int, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: str = ""  # why the topology was not measured
    seconds: float = 0.0


@dataclass
class Plan:
    """The sizes each topology is measured at."""

    sizes: list[int]
    listener_sizes: list[int]
    workbook_rows: int
    groups: set[str]
    verify: tuple[int, int] | None = None  # accounts, transactions for `accounts ledger verify` (SQLite only)
    intake_envelopes: int = 0  # envelopes posted per batch size to the API alone (issue 15 item 2)
    intake_batches: tuple[int, ...] = ()
    intake_tenures: int = 0  # through the intake to the listener: each a create and an update


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError("give positive sizes, e.g. 10000,100000,1000000")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and short loads: checks the scripts work")
    parser.add_argument(
        "--only", action="append", choices=sorted(GROUPS), help="run only this item or group (repeatable)"
    )
    parser.add_argument(
        "--topology",
        action="append",
        choices=("embedded", "production"),
        help="measure only this topology (repeatable; default both)",
    )
    parser.add_argument("--sizes", type=parse_sizes, help="accounts stored for items 1 and 3 (three sizes for item 7)")
    parser.add_argument(
        "--listener-sizes", type=parse_sizes, help="tenures for item 4 (each is a create and an update)"
    )
    parser.add_argument(
        "--workbook-rows", type=int, help="tenure accounts in the workbook for item 5 (default 100,000)"
    )
    parser.add_argument(
        "--intake-tenures",
        type=int,
        help="tenures posted through the intake end to end (default 100,000: 200,000 events)",
    )
    parser.add_argument("--duration", type=float, help="seconds of load per HTTP measurement")
    parser.add_argument("--output", type=Path, help="where to write the Markdown report")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "var" / "bench", help="scratch directory (seeded databases are cached here)"
    )
    parser.add_argument(
        "--python-loadgen", action="store_true", help="use the Python load generator even when wrk is installed"
    )
    return parser


def plans(smoke: bool, args: argparse.Namespace) -> dict[str, Plan]:
    """Embedded: every item at every size. Production: the same items where they are cheap to repeat:
    reads and writes at the headline size, the listener at its largest size only (its queue is filled
    first, minutes at 200,000 events), no workbook (item 5 measures the workbook, which does not
    depend on the database)."""
    sizes = args.sizes or ([200, 1_000, 3_000] if smoke else [10_000, 100_000, 1_000_000])
    listener_sizes = args.listener_sizes or ([25, 50, 100] if smoke else list(LISTENER_SIZES))
    groups = (
        {GROUPS[name] for name in args.only}
        if args.only
        else {"reads", "writes", "listener", "workbook", "ledger", "intake"}
    )
    intake_tenures = args.intake_tenures or (100 if smoke else intake.END_TO_END_TENURES)
    intake_batches = (100,) if smoke else (intake.BATCH, intake.LARGE_BATCH)
    workbook_rows = args.workbook_rows or (200 if smoke else 100_000)
    verify = (200, 2_000) if smoke else (ledger.VERIFY_ACCOUNTS, ledger.VERIFY_TRANSACTIONS)
    return {
        "embedded": Plan(
            sizes,
            listener_sizes,
            workbook_rows,
            groups,
            verify,
            intake_envelopes=1_000 if smoke else intake.ACCEPT_ENVELOPES,
            intake_batches=intake_batches,
            intake_tenures=intake_tenures,
        ),
        "production": Plan(
            [headline_size(sizes)],
            listener_sizes[-1:],
            workbook_rows,
            groups - {"workbook"},
            intake_envelopes=1_000 if smoke else intake.PRODUCTION_ACCEPT_ENVELOPES,
            intake_batches=intake_batches[:1],
            intake_tenures=intake_tenures,
        ),
    }


def headline_size(sizes: list[int]) -> int:
    return 100_000 if 100_000 in sizes else sizes[len(sizes) // 2]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    smoke = args.smoke
    duration = args.duration or (1.0 if smoke else 10.0)
    durations = http_items.Durations(
        reads=duration,
        arrears=duration,
        writes=duration,
        warmup=0.0 if smoke else 2.0,
        rounds=1 if smoke else http_items.READ_ROUNDS,
    )
    work = args.work / ("smoke" if smoke else "full")
    work.mkdir(parents=True, exist_ok=True)
    chosen = args.topology or ["embedded", "production"]
    complete = set(chosen) == {"embedded", "production"}
    output = args.output or (
        ROOT / "docs" / "benchmarks.md"
        if complete and not smoke and not args.only  # a run of some items must not replace the whole report
        else work / ("benchmarks-smoke.md" if smoke else "benchmarks-partial.md")
    )
    if args.python_loadgen:
        os.environ["BENCH_PYTHON_LOADGEN"] = "1"
    token = servers.bench_token()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    topologies = {
        "embedded": EMBEDDED,
        "production": production(
            os.environ.get("BENCH_POSTGRES_URL") or POSTGRES_URL, os.environ.get("BENCH_RABBITMQ_URL") or RABBITMQ_URL
        ),
    }
    outcomes = []
    for key in chosen:
        topology, plan = topologies[key], plans(smoke, args)[key]
        outcome = Outcome(topology)
        outcomes.append(outcome)
        why = reachable(topology)
        if why:
            outcome.skipped = why
            say(f"{topology.title}: not measured: {why}")
            if not smoke:  # the full run measures both; the smoke run (CI) goes as far as the machine allows
                outcome.problems.append(f"{topology.title}: not measured: {why}")
            continue
        say(f"{topology.title}")
        began = time.perf_counter()
        measure(outcome, plan, work, args.work, token, durations, say)
        outcome.seconds = time.perf_counter() - began
    say("done")
    report = render(outcomes, args, smoke, load_before, time.perf_counter() - started)
    for outcome in outcomes:
        if not outcome.skipped:
            rows, _ = table_rows(outcome)
            print(f"\n{outcome.topology.title}\n")
            print(plain(rows))
            check_markdown(markdown(rows))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(f"written to {output}")
    problems = [problem for outcome in outcomes for problem in outcome.problems + sanity(outcome)]
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


def measure(
    outcome: Outcome,
    plan: Plan,
    work: Path,
    cache: Path,
    token: str,
    durations: http_items.Durations,
    tell: Callable[[str], None],
) -> None:
    """Every item of the plan on one topology, into `outcome`."""
    topology = outcome.topology
    headline = headline_size(plan.sizes)
    if "reads" in plan.groups or "writes" in plan.groups:
        for size in plan.sizes:
            tell(f"  seeding {size:,} accounts (reused when seeded before)")
            seeded = seeded_database(size, cache, topology)
            outcome.seed_seconds[size] = seeded.seconds
            if "reads" in plan.groups:
                tell(f"  reads at {size:,} accounts, in rounds with the ceiling (bare Starlette on uvicorn)")
                run = http_items.reads(seeded, work, token, durations)
                outcome.reads.append(run)
                if outcome.ceiling is None or size == headline:
                    outcome.ceiling = (run.ceiling, run.ceiling_peak_rss)
            if "writes" in plan.groups and size == headline:
                tell(f"  writes at {size:,} accounts (on a copy)")
                outcome.writes = http_items.writes(seeded, work, token, durations)
    if "listener" in plan.groups:
        for tenures in plan.listener_sizes:
            if topology.embedded:
                tell(f"  listener: {tenures:,} creates + {tenures:,} updates")
                outcome.listener.append(listener.run(tenures, work, None, None))
            else:
                tell(f"  listener: {tenures:,} creates + {tenures:,} updates published, then one `accounts worker`")
                outcome.listener.append(listener.run_worker(tenures, work, topology))
    if "workbook" in plan.groups:
        tell(f"  workbook: {plan.workbook_rows:,} tenure accounts")
        outcome.workbook = listener.workbook(plan.workbook_rows, work, None, None)
    if "ledger" in plan.groups:
        tell(f"  ledger: seeding {headline:,} accounts (reused when seeded before)")
        seeded = seeded_database(headline, cache, topology)
        outcome.seed_seconds.setdefault(headline, seeded.seconds)
        tell(f"  ledger: postings at {durations.write_connections} conns (with the ceiling), a statement of 1,000")
        outcome.ledger = ledger.postings(seeded, work, token, durations)
        if plan.verify is not None:
            accounts, transactions = plan.verify
            tell(f"  ledger: `accounts ledger verify` over {transactions:,} transactions (seeded once, then reused)")
            outcome.verify = ledger.verify(cache, work, accounts, transactions)
    if "intake" in plan.groups:
        tell(
            f"  intake: {plan.intake_envelopes:,} envelopes accepted in batches of "
            f"{', '.join(f'{b:,}' for b in plan.intake_batches)} (with the ceiling); then "
            f"{plan.intake_tenures * 2:,} events through it to the listener (with the broker's ceiling)"
        )
        outcome.intake = intake.run(
            topology, work, token, plan.intake_envelopes, plan.intake_batches, plan.intake_tenures
        )


def sanity(outcome: Outcome) -> list[str]:
    """What says the scripts did not work (never a time limit): no requests, errors, events lost."""
    problems = []
    title = outcome.topology.key
    loads = [(f"reads {run.size}", load) for run in outcome.reads for load in (run.by_id, run.by_target, run.arrears)]
    if outcome.writes:
        loads += [("POST", outcome.writes.post), ("PATCH", outcome.writes.patch)]
    if outcome.ceiling:
        loads.append(("ceiling", outcome.ceiling[0]))  # type: ignore[arg-type]
    if outcome.ledger:
        run = outcome.ledger
        loads += [
            ("ledger posting", run.post),
            ("ledger hot account", run.hot),
            ("ledger ceiling", run.ceiling),
            ("ledger statement", run.statement),
        ]
        if run.posted < run.post.requests + run.hot.requests:  # a repeated id is a 200 that posts nothing
            problems.append(
                f"{title} ledger: {run.posted:,} transactions posted for {run.post.requests + run.hot.requests:,} "
                "answered postings: some were not new"
            )
        if run.statement_lines < ledger.STATEMENT_TRANSACTIONS:
            problems.append(f"{title} ledger: the statement's account has {run.statement_lines} transactions")
    if outcome.verify and (outcome.verify.exit_code, outcome.verify.differing) != (1, ledger_verify.DIFFERING):
        problems.append(
            f"{title} ledger verify: exit {outcome.verify.exit_code}, {outcome.verify.differing} accounts reported; "
            f"the seed knocked {ledger_verify.DIFFERING} off"
        )
    for name, load in loads:
        if load.requests == 0:  # type: ignore[attr-defined]
            problems.append(f"{title} {name}: no request completed")
        if load.errors:  # type: ignore[attr-defined]
            problems.append(f"{title} {name}: {load.errors} failed requests {load.statuses}")  # type: ignore[attr-defined]
    for run in outcome.listener:
        if run.drain.dead_letters:
            problems.append(f"{title} listener {run.tenures}: {run.drain.dead_letters} events dead-lettered")
        if run.drain.rows != run.tenures:
            problems.append(f"{title} listener {run.tenures}: {run.drain.rows} interim rows, expected {run.tenures}")
    if outcome.intake:
        for accepted in outcome.intake.accepting:
            if set(accepted.statuses) != {"202"}:
                problems.append(f"{title} intake, batches of {accepted.batch}: answers {accepted.statuses}")
        through = outcome.intake.end_to_end
        if through and (set(through.statuses) != {"202"} or through.dead_letters):
            problems.append(
                f"{title} intake end to end: answers {through.statuses}, {through.dead_letters} dead letters"
            )
    if outcome.workbook and outcome.workbook.drain.rows != outcome.workbook.rows:
        problems.append(f"{title} workbook: {outcome.workbook.drain.rows} rows, expected {outcome.workbook.rows}")
    return problems


def ms(value: float) -> str:
    return number(value, "ms", 1 if value < 100 else 0)


def per_second(value: float) -> str:
    return number(value, "/s", 0)


def table_rows(outcome: Outcome) -> tuple[list[Row], list[list[str]]]:
    """The results table of one topology, and how its figures grow with size (item 7)."""
    rows: list[Row] = []
    headline = headline_size([run.size for run in outcome.reads]) if outcome.reads else 0
    headline_tenures = outcome.listener[-1].tenures if outcome.listener else 0
    target = READ_TARGET[outcome.topology.key]
    growth: list[list[str]] = []
    ceiling_rps = outcome.ceiling[0].rps if outcome.ceiling else 0.0  # type: ignore[attr-defined]
    by_size = {run.size: run for run in outcome.reads}
    if headline in by_size:
        run = by_size[headline]
        where = f"{headline:,} accounts, 50 conns"
        for label, load in (("GET /accounts/{id}", run.by_id), ("GET /accounts?targetId=", run.by_target)):
            share = load.rps / ceiling_rps if ceiling_rps else 0.0
            rows.append(
                Row(
                    "1 reads",
                    f"{label} req/s ({where})",
                    per_second(load.rps),
                    per_second(ceiling_rps),
                    ratio(load.rps, ceiling_rps),
                    f">= {target:.2f} of ceiling",
                    share >= target,
                )
            )
            rows.append(Row("1 reads", f"{label} p99", ms(load.p99_ms), "-", "-", "< 25 ms", load.p99_ms < 25))
    if outcome.writes:
        w = outcome.writes
        for label, load in (("POST /accounts", w.post), ("PATCH /accounts/{id} If-Match", w.patch)):
            rows.append(Row("2 writes", f"{label} req/s ({w.size:,} accounts, 20 conns)", per_second(load.rps)))
            rows.append(Row("2 writes", f"{label} p50 / p99", f"{ms(load.p50_ms)} / {ms(load.p99_ms)}"))
    if len(outcome.reads) == 1:
        only = outcome.reads[0]
        rows.append(
            Row("3 arrears", f"resultsCount=100 by amount, p50 at {only.size:,} accounts", ms(only.arrears.p50_ms))
        )
    if len(outcome.reads) > 1:
        smallest, largest = outcome.reads[0], outcome.reads[-1]
        grow = largest.arrears.p50_ms / smallest.arrears.p50_ms if smallest.arrears.p50_ms else 0.0
        rows.append(
            Row(
                "3 arrears",
                f"resultsCount=100 by amount, p50 at {largest.size:,} accounts",
                ms(largest.arrears.p50_ms),
                target="< 20 ms",
                met=largest.arrears.p50_ms < 20,
            )
        )
        rows.append(
            Row(
                "3 arrears",
                f"p50 growth {smallest.size:,} -> {largest.size:,} accounts",
                f"{grow:.2f}x",
                target="< 2x",
                met=grow < 2,
            )
        )
    runs = {run.tenures: run for run in outcome.listener}
    if headline_tenures in runs:
        run = runs[headline_tenures]
        d, c = run.drain, run.ceiling
        rate = d.events / d.seconds_end_to_end if d.seconds_end_to_end else 0.0
        if c.consume_seconds:
            broker, ceiling_name = c.messages / c.consume_seconds, "ceiling: the broker's consume+ack"
        else:
            broker, ceiling_name = (
                c.messages / c.publish_seconds if c.publish_seconds else 0.0,
                "ceiling: the publisher",
            )
        sinks = "+".join(d.sinks)
        how = (
            "queue filled first, one `accounts worker` from its start"
            if not d.timed_sinks
            else "worker start to every sink"
        )
        rows.append(
            Row(
                "4 listener",
                f"events/s end to end ({d.events:,} events, sinks {sinks}; {how}; {ceiling_name})",
                per_second(rate),
                per_second(broker),
                ratio(rate, broker),
                ">= 2,000 /s",
                rate >= 2000,
            )
        )
        per_event = d.workbook_cpu_seconds / d.events * 1000 if d.events else 0.0
        if d.timed_sinks:
            rows.append(
                Row(
                    "5 spreadsheet",
                    f"workbook CPU per event while draining ({d.workbook_flushes} rewrites)",
                    ms(per_event),
                    target="< 1 ms",
                    met=per_event < 1,
                )
            )
    if outcome.workbook:
        book = outcome.workbook.drain
        if book.probe_seconds:
            probe = sorted(book.probe_seconds)[len(book.probe_seconds) // 2]
            naive = outcome.workbook.naive_seconds
            rows.append(
                Row(
                    "5 spreadsheet",
                    f"one update reaches the workbook ({book.rows:,} rows; peer: openpyxl open, change, save)",
                    number(probe, "s"),
                    number(naive, "s"),
                    ratio(probe, naive),
                    "-",
                    None,
                )
            )
        rows.append(
            Row(
                "5 spreadsheet",
                f"full rebuild of {book.rows:,} rows (read + write)",
                number(book.rebuild_seconds, "s"),
                target="< 5 s",
                met=book.rebuild_seconds < 5,
            )
        )
    peaks = [run.peak_rss for run in outcome.reads]
    if outcome.writes:
        peaks.append(outcome.writes.peak_rss)
    peaks += [run.drain.peak_rss for run in outcome.listener]
    if outcome.workbook:
        peaks.append(outcome.workbook.drain.peak_rss)
    if peaks:
        peak = max(peaks) / MB
        rows.append(
            Row(
                "6 memory",
                "peak RSS of the service (items 1-5; a worker with its relay-and-sinks process)",
                number(peak, "MB", 0),
                target="< 300 MB",
                met=peak < 300,
            )
        )
    rows += ledger_rows(outcome)
    rows += intake_rows(outcome)
    # Item 7: how each grows with size.
    if len(outcome.reads) > 1:
        sizes = [f"{run.size:,}" for run in outcome.reads]
        growth.append(["size (accounts)", *sizes, "largest / smallest"])
        for label, pick in (
            ("1 GET /accounts/{id} req/s", lambda r: r.by_id.rps),
            ("1 GET /accounts/{id} p99 ms", lambda r: r.by_id.p99_ms),
            ("1 GET /accounts?targetId= req/s", lambda r: r.by_target.rps),
            ("1 GET /accounts?targetId= p99 ms", lambda r: r.by_target.p99_ms),
            ("3 arrears p50 ms", lambda r: r.arrears.p50_ms),
            ("3 arrears p99 ms", lambda r: r.arrears.p99_ms),
        ):
            values = [pick(run) for run in outcome.reads]
            growth.append([label, *(number(v) for v in values), f"{values[-1] / values[0]:.2f}x" if values[0] else "-"])
    if len(outcome.listener) > 1:
        growth.append(
            ["size (tenures; events = 2x)", *(f"{run.tenures:,}" for run in outcome.listener), "largest / smallest"]
        )
        picks: list[tuple[str, Callable[[listener.ListenerRun], float]]] = [
            ("4 events/s end to end", lambda r: r.drain.events / r.drain.seconds_end_to_end),
        ]
        if outcome.topology.embedded:
            picks += [
                ("4 broker ceiling (consume+ack) msg/s", lambda r: r.ceiling.messages / r.ceiling.consume_seconds),
                ("5 workbook CPU ms per event", lambda r: r.drain.workbook_cpu_seconds / r.drain.events * 1000),
            ]
        else:
            picks.append(("4 publisher (ceiling) msg/s", lambda r: r.ceiling.messages / r.ceiling.publish_seconds))
        picks.append(("6 worker peak RSS MB", lambda r: r.drain.peak_rss / MB))
        for label, pick in picks:
            values = [pick(run) for run in outcome.listener]
            growth.append([label, *(number(v) for v in values), f"{values[-1] / values[0]:.2f}x" if values[0] else "-"])
    return rows, growth


POSTING_TARGET = 1_000  # the issue's: postings a second at 20 connections, on both databases
POSTING_P99 = 50  # ms
STATEMENT_P50 = 10  # ms, one page of 100 of an account with 1,000 transactions
VERIFY_SECONDS = 10  # `accounts ledger verify` over 1,000,000 transactions on SQLite


def ledger_rows(outcome: Outcome) -> list[Row]:
    """The ledger's figures against the issue's targets; posting as a share of the same-run ceiling too."""
    rows: list[Row] = []
    if outcome.ledger:
        run = outcome.ledger
        c = run.ceiling
        where = f"new id each, over {run.spread:,} accounts of {run.size:,}, 20 conns; ceiling: bare Starlette GET"
        rows.append(
            Row(
                "ledger",
                f"POST /accounts/{{id}}/transactions req/s ({where})",
                per_second(run.post.rps),
                per_second(c.rps),
                ratio(run.post.rps, c.rps),
                f">= {POSTING_TARGET:,} /s",
                run.post.rps >= POSTING_TARGET,
            )
        )
        rows.append(
            Row(
                "ledger",
                "POST /accounts/{id}/transactions p99",
                ms(run.post.p99_ms),
                target=f"< {POSTING_P99} ms",
                met=run.post.p99_ms < POSTING_P99,
            )
        )
        rows.append(
            Row(
                "ledger",
                "POST to one hot account req/s / p99 (every posting queues for its lock; no target)",
                f"{per_second(run.hot.rps)} / {ms(run.hot.p99_ms)}",
                per_second(c.rps),
                ratio(run.hot.rps, c.rps),
            )
        )
        rows.append(
            Row(
                "ledger",
                f"statement, one page of {ledger.PAGE} of {run.statement_lines:,} transactions, p50 (1 conn)",
                ms(run.statement.p50_ms),
                target=f"< {STATEMENT_P50} ms",
                met=run.statement.p50_ms < STATEMENT_P50,
            )
        )
    if outcome.verify:
        v = outcome.verify
        rows.append(
            Row(
                "ledger",
                f"`accounts ledger verify` over {v.transactions:,} transactions, {v.accounts:,} accounts "
                "(the CLI, start-up included)",
                number(v.seconds, "s"),
                target=f"< {VERIFY_SECONDS} s",
                met=v.seconds < VERIFY_SECONDS,
            )
        )
    return rows


ACCEPT_TARGET = 10_000  # issue 15 item 2: envelopes/s accepted on the embedded default
INTAKE_END_TO_END_TARGET = 2_000  # events/s accepted -> applied at 200,000 events


def intake_rows(outcome: Outcome) -> list[Row]:
    """The intake's figures (issue 15 item 2), each against its same-run ceiling."""
    rows: list[Row] = []
    if not outcome.intake:
        return rows
    embedded = outcome.topology.embedded
    for run in outcome.intake.accepting:
        rows.append(
            Row(
                "intake",
                f"POST /api/v1/events envelopes/s accepted (batches of {run.batch:,}, {intake.CONNECTIONS} conns, "
                "`accounts serve --no-worker`; ceiling: bare Starlette reading and parsing the same bodies)",
                per_second(run.rate),
                per_second(run.ceiling_rate),
                ratio(run.rate, run.ceiling_rate),
                f">= {ACCEPT_TARGET:,} /s" if embedded else "-",
                run.rate >= ACCEPT_TARGET if embedded else None,
            )
        )
    through = outcome.intake.end_to_end
    if through:
        rows.append(
            Row(
                "intake",
                f"events/s end to end through the intake ({through.events:,} events in batches of {through.batch:,} "
                "to the default `accounts serve`, first POST to every sink; ceiling: the broker's slower side, "
                "publish or consume+ack)",
                per_second(through.rate),
                per_second(through.ceiling_rate),
                ratio(through.rate, through.ceiling_rate),
                f">= {INTAKE_END_TO_END_TARGET:,} /s",
                through.rate >= INTAKE_END_TO_END_TARGET,
            )
        )
    return rows


def grid(lines: list[list[str]]) -> str:
    if not lines:
        return "(not run)\n"
    width = max(len(line) for line in lines)
    lines = [line + ["-"] * (width - len(line)) for line in lines]
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "|".join("---" for _ in lines[0]) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
    return "\n".join(out) + "\n"


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 1024**3
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )


def details(outcome: Outcome) -> str:
    lines = []
    if outcome.ceiling:
        c = outcome.ceiling[0]
        lines.append(
            f"- ceiling (bare Starlette, constant account): {c.rps:,.0f} req/s, p50 {c.p50_ms:.2f} ms, p99 {c.p99_ms:.2f} ms ({c.generator})"
        )  # type: ignore[attr-defined]
    for run in outcome.reads:
        for label, load in (
            ("GET /accounts/{id}", run.by_id),
            ("GET /accounts?targetId=", run.by_target),
            ("arrears (1 conn)", run.arrears),
        ):
            lines.append(
                f"- {run.size:,} accounts, {label}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p90 {load.p90_ms:.2f} ms, "
                f"p99 {load.p99_ms:.2f} ms, max {load.max_ms:.1f} ms, {load.requests:,} requests, {load.errors} errors ({load.generator})"
            )
        lines.append(f"- {run.size:,} accounts: service peak RSS {run.peak_rss / MB:.0f} MB")
    if outcome.writes:
        w = outcome.writes
        for label, load in (("POST", w.post), ("PATCH If-Match", w.patch)):
            lines.append(
                f"- writes on {w.size:,} accounts, {label}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, "
                f"p99 {load.p99_ms:.2f} ms, {load.requests:,} requests, statuses {load.statuses} ({load.generator})"
            )
    for run in outcome.listener:
        d, c = run.drain, run.ceiling
        if not d.timed_sinks:
            lines.append(
                f"- listener {run.tenures:,} tenures ({d.events:,} events, sinks {'+'.join(d.sinks)}): all published "
                f"before the worker started, in {run.publish_seconds:.1f} s ({d.events / run.publish_seconds:,.0f}/s, the "
                f"publisher: {listener.PUBLISHERS} connections, each waiting for the broker's confirm of every "
                "message, the service's RabbitMQ adapter); then one `accounts worker`: every event applied "
                f"{d.seconds_listener:.1f} s after its start ({d.events / d.seconds_listener:,.0f}/s), in every sink after "
                f"{d.seconds_end_to_end:.1f} s ({d.events / d.seconds_end_to_end:,.0f}/s); the worker and its "
                f"relay-and-sinks process used {d.cpu_seconds:.1f} s CPU ({d.cpu_seconds / d.events * 1000:.2f} ms per "
                f"event); peak RSS {d.peak_rss / MB:.0f} MB; dead letters {d.dead_letters}; {d.note}."
            )
            continue
        lines.append(
            f"- listener {run.tenures:,} tenures ({d.events:,} events, sinks {'+'.join(d.sinks)}): published in {run.publish_seconds:.1f} s; "
            f"all processed after {d.seconds_listener:.1f} s ({d.events / d.seconds_listener:,.0f}/s), in every sink after "
            f"{d.seconds_end_to_end:.1f} s ({d.events / d.seconds_end_to_end:,.0f}/s); {d.flushes} sink flushes took "
            f"{d.flush_cpu_seconds:.1f} s CPU ({d.flush_seconds:.1f} s wall), the workbook's {d.workbook_flushes} of them "
            f"{d.workbook_cpu_seconds:.1f} s CPU; peak RSS {d.peak_rss / MB:.0f} MB; dead letters {d.dead_letters}. "
            f"Broker ceiling: publish {c.messages / c.publish_seconds:,.0f}/s, consume+ack {c.messages / c.consume_seconds:,.0f}/s."
            + (f" {d.note}." if d.note else "")
        )
    if outcome.workbook:
        w, d = outcome.workbook, outcome.workbook.drain
        lines.append(
            f"- workbook of {d.rows:,} tenure accounts (seeded in {w.seed_seconds:.0f} s): the worker's first whole write "
            f"took {d.seconds_end_to_end:.1f} s; one update then reached it in {', '.join(f'{x:.2f}' for x in d.probe_seconds)} s; "
            f"a full rebuild took {d.rebuild_seconds:.2f} s (of which writing the file {d.write_seconds:.2f} s); the naive "
            f"openpyxl open-change-save {w.naive_seconds:.1f} s; worker peak RSS {d.peak_rss / MB:.0f} MB"
        )
    if outcome.ledger:
        run = outcome.ledger
        for label, load in (
            ("ceiling (bare Starlette GET, 20 conns, rounds alternating with the postings)", run.ceiling),
            (f"POST transactions over {run.spread:,} accounts, 20 conns", run.post),
            ("POST transactions to one account, 20 conns", run.hot),
            (f"statement pages of {ledger.PAGE} ({run.statement_lines:,} transactions), 1 conn", run.statement),
        ):
            lines.append(
                f"- ledger, {label}: {load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p90 {load.p90_ms:.2f} ms, "
                f"p99 {load.p99_ms:.2f} ms, max {load.max_ms:.1f} ms, {load.requests:,} requests, {load.errors} errors "
                f"({load.generator})"
            )
        lines.append(
            f"- ledger: {run.posted:,} transactions posted by the loads (warm-ups included) on a copy of the "
            f"{run.size:,}-account database; service peak RSS {run.peak_rss / MB:.0f} MB"
        )
    if outcome.verify:
        v = outcome.verify
        seeded = f"seeded in {v.seed_seconds:.0f} s" if v.seed_seconds else "seed reused"
        lines.append(
            f"- `accounts ledger verify` over {v.transactions:,} transactions of {v.accounts:,} accounts ({seeded}): "
            f"{v.seconds:.2f} s from start to exit, {v.cpu.share(SERVICE) * v.cpu.wall:.2f} s CPU; exit {v.exit_code}, "
            f"{v.differing} accounts reported (the seed knocks {ledger_verify.DIFFERING} off their ledgers)"
        )
    if outcome.intake:
        for a in outcome.intake.accepting:
            lines.append(
                f"- intake, batches of {a.batch:,}: {a.envelopes:,} envelopes accepted in {a.seconds:.2f} s "
                f"({a.rate:,.0f}/s; the ceiling {a.ceiling_seconds:.2f} s, {a.ceiling_rate:,.0f}/s), answers "
                f"{a.statuses}; the service used {CpuUse(**a.cpu).seconds.get(SERVICE, 0.0) / a.envelopes * 1e6:.0f} "
                f"µs of CPU an envelope; service peak RSS {a.peak_rss / MB:.0f} MB"
            )
        e = outcome.intake.end_to_end
        if e:
            b = e.broker
            lines.append(
                f"- intake end to end, {e.events:,} events (sinks {'+'.join(e.sinks)}): all accepted after "
                f"{e.accepted_seconds:.1f} s ({e.events / e.accepted_seconds:,.0f}/s accepted while the listener "
                f"ran; {e.applied_while_accepting:,} applied by then), all applied after {e.applied_seconds:.1f} s "
                f"({e.events / e.applied_seconds:,.0f}/s), in every sink after {e.seconds:.1f} s ({e.rate:,.0f}/s); "
                f"answers {e.statuses}; dead letters {e.dead_letters}; `accounts serve` and its relay-and-sinks "
                f"process used {CpuUse(**e.cpu).seconds.get(SERVICE, 0.0) / e.events * 1000:.2f} ms of CPU an "
                f"event; peak RSS {e.peak_rss / MB:.0f} MB (with "
                f"the relay-and-sinks process). Broker ceiling: publish {b.messages / b.publish_seconds:,.0f}/s, "
                f"consume+ack {b.messages / b.consume_seconds:,.0f}/s."
            )
    if outcome.seed_seconds:
        seeded = ", ".join(
            f"{size:,} in {seconds:.0f} s" if seconds else f"{size:,} reused"
            for size, seconds in outcome.seed_seconds.items()
        )
        lines.append(f"- seeding accounts: {seeded}")
    return "\n".join(lines) + "\n"


BOUND_COLUMNS = (
    "figure",
    "wall s",
    "service",
    "postgres (run's db)",
    "postgres (other)",
    "rabbitmq",
    "load gen",
    "bench",
    "others",
    "machine busy",
    "iowait",
    "bound by",
)


def bounds(outcome: Outcome) -> list[list[str]]:
    """Per figure: the cores each party used on average while it was measured, and what bounds it."""
    lines: list[list[str]] = [list(BOUND_COLUMNS)]

    def line(name: str, use: CpuUse, service: str = "the service", single: bool = True) -> None:
        if use.wall <= 0:
            return
        roles = (SERVICE, POSTGRES, POSTGRES_OTHER, RABBITMQ, LOADGEN, BENCH_PROCESS, OTHER_PROCESSES)
        cells = [f"{use.share(role):.2f}" for role in roles]
        lines.append(
            [
                name,
                f"{use.wall:.1f}",
                *cells,
                f"{use.machine():.2f} of {use.cores}",
                f"{use.waiting():.2f}",
                bound(use, service, single),
            ]
        )

    headline = headline_size([run.size for run in outcome.reads]) if outcome.reads else 0
    for run in outcome.reads:
        if run.size != headline:
            continue
        line(f"ceiling (bare Starlette), {run.size:,} accounts run", run.cpu.get("ceiling", CpuUse()), "the ceiling")
        line(f"GET /accounts/{{id}}, {run.size:,} accounts", run.cpu.get("by_id", CpuUse()))
        line(f"GET /accounts?targetId=, {run.size:,} accounts", run.cpu.get("by_target", CpuUse()))
        line(f"arrears (1 conn), {run.size:,} accounts", run.cpu.get("arrears", CpuUse()))
    if outcome.writes:
        line(f"POST /accounts, {outcome.writes.size:,} accounts", outcome.writes.cpu.get("post", CpuUse()))
        line(f"PATCH /accounts/{{id}}, {outcome.writes.size:,} accounts", outcome.writes.cpu.get("patch", CpuUse()))
    if outcome.ledger:
        run = outcome.ledger
        line("ledger: ceiling (bare Starlette GET, 20 conns)", run.cpu.get("ceiling", CpuUse()), "the ceiling")
        line(f"ledger: POST transactions over {run.spread:,} accounts", run.cpu.get("post", CpuUse()))
        line("ledger: POST transactions to one account", run.cpu.get("hot", CpuUse()))
        line("ledger: statement page of 100 (1 conn)", run.cpu.get("statement", CpuUse()))
    if outcome.verify:
        line("`accounts ledger verify` (the CLI process)", outcome.verify.cpu, "the CLI")
    if outcome.intake:
        for accepted in outcome.intake.accepting:
            line(
                f"intake ceiling, batches of {accepted.batch:,}",
                CpuUse(**accepted.ceiling_cpu),
                "the ceiling",
            )
            line(f"intake accepting, batches of {accepted.batch:,}", CpuUse(**accepted.cpu))
        through = outcome.intake.end_to_end
        if through:
            line(
                f"intake end to end, {through.events:,} events",
                CpuUse(**through.cpu),
                "`accounts serve` (API and listener)",
                single=False,
            )
    for run in outcome.listener:
        if run.publish_cpu:
            line(f"publishing {run.drain.events:,} events (the publisher)", CpuUse(**run.publish_cpu), "the publisher")
        line(
            f"listener drain, {run.drain.events:,} events",
            run.drain.cpu_use(),
            "the worker",
            single=False,
        )
    return lines


BOUNDS_NOTE = (
    "Average cores each party used while the figure was measured (CPU seconds / wall seconds; 1.00 is one core "
    "busy throughout): the service (and its children: the worker's relay-and-sinks process), this run's "
    "PostgreSQL backends, the rest of PostgreSQL (its background processes and other people's connections), "
    "RabbitMQ, the load generator (wrk or the Python one, the ceiling's too), this benchmark process (in the "
    "publishing rows, the publisher), and every other process on the shared machine (other engineers' tests "
    "show here). *machine busy* is the whole machine's busy time in cores; *iowait* the cores idle waiting "
    "for the disk. *bound by* reads them: a Python process near 1.00 is bound by its interpreter (one "
    "core at a time); all cores busy is the machine; neither is waiting (round trips, locks, fsync), "
    "not CPU. Sampled once a second (a process that lived less than that may be missed); the worker's "
    "drain rows cover worker start to the last event in every sink.\n"
)


def section(outcome: Outcome) -> list[str]:
    topology = outcome.topology
    if topology.embedded:
        where = "database: embedded SQLite (default); broker: embedded (the queue in the database)"
    else:
        from sqlalchemy.engine import make_url

        server = make_url(topology.server_url or "")
        broker = (topology.broker_url or "").split("@")[-1]
        where = (
            f"database: PostgreSQL at {server.host}:{server.port or 5432} (user {server.username}), databases "
            f"`bench_accounts_<size>_v<n>` (seeded once, reused), `bench_writes_<size>` (a fresh copy for the "
            f"writes), `bench_listener` (emptied each run); broker: RabbitMQ at {broker}, queues and exchanges "
            "`bench-*-<random>` of this run's own, deleted after it; the interim database sink writes a SQLite file"
        )
    parts = [f"## {topology.title}\n"]
    if outcome.skipped:
        return [*parts, f"Not measured: {outcome.skipped}.\n"]
    rows, growth = table_rows(outcome)
    parts += [
        f"- {where}",
        f"- measured in {outcome.seconds / 60:.1f} min\n",
        f"### Results ({topology.key})\n",
        markdown(rows),
    ]
    if growth:
        parts += [f"### How each grows ({topology.key}, item 7)\n", grid(growth)]
    parts += [
        f"### What bounds each figure ({topology.key})\n",
        grid(bounds(outcome)),
        f"### Measured ({topology.key})\n",
        details(outcome),
    ]
    return parts


def render(outcomes: list[Outcome], args: argparse.Namespace, smoke: bool, load_before: float, seconds: float) -> str:
    generator = "wrk" if has_wrk() and not args.python_loadgen else "the Python load generator (bench/loadgen.py)"
    findings = ROOT / "bench" / "FINDINGS.md"
    parts = [
        "# Benchmarks\n",
        "Generated by `make bench` (`python -m bench`); do not edit by hand: the findings at the end come from "
        "`bench/FINDINGS.md`.\n" + ("\n**SMOKE RUN: tiny sizes, the figures mean nothing.**\n" if smoke else ""),
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run took {seconds / 60:.1f} min",
        f"- machine: {machine()}",
        f"- 1-minute load average: {load_before:.1f} when the run started, {os.getloadavg()[0]:.1f} when it ended "
        "(other work on the machine shows here, and in the *others* column below; the ratios are to ceilings "
        "measured in the same run)",
        f"- topologies: {', '.join(outcome.topology.title for outcome in outcomes)}",
        f"- load generator: {generator}; server: uvicorn, one worker, log level {servers.LOG_LEVEL}, for the "
        "service and the ceiling alike\n",
        "Each figure is measured in the same run, on the same machine, as its ceiling; the ratio is figure / ceiling. "
        f"The reads and their ceiling alternate in {1 if smoke else http_items.READ_ROUNDS} rounds with both servers up (requests "
        "and seconds added up over the rounds; percentiles over every request of every round). "
        "A missed target is marked **MISSED** with the measured figure; targets are the issue's, never lowered: "
        "reads at 50 connections >= 0.6 of the ceiling on SQLite and >= 0.5 on PostgreSQL, p99 < 25 ms; the "
        "listener >= 2,000 events/s end to end at 100,000 tenures (200,000 events) on both; the service's "
        "peak memory < 300 MB; the ledger (issue 12): >= 1,000 postings/s at 20 connections with p99 < 50 ms, a "
        "statement page of 100 of 1,000 transactions p50 < 10 ms, on both, and `accounts ledger verify` over "
        "1,000,000 transactions < 10 s on SQLite; the events intake (issue 15): >= 10,000 envelopes/s accepted by "
        "`POST /api/v1/events` on the embedded default, and >= 2,000 events/s end to end through it (first POST "
        "to every sink) at 200,000 events, on both.\n",
        "On the production topology the listener's queue is filled before the clock starts: all the events are "
        "published to RabbitMQ first (the publisher's rate is reported as its ceiling), then one `accounts "
        "worker` is started and timed from its start (the command's start-up included) to the last event in "
        "every sink. The embedded listener is timed as before: from the worker's start, in a process that "
        "wraps the real `Worker` with timers on its sinks (item 5's workbook figures come from them), "
        "against the broker's consume+ack ceiling.\n",
        BOUNDS_NOTE,
    ]
    for outcome in outcomes:
        parts += section(outcome)
    parts += [
        "## How to run\n",
        "```sh\nmake bench          # both topologies; 30 to 90 minutes on 2 cores, writes this file\n"
        "make bench-smoke    # seconds: the scripts work and the tables are well formed (what CI runs; the\n"
        "                    # production topology too when PostgreSQL and RabbitMQ answer)\n"
        ".venv/bin/python -m bench --topology production --only listener --listener-sizes 1000,10000\n"
        ".venv/bin/python -m bench --only intake  # the events intake alone, both topologies (about 20 minutes)\n"
        "BENCH_POSTGRES_URL=postgresql+psycopg://postgres@db.example/postgres \\\n"
        "BENCH_RABBITMQ_URL=amqp://guest:guest@mq.example:5672/%2F .venv/bin/python -m bench\n```\n",
        "Install `wrk` (`apt-get install wrk`) for the HTTP reads; without it a Python generator in its own process "
        "drives both the service and the ceiling. Seeded SQLite databases are cached in `var/bench/`, seeded "
        "PostgreSQL databases are kept on the server (`bench_accounts_<size>_v<n>`). A run with one topology "
        "(`--topology`) or some items (`--only`) writes `var/bench/full/benchmarks-partial.md`, not this file.\n",
    ]
    if findings.exists():
        parts.append(findings.read_text(encoding="utf-8"))
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
