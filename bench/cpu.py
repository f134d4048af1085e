"""Who used the CPU while a figure was measured, and so what bounds it.

A figure alone does not say whether the service, the database server, the broker, the
load generator or the disk held it back. While each measurement runs, `CpuWatch`
records the CPU time of the processes taking part, grouped by role (the service and its
children, this run's PostgreSQL backends and the rest of PostgreSQL, RabbitMQ, the load
generator, everything else on the shared machine), and the machine's busy and iowait
time. `bound` reads that as one sentence for the report.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

SERVICE = "service"
LOADGEN = "load generator"
POSTGRES = "postgres (this run's database)"
POSTGRES_OTHER = "postgres (other)"
RABBITMQ = "rabbitmq"
BENCH = "bench (this process)"
OTHER = "other processes"
ROLES = (SERVICE, POSTGRES, POSTGRES_OTHER, RABBITMQ, LOADGEN, BENCH, OTHER)
RABBIT_NAMES = ("beam.smp", "erl_child_setup", "epmd", "inet_gethost")


@dataclass
class CpuUse:
    """CPU seconds by role over `wall` seconds; `busy` and `iowait` are the whole machine's."""

    wall: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0
    iowait: float = 0.0
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __add__(self, other: CpuUse) -> CpuUse:
        seconds = dict(self.seconds)
        for role, value in other.seconds.items():
            seconds[role] = seconds.get(role, 0.0) + value
        return CpuUse(self.wall + other.wall, seconds, self.busy + other.busy, self.iowait + other.iowait, self.cores)

    def share(self, role: str) -> float:
        """Average cores the role used: 1.0 is one core busy the whole time."""
        return self.seconds.get(role, 0.0) / self.wall if self.wall > 0 else 0.0

    def machine(self) -> float:
        return self.busy / self.wall if self.wall > 0 else 0.0

    def waiting(self) -> float:
        return self.iowait / self.wall if self.wall > 0 else 0.0


def bound(use: CpuUse, service: str = "the service", single_process: bool = True) -> str:
    """One sentence: what most likely held the figure back, from who used the CPU.

    A Python process runs its code on one core at a time (the interpreter lock), so a
    single-process service near 1.0 core is bound by its interpreter; a machine whose
    cores are all busy is bound by the cores, shared by whoever used them.
    """
    if use.wall <= 0:
        return "-"
    shares = sorted(((use.share(role), role) for role in ROLES), reverse=True)
    top_share, top = shares[0]
    machine = use.machine()
    users = ", ".join(f"{role} {share:.2f}" for share, role in shares[:3] if share >= 0.05)
    if top == SERVICE and single_process and top_share >= 0.85:
        return f"{service}'s interpreter: {top_share:.2f} of a core (one Python process)"
    if machine >= 0.9 * use.cores:
        return f"the machine's {use.cores} cores, all busy ({machine:.2f}): {users}"
    if top == POSTGRES and top_share >= 0.85:
        return f"the database server's CPU: its backends used {top_share:.2f} cores"
    if top == SERVICE and top_share >= 0.85 * min(use.cores, 2):
        return f"{service}'s processes: {top_share:.2f} cores"
    if use.waiting() >= 0.2:
        return f"the disk: iowait {use.waiting():.2f} cores ({users})"
    if top == BENCH and top_share >= 0.85:
        return f"the publisher's interpreter (this process): {top_share:.2f} of a core"
    if top == LOADGEN and top_share >= 0.85:
        return f"the load generator: {top_share:.2f} of a core"
    return f"waiting, not CPU (no core saturated; machine {machine:.2f} of {use.cores}): {users}"


