"""Charge runs: each account's charges for one rent week, worked out from its consolidated charges.

Pure rules, no I/O. An account's consolidated charges carry a frequency; a charge run posts
their weekly figure as one `Charge` per charge type, dated the Monday the week starts:

* `Weekly` as it is; `Fortnightly` halved (rent due every other Monday, charged by the week);
* `Monthly` x 12 / the weeks in that rent year, `Yearly` / the weeks in that rent year: 52 or
  53 (`rent_week.weeks_in_rent_year`), never the hard-coded 52 of the council's old code, which
  charged a 53-week year a week's rent too much;
* rounded to the penny, half a penny up (ROUND_HALF_UP, as the council's figures are quoted).

Any other frequency is refused with the reason, never guessed: the council's data has weekly,
fortnightly and monthly rents (and yearly charges); other periods (some leasehold service
charges) are not weekly charges at all. Two charges of one type on an account are one charge
of their weekly figures added up (one `Charge` per account, charge type and week); if either
of them is refused, so is the type, so a corrected rerun can still post it whole.

Which accounts are charged for a week: those whose status is `Active` (not `Suspended`, not
`Ended`) whose start date is on or before its Monday (or not known) and whose end date is not
before it (or not set). The status is the account's as the run reaches it; the dates are
compared as UTC calendar days.

A charge's transaction id is a uuid5 of (account id, charge type, week start): running the week
again, or resuming a run that was stopped, asks for the same ids, and the ledger posts an id once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from accounts.domain.account import Account, AccountStatus, Actor, ConsolidatedCharge, _iso
from accounts.domain.polarity import ZERO
from accounts.domain.rent_week import RentWeek, weeks_in_rent_year

PENNY = Decimal("0.01")
# The namespace of charge ids (a uuid5 of a fixed name): the same account, type and week give the same id.
CHARGE_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:housing-finance-accounts:weekly-charge")
# A run lists at most this many refusals (with account, type and reason); it counts all of them.
MAX_LISTED_REFUSALS = 1000


class Frequency(StrEnum):
    WEEKLY = "Weekly"
    FORTNIGHTLY = "Fortnightly"
    MONTHLY = "Monthly"
    YEARLY = "Yearly"


_FREQUENCIES = {frequency.value.lower(): frequency for frequency in Frequency}
KNOWN_FREQUENCIES = ", ".join(frequency.value for frequency in Frequency)


class ChargeRefused(Exception):
    """A consolidated charge that cannot be turned into a weekly figure; the reason says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def frequency_of(charge: ConsolidatedCharge) -> Frequency:
    """The charge's frequency, in any case; anything else is refused, naming what is known."""
    found = _FREQUENCIES.get(charge.frequency.strip().lower())
    if found is None:
        raise ChargeRefused(f"frequency {charge.frequency!r} is not one of {KNOWN_FREQUENCIES}")
    return found


def _exact_weekly(charge: ConsolidatedCharge, weeks: int) -> Decimal:
    """The weekly figure before rounding (Decimal's 28 digits: exact enough for any money amount)."""
    if charge.amount <= ZERO:
        raise ChargeRefused(f"amount {charge.amount} is not greater than zero")
    frequency = frequency_of(charge)
    if frequency is Frequency.WEEKLY:
        return charge.amount
    if frequency is Frequency.FORTNIGHTLY:
        return charge.amount / 2
    if frequency is Frequency.MONTHLY:
        return charge.amount * 12 / weeks
    return charge.amount / weeks


def to_pence(amount: Decimal) -> Decimal:
    """Rounded to the penny, half a penny up."""
    return amount.quantize(PENNY, rounding=ROUND_HALF_UP) + ZERO


def weekly_figure(charge: ConsolidatedCharge, financial_year: int) -> Decimal:
    """What one consolidated charge comes to a week in that rent year, to the penny."""
    weekly = to_pence(_exact_weekly(charge, weeks_in_rent_year(financial_year)))
    if weekly <= ZERO:
        raise ChargeRefused(f"{charge.amount} {charge.frequency} is less than half a penny a week")
    return weekly


@dataclass(frozen=True)
class WeeklyCharge:
    """One charge to post: the account's charges of one type, as a weekly figure."""

    charge_type: str
    amount: Decimal
    transaction_id: UUID


@dataclass(frozen=True)
class Refusal:
    """A charge type not posted to an account, and why."""

    account_id: UUID
    charge_type: str
    reason: str


def charge_id(account_id: UUID, charge_type: str, week_starts: date) -> UUID:
    """The transaction id of the account's charge of that type for the week starting that Monday."""
    return uuid.uuid5(CHARGE_ID_NAMESPACE, f"{account_id}|{charge_type}|{week_starts.isoformat()}")


def is_charged(account: Account, monday: date) -> bool:
    """Whether the account is charged for the week starting `monday`: Active, started, not ended before it."""
    return (
        account.account_status is AccountStatus.ACTIVE
        and (account.start_date is None or account.start_date.date() <= monday)
        and (account.end_date is None or account.end_date.date() >= monday)
    )


