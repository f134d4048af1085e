"""Items 1 to 3: the API's reads, writes and arrears query, over real HTTP.

The service runs as `accounts serve --no-worker` on a seeded database; the ceiling
is `bench.ceiling` on the same server; both are loaded by the same generator.

The reads and their ceiling are measured in alternating rounds (ceiling, by id, by
target; again; again) with both servers up, so a change in what else the shared
machine is doing lands on both sides of the ratio rather than on one: measured once
each, a minute apart, the ceiling alone moved from 13,600 to 20,500 requests/s
between runs.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from bench import servers
from bench.cpu import CpuUse, watching
from bench.loadgen import Load, LoadResult, histogram_percentile, run_load
from bench.seed import Seeded, scratch_copy

ARREARS = "/api/v1/accounts/arrears?resultsCount=100&sortBy=amountOwed&direction=desc"


READ_ROUNDS = 3


@dataclass
class ReadRun:
    size: int
    by_id: LoadResult
    by_target: LoadResult
    arrears: LoadResult
    peak_rss: int
    ceiling: LoadResult
    ceiling_peak_rss: int
    cpu: dict[str, CpuUse] = field(default_factory=dict)  # by load: ceiling, by_id, by_target, arrears


@dataclass
class WriteRun:
    size: int
    post: LoadResult
    patch: LoadResult
    peak_rss: int
    cpu: dict[str, CpuUse] = field(default_factory=dict)  # post, patch


@dataclass
class Durations:
    """How long each load runs (seconds), and the connections the issue asks for."""

    reads: float = 10.0
    arrears: float = 10.0
    writes: float = 10.0
    warmup: float = 2.0
    read_connections: int = 50
    write_connections: int = 20
    arrears_connections: int = 1
    rounds: int = READ_ROUNDS  # of the reads and their ceiling, alternating
    notes: list[str] = field(default_factory=list)


def _get(port: int, path: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def _check_answers(port: int, token: str, seeded: Seeded) -> None:
    """Before timing anything: the service answers these requests correctly (200, the right account)."""
    account_id, target_id = seeded.sample[0]
    status, body = _get(port, f"/api/v1/accounts/{account_id}", token)
    if status != 200 or json.loads(body)["id"] != account_id:
        raise RuntimeError(f"GET /accounts/{account_id} answered {status}: {body[:200]!r}")
    status, body = _get(port, f"/api/v1/accounts?targetId={target_id}", token)
    found = json.loads(body)["accountResponseList"]
    if status != 200 or [item["id"] for item in found] != [account_id]:
        raise RuntimeError(f"GET /accounts?targetId={target_id} answered {status}: {body[:200]!r}")
    status, body = _get(port, ARREARS, token)
    owed = [-float(item["accountBalance"]) for item in json.loads(body)["accountResponseList"]]
    if status != 200 or not owed or owed != sorted(owed, reverse=True):
        raise RuntimeError(f"GET {ARREARS} answered {status} with unsorted or no accounts")


def combined(rounds: list[LoadResult]) -> LoadResult:
    """Rounds of one load as one: requests and time added up, percentiles of every request of every round."""
    statuses: dict[str, int] = {}
    merged: dict[int, int] = {}
    for result in rounds:
        for status, number in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + number
        for value, count in result.histogram:
            merged[value] = merged.get(value, 0) + count
    pairs = [[value, merged[value]] for value in sorted(merged)]
    if pairs and all(result.histogram for result in rounds):
        p50, p90, p99 = (histogram_percentile(pairs, fraction) / 1000 for fraction in (0.50, 0.90, 0.99))
    else:  # no histograms: the worst round's (the median round's p50)
        p50 = sorted(result.p50_ms for result in rounds)[len(rounds) // 2]
        p90, p99 = max(result.p90_ms for result in rounds), max(result.p99_ms for result in rounds)
    return LoadResult(
        generator=rounds[0].generator,
        requests=sum(result.requests for result in rounds),
        seconds=sum(result.seconds for result in rounds),
        errors=sum(result.errors for result in rounds),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        max_ms=max(result.max_ms for result in rounds),
        statuses=statuses,
        histogram=pairs,
    )


def reads(seeded: Seeded, work: Path, token: str, durations: Durations) -> ReadRun:
    """The reads and the ceiling in alternating rounds, both servers up; then the arrears query."""
    with servers.ceiling(work) as ceiling, servers.service(seeded.url, work, name=f"service-{seeded.size}") as server:
        _check_answers(server.port, token, seeded)
        rounds = durations.rounds
        c, seconds = durations.read_connections, durations.reads / rounds
        by_id_paths = [f"/api/v1/accounts/{a}" for a, _ in seeded.sample]
        by_target_paths = [f"/api/v1/accounts?targetId={t}" for _, t in seeded.sample]
        measured: dict[str, list[LoadResult]] = {"ceiling": [], "by_id": [], "by_target": []}
        cpu: dict[str, CpuUse] = {name: CpuUse() for name in (*measured, "arrears")}
        for number in range(rounds):
            warm = durations.warmup if number == 0 else min(durations.warmup, 0.5)
            for name, process, port, paths in (
                ("ceiling", ceiling.process.pid, ceiling.port, by_id_paths),
                ("by_id", server.process.pid, server.port, by_id_paths),
                ("by_target", server.process.pid, server.port, by_target_paths),
            ):
                with watching([process], seeded.database) as use:
                    measured[name].append(run_load(Load("get", port, token, c, seconds, warm, paths=paths)))
                cpu[name] = cpu[name] + use
        with watching([server.process.pid], seeded.database) as use:
            arrears = run_load(
                Load(
                    "get",
                    server.port,
                    token,
                    durations.arrears_connections,
                    durations.arrears,
                    durations.warmup,
                    paths=[ARREARS],
                )
            )
        cpu["arrears"] = use
        server.memory.sample()
        return ReadRun(
            seeded.size,
            combined(measured["by_id"]),
            combined(measured["by_target"]),
            arrears,
            server.memory.peak,
            combined(measured["ceiling"]),
            ceiling.memory.peak,
            cpu,
        )


def writes(seeded: Seeded, work: Path, token: str, durations: Durations) -> WriteRun:
    """POST and PATCH (If-Match) on a scratch copy of a seeded database."""
    url = scratch_copy(seeded, work, f"writes-{seeded.size}")
    database = make_url(url).database if seeded.database else None
    with servers.service(url, work, name=f"service-writes-{seeded.size}") as server:
        c, seconds, warm = durations.write_connections, durations.writes, durations.warmup
        with watching([server.process.pid], database) as post_cpu:
            post = run_load(Load("post", server.port, token, c, seconds, warm))
        accounts = [(account_id, f'"{account_id}-1"') for account_id, _ in seeded.sample]
        with watching([server.process.pid], database) as patch_cpu:
            patch = run_load(Load("patch", server.port, token, c, seconds, warm, accounts=accounts))
        server.memory.sample()
        return WriteRun(seeded.size, post, patch, server.memory.peak, {"post": post_cpu, "patch": patch_cpu})
