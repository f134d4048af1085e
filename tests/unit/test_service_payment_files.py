"""Payment files and suspense on in-memory fakes: what is posted, set aside, rejected; importing again; two people."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from accounts.domain.account import Account, AccountStatus, Actor
from accounts.domain.errors import ValidationProblem
from accounts.domain.ledger import TransactionType
from accounts.domain.payment_file import HEADER, PaymentFileRefused, SuspenseReason, payment_transaction_id
from accounts.domain.payment_reference import from_serial
from accounts.domain.suspense import SameApprover, SuspenseConflict, SuspenseStatus
from accounts.service.payment_files import ImportReport, SuspenseItemNotFound
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import a_tenure_master

IMPORTER = Actor("Income Officer", "income.officer@hackney.gov.uk")
PROPOSER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
APPROVER = Actor("Finance Manager", "finance.manager@hackney.gov.uk")


def a_file(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join([HEADER, *lines]) + "\n", newline="")


def import_file(fakes: OnFakes, *lines: str) -> ImportReport:
    return fakes.app.payment_files.import_file(a_file(*lines), IMPORTER, uuid.uuid4())


def an_account(fakes: OnFakes, **overrides: object) -> Account:
    return fakes.app.accounts.create(a_tenure_master(**overrides), PROPOSER, uuid.uuid4())


def balance(fakes: OnFakes, account: Account) -> Decimal:
    return fakes.app.accounts.get(account.id).account_balance


def test_each_line_is_posted_set_aside_or_rejected_with_its_reason(fakes: OnFakes) -> None:
    account = an_account(fakes)
    ended = an_account(fakes, account_status=AccountStatus.ENDED)
    ref = account.payment_reference
    mistyped = ref[:-1] + str((int(ref[-1]) + 1) % 10)

    report = import_file(
        fakes,
        f"{ref},100.00,2026-04-06,Paypoint,PP-1",
        f"{from_serial(999_999_990)},20.00,2026-04-06,Bank transfer,BACS-2",
        f"{mistyped},30.00,2026-04-07,Bank transfer,BACS-3",
        f"{ended.payment_reference},40.00,2026-04-07,Direct debit,DD-4",
        f"{ref},abc,2026-04-07,Paypoint,PP-5",
        f"{ref},-1.00,2026-04-07,Paypoint,PP-6",
    )

    assert (report.lines, report.posted, report.suspense, len(report.rejected)) == (6, 1, 3, 2)
    assert report.posted_amount == Decimal("100.00") and report.suspense_amount == Decimal("90.00")
    assert [(s.line, s.item.reason) for s in report.suspended] == [
        (3, SuspenseReason.NO_ACCOUNT),
        (4, SuspenseReason.CHECK_DIGIT_FAILS),
        (5, SuspenseReason.ACCOUNT_ENDED),
    ]
    assert [(r.line, r.reason) for r in report.rejected] == [
        (6, "amount 'abc' is not a number"),
        (7, "amount '-1.00' must be greater than zero"),
    ]
    assert balance(fakes, account) == Decimal("100.00")  # a tenure: a payment makes the balance rise
    assert balance(fakes, ended) == Decimal("0.00")


def test_a_posted_payment_is_a_ledger_posting_like_the_api_s_with_its_events(fakes: OnFakes) -> None:
    account = an_account(fakes)

    import_file(fakes, f"{account.payment_reference},12.34,2026-04-08,Paypoint,PP-77")

    transaction = fakes.app.ledger.transaction(account.id, payment_transaction_id("PP-77"))
    assert transaction.transaction_type is TransactionType.PAYMENT and transaction.amount == Decimal("12.34")
    assert (transaction.reference, transaction.description, transaction.created_by) == (
        "PP-77",
        "Paypoint",
        IMPORTER.label,
    )
    assert (transaction.period_no, transaction.financial_year) == (1, 2026)
    with fakes.app.uow(read_only=True) as uow:
        kinds = [json.loads(m.payload)["eventType"] for m in uow.outbox.pending(10)]
    assert kinds == ["AccountCreatedEvent", "AccountUpdatedEvent", "AccountTransactionPostedEvent"]
    assert list(fakes.app.ledger.verify()) == []


def test_importing_the_same_file_again_posts_and_sets_aside_nothing_twice(fakes: OnFakes) -> None:
    account = an_account(fakes)
    lines = (
        f"{account.payment_reference},10.00,2026-04-06,Paypoint,PP-1",
        f"{from_serial(999_999_990)},20.00,2026-04-06,Bank transfer,BACS-2",
    )
    import_file(fakes, *lines)

    again = import_file(fakes, *lines)

    assert (again.posted, again.suspense, again.already_imported, again.rejected) == (0, 0, 2, [])
    assert balance(fakes, account) == Decimal("10.00")
    assert len(fakes.app.suspense.list().items) == 1


def test_an_overlapping_file_posts_only_its_new_payments(fakes: OnFakes) -> None:
    account = an_account(fakes)
    ref = account.payment_reference
    import_file(fakes, f"{ref},10.00,2026-04-06,Paypoint,PP-1", f"{ref},11.00,2026-04-06,Paypoint,PP-2")

    report = import_file(fakes, f"{ref},11.00,2026-04-06,Paypoint,PP-2", f"{ref},12.00,2026-04-07,Paypoint,PP-3")

    assert (report.posted, report.already_imported) == (1, 1)
    assert balance(fakes, account) == Decimal("33.00")


def test_a_bank_reference_seen_again_with_another_amount_is_rejected_not_posted(fakes: OnFakes) -> None:
    account = an_account(fakes)
    ref = account.payment_reference

    report = import_file(fakes, f"{ref},10.00,2026-04-06,Paypoint,PP-1", f"{ref},99.00,2026-04-06,Paypoint,PP-1")

    assert report.posted == 1
    [rejected] = report.rejected
    assert rejected.line == 3 and "imported before with amount 10.00" in rejected.reason
    assert balance(fakes, account) == Decimal("10.00")


def test_a_file_in_many_batches_posts_each_payment_on_the_account_s_latest_balance(fakes: OnFakes) -> None:
    fakes.app.payment_files.batch_lines = 3
    first, second = an_account(fakes), an_account(fakes)
    lines = [
        f"{(first if n % 2 else second).payment_reference},{n}.00,2026-04-06,Paypoint,PP-{n}" for n in range(1, 11)
    ]
    seen: list[int] = []

    report = fakes.app.payment_files.import_file(
        a_file(*lines), IMPORTER, uuid.uuid4(), progress=lambda r: seen.append(r.lines)
    )

    assert report.posted == 10 and seen == [3, 6, 9, 10]
    assert balance(fakes, first) == Decimal("25.00") and balance(fakes, second) == Decimal("30.00")
    assert list(fakes.app.ledger.verify()) == []


def test_a_file_with_the_wrong_columns_is_refused_and_nothing_is_posted(fakes: OnFakes) -> None:
    account = an_account(fakes)
    text = io.StringIO(f"paymentReference,amount,date\n{account.payment_reference},10.00,2026-04-06\n", newline="")

    with pytest.raises(PaymentFileRefused, match="missing column"):
        fakes.app.payment_files.import_file(text, IMPORTER, uuid.uuid4())
    assert balance(fakes, account) == Decimal("0.00")


def set_aside(fakes: OnFakes, amount: str = "20.00", reference: str = "BACS-2") -> uuid.UUID:
    report = import_file(fakes, f"{from_serial(999_999_990)},{amount},2026-04-06,Bank transfer,{reference}")
    [suspended] = report.suspended
    return suspended.item.id


def test_suspense_lists_open_items_oldest_payment_first_with_their_reasons_a_page_at_a_time(fakes: OnFakes) -> None:
    import_file(
        fakes,
        f"{from_serial(999_999_990)},1.00,2026-04-09,Cash,C",
        f"{from_serial(999_999_991)},2.00,2026-04-06,Cash,B",
        f"{from_serial(999_999_992)},3.00,2026-04-06,Cash,A",
    )

    first = fakes.app.suspense.list(limit=2)
    rest = fakes.app.suspense.list(limit=2, after=first.next_page)

    assert [item.reference for item in first.items + rest.items] == ["A", "B", "C"]
    assert rest.next_page is None
    assert first.items[0].reason_text == f"no account has payment reference {from_serial(999_999_992)}"


def test_a_suspense_item_is_posted_only_when_a_second_person_approves_the_proposal(fakes: OnFakes) -> None:
    account = an_account(fakes)
    item_id = set_aside(fakes)

    proposed = fakes.app.suspense.propose(item_id, account.id, PROPOSER)
    assert proposed.status is SuspenseStatus.PROPOSED and proposed.proposed_by == PROPOSER.label
    with pytest.raises(SameApprover):
        fakes.app.suspense.approve(item_id, replace(PROPOSER, email=PROPOSER.email.upper()), uuid.uuid4())
    assert balance(fakes, account) == Decimal("0.00")

    resolved = fakes.app.suspense.approve(item_id, APPROVER, uuid.uuid4())

    assert resolved.item.status is SuspenseStatus.RESOLVED and resolved.item.approved_by == APPROVER.label
    assert resolved.transaction.id == payment_transaction_id("BACS-2") == resolved.item.transaction_id
    assert resolved.transaction.created_by == APPROVER.label
    assert PROPOSER.label in (resolved.transaction.description or "")
    assert APPROVER.label in (resolved.transaction.description or "")
    assert balance(fakes, account) == Decimal("20.00")
    assert fakes.app.suspense.list().items == []
    assert fakes.app.suspense.list(include_resolved=True).items == [resolved.item]
    with pytest.raises(SuspenseConflict, match="resolved already"):
        fakes.app.suspense.approve(item_id, APPROVER, uuid.uuid4())
    with pytest.raises(SuspenseConflict, match="resolved already"):
        fakes.app.suspense.propose(item_id, account.id, PROPOSER)
    assert balance(fakes, account) == Decimal("20.00")


def test_the_same_bank_reference_in_a_later_file_is_not_posted_after_suspense_resolved_it(fakes: OnFakes) -> None:
    account = an_account(fakes)
    item_id = set_aside(fakes)
    fakes.app.suspense.propose(item_id, account.id, PROPOSER)
    fakes.app.suspense.approve(item_id, APPROVER, uuid.uuid4())

    report = import_file(fakes, f"{account.payment_reference},20.00,2026-04-06,Bank transfer,BACS-2")

    assert (report.posted, report.already_imported) == (0, 1)
    assert balance(fakes, account) == Decimal("20.00")


def test_approval_needs_a_proposal_and_unknown_items_and_accounts_are_refused(fakes: OnFakes) -> None:
    item_id = set_aside(fakes)

    with pytest.raises(SuspenseConflict, match="no proposal"):
        fakes.app.suspense.approve(item_id, APPROVER, uuid.uuid4())
    with pytest.raises(ValidationProblem, match="accountId"):
        fakes.app.suspense.propose(item_id, uuid.uuid4(), PROPOSER)
    with pytest.raises(SuspenseItemNotFound):
        fakes.app.suspense.propose(uuid.uuid4(), uuid.uuid4(), PROPOSER)
    with pytest.raises(SuspenseItemNotFound):
        fakes.app.suspense.get(uuid.uuid4())


def test_a_later_proposal_replaces_an_earlier_one_and_its_author_may_not_approve(fakes: OnFakes) -> None:
    first, second = an_account(fakes), an_account(fakes)
    item_id = set_aside(fakes)
    fakes.app.suspense.propose(item_id, first.id, PROPOSER)
    fakes.app.suspense.propose(item_id, second.id, APPROVER)

    with pytest.raises(SameApprover):
        fakes.app.suspense.approve(item_id, APPROVER, uuid.uuid4())
    resolved = fakes.app.suspense.approve(item_id, PROPOSER, uuid.uuid4())

    assert resolved.transaction.account_id == second.id
    assert (balance(fakes, first), balance(fakes, second)) == (Decimal("0.00"), Decimal("20.00"))
