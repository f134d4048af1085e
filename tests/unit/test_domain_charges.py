"""A week's charges: weekly figures from each frequency (52- and 53-week years), who is charged, the ids."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.domain.account import AccountStatus, ConsolidatedCharge
from accounts.domain.charges import (
    ChargeRefused,
    charge_id,
    is_charged,
    weekly_charges,
    weekly_figure,
)
from accounts.domain.rent_week import rent_week_starting, weeks_in_rent_year
from tests.unit.test_domain_account import an_account

WEEK_1_2026 = rent_week_starting(date(2026, 4, 6))  # 2026/27: 52 weeks
WEEK_1_2024 = rent_week_starting(date(2024, 4, 1))  # 2024/25: 53 weeks


def charge(amount: str, frequency: str = "Weekly", kind: str = "Rent") -> ConsolidatedCharge:
    return ConsolidatedCharge(kind, frequency, Decimal(amount))


def test_the_rent_years_used_here_have_52_and_53_weeks() -> None:
    assert weeks_in_rent_year(2026) == 52 and weeks_in_rent_year(2024) == 53


def test_a_weekly_charge_is_charged_as_it_is() -> None:
    assert weekly_figure(charge("123.45"), 2026) == Decimal("123.45")
    assert weekly_figure(charge("123.45"), 2024) == Decimal("123.45")


def test_a_fortnightly_charge_is_half_a_week_rounded_half_a_penny_up() -> None:
    assert weekly_figure(charge("250.00", "Fortnightly"), 2026) == Decimal("125.00")
    assert weekly_figure(charge("100.01", "Fortnightly"), 2026) == Decimal("50.01")  # 50.005 up


def test_a_monthly_charge_is_twelve_months_over_the_weeks_of_the_rent_year() -> None:
    # 520.00 x 12 / 52 = 120.00; in a 53-week year 6,240 / 53 = 117.7358... = 117.74
    assert weekly_figure(charge("520.00", "Monthly"), 2026) == Decimal("120.00")
    assert weekly_figure(charge("520.00", "Monthly"), 2024) == Decimal("117.74")


def test_a_yearly_charge_is_spread_over_the_weeks_of_the_rent_year_not_a_hard_coded_52() -> None:
    assert weekly_figure(charge("5200.00", "Yearly"), 2026) == Decimal("100.00")
    assert weekly_figure(charge("5200.00", "Yearly"), 2024) == Decimal("98.11")  # 98.1132...
    # A 53-week year charges the year's amount, give or take the rounding, not a week too much.
    assert abs(weekly_figure(charge("5200.00", "Yearly"), 2024) * 53 - Decimal("5200.00")) < Decimal("0.53")


def test_half_a_penny_rounds_up() -> None:
    # 0.26 x 12 / 52 = 0.06; 3.12 / 52 = 0.06; 1.30 / 52 = 0.025 -> 0.03
    assert weekly_figure(charge("1.30", "Yearly"), 2026) == Decimal("0.03")


def test_frequencies_are_read_in_any_case() -> None:
    assert weekly_figure(charge("520.00", "monthly"), 2026) == Decimal("120.00")
    assert weekly_figure(charge("10.00", " WEEKLY "), 2026) == Decimal("10.00")


@pytest.mark.parametrize(
    ("amount", "frequency", "reason"),
    [
        ("100.00", "Quarterly", "frequency 'Quarterly' is not one of Weekly, Fortnightly, Monthly, Yearly"),
        ("100.00", "", "frequency '' is not one of"),
        ("0.00", "Weekly", "amount 0.00 is not greater than zero"),
        ("-5.00", "Weekly", "amount -5.00 is not greater than zero"),
        ("0.25", "Yearly", "is less than half a penny a week"),
    ],
)
def test_a_charge_that_cannot_be_a_weekly_figure_is_refused_with_the_reason(
    amount: str, frequency: str, reason: str
) -> None:
    with pytest.raises(ChargeRefused) as refused:
        weekly_figure(charge(amount, frequency), 2026)
    assert reason in refused.value.reason


@given(
    pence=st.integers(min_value=1, max_value=10**9),
    year=st.integers(min_value=2000, max_value=2100),
)
def test_a_yearly_charge_over_the_year_comes_within_half_a_penny_a_week_of_the_amount(pence: int, year: int) -> None:
    amount = Decimal(pence).scaleb(-2)
    weeks = weeks_in_rent_year(year)
    try:
        weekly = weekly_figure(ConsolidatedCharge("Rent", "Yearly", amount), year)
    except ChargeRefused:
        assert amount / weeks < Decimal("0.005")
        return
    assert abs(weekly * weeks - amount) <= Decimal("0.005") * weeks


# Who is charged ------------------------------------------------------------------------------

MONDAY = date(2026, 4, 6)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "charged"),
    [
        ({}, True),  # no dates: started long ago, not ended
        ({"start_date": at(date(2026, 4, 6))}, True),  # starts that Monday
        ({"start_date": at(date(2026, 4, 7))}, False),  # starts after the Monday
        ({"start_date": at(date(2020, 1, 1)), "end_date": at(date(2026, 4, 6))}, True),  # ends that Monday
        ({"start_date": at(date(2020, 1, 1)), "end_date": at(date(2026, 4, 5))}, False),  # ended the day before
        ({"account_status": AccountStatus.SUSPENDED}, False),
        ({"account_status": AccountStatus.ENDED}, False),
        ({"account_status": AccountStatus.ENDED, "end_date": at(date(2026, 5, 1))}, False),
    ],
)
def test_an_account_is_charged_when_active_on_the_monday(overrides: dict[str, object], charged: bool) -> None:
    assert is_charged(an_account(**overrides), MONDAY) is charged


# The week's charges of an account ---------------------------------------------------------------


def test_each_charge_type_is_one_charge_with_an_id_from_account_type_and_week() -> None:
    account = an_account(
        consolidated_charges=(charge("100.00"), charge("520.00", "Monthly", "Service charge")),
    )
    charges, refusals = weekly_charges(account, WEEK_1_2026)

    assert refusals == []
    assert [(c.charge_type, c.amount) for c in charges] == [
        ("Rent", Decimal("100.00")),
        ("Service charge", Decimal("120.00")),
    ]
    assert charges[0].transaction_id == charge_id(account.id, "Rent", date(2026, 4, 6))
    assert weekly_charges(account, WEEK_1_2026)[0] == charges  # the same ids every time
    next_week = rent_week_starting(date(2026, 4, 13))
    assert {c.transaction_id for c in weekly_charges(account, next_week)[0]}.isdisjoint(
        c.transaction_id for c in charges
    )


def test_two_charges_of_one_type_are_one_charge_of_their_sum() -> None:
    account = an_account(consolidated_charges=(charge("100.00"), charge("260.00", "Monthly")))
    charges, _ = weekly_charges(account, WEEK_1_2026)
    assert [(c.charge_type, c.amount) for c in charges] == [("Rent", Decimal("160.00"))]


def test_a_refused_charge_refuses_its_type_only_and_says_why() -> None:
    account = an_account(
        consolidated_charges=(
            charge("100.00"),
            charge("5.00", "Quarterly", "Service charge"),
            charge("3.00", "Weekly", "Service charge"),
        )
    )
    charges, refusals = weekly_charges(account, WEEK_1_2026)

    assert [c.charge_type for c in charges] == ["Rent"]
    assert [(r.account_id, r.charge_type) for r in refusals] == [(account.id, "Service charge")]
    assert "Quarterly" in refusals[0].reason


def test_ids_differ_by_account_type_and_week() -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    ids = {
        charge_id(one, "Rent", MONDAY),
        charge_id(other, "Rent", MONDAY),
        charge_id(one, "Service charge", MONDAY),
        charge_id(one, "Rent", date(2026, 4, 13)),
    }
    assert len(ids) == 4 and charge_id(one, "Rent", MONDAY) == charge_id(one, "Rent", MONDAY)
