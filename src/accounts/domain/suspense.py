"""Suspense: payments that came in but could not be posted, until two people place them.

As the council's finance rules ask (its financial-transactions API confirms a suspense item by
one person and approves it by another), resolving takes two people: one proposes the account
the money belongs to, a different one approves, and only then is the payment posted there.
A resolved item is never resolved again. Pure: the service stores the items and posts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from accounts.domain.errors import DomainError
from accounts.domain.payment_file import PaymentLine, SuspenseReason, describe, suspense_item_id
from accounts.domain.values import utc

MAX_DESCRIPTION = 500  # account_transactions.description


class SuspenseStatus(StrEnum):
    UNRESOLVED = "Unresolved"
    PROPOSED = "Proposed"
    RESOLVED = "Resolved"


class SuspenseConflict(DomainError):
    """The item's state refuses the step (409): resolved already, or nothing proposed to approve."""


class SameApprover(DomainError):
    """The person approving is the one who proposed (403): it takes two."""


@dataclass(frozen=True)
class SuspenseItem:
    """One payment set aside, with why, and (once placed) who proposed, who approved and what was posted."""

    id: UUID
    payment_reference: str  # as the file gave it
    amount: Decimal
    payment_date: date
    method: str
    reference: str  # the bank's: unique among suspense items, as among payments
    reason: SuspenseReason
    created_at: datetime
    status: SuspenseStatus = SuspenseStatus.UNRESOLVED
    proposed_account_id: UUID | None = None
    proposed_by: str | None = None
    approved_by: str | None = None
    resolved_at: datetime | None = None
    transaction_id: UUID | None = None
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", SuspenseReason(self.reason))
        object.__setattr__(self, "status", SuspenseStatus(self.status))
        object.__setattr__(self, "created_at", utc(self.created_at, "createdAt"))
        if self.resolved_at is not None:
            object.__setattr__(self, "resolved_at", utc(self.resolved_at, "resolvedAt"))

    @classmethod
    def set_aside(cls, payment: PaymentLine, reason: SuspenseReason, at: datetime) -> SuspenseItem:
        return cls(
            id=suspense_item_id(payment.reference),
            payment_reference=payment.payment_reference,
            amount=payment.amount,
            payment_date=payment.payment_date,
            method=payment.method,
            reference=payment.reference,
            reason=reason,
            created_at=at,
        )

    @property
    def reason_text(self) -> str:
        return describe(self.reason, self.payment_reference)

    def propose(self, account_id: UUID, by: str) -> SuspenseItem:
        """The account one person says the money belongs to (a later proposal replaces it until approved)."""
        self._refuse_resolved()
        return dataclasses.replace(
            self,
            status=SuspenseStatus.PROPOSED,
            proposed_account_id=account_id,
            proposed_by=by,
            version=self.version + 1,
        )

    def check_approval(self, by: str) -> UUID:
        """The account to post to, if `by` may approve now; SuspenseConflict or SameApprover if not."""
        self._refuse_resolved()
        if self.proposed_account_id is None or self.proposed_by is None:
            raise SuspenseConflict(f"suspense item {self.id} has no proposal to approve: propose an account first")
        if same_person(self.proposed_by, by):
            raise SameApprover(f"{by} proposed this account and cannot approve it too: a second person must approve")
        return self.proposed_account_id

    def approved(self, by: str, at: datetime, transaction_id: UUID) -> SuspenseItem:
        self.check_approval(by)
        return dataclasses.replace(
            self,
            status=SuspenseStatus.RESOLVED,
            approved_by=by,
            resolved_at=at,
            transaction_id=transaction_id,
            version=self.version + 1,
        )

    def posting_description(self, approver: str) -> str:
        """The posted payment's description: where it came from, and both names (the audit)."""
        text = (
            f"From suspense ({self.reason_text}; {self.method}): proposed by {self.proposed_by}, approved by {approver}"
        )
        return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "\u2026"

    def _refuse_resolved(self) -> None:
        if self.status is SuspenseStatus.RESOLVED:
            raise SuspenseConflict(
                f"suspense item {self.id} was resolved already (transaction {self.transaction_id}, "
                f"approved by {self.approved_by})"
            )


def same_person(first: str, second: str) -> bool:
    """Who proposed and who approves, as their tokens name them (email, else name), case aside."""
    return first.strip().casefold() == second.strip().casefold()
