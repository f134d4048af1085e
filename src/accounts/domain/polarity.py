"""Polarity: which sign of an account balance means the tenant owes the council.

Each target type carries a polarity. "In arrears" and "amount owed" are defined here
and only here, so the arrears query and the stored amount-owed column can never
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal("0.00")


class Polarity(StrEnum):
    # Charges are posted as negative amounts: a negative balance is money owed.
    NEGATIVE_IS_ARREARS = "NegativeIsArrears"
    # Charges are posted as positive amounts: a positive balance is money owed.
    POSITIVE_IS_ARREARS = "PositiveIsArrears"


@dataclass(frozen=True)
class TargetType:
    name: str
    polarity: Polarity
    description: str

    def amount_owed(self, balance: Decimal) -> Decimal:
        """The money owed to the council on this balance (negative means in credit)."""
        owed = -balance if self.polarity is Polarity.NEGATIVE_IS_ARREARS else balance
        return owed + ZERO

    def in_arrears(self, balance: Decimal) -> bool:
        return self.amount_owed(balance) > ZERO


DEFAULT_TARGET_TYPES = (
    TargetType("Tenure", Polarity.NEGATIVE_IS_ARREARS, "A tenancy or lease in the housing system"),
    TargetType("Licensing", Polarity.NEGATIVE_IS_ARREARS, "A licence, such as temporary accommodation"),
    TargetType("HousingBenefit", Polarity.POSITIVE_IS_ARREARS, "A housing benefit overpayment to be recovered"),
)
