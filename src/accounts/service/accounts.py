"""Account use cases: the one path for every account change, from the API and the listener.

`create_account` and `change_account` work inside a unit of work the caller owns, so
the listener can record its processed event and tenure copy in the same transaction.
The account raises its change; the unit of work writes its outbox event and its interim
row at commit (`service/changes.py`), whoever asked for it, so the two can never differ
between the API and the listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

from accounts.domain import ledger, payment_reference
from accounts.domain.account import (
    Account,
    AccountStatus,
    AccountTenure,
    AccountType,
    Actor,
    Change,
    ConsolidatedCharge,
    RentGroupType,
    etag,
)
from accounts.domain.errors import ValidationProblem
from accounts.domain.polarity import ZERO, TargetType
from accounts.service.unit_of_work import ConcurrencyConflict, UnitOfWork, in_transaction

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")

# Sort keys the arrears query accepts (wire name -> column), matched case-insensitively.
ARREARS_SORT_FIELDS = {
    "amountowed": "amount_owed",
    "accountbalance": "account_balance",
    "consolidatedbalance": "consolidated_balance",
    "paymentreference": "payment_reference",
    "createdat": "created_at",
    "lastupdatedat": "last_updated_at",
    "startdate": "start_date",
    "enddate": "end_date",
    "accountstatus": "account_status",
    "rentgrouptype": "rent_group_type",
}
ARREARS_SORT_NAMES = (
    "amountOwed",
    "accountBalance",
    "consolidatedBalance",
    "paymentReference",
    "createdAt",
    "lastUpdatedAt",
    "startDate",
    "endDate",
    "accountStatus",
    "rentGroupType",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class AccountNotFound(Exception):
    def __init__(self, account_id: UUID) -> None:
        self.account_id = account_id
        super().__init__(f"no account has id {account_id}")


class AccountConflict(Exception):
    """The change would break a uniqueness rule (409)."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        super().__init__(f"{field} {rule}")


class PreconditionFailed(Exception):
    """If-Match named a version that is no longer current (412)."""


@dataclass(frozen=True)
class NewAccount:
    """What a client or the listener asks for; the service fills in the rest."""

    target_type: str
    target_id: UUID
    account_type: AccountType
    payment_reference: str | None = None
    rent_group_type: RentGroupType | None = None
    agreement_type: str | None = None
    account_balance: Decimal = Decimal("0.00")
    consolidated_balance: Decimal = Decimal("0.00")
    parent_account_id: UUID | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    end_reason_code: str | None = None
    account_status: AccountStatus = AccountStatus.ACTIVE
    consolidated_charges: tuple[ConsolidatedCharge, ...] = ()
    tenure: AccountTenure | None = None


SEARCH_LIMIT = 50  # accounts a search lists: past that, the person is asked to refine it
MAX_SEARCH_TEXT = 100  # characters of a search kept (no address or name is longer)


@dataclass(frozen=True)
class AccountSearchResult:
    """The accounts a search found, and whether more matched than are listed (then: refine the search)."""

    text: str  # the search as it was run (spaces tidied; a payment reference's digits alone)
    accounts: list[Account]
    more: bool


def search_text(text: str) -> str:
    """What a typed search is run as: a payment reference's digits (spaces and hyphens dropped), or the
    text with its spaces tidied, cut to MAX_SEARCH_TEXT characters."""
    reference = payment_reference.searched_reference(text)
    return (reference if reference is not None else " ".join(text.split()))[:MAX_SEARCH_TEXT]


