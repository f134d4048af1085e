"""The rent account and its rules.

`Account` is immutable: every change produces a new value through `changed`, which
re-checks every rule and refuses to touch the fields fixed at creation. The wire
shape (camelCase, the existing clients' contract) is produced here once, so the API
responses and the events can never disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from accounts.domain import payment_reference
from accounts.domain.errors import ImmutableField, ValidationProblem
from accounts.domain.ledger import LedgerConflict, Transaction, TransactionType
from accounts.domain.values import iso as _iso
from accounts.domain.values import money, utc


class AccountType(StrEnum):
    MASTER = "Master"
    RECHARGE = "Recharge"
    SUNDRY = "Sundry"


class AccountStatus(StrEnum):
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    ENDED = "Ended"


class RentGroupType(StrEnum):
    TENANT = "Tenant"
    LEASE_HOLDERS = "LeaseHolders"
    GEN_FUND_RENTS = "GenFundRents"
    GARAGES = "Garages"
    HA_LEASES = "HaLeases"
    HRA_RENTS = "HraRents"
    MAJOR_WORKS = "MajorWorks"
    TEMP_ACC = "TempAcc"
    TRAVELERS = "Travelers"
    GAR_PARK_HRA = "GarParkHRA"
    HOUSING_GEN_FUND = "HousingGenFund"
    HOUSING_REVENUE = "HousingRevenue"
    LH_MAJOR_WORKS = "LHMajorWorks"
    LH_SERV_CHARGES = "LHServCharges"
    RSL_AND_X_BOROUGH = "RSLandXBorough"
    TEMP_ACC_GEN_FUN = "TempAccGenFun"
    TEMP_ACCOM_HRA = "TempAccomHRA"
    TRAVEL_GEN_FUND = "TravelGenFund"


# Fields fixed when the account is created (wire names).
IMMUTABLE_FIELDS = ("id", "createdAt", "createdBy")


@dataclass(frozen=True)
class Actor:
    """Who made a change: from the bearer token or the event's `user`."""

    name: str
    email: str

    @property
    def label(self) -> str:
        return self.email or self.name


@dataclass(frozen=True)
class Change:
    """Who changes an account, when, and under which correlation id (carried into the account's events)."""

    actor: Actor
    correlation_id: UUID
    at: datetime


@dataclass(frozen=True)
class AccountChanged:
    """Raised by an account when it is opened (`before` is None) or changed; the version raising it is `after`.

    The unit of work turns what its accounts raised into their outbox events and interim rows
    at commit. Only the version before is held, never the one after, so a version and its
    events hold no reference cycle.
    """

    before: Account | None
    change: Change
    # The ledger transaction that made the change (its balance), if one did.
    posted: Transaction | None = None


@dataclass(frozen=True)
class ConsolidatedCharge:
    type: str
    frequency: str
    amount: Decimal


@dataclass(frozen=True)
class TenureTypeRef:
    code: str
    description: str


@dataclass(frozen=True)
class PrimaryTenant:
    id: UUID
    full_name: str


@dataclass(frozen=True)
class AccountTenure:
    """The account's copy of its tenure, as the front ends display it."""

    tenure_id: UUID
    tenure_type: TenureTypeRef | None = None
    full_address: str | None = None
    primary_tenants: tuple[PrimaryTenant, ...] = ()


