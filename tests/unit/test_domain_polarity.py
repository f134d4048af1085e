"""Polarity: which sign of a balance means the tenant owes the council, decided by the target type."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.domain.polarity import DEFAULT_TARGET_TYPES, Polarity, TargetType

RENT = TargetType("Tenure", Polarity.NEGATIVE_IS_ARREARS, "rent is charged as a negative amount")
OVERPAYMENT = TargetType("HousingBenefit", Polarity.POSITIVE_IS_ARREARS, "an overpayment is a positive amount")


@pytest.mark.parametrize(
    ("balance", "owed"), [("-300.00", "300.00"), ("-0.01", "0.01"), ("0.00", "0.00"), ("40.00", "-40.00")]
)
def test_on_a_rent_account_a_negative_balance_is_money_owed(balance: str, owed: str) -> None:
    assert RENT.amount_owed(Decimal(balance)) == Decimal(owed)
    assert RENT.in_arrears(Decimal(balance)) is (Decimal(owed) > 0)


@pytest.mark.parametrize(
    ("balance", "owed"), [("75.00", "75.00"), ("0.01", "0.01"), ("0.00", "0.00"), ("-20.00", "-20.00")]
)
def test_on_a_benefit_overpayment_a_positive_balance_is_money_owed(balance: str, owed: str) -> None:
    assert OVERPAYMENT.amount_owed(Decimal(balance)) == Decimal(owed)
    assert OVERPAYMENT.in_arrears(Decimal(balance)) is (Decimal(owed) > 0)


def test_a_square_account_is_never_in_arrears_and_owes_plain_zero() -> None:
    for target_type in (RENT, OVERPAYMENT):
        assert not target_type.in_arrears(Decimal("0.00"))
        assert not target_type.in_arrears(Decimal("-0.00"))
        assert str(target_type.amount_owed(Decimal("0.00"))) == "0.00"  # not "-0.00"


def test_the_same_balance_reads_opposite_ways_under_the_two_polarities() -> None:
    balance = Decimal("-12.34")
    assert RENT.amount_owed(balance) == -OVERPAYMENT.amount_owed(balance)
    assert RENT.in_arrears(balance) and not OVERPAYMENT.in_arrears(balance)


def test_the_amount_owed_keeps_every_penny() -> None:
    assert RENT.amount_owed(Decimal("-999999999999.99")) == Decimal("999999999999.99")


def test_the_council_starts_with_tenure_licence_and_benefit_target_types() -> None:
    polarity = {target.name: target.polarity for target in DEFAULT_TARGET_TYPES}
    assert polarity == {
        "Tenure": Polarity.NEGATIVE_IS_ARREARS,
        "Licensing": Polarity.NEGATIVE_IS_ARREARS,
        "HousingBenefit": Polarity.POSITIVE_IS_ARREARS,
    }
    assert all(target.description for target in DEFAULT_TARGET_TYPES)
    assert Polarity.NEGATIVE_IS_ARREARS.value == "NegativeIsArrears"
