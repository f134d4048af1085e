"""The arrears worklist in storage: accounts in arrears, filtered and sorted by their stored figures, paged by keyset."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.domain.account import Account, ConsolidatedCharge, RentGroupType
from accounts.domain.arrears import WorklistSort, stored_figures
from accounts.service.unit_of_work import WorklistCursor
from tests.contract.conftest import UowFactory
from tests.contract.values import CREATED, OFFICER, an_account, read, store

RENT = (ConsolidatedCharge("Rent", "Weekly", Decimal("100.00")),)


def owing(owed: str, **overrides: object) -> Account:
    """A tenure account owing `owed` (its balance the negative of it), charged 100.00 a week unless told."""
    values: dict[str, object] = {
        "account_balance": -Decimal(owed),
        "consolidated_charges": RENT,
        "rent_group_type": RentGroupType.TENANT,
    }
    values.update(overrides)
    return an_account(**values)


def stored(uow: UowFactory, *accounts: Account) -> list[Account]:
    for account in accounts:
        store(uow, account)
    return list(accounts)


def listed(
    uow: UowFactory,
    sort: WorklistSort = WorklistSort.AMOUNT_OWED,
    descending: bool = True,
    *,
    rent_group: RentGroupType | None = None,
    min_weeks: str | None = None,
    min_owed: str | None = None,
    after: WorklistCursor | None = None,
    limit: int = 100,
) -> list[uuid.UUID]:
    with uow(read_only=True) as unit:
        found = unit.accounts.worklist(
            rent_group,
            Decimal(min_weeks) if min_weeks is not None else None,
            Decimal(min_owed) if min_owed is not None else None,
            sort,
            descending,
            after,
            limit,
        )
    return [account.id for account, _ in found]


def cursor_of(account: Account, sort: WorklistSort) -> WorklistCursor:
    """The place of an account as a page's last entry gives it."""
    owed = -account.account_balance
    figures = stored_figures(account, owed)
    value = {
        WorklistSort.AMOUNT_OWED: owed,
        WorklistSort.WEEKS_IN_ARREARS: figures.weeks_in_arrears,
        WorklistSort.DAYS_SINCE_LAST_PAYMENT: figures.arrears_since,
    }[sort]
    return WorklistCursor(value, account.id)


def test_only_accounts_in_arrears_are_listed_largest_debt_first(uow: UowFactory) -> None:
    small, large, middle = stored(uow, owing("10.00"), owing("900.00"), owing("250.50"))
    stored(uow, owing("0.00"), owing("-40.00"))  # square, in credit

    assert listed(uow) == [large.id, middle.id, small.id]
    assert listed(uow, descending=False) == [small.id, middle.id, large.id]
    assert listed(uow, limit=2) == [large.id, middle.id]


def test_ties_are_broken_by_id_the_same_way_as_the_sort(uow: UowFactory) -> None:
    accounts = stored(uow, *(owing("50.00") for _ in range(4)))
    ids = sorted(account.id for account in accounts)

    assert listed(uow) == ids[::-1]
    assert listed(uow, descending=False) == ids


def test_the_filters_rent_group_weeks_and_amount_owed(uow: UowFactory) -> None:
    tenant_long, tenant_short, garage = stored(
        uow,
        owing("800.00"),  # 8 weeks
        owing("150.00"),  # 1.5 weeks
        owing("300.00", rent_group_type=RentGroupType.GARAGES, consolidated_charges=()),  # no weekly charge
    )

    assert listed(uow, rent_group=RentGroupType.TENANT) == [tenant_long.id, tenant_short.id]
    assert listed(uow, rent_group=RentGroupType.GARAGES) == [garage.id]
    assert listed(uow, rent_group=RentGroupType.HRA_RENTS) == []
    assert listed(uow, min_weeks="1.5") == [tenant_long.id, tenant_short.id]
    assert listed(uow, min_weeks="1.6") == [tenant_long.id]
    assert listed(uow, min_weeks="0") == [tenant_long.id, garage.id, tenant_short.id]
    assert listed(uow, min_owed="300.00") == [tenant_long.id, garage.id]
    assert listed(uow, rent_group=RentGroupType.TENANT, min_weeks="2", min_owed="100") == [tenant_long.id]