@dataclass(frozen=True)
class Account:
    id: UUID
    target_type: str
    target_id: UUID
    account_type: AccountType
    payment_reference: str
    created_by: str
    created_at: datetime
    last_updated_by: str
    last_updated_at: datetime
    account_status: AccountStatus = AccountStatus.ACTIVE
    rent_group_type: RentGroupType | None = None
    agreement_type: str | None = None
    account_balance: Decimal = Decimal("0.00")
    consolidated_balance: Decimal = Decimal("0.00")
    parent_account_id: UUID | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    end_reason_code: str | None = None
    consolidated_charges: tuple[ConsolidatedCharge, ...] = ()
    tenure: AccountTenure | None = None
    version: int = 1
    # The latest payment posted to the account (by transaction date): what the arrears worklist shows.
    # State the account knows, not part of its wire form (`to_wire`): existing clients read no more.
    last_payment_date: date | None = None
    last_payment_amount: Decimal | None = None
    # What this version and those before it raised in the unit of work that made them, oldest first.
    raised: tuple[AccountChanged, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def opened(cls, change: Change, posted: Transaction | None = None, **fields: Any) -> Account:
        """A new account, opened by `change.actor`, raising `AccountChanged` (its created event and row).

        `posted`: the OpeningBalance of an account opened with a balance.
        """
        label = change.actor.label
        return cls(
            created_by=label,
            created_at=change.at,
            last_updated_by=label,
            last_updated_at=change.at,
            raised=(AccountChanged(None, change, posted),),
            **fields,
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "account_balance", money(self.account_balance, "accountBalance"))
        object.__setattr__(self, "consolidated_balance", money(self.consolidated_balance, "consolidatedBalance"))
        for index, charge in enumerate(self.consolidated_charges):
            money(charge.amount, f"consolidatedCharges[{index}].amount")
        payment_reference.validate(self.payment_reference)
        for name, wire_name in _TIMESTAMPS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value, wire_name))
        if self.last_payment_amount is not None:
            object.__setattr__(self, "last_payment_amount", money(self.last_payment_amount, "lastPaymentAmount"))
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationProblem("endDate", "must not be before startDate", self.end_date)
        if self.account_type is AccountType.MASTER and self.parent_account_id is not None:
            raise ValidationProblem("parentAccountId", "must be empty on a Master account")
        if self.parent_account_id is not None and self.parent_account_id == self.id:
            raise ValidationProblem("parentAccountId", "must not be the account itself")

    @property
    def is_active(self) -> bool:
        return self.account_status is not AccountStatus.ENDED

    def refuse_posting(self, transaction_type: TransactionType) -> None:
        """An Ended account takes no new Charges (409); payments, refunds and the rest still post.

        Only Charge is refused: an Ended account still has its arrears collected, written off
        and corrected, and a PATCH of `accountBalance` (an Adjustment either way) keeps working
        for existing clients.
        """
        if self.account_status is AccountStatus.ENDED and transaction_type is TransactionType.CHARGE:
            raise LedgerConflict("transactionType", "cannot be a Charge on an Ended account")

    def changed(self, actor: Actor, at: datetime, **changes: Any) -> Account:
        """A new version with `changes` applied; the same account when nothing differs."""
        for name in ("id", "created_at", "created_by", "version"):
            if name in changes and changes[name] != getattr(self, name):
                raise ImmutableField(_camel(name))
        candidate = dataclasses.replace(self, **changes)  # every rule checked again
        if candidate == self:
            return self
        # Stamped in place: the candidate is new and nobody else holds it yet, and building it a second
        # time (every rule again) was a tenth of a posting's cost.
        object.__setattr__(candidate, "last_updated_by", actor.label)
        object.__setattr__(candidate, "last_updated_at", utc(at, "lastUpdatedAt"))
        object.__setattr__(candidate, "version", self.version + 1)
        return candidate

    def change(self, change: Change, posted: Transaction | None = None, **changes: Any) -> Account:
        """`changed`, raising `AccountChanged` (its updated event and row); the same account when nothing differs.

        `posted`: the ledger transaction that moved the balance to the one in `changes`.
        """
        if posted is not None and "last_payment_date" not in changes:
            changes = {**changes, **self._last_payment_after(posted)}
        new = self.changed(change.actor, change.at, **changes)
        if new is not self:
            object.__setattr__(new, "raised", (*self.raised, AccountChanged(self, change, posted)))
        return new

    def _last_payment_after(self, posted: Transaction) -> dict[str, Any]:
        """The last payment once `posted` is posted: a Payment dated on or after the last one replaces it.

        A back-dated Payment (before the last one) leaves it as it is; of two on the same day the one
        posted later is the last. A Reversal of a Payment does not bring the one before back: the
        account does not hold its ledger (documented in docs/ledger.md).
        """
        # Compared by value: the ledger's TransactionType is a StrEnum, and importing it here would be a cycle.
        if posted.transaction_type != "Payment":
            return {}
        if self.last_payment_date is not None and posted.transaction_date < self.last_payment_date:
            return {}
        return {"last_payment_date": posted.transaction_date, "last_payment_amount": posted.amount}

    def versions_raised(self) -> list[tuple[AccountChanged, Account]]:
        """Each event this account raised with the version that raised it, oldest first."""
        raised = self.raised
        return list(zip(raised, [*(event.before for event in raised[1:]), self], strict=True))  # type: ignore[list-item]

    def forget_raised(self) -> None:
        """Its events are written (the unit of work committed them): a later change raises only its own."""
        object.__setattr__(self, "raised", ())


