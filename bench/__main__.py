"""`python -m bench`: run the benchmarks, print the table, write docs/benchmarks.md.

    python -m bench                      # everything, at the issue's sizes (writes docs/benchmarks.md)
    python -m bench --smoke              # tiny sizes, seconds: checks the scripts and the table, no time limits
    python -m bench --only listener      # one group: reads (items 1, 3), writes (2), listener (4, 5)
    python -m bench --sizes 10000,100000,1000000 --listener-sizes 1000,10000,50000

With ACCOUNTS_DATABASE_URL (PostgreSQL, a database whose name contains "bench") and/or
ACCOUNTS_BROKER_URL (amqp://...) set, the same runs go against those servers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import http_items, listener, servers
from bench.loadgen import has_wrk
from bench.seed import seeded_database
from bench.table import Row, check_markdown, markdown, number, plain, ratio

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
}
MB = 1024 * 1024


@dataclass
class Outcome:
    reads: list[http_items.ReadRun] = field(default_factory=list)
    ceiling: tuple[object, int] | None = None
    writes: http_items.WriteRun | None = None
    listener: list[listener.ListenerRun] = field(default_factory=list)
    workbook: listener.WorkbookRun | None = None
    seed_seconds: dict[int, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    load_before: float = 0.0


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
    parser.add_argument("--sizes", type=parse_sizes, help="accounts stored for items 1 and 3 (three sizes for item 7)")
    parser.add_argument(
        "--listener-sizes", type=parse_sizes, help="tenures for item 4 (each is a create and an update)"
    )
    parser.add_argument(
        "--workbook-rows", type=int, help="tenure accounts in the workbook for item 5 (default 100,000)"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    smoke = args.smoke
    sizes = args.sizes or ([200, 1_000, 3_000] if smoke else [10_000, 100_000, 1_000_000])
    listener_sizes = args.listener_sizes or ([25, 50, 100] if smoke else list(LISTENER_SIZES))
    workbook_rows = args.workbook_rows or (200 if smoke else 100_000)
    duration = args.duration or (1.0 if smoke else 10.0)
    durations = http_items.Durations(reads=duration, arrears=duration, writes=duration, warmup=0.5 if smoke else 2.0)
    groups = {GROUPS[name] for name in args.only} if args.only else {"reads", "writes", "listener", "workbook"}
    work = args.work / ("smoke" if smoke else "full")
    work.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("ACCOUNTS_DATABASE_URL") or None
    broker_url = os.environ.get("ACCOUNTS_BROKER_URL") or None
    output = args.output or (
        work / "benchmarks-smoke.md" if smoke else ROOT / "docs" / report_name(database_url, broker_url)
    )
    if args.python_loadgen:
        os.environ["BENCH_PYTHON_LOADGEN"] = "1"
    token = servers.bench_token()
    headline = 100_000 if 100_000 in sizes else sizes[len(sizes) // 2]
    headline_tenures = listener_sizes[-1]
    outcome = Outcome()
    outcome.load_before = os.getloadavg()[0]
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    if "reads" in groups or "writes" in groups:
        for size in sizes:
            say(f"seeding {size:,} accounts")
            seeded = seeded_database(size, args.work, database_url)
            outcome.seed_seconds[size] = seeded.seconds
            if "reads" in groups:
                say(f"reads at {size:,} accounts, in rounds with the ceiling (bare Starlette on uvicorn)")
                run = http_items.reads(seeded, work, token, durations)
                outcome.reads.append(run)
                if outcome.ceiling is None or size == headline:
                    outcome.ceiling = (run.ceiling, run.ceiling_peak_rss)
            if "writes" in groups and size == headline:
                say(f"writes at {size:,} accounts")
                outcome.writes = http_items.writes(seeded, work, token, durations)
    if "listener" in groups:
        for tenures in listener_sizes:
            say(f"listener: {tenures:,} creates + {tenures:,} updates")
            outcome.listener.append(listener.run(tenures, work, database_url, broker_url))
    if "workbook" in groups:
        say(f"workbook: {workbook_rows:,} tenure accounts")
        outcome.workbook = listener.workbook(workbook_rows, work, database_url, broker_url)
    say("done")
    rows, growth = table_rows(outcome, headline, headline_tenures)
    report = render(outcome, rows, growth, args, smoke, database_url, broker_url, time.perf_counter() - started)
    print()
    print(plain(rows))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(f"written to {output}")
    check_markdown(markdown(rows))
    outcome.problems.extend(sanity(outcome))
    for problem in outcome.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if outcome.problems else 0


def report_name(database_url: str | None, broker_url: str | None) -> str:
    """docs/benchmarks.md for the embedded default; a file of its own for other servers."""
    from sqlalchemy.engine import make_url

    database = make_url(database_url).get_backend_name() if database_url else "sqlite"
    broker = broker_url.split(":", 1)[0] if broker_url else "embedded"
    if (database, broker) == ("sqlite", "embedded"):
        return "benchmarks.md"
    names = {"postgresql": "postgresql", "sqlite": "sqlite", "amqp": "rabbitmq", "sqs": "sqs", "embedded": "embedded"}
    return f"benchmarks-{names.get(database, database)}-{names.get(broker, broker)}.md"


def sanity(outcome: Outcome) -> list[str]:
    """What says the scripts did not work (never a time limit): no requests, errors, events lost."""
    problems = []
    loads = [(f"reads {run.size}", load) for run in outcome.reads for load in (run.by_id, run.by_target, run.arrears)]
    if outcome.writes:
        loads += [("POST", outcome.writes.post), ("PATCH", outcome.writes.patch)]
    if outcome.ceiling:
        loads.append(("ceiling", outcome.ceiling[0]))  # type: ignore[arg-type]
    for name, load in loads:
        if load.requests == 0:  # type: ignore[attr-defined]
            problems.append(f"{name}: no request completed")
        if load.errors:  # type: ignore[attr-defined]
            problems.append(f"{name}: {load.errors} failed requests {load.statuses}")  # type: ignore[attr-defined]
    for run in outcome.listener:
        if run.drain.dead_letters:
            problems.append(f"listener {run.tenures}: {run.drain.dead_letters} events dead-lettered")
        if run.drain.rows != run.tenures:
            problems.append(f"listener {run.tenures}: {run.drain.rows} interim rows, expected {run.tenures}")
    if outcome.workbook and outcome.workbook.drain.rows != outcome.workbook.rows:
        problems.append(f"workbook: {outcome.workbook.drain.rows} rows, expected {outcome.workbook.rows}")
    return problems


def ms(value: float) -> str:
    return number(value, "ms", 1 if value < 100 else 0)


def per_second(value: float) -> str:
    return number(value, "/s", 0)


def table_rows(outcome: Outcome, headline: int, headline_tenures: int) -> tuple[list[Row], list[list[str]]]:
    rows: list[Row] = []
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
                    ">= 0.50 of ceiling",
                    share >= 0.5,
                )
            )
            rows.append(Row("1 reads", f"{label} p99", ms(load.p99_ms), "-", "-", "< 25 ms", load.p99_ms < 25))
    if outcome.writes:
        w = outcome.writes
        for label, load in (("POST /accounts", w.post), ("PATCH /accounts/{id} If-Match", w.patch)):
            rows.append(Row("2 writes", f"{label} req/s ({w.size:,} accounts, 20 conns)", per_second(load.rps)))
            rows.append(Row("2 writes", f"{label} p50 / p99", f"{ms(load.p50_ms)} / {ms(load.p99_ms)}"))
    if outcome.reads:
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
        broker = c.messages / c.consume_seconds if c.consume_seconds else 0.0
        sinks = "+".join(d.sinks)
        rows.append(
            Row(
                "4 listener",
                f"events/s end to end ({d.events:,} events, sinks {sinks})",
                per_second(rate),
                per_second(broker),
                ratio(rate, broker),
                ">= 2,000 /s",
                rate >= 2000,
            )
        )
        per_event = d.workbook_cpu_seconds / d.events * 1000 if d.events else 0.0
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
                "peak RSS of the service (items 1-5)",
                number(peak, "MB", 0),
                target="< 300 MB",
                met=peak < 300,
            )
        )
    # Item 7: how each grows with size.
    if outcome.reads:
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
    if outcome.listener:
        growth.append(
            ["size (tenures; events = 2x)", *(f"{run.tenures:,}" for run in outcome.listener), "largest / smallest"]
        )
        for label, pick in (
            ("4 events/s end to end", lambda r: r.drain.events / r.drain.seconds_end_to_end),
            ("4 broker ceiling (consume+ack) msg/s", lambda r: r.ceiling.messages / r.ceiling.consume_seconds),
            ("5 workbook CPU ms per event", lambda r: r.drain.workbook_cpu_seconds / r.drain.events * 1000),
            ("6 worker peak RSS MB", lambda r: r.drain.peak_rss / MB),
        ):
            values = [pick(run) for run in outcome.listener]
            growth.append([label, *(number(v) for v in values), f"{values[-1] / values[0]:.2f}x" if values[0] else "-"])
    return rows, growth


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
    if outcome.seed_seconds:
        seeded = ", ".join(
            f"{size:,} in {seconds:.0f} s" if seconds else f"{size:,} reused"
            for size, seconds in outcome.seed_seconds.items()
        )
        lines.append(f"- seeding accounts: {seeded}")
    return "\n".join(lines) + "\n"


def render(
    outcome: Outcome,
    rows: list[Row],
    growth: list[list[str]],
    args: argparse.Namespace,
    smoke: bool,
    database_url: str | None,
    broker_url: str | None,
    seconds: float,
) -> str:
    from sqlalchemy.engine import make_url

    database = (
        make_url(database_url).render_as_string(hide_password=True) if database_url else "embedded SQLite (default)"
    )
    broker = broker_url.split("@")[-1] if broker_url else "embedded (in the database)"
    generator = "wrk" if has_wrk() and not args.python_loadgen else "the Python load generator (bench/loadgen.py)"
    findings = ROOT / "bench" / "FINDINGS.md"
    parts = [
        "# Benchmarks\n",
        "Generated by `make bench` (`python -m bench`); do not edit by hand: the findings at the end come from "
        "`bench/FINDINGS.md`.\n" + ("\n**SMOKE RUN: tiny sizes, the figures mean nothing.**\n" if smoke else ""),
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; run took {seconds / 60:.1f} min",
        f"- machine: {machine()}",
        f"- 1-minute load average: {outcome.load_before:.1f} when the run started, {os.getloadavg()[0]:.1f} when it ended "
        "(other work on the machine shows here; the ratios are to ceilings measured in the same run)",
        f"- database: {database}; broker: {broker}",
        f"- load generator: {generator}; server: uvicorn, one worker, log level {servers.LOG_LEVEL}, for the service and the ceiling alike\n",
        "Each figure is measured in the same run, on the same machine, as its ceiling; the ratio is figure / ceiling. "
        f"The reads and their ceiling alternate in {http_items.READ_ROUNDS} rounds with both servers up (requests "
        "and seconds added up over the rounds; percentiles over every request of every round). "
        "A missed target is marked **MISSED** with the measured figure; targets are the issue's, never lowered.\n",
        "## Results\n",
        markdown(rows),
        "## How each grows (item 7)\n",
        grid(growth),
        "## Measured\n",
        details(outcome),
        "## How to run\n",
        "```sh\nmake bench          # everything; 8 to 13 minutes on 2 cores, writes this file\n"
        "make bench-smoke    # seconds: the scripts work and the table is well formed (what CI runs)\n"
        ".venv/bin/python -m bench --only listener --listener-sizes 1000,10000,50000\n"
        "ACCOUNTS_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/bench_accounts \\\n"
        "ACCOUNTS_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2F .venv/bin/python -m bench --only listener\n```\n",
        "Install `wrk` (`apt-get install wrk`) for the HTTP reads; without it a Python generator in its own process "
        "drives both the service and the ceiling. Seeded SQLite databases are cached in `var/bench/`.\n",
    ]
    if findings.exists():
        parts.append(findings.read_text(encoding="utf-8"))
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
