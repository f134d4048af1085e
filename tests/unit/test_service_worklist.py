"""The arrears worklist's use case on in-memory fakes: pages, the next page's place, today's figures, bad queries."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.domain.account import Actor, ConsolidatedCharge
from accounts.domain.arrears import WorklistSort
from accounts.domain.errors import ValidationProblem
from accounts.domain.ledger import PostingRequest, TransactionType
from accounts.service.arrears import WorklistQuery, WorklistService
from accounts.service.unit_of_work import WorklistCursor
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
RENT = (ConsolidatedCharge("Rent", "Weekly", Decimal("100.00")),)


def on_day(fakes: OnFakes, day: date) -> WorklistService:
    return WorklistService(fakes.app.uow, clock=lambda: datetime(day.year, day.month, day.day, 12, tzinfo=UTC))


def test_pages_follow_one_another_and_the_last_has_no_next(fakes: OnFakes) -> None:
    for owed in ("300.00", "200.00", "100.00"):
        command = a_tenure_master(account_balance=-Decimal(owed), consolidated_charges=RENT)
        fakes.app.accounts.create(command, OFFICER, uuid.uuid4())
    service = on_day(fakes, date(2026, 6, 10))

    first = service.page(WorklistQuery(limit=2))
    rest = service.page(WorklistQuery(limit=2, after=first.next_page))

    assert [entry.amount_owed for entry in first.entries] == [Decimal("300.00"), Decimal("200.00")]
    assert first.next_page is not None and first.next_page.value == Decimal("200.00")
    assert [entry.amount_owed for entry in rest.entries] == [Decimal("100.00")] and rest.next_page is None


def test_the_page_before_is_the_one_paged_from_and_near_the_start_the_first_page_in_full(fakes: OnFakes) -> None:
    owed = ["500.00", "400.00", "300.00", "300.00", "200.00", "100.00"]  # a tie: the account id decides
    for amount in owed:
        command = a_tenure_master(account_balance=-Decimal(amount), consolidated_charges=RENT)
        fakes.app.accounts.create(command, OFFICER, uuid.uuid4())
    service = on_day(fakes, date(2026, 6, 10))
    for sort, descending in [(WorklistSort.AMOUNT_OWED, True), (WorklistSort.AMOUNT_OWED, False)]:
        first = service.page(WorklistQuery(sort=sort, descending=descending, limit=2))
        second = service.page(WorklistQuery(sort=sort, descending=descending, limit=2, after=first.next_page))
        third = service.page(WorklistQuery(sort=sort, descending=descending, limit=2, after=second.next_page))
        assert first.previous_page is None and third.next_page is None
        assert second.previous_page is not None and third.previous_page is not None

        back = service.page(WorklistQuery(sort=sort, descending=descending, limit=2, before=third.previous_page))
        assert back.entries == second.entries
        assert (back.next_page, back.previous_page) == (second.next_page, second.previous_page)
        # From a place less than a page in: the first page, in full, with nothing before it.
        start = service.page(WorklistQuery(sort=sort, descending=descending, limit=3, before=second.previous_page))
        assert [e.account_id for e in start.entries] == [
            e.account_id for e in service.page(WorklistQuery(sort=sort, descending=descending, limit=3)).entries
        ]
        assert start.previous_page is None and start.next_page is not None


def test_a_payment_through_the_ledger_is_the_last_payment_and_days_count_to_today(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(
        a_tenure_master(account_balance=Decimal("-300.00"), consolidated_charges=RENT), OFFICER, uuid.uuid4()
    )
    payment = PostingRequest(uuid.uuid4(), TransactionType.PAYMENT, Decimal("45.00"), date(2026, 6, 1))
    fakes.app.ledger.post(account.id, payment, OFFICER, uuid.uuid4())

    (entry,) = on_day(fakes, date(2026, 6, 10)).page(WorklistQuery(sort=WorklistSort.DAYS_SINCE_LAST_PAYMENT)).entries

    assert (entry.last_payment_date, entry.last_payment_amount) == (date(2026, 6, 1), Decimal("45.00"))
    assert entry.days_since_last_payment == 9
    assert (entry.amount_owed, entry.collectable_arrears) == (Decimal("255.00"), Decimal("155.00"))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (WorklistQuery(limit=0), "limit"),
        (WorklistQuery(limit=1001), "limit"),
        (WorklistQuery(min_weeks=Decimal("-0.1")), "minWeeksInArrears"),
        (WorklistQuery(min_weeks=Decimal("NaN")), "minWeeksInArrears"),
        (WorklistQuery(min_owed=Decimal("-1")), "minAmountOwed"),
        (
            WorklistQuery(
                after=WorklistCursor(Decimal(1), uuid.uuid4()), before=WorklistCursor(Decimal(2), uuid.uuid4())
            ),
            "cursor",
        ),
    ],
)
def test_a_query_that_could_never_be_answered_is_refused_naming_it(
    fakes: OnFakes, query: WorklistQuery, field: str
) -> None:
    with pytest.raises(ValidationProblem) as refused:
        fakes.app.worklist.page(query)
    assert refused.value.field == field