class CpuWatch:
    """Samples the CPU time of every process (once a second, and at start and stop) and groups it by role.

    `roots` are the service's processes (their descendants count too); `database` names this
    run's PostgreSQL database, whose backends are told apart from the server's others. The load
    generator is this process's waited-for children (wrk, the Python generator): their CPU is
    exact, from the kernel's account of finished children.
    """

    def __init__(self, roots: list[int], database: str | None = None, interval: float = 1.0) -> None:
        self.roots = roots
        self.database = database
        self.interval = interval
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self.roles: dict[tuple[int, float], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._children = 0.0
        self._machine: Any = None
        self._own = 0.0
        self.use = CpuUse()

    def _service_pids(self) -> set[int]:
        pids = set(self.roots)
        for root in self.roots:
            with contextlib.suppress(psutil.Error):
                pids.update(child.pid for child in psutil.Process(root).children(recursive=True))
        return pids

    def _role(self, process: psutil.Process, service: set[int]) -> str:
        if process.pid in service:
            return SERVICE
        if process.pid == os.getpid():
            return BENCH
        try:
            name = process.name()
            if name == "postgres" or name.startswith("postgres:"):
                line = " ".join(process.cmdline())
                return POSTGRES if self.database and f" {self.database} " in f"{line} " else POSTGRES_OTHER
            if name in RABBIT_NAMES:
                return RABBITMQ
        except psutil.Error:
            return OTHER
        return OTHER

    def sample(self, *, initial: bool = False) -> None:
        service = self._service_pids()
        for process in psutil.process_iter():
            try:
                key = (process.pid, process.create_time())
                times = process.cpu_times()
            except psutil.Error:
                continue
            used = times.user + times.system
            if key not in self.roles:
                if process.pid == os.getpid():
                    continue  # this process's children are counted as the load generator, itself below
                self.roles[key] = self._role(process, service)
                # Seen at the start: count from now. Seen later: it started during the watch, count it all.
                self.first[key] = used if initial else 0.0
            elif self.roles[key] == OTHER and process.pid in service:
                self.roles[key] = SERVICE  # a child of the service seen before it was known as one
            self.last[key] = used

    def start(self) -> CpuWatch:
        self._started = time.perf_counter()
        self._machine = psutil.cpu_times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children = children.ru_utime + children.ru_stime
        own = resource.getrusage(resource.RUSAGE_SELF)
        self._own = own.ru_utime + own.ru_stime
        self.sample(initial=True)

        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self._thread = threading.Thread(target=loop, name="cpu-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> CpuUse:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)
        self.sample()
        wall = time.perf_counter() - self._started
        seconds: dict[str, float] = {}
        for key, role in self.roles.items():
            seconds[role] = seconds.get(role, 0.0) + max(0.0, self.last.get(key, 0.0) - self.first.get(key, 0.0))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds[LOADGEN] = seconds.get(LOADGEN, 0.0) + children.ru_utime + children.ru_stime - self._children
        own = resource.getrusage(resource.RUSAGE_SELF)
        seconds[BENCH] = own.ru_utime + own.ru_stime - self._own
        machine = psutil.cpu_times()
        assert self._machine is not None
        total = sum(machine) - sum(self._machine)
        idle = machine.idle - self._machine.idle
        iowait = getattr(machine, "iowait", 0.0) - getattr(self._machine, "iowait", 0.0)
        cores = os.cpu_count() or 1
        # Machine-wide counters are in core-seconds over every core: busy is what was neither idle nor waiting.
        self.use = CpuUse(wall, seconds, busy=max(0.0, total - idle - iowait), iowait=iowait, cores=cores)
        return self.use


@contextlib.contextmanager
def watching(roots: list[int], database: str | None = None) -> Iterator[CpuUse]:
    """`with watching([pid]) as use:` fills `use` when the block ends."""
    use = CpuUse()
    watch = CpuWatch(roots, database).start()
    try:
        yield use
    finally:
        measured = watch.stop()
        use.wall, use.seconds, use.busy, use.iowait, use.cores = (
            measured.wall,
            measured.seconds,
            measured.busy,
            measured.iowait,
            measured.cores,
        )