def weekly_charges(account: Account, week: RentWeek) -> tuple[list[WeeklyCharge], list[Refusal]]:
    """The charges to post to the account for the week, one per charge type, and the types refused."""
    weeks = weeks_in_rent_year(week.financial_year)
    by_type: dict[str, list[ConsolidatedCharge]] = {}
    for charge in account.consolidated_charges:
        by_type.setdefault(charge.type.strip(), []).append(charge)
    charges: list[WeeklyCharge] = []
    refusals: list[Refusal] = []
    for charge_type, same in by_type.items():
        if not charge_type:
            refusals.append(Refusal(account.id, charge_type, "the charge type is blank"))
            continue
        try:
            amount = to_pence(sum((_exact_weekly(charge, weeks) for charge in same), ZERO))
            if amount <= ZERO:
                raise ChargeRefused(f"{charge_type} is less than half a penny a week")
        except ChargeRefused as refused:
            refusals.append(Refusal(account.id, charge_type, refused.reason))
            continue
        charges.append(WeeklyCharge(charge_type, amount, charge_id(account.id, charge_type, week.starts)))
    return charges, refusals


def charge_description(charge_type: str, week: RentWeek) -> str:
    """How the charge reads in the statement: "Rent for 2026/27 week 1"."""
    return f"{charge_type} for {week.label}"


# The run ---------------------------------------------------------------------------------


class RunStatus(StrEnum):
    RUNNING = "Running"
    FINISHED = "Finished"


@dataclass(frozen=True)
class ChargeRun:
    """One charge run for one rent week, and how far it has got (stored with each batch it commits).

    Accounts are taken in id order; `last_account_id` is the last one done, so a run that was
    stopped carries on after it.
    """

    id: UUID
    week: RentWeek
    started_by: Actor  # the charges are posted in their name
    started_at: datetime
    updated_at: datetime
    accounts_total: int  # accounts stored when the run started (for a progress bar: more may come)
    status: RunStatus = RunStatus.RUNNING
    finished_at: datetime | None = None
    last_account_id: UUID | None = None
    accounts_done: int = 0  # accounts looked at
    accounts_charged: int = 0  # accounts with a charge posted by this run
    accounts_not_charged: int = 0  # not Active, not started or ended before the Monday
    charges_posted: int = 0
    amount_posted: Decimal = ZERO
    charges_skipped: int = 0  # posted before (by an earlier run of the week): nothing posted twice
    charges_refused: int = 0
    refusals: tuple[Refusal, ...] = field(default=(), repr=False)  # the first MAX_LISTED_REFUSALS
    version: int = 1

    @property
    def finished(self) -> bool:
        return self.status is RunStatus.FINISHED

    def advanced(self, batch: BatchDone, at: datetime) -> ChargeRun:
        """The run after one more batch of accounts."""
        room = MAX_LISTED_REFUSALS - len(self.refusals)
        return replace(
            self,
            updated_at=at,
            last_account_id=batch.last_account_id,
            accounts_done=self.accounts_done + batch.accounts,
            accounts_charged=self.accounts_charged + batch.accounts_charged,
            accounts_not_charged=self.accounts_not_charged + batch.accounts_not_charged,
            charges_posted=self.charges_posted + batch.charges_posted,
            amount_posted=self.amount_posted + batch.amount_posted,
            charges_skipped=self.charges_skipped + batch.charges_skipped,
            charges_refused=self.charges_refused + len(batch.refusals),
            refusals=self.refusals + tuple(batch.refusals[: max(room, 0)]),
            version=self.version + 1,
        )

    def done(self, at: datetime) -> ChargeRun:
        return replace(self, status=RunStatus.FINISHED, finished_at=at, updated_at=at, version=self.version + 1)


@dataclass
class BatchDone:
    """What one batch of accounts came to."""

    last_account_id: UUID | None = None
    accounts: int = 0
    accounts_charged: int = 0
    accounts_not_charged: int = 0
    charges_posted: int = 0
    amount_posted: Decimal = ZERO
    charges_skipped: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    def refuse(self, refusals: Iterable[Refusal]) -> None:
        self.refusals.extend(refusals)


def run_to_wire(run: ChargeRun) -> dict[str, Any]:
    """The run as clients read it (`GET /charge-runs/{id}`, the command's summary)."""
    return {
        "id": str(run.id),
        "weekStarting": run.week.starts.isoformat(),
        "financialYear": run.week.financial_year,
        "periodNo": run.week.period_no,
        "rentWeek": run.week.label,
        "status": run.status.value,
        "startedBy": run.started_by.label,
        "startedAt": _iso(run.started_at),
        "updatedAt": _iso(run.updated_at),
        "finishedAt": _iso(run.finished_at),
        "accountsTotal": run.accounts_total,
        "accountsDone": run.accounts_done,
        "accountsCharged": run.accounts_charged,
        "accountsNotCharged": run.accounts_not_charged,
        "chargesPosted": run.charges_posted,
        "amountPosted": run.amount_posted,
        "chargesSkipped": run.charges_skipped,
        "chargesRefused": run.charges_refused,
        "refusals": [
            {"accountId": str(refusal.account_id), "chargeType": refusal.charge_type, "reason": refusal.reason}
            for refusal in run.refusals
        ],
    }