@dataclass
class AccountService:
    """Transactions around the account use cases, with retries on lost races."""

    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now
    attempts: int = 5

    # Queries -----------------------------------------------------------------

    def get(self, account_id: UUID) -> Account:
        with self.uow_factory(read_only=True) as uow:
            account = uow.accounts.get(account_id)
        if account is None:
            raise AccountNotFound(account_id)
        return account

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        with self.uow_factory(read_only=True) as uow:
            return uow.accounts.by_target(target_id, account_type)

    def search(self, text: str, limit: int = SEARCH_LIMIT) -> AccountSearchResult:
        """Accounts by payment reference (or its first digits: the exact one first), or by part of the
        address or of a tenant's name, case aside; at most `limit`, and whether there were more."""
        wanted = search_text(text)
        if not wanted:
            return AccountSearchResult(wanted, [], False)
        with self.uow_factory(read_only=True) as uow:
            found = uow.accounts.search(wanted, limit + 1)  # one more: whether there are more
        return AccountSearchResult(wanted, found[:limit], len(found) > limit)

    def arrears(self, account_type: AccountType | None, sort_by: str, descending: bool, count: int) -> list[Account]:
        column = ARREARS_SORT_FIELDS.get(sort_by.lower())
        if column is None:
            raise ValidationProblem("sortBy", f"must be one of {', '.join(ARREARS_SORT_NAMES)}", sort_by)
        with self.uow_factory(read_only=True) as uow:
            return uow.accounts.arrears(account_type, column, descending, count)

    def target_types(self) -> list[TargetType]:
        with self.uow_factory(read_only=True) as uow:
            return uow.target_types.all()

    # Commands ----------------------------------------------------------------

    def create(self, command: NewAccount, actor: Actor, correlation_id: UUID) -> Account:
        def run(uow: UnitOfWork) -> Account:
            return create_account(uow, command, self._change(actor, correlation_id))

        return self._in_transaction(run)

    def change(
        self,
        account_id: UUID,
        change: Callable[[Account], dict[str, Any]],
        actor: Actor,
        correlation_id: UUID,
        if_match: str | None = None,
    ) -> tuple[Account, bool]:
        """Apply `change` (current account -> changed fields) to the current version.

        Without If-Match a lost race is retried on the fresh version; with it the
        client asked for that exact version, so a lost race is a 412.
        """

        def run(uow: UnitOfWork) -> tuple[Account, bool]:
            # Held until commit: concurrent changes queue instead of losing a race they retry.
            account = uow.accounts.get(account_id, for_update=True)
            if account is None:
                raise AccountNotFound(account_id)
            if if_match is not None and not etag_matches(if_match, account):
                raise PreconditionFailed(f"If-Match {if_match} is not the current version {etag(account)}")
            new = change_account(uow, account, change(account), self._change(actor, correlation_id))
            return new, new is not account

        try:
            return self._in_transaction(run, retry=if_match is None)
        except ConcurrencyConflict:
            raise PreconditionFailed("the account was changed by someone else; read it again") from None

    def _change(self, actor: Actor, correlation_id: UUID) -> Change:
        return Change(actor=actor, correlation_id=correlation_id, at=self.clock())

    def _in_transaction(self, run: Callable[[UnitOfWork], T], retry: bool = True) -> T:
        return in_transaction(self.uow_factory, run, self.attempts, "an account change", retry=retry)


def etag_matches(if_match: str, account: Account) -> bool:
    current = etag(account)
    candidates = [tag.strip() for tag in if_match.split(",")]
    return "*" in candidates or any(tag.removeprefix("W/") == current for tag in candidates)


def target_type_of(uow: UnitOfWork, name: str) -> TargetType:
    target_type = uow.target_types.get(name)
    if target_type is None:
        allowed = ", ".join(t.name for t in uow.target_types.all())
        raise ValidationProblem("targetType", f"must be one of {allowed}", name)
    return target_type


def _allocate_payment_reference(uow: UnitOfWork) -> str:
    """The one allocator: a fresh serial with its check digit, skipping any PRN already used."""
    while True:
        candidate = payment_reference.from_serial(uow.payment_references.next_serial())
        if not uow.accounts.payment_reference_taken(candidate):
            return candidate


def _check_payment_reference_free(uow: UnitOfWork, reference: str) -> None:
    if uow.accounts.payment_reference_taken(reference):
        raise AccountConflict("paymentReference", f"{reference} is already used by another account")


def active_master(uow: UnitOfWork, target_id: UUID) -> Account | None:
    """The target's one active Master account, if it has one (the database's unique index backs the rule)."""
    return next((a for a in uow.accounts.by_target(target_id, AccountType.MASTER) if a.is_active), None)


def _check_rules(uow: UnitOfWork, account: Account, previous: Account | None) -> None:
    """The rules that span accounts: one active Master per target, an existing parent.

    Each is checked when the change could break it (a posting, which moves the balance alone, cannot).
    """
    could_clash = previous is None or (previous.account_type, previous.is_active, previous.target_id) != (
        account.account_type,
        account.is_active,
        account.target_id,
    )
    if could_clash and account.account_type is AccountType.MASTER and account.is_active:
        existing = active_master(uow, account.target_id)
        if existing is not None and existing.id != account.id:
            raise AccountConflict(
                "targetId", f"{account.target_id} already has an active Master account ({existing.id})"
            )
    parent = account.parent_account_id
    if (
        parent is not None
        and (previous is None or previous.parent_account_id != parent)
        and uow.accounts.get(parent) is None
    ):
        raise ValidationProblem("parentAccountId", "must be the id of an existing account", parent)


