"""Payment files and suspense: the payments tenants make with their payment reference, taken in.

A file is read a line at a time (`domain/payment_file.py`) and imported a batch of lines per unit
of work: the batch's accounts are looked up by payment reference in one read, what its bank
references already posted or set aside in another, and each payment is then posted exactly as
the API posts one (`ledger.post`, then `change_account` with the transaction: the account's
events and interim row follow at commit) or set aside in suspense with the reason. A file of any
size is streamed: only a batch and the lines to report are held.

The bank's reference makes each payment's transaction id (and its suspense item's), so a file
imported again, a file that overlaps an earlier one, or an import killed half-way and run again
posts every payment once: a batch commits whole or not at all, and a reference already posted or
set aside is counted as already imported.

Suspense items are placed by two people: one proposes the account, a different one approves, and
only then is the payment posted, through the same posting, with both names in its description.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from accounts.domain.account import Actor, Change
from accounts.domain.errors import DomainError, ValidationProblem
from accounts.domain.ledger import PostingRequest, Transaction, TransactionType
from accounts.domain.payment_file import (
    PaymentLine,
    RejectedLine,
    SuspenseReason,
    looks_like_payment_reference,
    payment_transaction_id,
    read_payment_file,
    suspense_reason,
)
from accounts.domain.polarity import ZERO
from accounts.domain.suspense import SuspenseConflict, SuspenseItem
from accounts.service.accounts import Clock, post_to_account, utc_now
from accounts.service.unit_of_work import SuspenseCursor, UnitOfWork, in_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_LINES = 1_000


class SuspenseItemNotFound(Exception):
    def __init__(self, item_id: UUID) -> None:
        self.item_id = item_id
        super().__init__(f"no suspense item has id {item_id}")


@dataclass(frozen=True, slots=True)
class SuspendedLine:
    """A line of the file set aside in suspense (now, or by an earlier import of the same reference)."""

    line: int
    item: SuspenseItem


@dataclass
class ImportReport:
    """What an import did: the counts, and every line set aside or rejected (with line number and reason)."""

    lines: int = 0  # payment lines read (the header and blank lines aside)
    posted: int = 0
    posted_amount: Decimal = ZERO
    already_imported: int = 0  # their bank reference was posted or set aside before: nothing done
    suspense_amount: Decimal = ZERO
    suspended: list[SuspendedLine] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)

    @property
    def suspense(self) -> int:
        return len(self.suspended)

    def summary(self) -> str:
        return (
            f"{self.lines} line(s): {self.posted} posted ({self.posted_amount}), {self.suspense} to suspense "
            f"({self.suspense_amount}), {len(self.rejected)} rejected, {self.already_imported} already imported"
        )


# What became of one payment of a batch (applied to the report only once its batch commits).
_Outcome = tuple[str, PaymentLine, SuspenseItem | RejectedLine | None]


@dataclass
class PaymentFileService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now
    attempts: int = 5
    batch_lines: int = BATCH_LINES

    def import_file(
        self,
        text: Iterable[str],
        actor: Actor,
        correlation_id: UUID,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        """Import a payment file's lines (as `open(..., newline="")` gives them), a batch per unit of work.

        PaymentFileRefused, before anything is posted, when the header is not a payment file's.
        `progress` is told after each batch commits.
        """
        report = ImportReport()
        batch: list[PaymentLine] = []
        for parsed in read_payment_file(text):
            report.lines += 1
            if isinstance(parsed, RejectedLine):
                report.rejected.append(parsed)
                continue
            batch.append(parsed)
            if len(batch) >= self.batch_lines:
                self._import(batch, actor, correlation_id, report)
                batch = []
                if progress is not None:
                    progress(report)
        if batch:
            self._import(batch, actor, correlation_id, report)
        if progress is not None:
            progress(report)
        report.rejected.sort(key=lambda rejected: rejected.line)
        log.info("payment file imported by %s: %s", actor.label, report.summary())
        return report

    def _import(self, batch: list[PaymentLine], actor: Actor, correlation_id: UUID, report: ImportReport) -> None:
        def run(uow: UnitOfWork) -> list[_Outcome]:
            return self._post_batch(uow, batch, Change(actor=actor, correlation_id=correlation_id, at=self.clock()))

        for kind, payment, detail in self._in_transaction(run):
            if kind == "posted":
                report.posted += 1
                report.posted_amount += payment.amount
            elif kind == "suspense":
                assert isinstance(detail, SuspenseItem)
                report.suspended.append(SuspendedLine(payment.line, detail))
                report.suspense_amount += payment.amount
            elif kind == "rejected":
                assert isinstance(detail, RejectedLine)
                report.rejected.append(detail)
            else:
                report.already_imported += 1

    def _post_batch(self, uow: UnitOfWork, batch: list[PaymentLine], change: Change) -> list[_Outcome]:
        """Each payment of the batch posted, set aside, or found imported already; in one unit of work."""
        # What the batch's bank references posted or set aside before, in two reads: a file imported
        # again reads no account at all.
        uow.transactions.get_many([payment.transaction_id for payment in batch])
        uow.suspense.by_references([payment.reference for payment in batch])
        new = [payment for payment in batch if _imported_before(uow, payment) is None]
        references = sorted({p.matching_reference for p in new if looks_like_payment_reference(p.matching_reference)})
        # What committing the postings reads (the accounts' targets, tenure copies and interim rows), read
        # ahead; then the accounts held, in one statement (PostgreSQL: in id order), as a posting holds its one.
        found = uow.accounts.by_payment_references(references)
        if found:
            uow.read_ahead([], sorted({account.target_id for account in found.values()}))
        accounts = uow.accounts.by_payment_references(references, for_update=True)
        outcomes: list[_Outcome] = []
        for payment in batch:
            earlier = _imported_before(uow, payment)
            if earlier is not None:
                outcomes.append(earlier)
                continue
            holder = accounts.get(payment.matching_reference)
            account = uow.accounts.get(holder.id) if holder is not None else None  # its latest version here
            reason = suspense_reason(payment, account)
            if reason is not None or account is None:
                item = SuspenseItem.set_aside(payment, reason or SuspenseReason.NO_ACCOUNT, change.at)
                uow.suspense.add(item)
                outcomes.append(("suspense", payment, item))
                continue
            request = PostingRequest(
                id=payment.transaction_id,
                transaction_type=TransactionType.PAYMENT,
                amount=payment.amount,
                transaction_date=payment.payment_date,
                description=payment.method,
                reference=payment.reference,
            )
            try:
                post_to_account(uow, account, request, change)
            except DomainError as error:  # refused before anything is kept: the line alone is rejected
                outcomes.append(("rejected", payment, RejectedLine(payment.line, f"cannot be posted: {error}")))
                continue
            outcomes.append(("posted", payment, None))
        return outcomes

    def _in_transaction(self, run: Callable[[UnitOfWork], T]) -> T:
        """A batch that lost a race (another import of the same references, a posting to one of its
        accounts) is run again whole: what the winner posted is then already imported."""
        return in_transaction(self.uow_factory, run, self.attempts, "a payment file's batch")


def _imported_before(uow: UnitOfWork, payment: PaymentLine) -> _Outcome | None:
    """A payment whose bank reference was posted or set aside before (by this file or another): already
    imported when it is the same payment, rejected when the reference now comes with another amount or date."""
    earlier_item = uow.suspense.by_references([payment.reference]).get(payment.reference)
    earlier: Transaction | SuspenseItem | None = earlier_item or uow.transactions.get(payment.transaction_id)
    if earlier is None:
        return None
    when = earlier.payment_date if isinstance(earlier, SuspenseItem) else earlier.transaction_date
    if (earlier.amount, when) == (payment.amount, payment.payment_date):
        return ("already imported", payment, None)
    reason = (
        f"reference {payment.reference!r} was imported before with amount {earlier.amount} and date "
        f"{when.isoformat()}: a bank reference is one payment"
    )
    return ("rejected", payment, RejectedLine(payment.line, reason))


@dataclass(frozen=True)
class SuspensePage:
    items: list[SuspenseItem]
    next_page: SuspenseCursor | None


@dataclass(frozen=True)
class Resolved:
    item: SuspenseItem
    transaction: Transaction


@dataclass
class SuspenseService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now
    attempts: int = 5

    def list(
        self, *, include_resolved: bool = False, after: SuspenseCursor | None = None, limit: int = 100
    ) -> SuspensePage:
        with self.uow_factory(read_only=True) as uow:
            items = uow.suspense.page(include_resolved=include_resolved, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if more else None
        return SuspensePage(items, SuspenseCursor(last.payment_date, last.reference) if last else None)

    def get(self, item_id: UUID) -> SuspenseItem:
        with self.uow_factory(read_only=True) as uow:
            item = uow.suspense.get(item_id)
        if item is None:
            raise SuspenseItemNotFound(item_id)
        return item

    def propose(self, item_id: UUID, account_id: UUID, actor: Actor) -> SuspenseItem:
        """One person says which account the money belongs to (until approved, a new proposal replaces it)."""

        def run(uow: UnitOfWork) -> SuspenseItem:
            item = _held(uow, item_id)
            if uow.accounts.get(account_id) is None:
                raise ValidationProblem("accountId", "must be the id of an existing account", account_id)
            proposed = item.propose(account_id, actor.label)
            uow.suspense.update(proposed, item.version)
            return proposed

        return in_transaction(self.uow_factory, run, self.attempts, "a suspense item's step")

    def approve(self, item_id: UUID, actor: Actor, correlation_id: UUID) -> Resolved:
        """A second person approves: the payment is posted to the proposed account, as a file's payment is."""

        def run(uow: UnitOfWork) -> Resolved:
            item = _held(uow, item_id)
            account_id = item.check_approval(actor.label)  # resolved already (409), the proposer (403)
            account = uow.accounts.get(account_id, for_update=True)
            if account is None:
                raise SuspenseConflict(f"the proposed account {account_id} no longer exists: propose another")
            transaction_id = payment_transaction_id(item.reference)
            if uow.transactions.get(transaction_id) is not None:
                raise SuspenseConflict(f"the payment with reference {item.reference!r} is posted already")
            change = Change(actor=actor, correlation_id=correlation_id, at=self.clock())
            request = PostingRequest(
                id=transaction_id,
                transaction_type=TransactionType.PAYMENT,
                amount=item.amount,
                transaction_date=item.payment_date,
                description=item.posting_description(actor.label),
                reference=item.reference,
            )
            transaction, _ = post_to_account(uow, account, request, change)
            resolved = item.approved(actor.label, change.at, transaction_id)
            uow.suspense.update(resolved, item.version)
            return Resolved(resolved, transaction)

        return in_transaction(self.uow_factory, run, self.attempts, "a suspense item's step")


def _held(uow: UnitOfWork, item_id: UUID) -> SuspenseItem:
    item = uow.suspense.get(item_id, for_update=True)
    if item is None:
        raise SuspenseItemNotFound(item_id)
    return item
