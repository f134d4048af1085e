"""HTTP load generation: wrk when it is installed, else a Python generator in its own process.

Within one run every read figure and its ceiling go through the same generator, so
their ratio compares the servers, not the clients. The Python generator is asyncio
over raw HTTP/1.1 keep-alive sockets: N connections, each sending its next request
as soon as the last answer is read, for a fixed time after a warm-up; it records the
latency of every request. Account writes (POST, PATCH with If-Match) always use it,
because each connection has to remember the ETag its last PATCH returned; ledger
postings go through wrk, whose Lua script makes a new id for every request.

Run as `python -m bench.loadgen SPEC.json RESULT.json`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Load:
    """What to send: `kind` is get (paths), post (new accounts), patch (accounts with ETags) or
    posting (a transaction with a new id to one of the paths, each /api/v1/accounts/{id}/transactions)."""

    kind: str
    port: int
    token: str
    connections: int
    duration: float
    warmup: float = 1.0
    host: str = "127.0.0.1"
    paths: list[str] = field(default_factory=list)
    accounts: list[tuple[str, str]] = field(default_factory=list)  # (id, etag) for patch


@dataclass
class LoadResult:
    generator: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    # Every latency, as [microseconds, how many]: so that rounds of one load merge into exact percentiles.
    histogram: list[list[int]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _check_loopback(host: str) -> None:
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit(f"the benchmarks only load-test loopback addresses, not {host}")


def has_wrk() -> bool:
    """wrk is on PATH and not turned off (BENCH_PYTHON_LOADGEN=1)."""
    return shutil.which("wrk") is not None and not os.environ.get("BENCH_PYTHON_LOADGEN")


def run_load(load: Load, *, use_wrk: bool | None = None) -> LoadResult:
    _check_loopback(load.host)
    if use_wrk is None:
        use_wrk = has_wrk()
    if use_wrk and load.kind in WRK_KINDS:
        return _run_wrk(load)
    return _run_python(load)


# wrk ----------------------------------------------------------------------------------------

_WRK_HEAD = """
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Accept"] = "application/json"
math.randomseed(%(seed)d)
local paths = {%(paths)s}
"""

_WRK_GET = """
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""

# A posting with an id of its own every request (a repeated id would be a retry, answered 200 without
# posting), to a random one of the paths: Charges and Payments in turn, amounts in pence.
_WRK_POSTING = """
wrk.headers["Content-Type"] = "application/json"
local sent = 0
local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    return string.format("%%x", c == "x" and math.random(0, 15) or math.random(8, 11))
  end))
end
request = function()
  sent = sent + 1
  local kind = (sent %% 2 == 0) and "Payment" or "Charge"
  local body = string.format(
    '{"id":"%%s","transactionType":"%%s","amount":%%d.%%02d,"transactionDate":"2026-04-06","reference":"BENCH-%%d"}',
    uuid4(), kind, math.random(1, 500), math.random(0, 99), sent)
  return wrk.format("POST", paths[math.random(#paths)], nil, body)
end
"""

