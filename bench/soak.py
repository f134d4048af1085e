"""`python -m bench.soak` (`make soak`): the crash test of tests/reliability at 100,000 events.

Publishes realistic tenure events (every tenure's events in order, tenures interleaved),
then runs the real `accounts worker` and SIGKILLs it at random moments, again and
again, restarting it each time, until the queue is drained; the last worker is
stopped with SIGTERM. Then every guarantee of the crash test is checked: one account
per tenure, as in-order delivery gives it; one workbook row and one interim database
row per account; every account event published (and, on RabbitMQ, received);
nothing dead-lettered; `accounts interim reconcile` agreeing. Any broken guarantee
fails the run (exit 1).

    python -m bench.soak                            # embedded default (SQLite), 100,000 events
    python -m bench.soak --backend server           # PostgreSQL + RabbitMQ on 127.0.0.1
    python -m bench.soak --events 20000 --seed 7    # smaller or different

Not run in CI: it takes tens of minutes. The figures are printed and written to
var/soak/<backend>-<time>.json, for docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' harness and fixtures

from tests.conftest import _create_database, _drop_database, unique  # noqa: E402
from tests.reliability.harness import (  # noqa: E402
    AccountEventTap,
    Deployment,
    Figures,
    check_books,
    delete_rabbit_names,
    sqlite_url,
    story_items,
)
from tests.reliability.test_crash import stories_with_events  # noqa: E402

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def drain_with_kills(
    deployment: Deployment, expected: int, rng: random.Random, interval: tuple[float, float], timeout: float
) -> int:
    """Run the worker, SIGKILLing it every `interval` seconds (random) until every event is settled."""
    kills = 0
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < timeout, f"not drained after {timeout:.0f}s\n{deployment.logs()}"
        worker = deployment.start_worker()
        deadline = time.monotonic() + rng.uniform(*interval)
        settled = False
        while time.monotonic() < deadline:
            if deployment.settled(expected):
                settled = True
                break
            assert worker.alive(), f"the worker exited by itself:\n{worker.output()[-3000:]}"
            time.sleep(0.25)
        if settled:
            assert worker.terminate() == 0, worker.output()[-3000:]
            return kills
        worker.kill()
        kills += 1
        done = deployment.processed()
        elapsed = time.monotonic() - started
        log(f"kill {kills}: {done:,} of {expected:,} events processed, {done / elapsed:.0f}/s over {elapsed:.0f}s")


def soak(backend: str, events: int, seed: int, interval: tuple[float, float], keep: bool) -> Figures:
    workdir = ROOT / "var" / "soak" / f"{backend}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    workdir.mkdir(parents=True, exist_ok=True)
    databases: list[str] = []
    names: dict[str, str] = {}
    tap: AccountEventTap | None = None
    if backend == "embedded":
        deployment = Deployment(
            tmp=workdir,
            database_url=sqlite_url(workdir / "accounts.db"),
            interim_database_url=sqlite_url(workdir / "interim.db"),
        )
    else:
        names = {
            "tenure_queue": unique("soak_tenure_q"),
            "tenure_exchange": unique("soak_tenure_x"),
            "accounts_exchange": unique("soak_accounts_x"),
        }
        urls = []
        for _ in range(2):
            name, url = _create_database(PG_SERVER)
            databases.append(name)
            urls.append(url)
        deployment = Deployment(
            tmp=workdir, database_url=urls[0], broker_url=RABBITMQ, interim_database_url=urls[1], names=names
        )
        tap = AccountEventTap(RABBITMQ, names["accounts_exchange"], unique("soak_tap"))
    try:
        rng = random.Random(seed)
        log(f"{backend}: making {events:,} tenure events (seed {seed})")
        stories = stories_with_events(events, seed)
        stream = story_items(stories, rng)
        deployment.migrate()
        started = time.monotonic()
        deployment.publish_events(stream)
        log(f"published {len(stream):,} events for {len(stories):,} tenures in {time.monotonic() - started:.0f}s")
        kills = drain_with_kills(deployment, len(stream), rng, interval, timeout=6 * 3600)
        seconds = time.monotonic() - started
        log(f"drained after {kills} kill(s) in {seconds:.0f}s; checking the books")
        figures = Figures(events=len(stream), kills=kills, seconds=round(seconds, 1))
        check_books(deployment, stories, stream, figures, tap=tap)
        return figures
    finally:
        deployment.stop()
        if tap is not None:
            tap.close()
        if names:
            delete_rabbit_names(RABBITMQ, names)
        for name in databases:
            _drop_database(PG_SERVER, name)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["embedded", "server", "all"], default="embedded")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20_261_121)
    parser.add_argument("--min-interval", type=float, default=2.0, help="seconds before a kill, at least")
    parser.add_argument("--max-interval", type=float, default=20.0, help="seconds before a kill, at most")
    parser.add_argument("--keep", action="store_true", help="keep the databases, workbook and worker logs")
    args = parser.parse_args(argv)
    backends = ["embedded", "server"] if args.backend == "all" else [args.backend]
    failed = False
    for backend in backends:
        try:
            figures = soak(backend, args.events, args.seed, (args.min_interval, args.max_interval), args.keep)
        except AssertionError as error:
            log(f"{backend}: FAILED: {error}\n{traceback.format_exc()}")
            failed = True
            continue
        result = {"backend": backend, "when": datetime.now(UTC).isoformat(timespec="seconds"), **asdict(figures)}
        out = ROOT / "var" / "soak" / f"{backend}-last.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        log(f"{backend}: PASSED {json.dumps(result)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