def oldest_first(account: Account) -> tuple[datetime, UUID]:
    """How a target's accounts are listed: oldest first, ties by id (the stored reads order by the same columns)."""
    return (account.created_at, account.id)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


# The timestamps every account checks (field, wire name): named once, not worked out on every check.
_TIMESTAMPS = tuple((name, _camel(name)) for name in ("created_at", "last_updated_at", "start_date", "end_date"))


def tenure_to_wire(tenure: AccountTenure | None) -> dict[str, Any] | None:
    if tenure is None:
        return None
    return {
        "tenureId": str(tenure.tenure_id),
        "tenureType": (
            {"code": tenure.tenure_type.code, "description": tenure.tenure_type.description}
            if tenure.tenure_type
            else None
        ),
        "fullAddress": tenure.full_address,
        "primaryTenants": [{"id": str(tenant.id), "fullName": tenant.full_name} for tenant in tenure.primary_tenants],
    }


def wire_view(account: Account) -> Mapping[str, Any]:
    """`to_wire`, worked out once per account object and then shared, for readers that never change it.

    An account change works out the new account's wire form three times (its event, the
    stored wire JSON, its interim row's source), and an account never changes (frozen).
    """
    cached: Mapping[str, Any] | None = account.__dict__.get("_wire")
    if cached is None:
        cached = to_wire(account)
        object.__setattr__(account, "_wire", cached)
    return cached


def to_wire(account: Account) -> dict[str, Any]:
    """The account as existing clients read it: camelCase, enums as strings, money as Decimal.

    A new dict on each call, which the caller may change (a PATCH does); see `wire_view`.
    """
    return {
        "id": str(account.id),
        "parentAccountId": str(account.parent_account_id) if account.parent_account_id else None,
        "paymentReference": account.payment_reference,
        "targetType": account.target_type,
        "targetId": str(account.target_id),
        "accountType": account.account_type.value,
        "rentGroupType": account.rent_group_type.value if account.rent_group_type else None,
        "agreementType": account.agreement_type,
        "accountBalance": account.account_balance,
        "consolidatedBalance": account.consolidated_balance,
        "createdBy": account.created_by,
        "createdAt": _iso(account.created_at),
        "lastUpdatedBy": account.last_updated_by,
        "lastUpdatedAt": _iso(account.last_updated_at),
        "startDate": _iso(account.start_date),
        "endDate": _iso(account.end_date),
        "endReasonCode": account.end_reason_code,
        "accountStatus": account.account_status.value,
        "consolidatedCharges": [
            {"type": charge.type, "frequency": charge.frequency, "amount": charge.amount}
            for charge in account.consolidated_charges
        ],
        "tenure": tenure_to_wire(account.tenure),
    }


def etag(account: Account) -> str:
    """A strong ETag: the account id and its version."""
    return version_tag(account.id, account.version)


def version_tag(account_id: UUID, version: int) -> str:
    return f'"{account_id}-{version}"'


def wire_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The top-level fields that differ, as (oldData, newData)."""
    keys = [key for key in new if old.get(key) != new.get(key)]
    return {key: old.get(key) for key in keys}, {key: new[key] for key in keys}
