"""Account use cases on in-memory fakes: creating and changing accounts, and the rules around them."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from accounts.domain.account import AccountStatus, AccountTenure, AccountType, Actor, Change, TenureTypeRef, etag
from accounts.domain.errors import ValidationProblem
from accounts.domain.payment_reference import FIRST_SERIAL, from_serial, has_valid_check_digit
from accounts.service.accounts import (
    AccountConflict,
    AccountNotFound,
    NewAccount,
    PreconditionFailed,
    change_account,
    create_account,
)
from tests.unit.conftest import OnFakes

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
CLERK = Actor("Rents Clerk", "rents.clerk@hackney.gov.uk")


def a_tenure_master(target_id: uuid.UUID | None = None, **overrides: object) -> NewAccount:
    tenure_id = target_id or uuid.uuid4()
    values: dict[str, object] = {
        "target_type": "Tenure",
        "target_id": tenure_id,
        "account_type": AccountType.MASTER,
        "agreement_type": "Master Account",
        "tenure": AccountTenure(tenure_id, TenureTypeRef("SEC", "Secure"), "1 Mare Street, Hackney, London E8 3RH"),
    }
    values.update(overrides)
    return NewAccount(**values)  # type: ignore[arg-type]


def events_in_outbox(fakes: OnFakes) -> list[dict[str, object]]:
    with fakes.app.uow(read_only=True) as uow:
        return [json.loads(message.payload) for message in uow.outbox.pending(100)]


def test_an_account_created_without_a_payment_reference_is_given_one_with_a_valid_check_digit(
    fakes: OnFakes,
) -> None:
    first = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    second = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())

    assert first.payment_reference == from_serial(FIRST_SERIAL)
    assert second.payment_reference == from_serial(FIRST_SERIAL + 1)
    assert all(has_valid_check_digit(a.payment_reference) for a in (first, second))
    assert fakes.app.accounts.get(first.id) == first


def test_an_allocated_payment_reference_skips_one_already_used(fakes: OnFakes) -> None:
    fakes.app.accounts.create(a_tenure_master(payment_reference=from_serial(FIRST_SERIAL)), OFFICER, uuid.uuid4())
    allocated = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    assert allocated.payment_reference == from_serial(FIRST_SERIAL + 1)


def test_a_payment_reference_already_used_is_refused(fakes: OnFakes) -> None:
    first = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    with pytest.raises(AccountConflict, match="already used") as refused:
        fakes.app.accounts.create(a_tenure_master(payment_reference=first.payment_reference), OFFICER, uuid.uuid4())
    assert refused.value.field == "paymentReference"
    assert len(events_in_outbox(fakes)) == 1


def test_a_target_with_an_active_master_account_cannot_have_a_second(fakes: OnFakes) -> None:
    first = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    with pytest.raises(AccountConflict, match="already has an active Master") as refused:
        fakes.app.accounts.create(a_tenure_master(first.target_id), OFFICER, uuid.uuid4())
    assert refused.value.field == "targetId"

    sundry = fakes.app.accounts.create(
        a_tenure_master(first.target_id, account_type=AccountType.SUNDRY), OFFICER, uuid.uuid4()
    )
    ended = fakes.app.accounts.create(
        a_tenure_master(first.target_id, account_status=AccountStatus.ENDED), OFFICER, uuid.uuid4()
    )
    assert fakes.app.accounts.by_target(first.target_id, None) == sorted(
        [first, sundry, ended], key=lambda a: (a.created_at, a.id)
    )


def test_an_unknown_target_type_is_refused_naming_the_known_ones(fakes: OnFakes) -> None:
    with pytest.raises(ValidationProblem, match="Tenure"):
        fakes.app.accounts.create(a_tenure_master(target_type="Garage"), OFFICER, uuid.uuid4())


def test_creating_an_account_announces_it(fakes: OnFakes) -> None:
    correlation = uuid.uuid4()
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, correlation)

    [event] = events_in_outbox(fakes)
    assert event["eventType"] == "AccountCreatedEvent"
    assert event["entityId"] == str(account.id)
    assert event["correlationId"] == str(correlation)
    assert event["user"] == {"name": OFFICER.name, "email": OFFICER.email}
    new_data = event["eventData"]["newData"]  # type: ignore[index]
    assert new_data["paymentReference"] == account.payment_reference
    assert new_data["accountBalance"] == 0


def test_a_tenure_master_account_gets_its_interim_row_and_every_sink_is_owed_it(fakes: OnFakes) -> None:
    with fakes.app.uow() as uow:  # a sink registered by another process: it is owed the row too
        uow.deliveries.enable_sinks(["elsewhere"], fakes.app.accounts.clock())
        uow.commit()

    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    licence = fakes.app.accounts.create(a_tenure_master(target_type="Licensing"), OFFICER, uuid.uuid4())

    with fakes.app.uow(read_only=True) as uow:
        row = uow.interim.by_account(account.id)
        assert uow.interim.by_account(licence.id) is None
        assert uow.deliveries.pending("fake", 10) == [(account.payment_reference, 1)]
        assert uow.deliveries.pending("elsewhere", 10) == [(account.payment_reference, 1)]
    assert row is not None
    assert row.payment_ref == account.payment_reference
    assert row.address == "1 Mare Street, Hackney, London"
    assert row.post_code == "E8 3RH"


def test_a_change_made_from_a_version_no_longer_current_is_refused(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    stale = etag(account)
    fakes.app.accounts.change(account.id, lambda a: {"agreement_type": "Changed"}, OFFICER, uuid.uuid4(), stale)

    with pytest.raises(PreconditionFailed):
        fakes.app.accounts.change(account.id, lambda a: {"agreement_type": "Mine"}, CLERK, uuid.uuid4(), stale)

    current = fakes.app.accounts.get(account.id)
    assert current.agreement_type == "Changed" and current.version == 2
    assert [e["eventType"] for e in events_in_outbox(fakes)] == ["AccountCreatedEvent", "AccountUpdatedEvent"]


def test_a_change_is_stored_as_a_new_version_and_announced_with_what_changed(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    changed, did_change = fakes.app.accounts.change(
        account.id, lambda a: {"account_balance": Decimal("-12.34")}, CLERK, uuid.uuid4(), etag(account)
    )
    assert did_change and changed.version == 2 and changed.last_updated_by == CLERK.label
    assert fakes.app.accounts.get(account.id) == changed
    updated, posted = events_in_outbox(fakes)[-2:]  # a balance set is explained by an Adjustment in the ledger
    assert (updated["eventType"], posted["eventType"]) == ("AccountUpdatedEvent", "AccountTransactionPostedEvent")
    old_data, new_data = updated["eventData"]["oldData"], updated["eventData"]["newData"]  # type: ignore[index]
    assert (old_data["accountBalance"], new_data["accountBalance"]) == (0, -12.34)
    assert (old_data["lastUpdatedBy"], new_data["lastUpdatedBy"]) == (OFFICER.label, CLERK.label)
    assert "paymentReference" not in new_data  # only what changed
    with fakes.app.uow(read_only=True) as uow:
        assert uow.accounts.arrears(None, "amount_owed", True, 10) == [changed]


def test_a_change_that_changes_nothing_makes_no_version_and_no_event(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    before = fakes.database.snapshot()

    same, did_change = fakes.app.accounts.change(
        account.id, lambda a: {"agreement_type": a.agreement_type}, CLERK, uuid.uuid4()
    )

    assert not did_change and same == account and same.version == 1
    assert fakes.app.accounts.get(account.id) == account
    assert len(events_in_outbox(fakes)) == 1
    with fakes.app.uow(read_only=True) as uow:
        assert uow.deliveries.pending("fake", 10) == [(account.payment_reference, 1)]
    assert fakes.database.snapshot() == before


def test_a_change_that_lost_a_race_is_made_again_on_the_winning_version(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())

    def someone_else_changes_it() -> None:
        fakes.app.accounts.change(account.id, lambda a: {"agreement_type": "Theirs"}, OFFICER, uuid.uuid4())

    fakes.database.before_next_commit(someone_else_changes_it)
    mine, did_change = fakes.app.accounts.change(
        account.id, lambda a: {"account_balance": Decimal("-5.00")}, CLERK, uuid.uuid4()
    )

    assert did_change and mine.version == 3
    assert mine.agreement_type == "Theirs" and mine.account_balance == Decimal("-5.00")
    assert fakes.app.accounts.get(account.id) == mine
    assert [e["eventType"] for e in events_in_outbox(fakes)].count("AccountUpdatedEvent") == 2


def test_a_change_with_if_match_that_lost_a_race_is_refused_not_retried(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    fakes.database.before_next_commit(
        lambda: fakes.app.accounts.change(account.id, lambda a: {"agreement_type": "Theirs"}, OFFICER, uuid.uuid4())
    )
    with pytest.raises(PreconditionFailed):
        fakes.app.accounts.change(account.id, lambda a: {"agreement_type": "Mine"}, CLERK, uuid.uuid4(), etag(account))
    current = fakes.app.accounts.get(account.id)
    assert current.agreement_type == "Theirs" and current.version == 2


def test_changing_an_account_that_does_not_exist_says_so(fakes: OnFakes) -> None:
    with pytest.raises(AccountNotFound):
        fakes.app.accounts.change(uuid.uuid4(), lambda a: {}, CLERK, uuid.uuid4())
    with pytest.raises(AccountNotFound):
        fakes.app.accounts.get(uuid.uuid4())


def test_arrears_are_sorted_by_a_known_field_only_named_in_any_case(fakes: OnFakes) -> None:
    owing = [
        fakes.app.accounts.create(a_tenure_master(account_balance=Decimal(f"-{n}.00")), OFFICER, uuid.uuid4())
        for n in (3, 30, 300)
    ]
    fakes.app.accounts.create(a_tenure_master(account_balance=Decimal("5.00")), OFFICER, uuid.uuid4())  # in credit

    largest = fakes.app.accounts.arrears(None, "AMOUNTOWED", True, 2)
    by_reference = fakes.app.accounts.arrears(AccountType.MASTER, "paymentReference", False, 10)

    assert largest == [owing[2], owing[1]]
    assert by_reference == owing
    with pytest.raises(ValidationProblem, match="sortBy") as refused:
        fakes.app.accounts.arrears(None, "tenantName", True, 10)
    assert "amountOwed" in str(refused.value)
    assert fakes.app.accounts.arrears(AccountType.SUNDRY, "amountOwed", True, 10) == []


def test_what_an_account_raised_in_a_unit_of_work_is_written_at_its_commit_in_order(fakes: OnFakes) -> None:
    """Opened and changed twice in one unit of work (as in a listener's batch): three events, one interim row."""
    opening, paying = (
        Change(OFFICER, uuid.uuid4(), fakes.app.accounts.clock()),
        Change(CLERK, uuid.uuid4(), fakes.app.accounts.clock()),
    )
    with fakes.app.uow() as uow:
        account = create_account(uow, a_tenure_master(), opening)
        account = change_account(uow, account, {"agreement_type": "Changed once"}, paying)
        account = change_account(uow, account, {"agreement_type": "Changed twice"}, paying)
        assert uow.outbox.count_pending() == 0 and uow.interim.by_account(account.id) is None  # not before commit
        uow.commit()

    events = events_in_outbox(fakes)
    assert [e["eventType"] for e in events] == ["AccountCreatedEvent", "AccountUpdatedEvent", "AccountUpdatedEvent"]
    assert [e["correlationId"] for e in events] == [str(opening.correlation_id), *[str(paying.correlation_id)] * 2]
    agreements = [e["eventData"]["newData"]["agreementType"] for e in events]  # type: ignore[index]
    assert agreements == ["Master Account", "Changed once", "Changed twice"]
    with fakes.app.uow(read_only=True) as uow:
        assert uow.deliveries.pending("fake", 10) == [(account.payment_reference, 1)]


def test_a_change_undone_by_its_savepoint_raises_nothing(fakes: OnFakes) -> None:
    change = Change(OFFICER, uuid.uuid4(), fakes.app.accounts.clock())
    with fakes.app.uow() as uow:
        kept = create_account(uow, a_tenure_master(), change)
        with pytest.raises(RuntimeError), uow.savepoint():
            create_account(uow, a_tenure_master(), change)
            change_account(uow, kept, {"agreement_type": "Undone"}, change)
            raise RuntimeError("this event failed")
        uow.commit()

    assert [(e["eventType"], e["entityId"]) for e in events_in_outbox(fakes)] == [("AccountCreatedEvent", str(kept.id))]
    assert fakes.app.accounts.get(kept.id).agreement_type == "Master Account"
