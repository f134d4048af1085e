"""The arrears worklist: who to call first, and the figures a caseworker reads for each account.

Pure rules, no I/O. The council's arrears case list holds, per account, what is owed, the
weekly rent, weeks in arrears, days since the last payment and collectable arrears; these
are worked out here, once, for the stored sort columns and for the API alike:

* **weekly charge**: the account's consolidated charges as weekly figures
  (`charges.weekly_figure`, over the 52 or 53 weeks of the rent year the day falls in),
  added up; a charge the charge run would refuse (an unknown frequency, not above zero)
  counts 0, as it is never charged.
* **weeks in arrears**: amount owed / weekly charge, to one decimal, half up. With no weekly
  charge there is nothing to measure by: `None` (null on the wire), and it sorts and filters
  as 0 (`weeks_for_sorting`), so such accounts come last when the most weeks come first and
  `minWeeksInArrears` above 0 leaves them out. An account not owing is 0 weeks in arrears.
* **collectable arrears**: amount owed less this rent week's charge (the weekly charge of the
  day's rent year, when the charge run charges the account that week), never below zero:
  payments take up to five working days to arrive, so the last week's rent is given a week's
  grace before it is chased.
* **days since the last payment**: from the last payment's date; for an account never paid,
  from the day it started (its start date, else the day it was created), so a new tenancy that
  has never paid climbs the list as a long-unpaid one does. Never below zero (a start date ahead).
  `arrears_since` is that date: the stored sort key, so the sort never meets a null.

The stored columns are worked out for the rent year of the day the account last changed
(`last_updated_at`), which keeps a row's figures a function of the row alone: an Active account
is charged every week by the charge run, so its figures are at most a week old.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache
from uuid import UUID

from accounts.domain.account import Account, AccountTenure, ConsolidatedCharge, RentGroupType
from accounts.domain.charges import ChargeRefused, is_charged, weekly_figure
from accounts.domain.polarity import ZERO
from accounts.domain.rent_week import RentWeek, rent_week_of

ONE_DECIMAL = Decimal("0.1")
NO_WEEKS = Decimal("0.0")


@lru_cache(maxsize=4096)
def _rent_week(day: date) -> RentWeek:
    """`rent_week_of`, remembered: a page works out the same few days' weeks for every account on it."""
    return rent_week_of(day)


class WorklistSort(StrEnum):
    """What the worklist is sorted by (wire names); each has a stored column and an index."""

    AMOUNT_OWED = "amountOwed"
    WEEKS_IN_ARREARS = "weeksInArrears"
    DAYS_SINCE_LAST_PAYMENT = "daysSinceLastPayment"


def weekly_charge(charges: Iterable[ConsolidatedCharge], day: date) -> Decimal:
    """The consolidated charges as one weekly figure in the rent year `day` falls in; refused charges count 0."""
    try:
        financial_year = _rent_week(day).financial_year
    except ValueError:  # a day outside the calendar of rent weeks (years 1 and 9999): nothing is charged
        return ZERO
    total = ZERO
    for charge in charges:
        try:
            total += weekly_figure(charge, financial_year)
        except ChargeRefused:
            continue
    return total + ZERO


def weeks_in_arrears(amount_owed: Decimal, weekly: Decimal) -> Decimal | None:
    """Amount owed / weekly charge to one decimal (half up); None with no weekly charge; 0 when nothing is owed."""
    if weekly <= ZERO:
        return None
    if amount_owed <= ZERO:
        return NO_WEEKS
    return (amount_owed / weekly).quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


def weeks_for_sorting(weeks: Decimal | None) -> Decimal:
    """How weeks in arrears are stored, filtered and sorted: 0 when there is no weekly charge."""
    return NO_WEEKS if weeks is None else weeks


def collectable_arrears(account: Account, amount_owed: Decimal, day: date) -> Decimal:
    """Amount owed less the charge of `day`'s rent week (when the account is charged that week), never below 0."""
    if amount_owed <= ZERO:
        return ZERO
    try:
        week = _rent_week(day)
    except ValueError:
        return amount_owed
    this_week = weekly_charge(account.consolidated_charges, day) if is_charged(account, week.starts) else ZERO
    return max(amount_owed - this_week, ZERO) + ZERO


def arrears_since(last_payment_date: date | None, start_date: datetime | None, created_at: datetime) -> date:
    """The day days-since-last-payment counts from: the last payment, else the start, else the creation."""
    if last_payment_date is not None:
        return last_payment_date
    return (start_date or created_at).date()


def days_since(since: date, day: date) -> int:
    """Whole days from `since` to `day`, never below zero."""
    return max((day - since).days, 0)


@dataclass(frozen=True)
class StoredFigures:
    """The figures stored with an account for the worklist's filters and sorts."""

    weekly_charge: Decimal
    weeks_in_arrears: Decimal  # weeks_for_sorting: 0 when there is no weekly charge
    arrears_since: date


def stored_figures(account: Account, amount_owed: Decimal) -> StoredFigures:
    """What the accounts table keeps for the worklist, for the rent year of the account's last change."""
    weekly = weekly_charge(account.consolidated_charges, account.last_updated_at.date())
    return StoredFigures(
        weekly,
        weeks_for_sorting(weeks_in_arrears(amount_owed, weekly)),
        arrears_since(account.last_payment_date, account.start_date, account.created_at),
    )


@dataclass(frozen=True)
class WorklistEntry:
    """One account on the worklist: the figures a caseworker reads, and the tenure to call about."""

    account_id: UUID
    payment_reference: str
    rent_group_type: RentGroupType | None
    tenure: AccountTenure | None
    amount_owed: Decimal
    weekly_charge: Decimal
    weeks_in_arrears: Decimal | None
    collectable_arrears: Decimal
    last_payment_date: date | None
    last_payment_amount: Decimal | None
    arrears_since: date
    days_since_last_payment: int

    def sort_value(self, sort: WorklistSort) -> Decimal | date:
        """The stored value this entry sorts by (a cursor's place): days sort by the date they count from."""
        if sort is WorklistSort.AMOUNT_OWED:
            return self.amount_owed
        if sort is WorklistSort.WEEKS_IN_ARREARS:
            return weeks_for_sorting(self.weeks_in_arrears)
        return self.arrears_since


def worklist_entry(account: Account, amount_owed: Decimal, today: date) -> WorklistEntry:
    """The account's worklist figures on `today`: those it sorts by as stored, the rest as of today."""
    stored = stored_figures(account, amount_owed)
    return WorklistEntry(
        account_id=account.id,
        payment_reference=account.payment_reference,
        rent_group_type=account.rent_group_type,
        tenure=account.tenure,
        amount_owed=amount_owed,
        weekly_charge=stored.weekly_charge,
        weeks_in_arrears=weeks_in_arrears(amount_owed, stored.weekly_charge),
        collectable_arrears=collectable_arrears(account, amount_owed, today),
        last_payment_date=account.last_payment_date,
        last_payment_amount=account.last_payment_amount,
        arrears_since=stored.arrears_since,
        days_since_last_payment=days_since(stored.arrears_since, today),
    )