_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"errors\\":%%d,\\"status_errors\\":%%d," ..
    "\\"p50_us\\":%%d,\\"p90_us\\":%%d,\\"p99_us\\":%%d,\\"max_us\\":%%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  local pairs = {}
  for i = 1, #latency do
    local value, count = latency(i)
    pairs[#pairs + 1] = string.format("[%%d,%%d]", value, count)
  end
  io.write("BENCH-LATENCY [" .. table.concat(pairs, ",") .. "]\\n")
end
"""
WRK_KINDS = {"get": _WRK_GET, "posting": _WRK_POSTING}


def wrk_script(load: Load, seed: int) -> str:
    """The Lua script for one wrk run: a seed of its own, so a posting load's warm-up and run send different ids."""
    values = {"paths": ",".join(json.dumps(path) for path in load.paths), "token": load.token, "seed": seed}
    return (_WRK_HEAD + WRK_KINDS[load.kind] + _WRK_DONE) % values


def _wrk(load: Load, seconds: float) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(wrk_script(load, random.randrange(1, 2**31)))
        script_path = handle.name
    url = f"http://{load.host}:{load.port}/"
    command = ["wrk", "-t1", f"-c{load.connections}", "--timeout", "10s", "-s", script_path]
    try:
        return subprocess.run(
            [*command, f"-d{max(1, round(seconds))}s", url], capture_output=True, text=True, check=True
        )
    finally:
        Path(script_path).unlink(missing_ok=True)


def _run_wrk(load: Load) -> LoadResult:
    if load.warmup > 0:
        _wrk(load, load.warmup)
    done = _wrk(load, load.duration)
    match = re.search(r"BENCH-RESULT (\{.*\})", done.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(match.group(1))
    latency = re.search(r"BENCH-LATENCY (\[.*\])", done.stdout)
    errors = int(raw["errors"]) + int(raw["status_errors"])
    return LoadResult(
        generator="wrk",
        requests=int(raw["requests"]),
        seconds=int(raw["duration_us"]) / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        statuses={"non-2xx/3xx": int(raw["status_errors"])} if raw["status_errors"] else {},
        histogram=json.loads(latency.group(1)) if latency else [],
    )


# the Python generator -----------------------------------------------------------------------


def _run_python(load: Load) -> LoadResult:
    with tempfile.TemporaryDirectory() as directory:
        spec, result = Path(directory) / "spec.json", Path(directory) / "result.json"
        spec.write_text(json.dumps(asdict(load)), encoding="utf-8")
        from bench.servers import python_env

        command = [sys.executable, "-m", "bench.loadgen", str(spec), str(result)]
        subprocess.run(command, check=True, env=python_env())
        return LoadResult(**json.loads(result.read_text(encoding="utf-8")))


def histogram(microseconds: Iterable[int]) -> list[list[int]]:
    """Latencies as [microseconds, how many], in order."""
    counts: dict[int, int] = {}
    for value in microseconds:
        counts[value] = counts.get(value, 0) + 1
    return [[value, counts[value]] for value in sorted(counts)]


def histogram_percentile(pairs: list[list[int]], fraction: float) -> int:
    """Nearest-rank percentile (microseconds) of a histogram of [microseconds, how many], in order."""
    total = sum(count for _, count in pairs)
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0] if pairs else 0


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def _post_body() -> bytes:
    target = str(uuid.uuid4())
    return json.dumps(
        {
            "targetType": "Tenure",
            "accountType": "Master",
            "rentGroupType": "Tenant",
            "agreementType": "Master Account",
            "accountStatus": "Active",
            "targetId": target,
            "accountBalance": -12.5,
            "tenure": {
                "tenureId": target,
                "tenureType": {"code": "SEC", "description": "Secure"},
                "fullAddress": "1 Hillman Street, London E8 1DY",
                "primaryTenants": [{"id": str(uuid.uuid4()), "fullName": "Mrs Jane Smith"}],
            },
        }
    ).encode()


def _posting_body(rng: random.Random) -> bytes:
    """What the wrk script sends: a Charge or a Payment with an id of its own (uuid4, not the seeded rng)."""
    kind = rng.choice(("Charge", "Payment"))
    amount = f"{rng.randrange(1, 500)}.{rng.randrange(0, 100):02d}"
    return (
        f'{{"id":"{uuid.uuid4()}","transactionType":"{kind}","amount":{amount},'
        f'"transactionDate":"2026-04-06","reference":"BENCH"}}'
    ).encode()


class _Connection:
    def __init__(self, load: Load, number: int, stats: _Stats) -> None:
        self.load = load
        self.stats = stats
        self.rng = random.Random(number)
        mine = load.accounts[number :: load.connections]
        self.etags = {account_id: etag for account_id, etag in mine}
        self.order = list(self.etags)
        self.next = 0
        self.auth = f"Authorization: Bearer {load.token}\r\n"
        self.host = f"Host: {load.host}:{load.port}\r\n"

    def request(self) -> tuple[bytes, str | None]:
        load = self.load
        if load.kind == "get":
            path = load.paths[self.rng.randrange(len(load.paths))]
            return (f"GET {path} HTTP/1.1\r\n{self.host}{self.auth}Accept: application/json\r\n\r\n".encode(), None)
        if load.kind == "posting":
            path = load.paths[self.rng.randrange(len(load.paths))]
            body = _posting_body(self.rng)
            head = (
                f"POST {path} HTTP/1.1\r\n{self.host}{self.auth}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            return head.encode() + body, None
        if load.kind == "post":
            body = _post_body()
            head = (
                f"POST /api/v1/accounts HTTP/1.1\r\n{self.host}{self.auth}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            return head.encode() + body, None
        account_id = self.order[self.next % len(self.order)]
        self.next += 1
        balance = f"-{self.rng.randrange(0, 500_000) / 100:.2f}"
        body = f'{{"accountBalance": {balance}}}'.encode()
        head = (
            f"PATCH /api/v1/accounts/{account_id} HTTP/1.1\r\n{self.host}{self.auth}"
            f"Content-Type: application/merge-patch+json\r\nIf-Match: {self.etags[account_id]}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body, account_id

    async def run(self, started: float, measuring_from: float, until: float) -> None:
        reader, writer = await asyncio.open_connection(self.load.host, self.load.port)
        try:
            while True:
                now = time.perf_counter()
                if now >= until:
                    return
                payload, account_id = self.request()
                sent = time.perf_counter()
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                status, headers = _parse_head(head)
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                elapsed = time.perf_counter() - sent
                if account_id is not None and status == 200 and "etag" in headers:
                    self.etags[account_id] = headers["etag"]
                if sent >= measuring_from:
                    self.stats.add(status, elapsed)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection(self.load.host, self.load.port)
        finally:
            writer.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}

    def add(self, status: int, elapsed: float) -> None:
        self.latencies.append(elapsed)
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1


async def _generate(load: Load) -> LoadResult:
    stats = _Stats()
    started = time.perf_counter()
    measuring_from = started + load.warmup
    until = measuring_from + load.duration
    connections = [_Connection(load, number, stats) for number in range(load.connections)]
    await asyncio.gather(*(connection.run(started, measuring_from, until) for connection in connections))
    seconds = time.perf_counter() - measuring_from
    ordered = sorted(stats.latencies)
    expected = {"get": "200", "post": "201", "patch": "200", "posting": "201"}[load.kind]
    errors = sum(count for status, count in stats.statuses.items() if status != expected)
    return LoadResult(
        generator="python",
        requests=len(ordered),
        seconds=seconds,
        errors=errors,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p90_ms=percentile(ordered, 0.90) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        statuses=stats.statuses,
        histogram=histogram(round(elapsed * 1e6) for elapsed in ordered),
    )


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    raw = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    raw["accounts"] = [tuple(pair) for pair in raw.get("accounts", [])]
    load = Load(**raw)
    _check_loopback(load.host)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_generate(load))
    else:
        result = uvloop.run(_generate(load))
    Path(result_path).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
