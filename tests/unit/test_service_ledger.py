"""The ledger's use cases on in-memory fakes: posting, retrying, reversing, the statement, verify."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal

import pytest

from accounts.domain.account import Actor, etag
from accounts.domain.ledger import Direction, LedgerConflict, PostingRequest, TransactionType
from accounts.service.accounts import PreconditionFailed
from accounts.service.ledger import TransactionNotFound
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")


def a_posting(
    kind: TransactionType = TransactionType.CHARGE, amount: str = "100.00", **overrides: object
) -> PostingRequest:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "transaction_type": kind,
        "amount": Decimal(amount),
        "transaction_date": date(2026, 4, 6),
    }
    values.update(overrides)
    return PostingRequest(**values)  # type: ignore[arg-type]


def test_a_posting_moves_the_balance_and_is_announced_with_the_account(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    posted = fakes.app.ledger.post(account.id, a_posting(amount="80.00"), OFFICER, uuid.uuid4())

    assert posted.created and posted.transaction.balance_after == Decimal("-80.00")
    assert posted.account.account_balance == Decimal("-80.00") and posted.account.version == 2
    assert fakes.app.accounts.get(account.id) == posted.account
    with fakes.app.uow(read_only=True) as uow:
        kinds = [json.loads(m.payload)["eventType"] for m in uow.outbox.pending(10)]
        assert uow.accounts.arrears(None, "amount_owed", True, 10) == [posted.account]
    assert kinds == ["AccountCreatedEvent", "AccountUpdatedEvent", "AccountTransactionPostedEvent"]


def test_a_retry_with_the_same_id_posts_nothing_twice_and_other_content_is_refused(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    request = a_posting(TransactionType.PAYMENT, "20.00")
    first = fakes.app.ledger.post(account.id, request, OFFICER, uuid.uuid4())

    again = fakes.app.ledger.post(account.id, request, OFFICER, uuid.uuid4())
    assert not again.created and again.transaction == first.transaction
    with pytest.raises(LedgerConflict):
        fakes.app.ledger.post(
            account.id, a_posting(TransactionType.PAYMENT, "21.00", id=request.id), OFFICER, uuid.uuid4()
        )
    assert fakes.app.accounts.get(account.id).account_balance == Decimal("20.00")


def test_if_match_names_the_version_a_posting_is_made_on(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    fakes.app.ledger.post(account.id, a_posting(), OFFICER, uuid.uuid4(), etag(account))
    with pytest.raises(PreconditionFailed):
        fakes.app.ledger.post(account.id, a_posting(), OFFICER, uuid.uuid4(), etag(account))


def test_a_reversal_restores_the_balance_once(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    charge = fakes.app.ledger.post(account.id, a_posting(amount="55.00"), OFFICER, uuid.uuid4()).transaction

    reversal = fakes.app.ledger.reverse(account.id, charge.id, "wrong week", OFFICER, uuid.uuid4())

    assert reversal.transaction.reverses_id == charge.id and reversal.account.account_balance == Decimal("0.00")
    assert fakes.app.ledger.reverse(account.id, charge.id, "wrong week", OFFICER, uuid.uuid4()).created is False
    with pytest.raises(LedgerConflict):
        fakes.app.ledger.reverse(account.id, charge.id, "again", OFFICER, uuid.uuid4())
    with pytest.raises(TransactionNotFound):
        other = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
        fakes.app.ledger.reverse(other.id, charge.id, "not yours", OFFICER, uuid.uuid4())


def test_the_statement_pages_keep_the_running_balance(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    for day in (13, 6, 20):
        fakes.app.ledger.post(account.id, a_posting(transaction_date=date(2026, 4, day)), OFFICER, uuid.uuid4())

    first = fakes.app.ledger.statement(account.id, limit=2)
    second = fakes.app.ledger.statement(account.id, after=first.next_page, limit=2)

    assert [line.transaction.transaction_date.day for line in first.lines + second.lines] == [6, 13, 20]
    assert [line.balance_after for line in first.lines + second.lines] == [Decimal(-100), Decimal(-200), Decimal(-300)]
    assert (second.opening_balance, second.closing_balance, second.next_page) == (Decimal(-200), Decimal(-300), None)


def test_a_balance_set_by_a_change_is_explained_by_an_adjustment(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(account_balance=Decimal("-10.00")), OFFICER, uuid.uuid4())
    fakes.app.accounts.change(account.id, lambda a: {"account_balance": Decimal("-25.00")}, OFFICER, uuid.uuid4())

    lines = fakes.app.ledger.statement(account.id).lines
    assert [
        (line.transaction.transaction_type, line.transaction.direction, line.transaction.amount) for line in lines
    ] == [
        (TransactionType.OPENING_BALANCE, Direction.INCREASE_OWED, Decimal("10.00")),
        (TransactionType.ADJUSTMENT, Direction.INCREASE_OWED, Decimal("15.00")),
    ]
    assert list(fakes.app.ledger.verify()) == []


def test_the_overview_has_the_worklist_figures_and_the_balance_at_the_end_of_each_of_the_last_52_weeks(
    fakes: OnFakes,
) -> None:
    from datetime import UTC, datetime

    from accounts.domain.account import ConsolidatedCharge

    fakes.app.ledger.clock = lambda: datetime(2026, 4, 22, 9, 30, tzinfo=UTC)  # Wednesday of 2026/27 week 3
    rent = (ConsolidatedCharge("Rent", "Weekly", Decimal("100.00")),)
    account = fakes.app.accounts.create(a_tenure_master(consolidated_charges=rent), OFFICER, uuid.uuid4())
    for kind, amount, day in [
        (TransactionType.CHARGE, "100.00", date(2025, 1, 6)),  # before the 52 weeks: their opening
        (TransactionType.CHARGE, "100.00", date(2026, 4, 6)),
        (TransactionType.PAYMENT, "30.00", date(2026, 4, 12)),  # the Sunday: still week 1
        (TransactionType.CHARGE, "100.00", date(2026, 4, 20)),
        (TransactionType.CHARGE, "100.00", date(2026, 4, 27)),  # next week: not yet on the chart
    ]:
        fakes.app.ledger.post(account.id, a_posting(kind, amount, transaction_date=day), OFFICER, uuid.uuid4())

    overview = fakes.app.ledger.overview(account.id)

    assert len(overview.weeks) == 52 and overview.weeks[-1].week.label == "2026/27 week 3"
    assert overview.weeks[-1].week.starts == date(2026, 4, 20) and overview.weeks[0].week.starts == date(2025, 4, 28)
    assert [str(w.balance) for w in overview.weeks[-4:]] == ["-100.00", "-170.00", "-170.00", "-270.00"]
    assert all(str(w.balance) == "-100.00" for w in overview.weeks[:-3])
    assert overview.account.account_balance == Decimal("-370.00")
    assert overview.figures.amount_owed == Decimal("370.00") and overview.figures.weekly_charge == Decimal("100.00")
    assert overview.figures.weeks_in_arrears == Decimal("3.7")


def test_there_is_no_overview_of_an_account_that_does_not_exist(fakes: OnFakes) -> None:
    from accounts.service.accounts import AccountNotFound

    with pytest.raises(AccountNotFound):
        fakes.app.ledger.overview(uuid.uuid4())