def test_by_weeks_in_arrears_an_account_with_no_weekly_charge_counts_as_0_weeks(uow: UowFactory) -> None:
    monthly = (ConsolidatedCharge("Rent", "Monthly", Decimal("520.00")),)  # 120.00 a week in 2025/26 and 2026/27
    four, two, none = stored(
        uow,
        owing("480.00", consolidated_charges=monthly),
        owing("200.00"),
        owing("5000.00", consolidated_charges=()),
    )

    assert listed(uow, WorklistSort.WEEKS_IN_ARREARS) == [four.id, two.id, none.id]
    assert listed(uow, WorklistSort.WEEKS_IN_ARREARS, descending=False) == [none.id, two.id, four.id]


def test_by_days_since_the_last_payment_the_longest_unpaid_first(uow: UowFactory) -> None:
    paid_lately = owing("100.00", last_payment_date=date(2026, 6, 1), last_payment_amount=Decimal("5.00"))
    paid_long_ago = owing("100.00", last_payment_date=date(2025, 1, 6), last_payment_amount=Decimal("5.00"))
    never_paid_started = owing("100.00", start_date=datetime(2025, 9, 1, tzinfo=UTC))
    never_paid = owing("100.00", created_at=CREATED - timedelta(days=1000), last_updated_at=CREATED)
    stored(uow, paid_lately, paid_long_ago, never_paid_started, never_paid)

    expected = [never_paid.id, paid_long_ago.id, never_paid_started.id, paid_lately.id]
    assert listed(uow, WorklistSort.DAYS_SINCE_LAST_PAYMENT) == expected
    assert listed(uow, WorklistSort.DAYS_SINCE_LAST_PAYMENT, descending=False) == expected[::-1]


@pytest.mark.parametrize("sort", list(WorklistSort))
@pytest.mark.parametrize("descending", [True, False])
def test_pages_after_a_cursor_list_everything_once_in_order(
    uow: UowFactory, sort: WorklistSort, descending: bool
) -> None:
    owed = ["100.00", "100.00", "100.00", "250.00", "250.00", "975.25", "12.00", "40.00", "40.00", "600.00"]
    paid = [None, date(2026, 5, 4), date(2026, 5, 4), None, date(2026, 1, 5), None, date(2026, 5, 4), None, None, None]
    accounts = {
        account.id: account
        for account in stored(
            uow,
            *(
                owing(amount, last_payment_date=day, last_payment_amount=Decimal("1.00") if day else None)
                for amount, day in zip(owed, paid, strict=True)
            ),
        )
    }
    whole = listed(uow, sort, descending)
    assert len(whole) == len(accounts)

    pages: list[uuid.UUID] = []
    after = None
    while True:
        page = listed(uow, sort, descending, after=after, limit=3)
        if not page:
            break
        pages.extend(page)
        after = cursor_of(accounts[page[-1]], sort)
    assert pages == whole


def test_a_page_after_a_cursor_keeps_to_the_filters(uow: UowFactory) -> None:
    accounts = stored(uow, *(owing(f"{100 + n}.00") for n in range(5)), owing("500.00", rent_group_type=None))
    first = listed(uow, rent_group=RentGroupType.TENANT, min_owed="101.00", limit=2)
    after = cursor_of(next(a for a in accounts if a.id == first[-1]), WorklistSort.AMOUNT_OWED)
    rest = listed(uow, rent_group=RentGroupType.TENANT, min_owed="101.00", after=after)
    assert [-a.account_balance for a in accounts if a.id in first + rest] == [
        Decimal(f"{100 + n}.00") for n in (1, 2, 3, 4)
    ]
    assert len(first + rest) == 4


def test_the_last_payment_is_stored_and_read_back_and_a_new_version_moves_the_account(uow: UowFactory) -> None:
    account = owing("300.00", created_at=datetime(2025, 4, 7, tzinfo=UTC), last_updated_at=CREATED)
    other = owing("300.00", last_payment_date=date(2025, 12, 1), last_payment_amount=Decimal("20.00"))
    stored(uow, account, other)
    assert listed(uow, WorklistSort.DAYS_SINCE_LAST_PAYMENT) == [account.id, other.id]

    paid = account.changed(
        OFFICER,
        CREATED + timedelta(hours=1),
        account_balance=Decimal("-180.00"),
        last_payment_date=date(2026, 1, 5),
        last_payment_amount=Decimal("120.00"),
    )
    with uow() as unit:
        unit.accounts.update(paid, account.version, Decimal("180.00"))
        unit.commit()

    back = read(uow, account.id)
    assert back == paid and back is not None
    assert (back.last_payment_date, back.last_payment_amount) == (date(2026, 1, 5), Decimal("120.00"))
    assert listed(uow, WorklistSort.DAYS_SINCE_LAST_PAYMENT) == [other.id, account.id]
    assert listed(uow) == [other.id, account.id]
