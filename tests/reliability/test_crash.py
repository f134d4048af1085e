"""Fault item 1: the worker SIGKILLed at random moments while it drains, and restarted each time.

5,000 tenure events are published; the real `accounts worker` process is killed at
least five times at random moments of its drain (mid-batch, mid-relay, mid-workbook)
and started again, as a supervisor would. Afterwards nothing is lost and nothing is
doubled: one account per tenure, as in-order delivery gives it; one workbook row and
one interim database row per account; every account event published; and
`accounts interim reconcile` agrees. On the embedded default (SQLite) and on
PostgreSQL + RabbitMQ.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.fixtures.tenures import TenureStory, realistic_stories
from tests.reliability.harness import (
    AccountEventTap,
    Deployment,
    Figures,
    check_books,
    record_figures,
    story_items,
    wait_until,
)

EVENTS = 5000
KILLS = 5


def stories_with_events(total: int, seed: int) -> list[TenureStory]:
    """Realistic tenure stories with exactly `total` events between them."""
    chosen: list[TenureStory] = []
    remaining = total
    for tale in realistic_stories(int(total / 2) + 50, seed=seed):
        if len(tale.events) <= remaining:
            chosen.append(tale)
            remaining -= len(tale.events)
        if remaining == 0:
            return chosen
    raise AssertionError(f"could not make {total} events")


def crash_while_draining(
    deployment: Deployment, expected: int, rng: random.Random, kills: int = KILLS, timeout: float = 240
) -> int:
    """Start the worker and SIGKILL it at a random point of the drain; `kills` times, restarting it each time.

    The points are random progress marks between 5% and 85% of the events (so however fast the
    drain, every kill lands inside it), each overshot by up to 0.1 s so that kills fall mid-batch,
    mid-commit, mid-relay or mid-workbook as it happens. Returns the number of kills.
    """
    marks = sorted(rng.sample(range(int(0.05 * expected), int(0.85 * expected)), kills))
    deadline = time.monotonic() + timeout
    for done, mark in enumerate(marks):
        assert time.monotonic() < deadline, f"only {done} kill(s) in {timeout}s\n{deployment.logs()}"
        worker = deployment.start_worker()
        target = max(mark, deployment.processed() + 1)  # this worker must make progress before it dies
        wait_until(
            lambda w=worker, t=target: deployment.processed() >= t or not w.alive(),
            120,
            f"the worker to process {target} events",
            pause=0.02,
        )
        assert worker.alive(), f"the worker exited by itself:\n{worker.output()[-3000:]}"
        time.sleep(rng.uniform(0.0, 0.1))
        worker.kill()
        progress = deployment.processed()
        assert progress < expected, f"the drain finished before kill {done + 1} ({progress} of {expected})"
    return kills


def finish(deployment: Deployment, expected: int, timeout: float = 240) -> None:
    worker = deployment.start_worker()
    try:
        wait_until(lambda: deployment.settled(expected), timeout, "the last worker to finish the drain", pause=0.25)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{deployment.logs()}") from None
    assert worker.terminate() == 0, worker.output()[-3000:]


def run_crash_test(deployment: Deployment, seed: int, tap: AccountEventTap | None = None) -> Figures:
    rng = random.Random(seed)
    stories = stories_with_events(EVENTS, seed)
    events = story_items(stories, rng)
    assert len(events) == EVENTS
    deployment.migrate()
    started = time.monotonic()
    deployment.publish_events(events)
    kills = crash_while_draining(deployment, len(events), rng)
    finish(deployment, len(events))
    figures = Figures(events=len(events), kills=kills, seconds=round(time.monotonic() - started, 1))
    return check_books(deployment, stories, events, figures, tap=tap)


@pytest.mark.slow
def test_sigkilled_worker_on_the_embedded_default_loses_and_doubles_nothing(embedded_deployment: Deployment) -> None:
    figures = run_crash_test(embedded_deployment, seed=1101)
    record_figures("crash/embedded", figures)
    assert figures.kills >= KILLS and figures.lost == 0 and figures.duplicated == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_sigkilled_worker_on_postgresql_and_rabbitmq_loses_and_doubles_nothing(
    server_deployment: Deployment, rabbitmq_url: str
) -> None:
    from tests.conftest import unique

    tap = AccountEventTap(rabbitmq_url, server_deployment.names["accounts_exchange"], unique("reliability_tap"))
    try:
        figures = run_crash_test(server_deployment, seed=1102, tap=tap)
    finally:
        tap.close()
    record_figures("crash/postgresql+rabbitmq", figures)
    assert figures.kills >= KILLS and figures.lost == 0 and figures.duplicated == 0


def test_a_create_held_by_a_killed_worker_is_not_overtaken_by_its_update(tmp_path) -> None:
    """Found by the soak: SIGKILLed with a tenure's create in hand, a worker leaves it leased; the
    restarted worker must not take that tenure's later update meanwhile, or the update uses up its
    attempts waiting for a create that is only leased, and is dead-lettered."""
    import json

    from accounts.adapters.brokers.embedded import EmbeddedBroker
    from accounts.bootstrap import bootstrap
    from accounts.service.ports import TENURE_TOPIC
    from tests.conftest import make_settings
    from tests.fixtures.tenures import story

    settings = make_settings(f"sqlite:///{tmp_path / 'a.db'}", tmp_path, max_attempts=3, embedded_lease_seconds=1.5)
    app = bootstrap(settings, run_migrations=True)
    try:
        tale = story(random.Random(1104)).moved_to("7 Amhurst Road, London E8 2PX")
        other = story(random.Random(1105))
        killed = EmbeddedBroker(app.engine, lease_seconds=1.5)
        killed.publish_many(TENURE_TOPIC, [(json.dumps(tale.events[0]).encode(), tale.tenure_id, "create")])
        assert len(killed.receive(10, 0.1)) == 1  # in hand when the worker dies: leased, never acked
        restarted = app.broker()
        restarted.publish_many(
            TENURE_TOPIC,
            [
                (json.dumps(tale.events[1]).encode(), tale.tenure_id, "update"),
                (json.dumps(other.events[0]).encode(), other.tenure_id, "other"),
            ],
        )
        listener = app.listener(restarted)
        deadline = time.monotonic() + 20
        while restarted.depth() and time.monotonic() < deadline:
            listener.poll(0.05)
        with app.uow(read_only=True) as uow:
            assert [letter.reason for letter in uow.dead_letters.list()] == []
        from uuid import UUID

        [account] = app.accounts.by_target(UUID(tale.tenure_id), None)
        assert account.tenure is not None and account.tenure.full_address == "7 Amhurst Road, London E8 2PX"
        assert len(app.accounts.by_target(UUID(other.tenure_id), None)) == 1, "other tenures are not held up"
    finally:
        app.close()
