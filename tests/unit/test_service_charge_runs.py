"""Charge runs on in-memory fakes: the right accounts charged the right amounts, once, in batches, resumable."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.domain.account import Account, AccountStatus, Actor, ConsolidatedCharge
from accounts.domain.charges import RunStatus, charge_id
from accounts.domain.errors import ValidationProblem
from accounts.domain.ledger import TransactionType
from accounts.service.charge_runs import ChargeRunNotFound, ChargeRunService
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Rent Officer", "rent.officer@hackney.gov.uk")
MONDAY = date(2026, 4, 6)  # 2026/27 week 1


def an_account(fakes: OnFakes, *charges: ConsolidatedCharge, **overrides: object) -> Account:
    command = a_tenure_master(
        consolidated_charges=charges or (ConsolidatedCharge("Rent", "Weekly", Decimal("100.00")),)
    )
    account = fakes.app.accounts.create(command, OFFICER, uuid.uuid4())
    if overrides:
        account, _ = fakes.app.accounts.change(account.id, lambda _: overrides, OFFICER, uuid.uuid4())
    return account


def service(fakes: OnFakes, batch_size: int = 2) -> ChargeRunService:
    return ChargeRunService(fakes.app.uow, batch_size=batch_size)


def charges_of(fakes: OnFakes, account: Account) -> list[tuple[str, Decimal, date, int, int]]:
    statement = fakes.app.ledger.statement(account.id)
    return [
        (line.transaction.description or "", line.transaction.amount, line.transaction.transaction_date,
         line.transaction.period_no, line.transaction.financial_year)
        for line in statement.lines
        if line.transaction.transaction_type is TransactionType.CHARGE
    ]  # fmt: skip


def test_a_run_charges_each_active_account_its_weekly_figures(fakes: OnFakes) -> None:
    weekly = an_account(fakes)
    monthly = an_account(
        fakes,
        ConsolidatedCharge("Rent", "Monthly", Decimal("520.00")),
        ConsolidatedCharge("Service charge", "Yearly", Decimal("260.00")),
    )
    ended = an_account(fakes, account_status=AccountStatus.ENDED)
    suspended = an_account(fakes, account_status=AccountStatus.SUSPENDED)
    later = an_account(fakes, start_date=datetime(2026, 4, 7, tzinfo=UTC))
    gone = an_account(fakes, end_date=datetime(2026, 4, 5, tzinfo=UTC))
    charges = service(fakes)

    run = charges.start(MONDAY, OFFICER)
    finished = charges.run(run.id)

    assert finished.status is RunStatus.FINISHED and finished.accounts_done == 6
    assert (finished.accounts_charged, finished.accounts_not_charged) == (2, 4)
    assert (finished.charges_posted, finished.amount_posted) == (3, Decimal("225.00"))
    assert charges_of(fakes, weekly) == [("Rent for 2026/27 week 1", Decimal("100.00"), MONDAY, 1, 2026)]
    assert charges_of(fakes, monthly) == [
        ("Rent for 2026/27 week 1", Decimal("120.00"), MONDAY, 1, 2026),
        ("Service charge for 2026/27 week 1", Decimal("5.00"), MONDAY, 1, 2026),
    ]
    assert fakes.app.accounts.get(monthly.id).account_balance == Decimal("-125.00")
    for account in (ended, suspended, later, gone):
        assert charges_of(fakes, account) == []
    assert list(fakes.app.ledger.verify()) == []
    assert charges.get(run.id) == finished


def test_each_charge_is_posted_as_the_api_posts_it_with_its_events(fakes: OnFakes) -> None:
    account = an_account(fakes)
    charges = service(fakes)
    run = charges.run(charges.start(MONDAY, OFFICER).id)

    transaction = fakes.app.ledger.transaction(account.id, charge_id(account.id, "Rent", MONDAY))
    assert transaction.created_by == OFFICER.label and transaction.balance_after == Decimal("-100.00")
    with fakes.app.uow(read_only=True) as uow:
        events = [json.loads(m.payload) for m in uow.outbox.pending(100)]
    posted = [e for e in events if e["eventType"] == "AccountTransactionPostedEvent"]
    assert [e["correlationId"] for e in posted] == [str(run.id)]
    assert posted[0]["eventData"]["newData"]["amount"] == 100.0


def test_a_second_run_of_the_week_posts_nothing_twice(fakes: OnFakes) -> None:
    accounts = [an_account(fakes) for _ in range(3)]
    charges = service(fakes)
    charges.run(charges.start(MONDAY, OFFICER).id)

    again = charges.run(charges.start(MONDAY, OFFICER).id)

    assert (again.charges_posted, again.charges_skipped, again.amount_posted) == (0, 3, Decimal("0.00"))
    for account in accounts:
        assert fakes.app.accounts.get(account.id).account_balance == Decimal("-100.00")


def test_a_run_stopped_between_batches_carries_on_where_it_stopped(fakes: OnFakes) -> None:
    accounts = [an_account(fakes) for _ in range(5)]
    charges = service(fakes, batch_size=2)
    run = charges.start(MONDAY, OFFICER)

    class StopAfterOne:
        def is_set(self) -> bool:
            return True

    stopped = charges.run(run.id, stop=StopAfterOne())
    assert (stopped.status, stopped.accounts_done, stopped.charges_posted) == (RunStatus.RUNNING, 2, 2)
    assert charges.start(MONDAY, OFFICER).id == run.id  # the week's unfinished run, not a new one

    seen: list[int] = []
    finished = charges.run(run.id, progress=lambda now: seen.append(now.accounts_done))

    assert seen == [4, 5, 5] and finished.charges_posted == 5 and finished.charges_skipped == 0
    for account in accounts:
        assert fakes.app.accounts.get(account.id).account_balance == Decimal("-100.00")


def test_a_batch_that_failed_is_done_again_whole(fakes: OnFakes) -> None:
    accounts = [an_account(fakes) for _ in range(3)]
    charges = service(fakes, batch_size=10)
    run = charges.start(MONDAY, OFFICER)

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash

    fakes.database.before_next_commit(crash)
    with pytest.raises(Crash):
        charges.run(run.id)
    assert charges.get(run.id).accounts_done == 0
    assert all(fakes.app.accounts.get(a.id).account_balance == Decimal("0.00") for a in accounts)

    finished = charges.run(run.id)
    assert finished.charges_posted == 3 and list(fakes.app.ledger.verify()) == []


def test_refused_charges_are_listed_with_their_reason_and_the_rest_posted(fakes: OnFakes) -> None:
    account = an_account(
        fakes,
        ConsolidatedCharge("Rent", "Weekly", Decimal("100.00")),
        ConsolidatedCharge("Ground rent", "Quarterly", Decimal("30.00")),
    )
    charges = service(fakes)
    finished = charges.run(charges.start(MONDAY, OFFICER).id)

    assert (finished.charges_posted, finished.charges_refused) == (1, 1)
    [refusal] = finished.refusals
    assert (refusal.account_id, refusal.charge_type) == (account.id, "Ground rent")
    assert "Quarterly" in refusal.reason


def test_anything_but_a_monday_is_refused_naming_week_starting(fakes: OnFakes) -> None:
    with pytest.raises(ValidationProblem) as refused:
        service(fakes).start(date(2026, 4, 5), OFFICER)  # a Sunday
    assert (refused.value.field, refused.value.rule) == ("weekStarting", "must be a Monday")


def test_an_unknown_run_is_not_found(fakes: OnFakes) -> None:
    with pytest.raises(ChargeRunNotFound):
        service(fakes).get(uuid.uuid4())
    with pytest.raises(ChargeRunNotFound):
        service(fakes).run(uuid.uuid4())


def test_a_run_of_a_53_week_year_charges_a_yearly_amount_over_53_weeks(fakes: OnFakes) -> None:
    account = an_account(fakes, ConsolidatedCharge("Rent", "Yearly", Decimal("5300.00")))
    charges = service(fakes)
    charges.run(charges.start(date(2025, 3, 24), OFFICER).id)  # 2024/25 week 52 of 53

    assert charges_of(fakes, account) == [("Rent for 2024/25 week 52", Decimal("100.00"), date(2025, 3, 24), 52, 2024)]
