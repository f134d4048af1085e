"""The arrears worklist's figures: weekly charge (52 and 53 weeks), weeks in arrears, the week's grace, days unpaid."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from accounts.domain import ledger
from accounts.domain.account import Account, AccountStatus, Actor, Change, ConsolidatedCharge, to_wire
from accounts.domain.arrears import (
    WorklistSort,
    arrears_since,
    collectable_arrears,
    days_since,
    stored_figures,
    weekly_charge,
    weeks_in_arrears,
    worklist_entry,
)
from accounts.domain.ledger import PostingRequest, TransactionType
from accounts.domain.polarity import Polarity
from tests.unit.test_domain_account import an_account

OFFICER = Actor("Rent Officer", "rent.officer@hackney.gov.uk")
IN_2026 = date(2026, 6, 10)  # 2026/27: 52 weeks
IN_2024 = date(2024, 6, 12)  # 2024/25: 53 weeks


def charge(amount: str, frequency: str = "Weekly", kind: str = "Rent") -> ConsolidatedCharge:
    return ConsolidatedCharge(kind, frequency, Decimal(amount))


# Weekly charge ------------------------------------------------------------------------------


def test_the_weekly_charge_adds_up_every_charge_as_a_weekly_figure() -> None:
    charges = [charge("100.00"), charge("20.00", "Fortnightly", "Heating"), charge("52.00", "Monthly", "Service")]
    # 100 + 10 + 52 x 12 / 52
    assert weekly_charge(charges, IN_2026) == Decimal("122.00")


def test_a_53_week_year_spreads_monthly_and_yearly_charges_over_53_weeks() -> None:
    charges = [charge("530.00", "Monthly"), charge("5300.00", "Yearly", "Service")]
    assert weekly_charge(charges, IN_2024) == Decimal("220.00")  # 530 x 12 / 53 + 5300 / 53
    assert weekly_charge(charges, IN_2026) == Decimal("224.23")  # 122.31 + 101.92 over 52


def test_charges_the_charge_run_would_refuse_count_nothing() -> None:
    charges = [charge("100.00"), charge("9.99", "Quarterly", "Ground rent"), charge("0.00", kind="Water")]
    assert weekly_charge(charges, IN_2026) == Decimal("100.00")
    assert weekly_charge([], IN_2026) == Decimal("0.00")


def test_the_weekly_charge_belongs_to_the_rent_year_the_day_falls_in() -> None:
    yearly = [charge("5300.00", "Yearly")]
    # 2025/26 runs from Monday 7 April 2025 to Sunday 5 April 2026; 2026/27 starts on the 6th: 52 weeks each.
    assert weekly_charge(yearly, date(2026, 4, 5)) == weekly_charge(yearly, date(2026, 4, 6)) == Decimal("101.92")
    # 2024/25 (53 weeks) ends on Sunday 6 April 2025.
    assert weekly_charge(yearly, date(2025, 4, 6)) == Decimal("100.00")
    assert weekly_charge(yearly, date(2025, 4, 7)) == Decimal("101.92")


# Weeks in arrears ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owed", "weekly", "weeks"),
    [
        ("500.00", "100.00", "5.0"),
        ("125.00", "100.00", "1.3"),  # 1.25: half up
        ("124.99", "100.00", "1.2"),
        ("0.01", "100.00", "0.0"),
        ("1000.00", "0.01", "100000.0"),
        ("0.00", "100.00", "0.0"),
        ("-50.00", "100.00", "0.0"),  # in credit: no weeks in arrears
    ],
)
def test_weeks_in_arrears_is_owed_over_the_weekly_charge_to_one_decimal_half_up(
    owed: str, weekly: str, weeks: str
) -> None:
    assert str(weeks_in_arrears(Decimal(owed), Decimal(weekly))) == weeks


def test_with_no_weekly_charge_weeks_in_arrears_is_not_known_and_sorts_as_0() -> None:
    assert weeks_in_arrears(Decimal("500.00"), Decimal("0.00")) is None
    account = an_account(account_balance=Decimal("-500.00"))
    assert stored_figures(account, Decimal("500.00")).weeks_in_arrears == Decimal("0.0")
    entry = worklist_entry(account, Decimal("500.00"), IN_2026)
    assert entry.weeks_in_arrears is None and entry.sort_value(WorklistSort.WEEKS_IN_ARREARS) == Decimal("0.0")


# Collectable arrears: a week's grace --------------------------------------------------------


def test_collectable_arrears_leave_out_this_weeks_charge() -> None:
    account = an_account(consolidated_charges=(charge("100.00"),))
    assert collectable_arrears(account, Decimal("350.00"), IN_2026) == Decimal("250.00")


def test_collectable_arrears_are_never_below_zero() -> None:
    account = an_account(consolidated_charges=(charge("100.00"),))
    assert collectable_arrears(account, Decimal("60.00"), IN_2026) == Decimal("0.00")
    assert collectable_arrears(account, Decimal("-60.00"), IN_2026) == Decimal("0.00")


def test_an_account_not_charged_this_week_has_all_its_arrears_collectable() -> None:
    charges = (charge("100.00"),)
    ended = an_account(consolidated_charges=charges, account_status=AccountStatus.ENDED)
    suspended = an_account(consolidated_charges=charges, account_status=AccountStatus.SUSPENDED)
    not_started = an_account(consolidated_charges=charges, start_date=datetime(2026, 7, 6, tzinfo=UTC))
    for account in (ended, suspended, not_started):
        assert collectable_arrears(account, Decimal("350.00"), IN_2026) == Decimal("350.00")


def test_the_grace_in_a_53_week_year_is_that_years_weekly_figure() -> None:
    account = an_account(consolidated_charges=(charge("5300.00", "Yearly"),))
    assert collectable_arrears(account, Decimal("300.00"), IN_2024) == Decimal("200.00")
    assert collectable_arrears(account, Decimal("300.00"), IN_2026) == Decimal("198.08")


# Days since the last payment ----------------------------------------------------------------


def test_days_since_the_last_payment_count_from_its_date() -> None:
    since = arrears_since(date(2026, 6, 1), datetime(2020, 1, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC))
    assert since == date(2026, 6, 1)
    assert days_since(since, IN_2026) == 9


def test_an_account_never_paid_counts_from_its_start_else_from_its_creation() -> None:
    created = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert arrears_since(None, datetime(2026, 4, 6, tzinfo=UTC), created) == date(2026, 4, 6)
    assert arrears_since(None, None, created) == date(2026, 1, 5)


def test_days_since_are_never_below_zero() -> None:
    assert days_since(date(2026, 7, 1), IN_2026) == 0


# Payments the account remembers -------------------------------------------------------------


def a_posting(kind: TransactionType, amount: str, day: date, balance_before: Decimal) -> ledger.Transaction:
    return ledger.post(
        PostingRequest(uuid.uuid4(), kind, Decimal(amount), day),
        account_id=an_account().id,
        polarity=Polarity.NEGATIVE_IS_ARREARS,
        balance_before=balance_before,
        created_by=OFFICER.label,
        posted_at=datetime(2026, 6, 10, 12, tzinfo=UTC),
    )


def post(account: Account, kind: TransactionType, amount: str, day: date) -> Account:
    posted = a_posting(kind, amount, day, account.account_balance)
    change = Change(OFFICER, uuid.uuid4(), datetime(2026, 6, 10, 12, tzinfo=UTC))
    return account.change(change, posted, account_balance=posted.balance_after)


def test_a_payment_posted_becomes_the_last_payment() -> None:
    account = post(an_account(account_balance=Decimal("-300.00")), TransactionType.PAYMENT, "120.50", date(2026, 6, 8))
    assert account.last_payment_date == date(2026, 6, 8)
    assert account.last_payment_amount == Decimal("120.50")


def test_other_postings_leave_the_last_payment_as_it_was() -> None:
    paid = post(an_account(account_balance=Decimal("-300.00")), TransactionType.PAYMENT, "10.00", date(2026, 6, 1))
    for kind in (TransactionType.CHARGE, TransactionType.HOUSING_BENEFIT, TransactionType.WRITE_OFF):
        later = post(paid, kind, "5.00", date(2026, 6, 9))
        assert later.last_payment_date == date(2026, 6, 1)
        assert later.last_payment_amount == Decimal("10.00")


def test_a_back_dated_payment_does_not_replace_a_later_one_and_a_same_day_one_does() -> None:
    paid = post(an_account(account_balance=Decimal("-300.00")), TransactionType.PAYMENT, "10.00", date(2026, 6, 8))
    back_dated = post(paid, TransactionType.PAYMENT, "20.00", date(2026, 6, 1))
    same_day = post(back_dated, TransactionType.PAYMENT, "30.00", date(2026, 6, 8))
    assert (back_dated.last_payment_date, back_dated.last_payment_amount) == (date(2026, 6, 8), Decimal("10.00"))
    assert (same_day.last_payment_date, same_day.last_payment_amount) == (date(2026, 6, 8), Decimal("30.00"))


def test_the_last_payment_is_not_in_the_wire_form_existing_clients_read() -> None:
    paid = post(an_account(account_balance=Decimal("-300.00")), TransactionType.PAYMENT, "10.00", date(2026, 6, 8))
    wire = to_wire(paid)
    assert not {"lastPaymentDate", "lastPaymentAmount"} & set(wire)
    assert set(wire) == set(to_wire(an_account()))


# The entry ----------------------------------------------------------------------------------


def test_an_entry_carries_every_figure_and_the_tenure() -> None:
    account = an_account(
        account_balance=Decimal("-450.00"),
        consolidated_charges=(charge("100.00"), charge("50.00", "Fortnightly", "Heating")),
        last_payment_date=date(2026, 5, 11),
        last_payment_amount=Decimal("125.00"),
        last_updated_at=datetime(2026, 6, 8, 9, tzinfo=UTC),
    )
    entry = worklist_entry(account, Decimal("450.00"), IN_2026)
    assert entry.weekly_charge == Decimal("125.00")
    assert entry.weeks_in_arrears == Decimal("3.6")
    assert entry.collectable_arrears == Decimal("325.00")
    assert entry.days_since_last_payment == 30
    assert entry.last_payment_amount == Decimal("125.00")
    assert entry.sort_value(WorklistSort.AMOUNT_OWED) == Decimal("450.00")
    assert entry.sort_value(WorklistSort.DAYS_SINCE_LAST_PAYMENT) == date(2026, 5, 11)
    assert entry.payment_reference == account.payment_reference and entry.tenure == account.tenure