def create_account(uow: UnitOfWork, command: NewAccount, change: Change) -> Account:
    target_type = target_type_of(uow, command.target_type)
    if command.payment_reference:
        reference = payment_reference.validate(command.payment_reference)
        _check_payment_reference_free(uow, reference)
    else:
        reference = _allocate_payment_reference(uow)
    account_id = uuid4()
    # An account opened with a balance: the ledger opens with it (and the balance stays the sum of the ledger).
    opening = ledger.opening_balance(
        account_id=account_id,
        balance=command.account_balance,
        polarity=target_type.polarity,
        created_by=change.actor.label,
        posted_at=change.at,
        transaction_date=change.at.date(),
        transaction_id=uuid4(),
    )
    account = Account.opened(
        change,
        opening,
        id=account_id,
        target_type=target_type.name,
        target_id=command.target_id,
        account_type=command.account_type,
        payment_reference=reference,
        account_status=command.account_status,
        rent_group_type=command.rent_group_type,
        agreement_type=command.agreement_type,
        account_balance=command.account_balance,
        consolidated_balance=command.consolidated_balance,
        parent_account_id=command.parent_account_id,
        start_date=command.start_date,
        end_date=command.end_date,
        end_reason_code=command.end_reason_code,
        consolidated_charges=command.consolidated_charges,
        tenure=command.tenure,
    )
    _check_rules(uow, account, None)
    uow.accounts.add(account, target_type.amount_owed(account.account_balance))
    if opening is not None:
        uow.transactions.add(opening)
    return account


def change_account(
    uow: UnitOfWork,
    account: Account,
    changes: dict[str, Any],
    change: Change,
    posted: ledger.Transaction | None = None,
) -> Account:
    """The new version, stored (its event and interim row follow at commit); `account` itself when nothing changed.

    The balance is the sum of the ledger: `posted` is the transaction that moves it to the balance in
    `changes`; without one, a changed balance (an existing client's PATCH) posts an Adjustment of the
    difference, so it is explained in the statement all the same.
    """
    target_type = target_type_of(uow, account.target_type)
    if posted is None and "account_balance" in changes:
        posted = _adjustment(account, changes["account_balance"], target_type, change)
    new = account.change(change, posted, **changes)
    if new is account:
        return account
    if new.target_type != account.target_type:
        target_type = target_type_of(uow, new.target_type)
    if new.payment_reference != account.payment_reference:
        _check_payment_reference_free(uow, new.payment_reference)
    _check_rules(uow, new, account)
    if posted is not None:
        uow.transactions.add(posted)
    uow.accounts.update(new, account.version, target_type.amount_owed(new.account_balance))
    return new


def post_to_account(
    uow: UnitOfWork, account: Account, request: ledger.PostingRequest, change: Change
) -> tuple[ledger.Transaction, Account]:
    """The one posting path (the API, a charge run, a payment file, an approved suspense item alike): the
    account's rule (an Ended account takes no Charge), the ledger's, then the account's change with it."""
    account.refuse_posting(request.transaction_type)
    transaction = ledger.post(
        request,
        account_id=account.id,
        polarity=target_type_of(uow, account.target_type).polarity,
        balance_before=account.account_balance,
        created_by=change.actor.label,
        posted_at=change.at,
    )
    return transaction, record_posting(uow, account, transaction, change)


def record_posting(uow: UnitOfWork, account: Account, transaction: ledger.Transaction, change: Change) -> Account:
    """The account after a transaction made for it (a posting, a reversal): its balance moves with it."""
    return change_account(uow, account, {"account_balance": transaction.balance_after}, change, transaction)


def _adjustment(account: Account, balance: Any, target_type: TargetType, change: Change) -> ledger.Transaction | None:
    """The Adjustment that takes the account from its balance to `balance`; None when they are the same."""
    if not isinstance(balance, Decimal) or not balance.is_finite():
        return None  # not money: the account itself refuses it, naming the field
    difference = balance - account.account_balance
    if difference == ZERO:
        return None
    owed_more = target_type.amount_owed(difference) > ZERO
    request = ledger.PostingRequest(
        id=uuid4(),
        transaction_type=ledger.TransactionType.ADJUSTMENT,
        amount=abs(difference),
        transaction_date=change.at.date(),
        direction=ledger.Direction.INCREASE_OWED if owed_more else ledger.Direction.REDUCE_OWED,
        description=f"accountBalance set from {account.account_balance} to {balance}",
    )
    try:
        return ledger.post(
            request,
            account_id=account.id,
            polarity=target_type.polarity,
            balance_before=account.account_balance,
            created_by=change.actor.label,
            posted_at=change.at,
        )
    except ValidationProblem as problem:
        raise ValidationProblem("accountBalance", problem.rule, balance) from None
