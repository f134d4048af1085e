"""The benchmark report says what bounds each figure, from who used the CPU while it was measured."""

from __future__ import annotations

import pytest
from bench.cpu import LOADGEN, OTHER, POSTGRES, SERVICE, CpuUse, bound
from bench.topology import EMBEDDED, production


def use(wall: float, busy: float, iowait: float = 0.0, **seconds: float) -> CpuUse:
    names = {"service": SERVICE, "postgres": POSTGRES, "loadgen": LOADGEN, "other": OTHER}
    return CpuUse(wall, {names[key]: value for key, value in seconds.items()}, busy, iowait, cores=2)


def test_a_service_on_a_full_core_is_bound_by_its_interpreter() -> None:
    assert bound(use(10, 14, service=9.6, loadgen=3)).startswith("the service's interpreter: 0.96 of a core")


def test_every_core_busy_names_the_machine_and_who_used_it() -> None:
    verdict = bound(use(10, 19.8, service=5, other=12, loadgen=2.8))
    assert verdict.startswith("the machine's 2 cores, all busy (1.98)")
    assert "other processes 1.20" in verdict and "service 0.50" in verdict


def test_a_busy_database_server_is_named() -> None:
    assert bound(use(10, 14, postgres=9.5, service=4)).startswith("the database server's CPU")


def test_nothing_saturated_is_waiting_and_iowait_is_the_disk() -> None:
    assert bound(use(10, 6, service=4, postgres=2)).startswith("waiting, not CPU")
    assert bound(use(10, 6, iowait=3, service=4)).startswith("the disk: iowait 0.30")


def test_rounds_add_up() -> None:
    total = use(10, 10, service=5) + use(5, 4, service=2, loadgen=1)
    assert total.wall == 15 and total.seconds[SERVICE] == 7 and total.seconds[LOADGEN] == 1
    assert total.share(SERVICE) == pytest.approx(7 / 15)


def test_the_production_topology_only_names_benchmark_databases() -> None:
    topology = production("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    assert topology.database_url("bench_listener") == "postgresql+psycopg://postgres@127.0.0.1:5432/bench_listener"
    with pytest.raises(ValueError):
        topology.database_url("accounts")
    assert EMBEDDED.database_url("bench_listener") is None
