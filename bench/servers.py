"""Processes under test: the service (`accounts serve --no-worker`) and the ceiling app.

Each runs as its own process on a free loopback port, with its output in a log file
under the work directory; its resident memory is sampled while it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET = "bench-only-secret-0123456789abcdef-not-for-production"
LOG_LEVEL = "warning"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(database_url: str, work: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a service process: this run's database, port and secret; nothing else inherited."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env.update(
        {
            "ACCOUNTS_ENVIRONMENT": "test",
            "ACCOUNTS_DATABASE_URL": database_url,
            "ACCOUNTS_HOST": "127.0.0.1",
            "ACCOUNTS_PORT": str(port),
            "ACCOUNTS_JWT_SECRET": BENCH_SECRET,
            "ACCOUNTS_LOG_LEVEL": LOG_LEVEL,
            "ACCOUNTS_RUN_WORKER_IN_SERVE": "false",
            "ACCOUNTS_SPREADSHEET_PATH": str(work / "serve-interim.xlsx"),
            "ACCOUNTS_INTERIM_SINKS": "spreadsheet",
        }
    )
    env.update(extra)
    return env


def accounts_command() -> list[str]:
    """The installed `accounts` script beside this Python, else the module."""
    script = Path(sys.executable).with_name("accounts")
    if script.exists():
        return [str(script)]
    found = shutil.which("accounts")
    return [found] if found else [sys.executable, "-m", "accounts.entrypoints.cli"]


def bench_token() -> str:
    from accounts.entrypoints.http.auth import mint_token
    from accounts.settings import Settings

    settings = Settings(_env_file=None, environment="test", jwt_secret=BENCH_SECRET)  # type: ignore[call-arg]
    groups = sorted(set(settings.read_groups) | set(settings.write_groups))
    return mint_token(settings, name="Benchmark", email="bench@localhost", groups=groups)


@dataclass
class MemoryWatch:
    """Samples a process's resident set (with its children) on a thread; keeps the peak."""

    pid: int
    interval: float = 0.1
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            process = psutil.Process(self.pid)
            rss = process.memory_info().rss
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
        except psutil.Error:
            return
        self.peak = max(self.peak, rss)

    def start(self) -> MemoryWatch:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        return self.peak


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    memory: MemoryWatch
    log: Path


def _wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{server.port}{path}"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}; see {server.log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {url} within {timeout:.0f}s; see {server.log}")


@contextlib.contextmanager
def running(name: str, command: list[str], env: dict[str, str], work: Path, port: int, ready: str) -> Iterator[Server]:
    log = work / f"{name}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=work)
    server = Server(name, port, process, MemoryWatch(process.pid), log)
    try:
        _wait_ready(server, ready)
        server.memory.start()
        yield server
    finally:
        server.memory.stop()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def service(database_url: str, work: Path, name: str = "service") -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    env = service_env(database_url, work, port)
    return running(name, [*accounts_command(), "serve", "--no-worker"], env, work, port, "/api/v1/health/live")


def ceiling(work: Path) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    command = [sys.executable, "-m", "bench.ceiling", "--port", str(port), "--log-level", LOG_LEVEL]
    return running("ceiling", command, python_env(), work, port, "/api/v1/accounts/x")


def python_env() -> dict[str, str]:
    """This environment, with the repository root importable (for `python -m bench.*` children)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env
