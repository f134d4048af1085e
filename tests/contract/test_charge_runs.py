"""Charge runs in storage: a run comes back exactly, saves are guarded by version, one unfinished run per
week; accounts in id order a batch at a time; transactions read ahead by id."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from accounts.domain.charges import BatchDone, ChargeRun, Refusal
from accounts.domain.rent_week import rent_week_starting
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.contract.conftest import UowFactory
from tests.contract.test_transactions import a_posting
from tests.contract.values import CREATED, OFFICER, an_account, store

WEEK = rent_week_starting(date(2026, 4, 6))


def a_run(**overrides: object) -> ChargeRun:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "week": WEEK,
        "started_by": OFFICER,
        "started_at": CREATED,
        "updated_at": CREATED,
        "accounts_total": 3,
    }
    values.update(overrides)
    return ChargeRun(**values)  # type: ignore[arg-type]


def test_a_run_comes_back_as_it_was_stored_with_its_progress(uow: UowFactory) -> None:
    run = a_run()
    with uow() as work:
        work.charge_runs.add(run)
        work.commit()
    account_id = uuid.uuid4()
    batch = BatchDone(account_id, 2, 1, 1, 2, Decimal("200.50"), 1, [Refusal(account_id, "Ground rent", "no")])
    advanced = run.advanced(batch, CREATED)
    with uow() as work:
        assert work.charge_runs.get(run.id, for_update=True) == run
        work.charge_runs.save(advanced)
        work.commit()
    with uow(read_only=True) as work:
        assert work.charge_runs.get(run.id) == advanced
        assert work.charge_runs.unfinished(WEEK.starts) == advanced
        assert work.charge_runs.get(uuid.uuid4()) is None
    done = advanced.done(CREATED)
    with uow() as work:
        work.charge_runs.save(done)
        work.commit()
    with uow(read_only=True) as work:
        assert work.charge_runs.get(run.id) == done and work.charge_runs.unfinished(WEEK.starts) is None


def test_a_save_from_a_version_no_longer_stored_is_a_conflict(uow: UowFactory) -> None:
    run = a_run()
    with uow() as work:
        work.charge_runs.add(run)
        work.commit()
    with uow() as work:
        work.charge_runs.get(run.id)
        work.charge_runs.save(replace(run, accounts_done=1, version=2))
        work.commit()
    with pytest.raises(ConcurrencyConflict), uow() as work:
        work.charge_runs.get(run.id)
        work.charge_runs.save(replace(run, accounts_done=2, version=2))  # made from version 1
        work.commit()


def test_a_week_has_at_most_one_unfinished_run(uow: UowFactory) -> None:
    with uow() as work:
        work.charge_runs.add(a_run())
        work.commit()
    with pytest.raises(ConcurrencyConflict), uow() as work:
        work.charge_runs.add(a_run())
        work.commit()
    with uow() as work:
        work.charge_runs.add(a_run(week=rent_week_starting(date(2026, 4, 13))))
        work.commit()


def test_accounts_come_in_id_order_a_batch_at_a_time_and_are_counted(uow: UowFactory) -> None:
    accounts = [an_account() for _ in range(5)]
    for account in accounts:
        store(uow, account)
    ids = sorted(account.id for account in accounts)
    with uow() as work:
        first = work.accounts.after(None, 2)
        rest = work.accounts.after(first[-1].id, 10)
        assert work.charge_runs.count_accounts() == 5
    assert [a.id for a in first] == ids[:2] and [a.id for a in rest] == ids[2:]
    assert rest[0] == next(a for a in accounts if a.id == ids[2])


def test_transactions_read_ahead_answer_as_read_one_by_one(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)
    posted = a_posting(account)
    with uow() as work:
        work.transactions.add(posted)
        work.commit()
    missing = uuid.uuid4()
    with uow() as work:
        work.transactions.read_ahead([posted.id, missing])
        assert work.transactions.get(posted.id) == posted and work.transactions.get(missing) is None
        work.read_ahead_postings([account], [posted.id])
        assert work.accounts.by_target(account.target_id, None) == [account]
