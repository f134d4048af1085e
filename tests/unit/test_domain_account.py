"""The rent account's rules: what may change, what never may, and how it reads on the wire."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from accounts.domain.account import (
    Account,
    AccountChanged,
    AccountStatus,
    AccountTenure,
    AccountType,
    Actor,
    Change,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
    etag,
    money,
    to_wire,
    wire_difference,
    wire_view,
)
from accounts.domain.errors import ImmutableField, ValidationProblem

CREATOR = Actor("Housing Officer", "housing.officer@hackney.gov.uk")
EDITOR = Actor("Rent Officer", "")
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(days=1)


def an_account(**overrides: object) -> Account:
    values: dict[str, object] = {
        "id": uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
        "target_type": "Tenure",
        "target_id": uuid.UUID("8b33a554-0f7c-4094-a2f7-7ae2ff910daf"),
        "account_type": AccountType.MASTER,
        "payment_reference": "1000000005",
        "created_by": CREATOR.label,
        "created_at": MONDAY,
        "last_updated_by": CREATOR.label,
        "last_updated_at": MONDAY,
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


# Changing an account ---------------------------------------------------------------------


def test_a_change_gives_a_new_version_stamped_with_who_and_when() -> None:
    account = an_account()
    changed = account.changed(EDITOR, TUESDAY, account_balance=Decimal("-10.00"))

    assert changed.account_balance == Decimal("-10.00")
    assert changed.version == account.version + 1
    assert changed.last_updated_by == "Rent Officer"  # no email in the token: the name
    assert changed.last_updated_at == TUESDAY
    assert (changed.created_by, changed.created_at) == (account.created_by, account.created_at)
    assert account.account_balance == Decimal("0.00")  # the old value is untouched


def test_a_change_to_the_same_values_is_no_change_at_all() -> None:
    account = an_account(account_balance=Decimal("-5.00"))
    same = account.changed(EDITOR, TUESDAY, account_balance=Decimal("-5.0"), account_status=AccountStatus.ACTIVE)
    assert same is account
    assert account.changed(EDITOR, TUESDAY) is account


@pytest.mark.parametrize(
    ("field", "wire_name", "value"),
    [
        ("id", "id", uuid.uuid4()),
        ("created_at", "createdAt", TUESDAY),
        ("created_by", "createdBy", "someone.else@hackney.gov.uk"),
        ("version", "version", 7),
    ],
)
def test_what_was_fixed_at_creation_cannot_change(field: str, wire_name: str, value: object) -> None:
    with pytest.raises(ImmutableField) as refused:
        an_account().changed(EDITOR, TUESDAY, **{field: value})
    assert refused.value.field == wire_name
    assert "cannot be changed" in str(refused.value)


def test_naming_a_fixed_field_with_its_current_value_is_allowed() -> None:
    account = an_account()
    assert account.changed(EDITOR, TUESDAY, id=account.id, created_by=account.created_by) is account


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start_date": TUESDAY, "end_date": MONDAY}, "endDate"),
        ({"account_balance": Decimal("1.005")}, "accountBalance"),
        ({"consolidated_balance": Decimal("1000000000000.00")}, "consolidatedBalance"),
        ({"account_balance": Decimal("NaN")}, "accountBalance"),
        ({"payment_reference": "12345"}, "paymentReference"),
        ({"parent_account_id": uuid.uuid4()}, "parentAccountId"),
        (
            {"consolidated_charges": (ConsolidatedCharge("Rent", "Weekly", Decimal("0.001")),)},
            "consolidatedCharges[0].amount",
        ),
        ({"start_date": datetime(2026, 1, 1)}, "startDate"),
    ],
)
def test_every_rule_is_checked_again_on_a_change(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationProblem) as refused:
        an_account().changed(EDITOR, TUESDAY, **changes)
    assert refused.value.field == field


def test_a_sub_account_may_have_a_parent_but_never_itself() -> None:
    parent = uuid.uuid4()
    recharge = an_account(account_type=AccountType.RECHARGE, parent_account_id=parent)
    assert recharge.parent_account_id == parent
    with pytest.raises(ValidationProblem, match="itself"):
        recharge.changed(EDITOR, TUESDAY, parent_account_id=recharge.id)


def test_an_ended_account_is_no_longer_active() -> None:
    assert an_account().is_active
    assert an_account(account_status=AccountStatus.SUSPENDED).is_active
    assert not an_account(account_status=AccountStatus.ENDED).is_active


# Money and time -------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "kept"), [("12", "12.00"), ("-0.5", "-0.50"), ("-0.00", "0.00"), ("0", "0.00")])
def test_money_is_kept_to_the_penny_with_two_places(given: str, kept: str) -> None:
    assert str(money(Decimal(given), "accountBalance")) == kept


@pytest.mark.parametrize("amount", ["0.001", "1000000000000", "-1000000000000", "Infinity", "NaN"])
def test_money_that_would_have_to_be_rounded_or_does_not_fit_is_refused(amount: str) -> None:
    with pytest.raises(ValidationProblem) as refused:
        money(Decimal(amount), "accountBalance")
    assert refused.value.field == "accountBalance"


def test_money_given_as_a_float_is_refused() -> None:
    with pytest.raises(ValidationProblem, match="finite number"):
        money(0.1, "accountBalance")  # type: ignore[arg-type]


def test_times_are_held_in_utc() -> None:
    account = an_account(start_date=datetime(2026, 4, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert account.start_date == datetime(2026, 4, 1, 0, 0, tzinfo=UTC)
    assert account.start_date is not None and account.start_date.tzinfo is UTC


# The wire ---------------------------------------------------------------------------------------


def test_the_wire_shape_is_the_existing_clients_camel_case() -> None:
    tenant = PrimaryTenant(uuid.UUID("0d1e5ee2-8a87-4a5d-9f6b-0c6c4c7e7b11"), "Ms Jane Smith")
    account = an_account(
        rent_group_type=RentGroupType.TENANT,
        agreement_type="Master Account",
        account_balance=Decimal("-317.5"),
        start_date=MONDAY,
        consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", Decimal("317.50")),),
        tenure=AccountTenure(
            account_tenure_id := uuid.uuid4(), TenureTypeRef("SEC", "Secure"), "1 Hillman St", (tenant,)
        ),
    )

    wire = to_wire(account)

    assert list(wire) == [
        "id", "parentAccountId", "paymentReference", "targetType", "targetId", "accountType", "rentGroupType",
        "agreementType", "accountBalance", "consolidatedBalance", "createdBy", "createdAt", "lastUpdatedBy",
        "lastUpdatedAt", "startDate", "endDate", "endReasonCode", "accountStatus", "consolidatedCharges", "tenure",
    ]  # fmt: skip
    assert wire["id"] == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert wire["accountType"] == "Master" and wire["accountStatus"] == "Active" and wire["rentGroupType"] == "Tenant"
    assert wire["accountBalance"] == Decimal("-317.50")
    assert wire["createdAt"] == "2026-01-05T09:00:00Z"
    assert wire["endDate"] is None
    assert wire["consolidatedCharges"] == [{"type": "Rent", "frequency": "Weekly", "amount": Decimal("317.50")}]
    assert wire["tenure"] == {
        "tenureId": str(account_tenure_id),
        "tenureType": {"code": "SEC", "description": "Secure"},
        "fullAddress": "1 Hillman St",
        "primaryTenants": [{"id": "0d1e5ee2-8a87-4a5d-9f6b-0c6c4c7e7b11", "fullName": "Ms Jane Smith"}],
    }


def test_the_etag_names_the_account_and_its_version() -> None:
    account = an_account()
    changed = account.changed(EDITOR, TUESDAY, agreement_type="Leasehold")
    assert etag(account) == '"3fa85f64-5717-4562-b3fc-2c963f66afa6-1"'
    assert etag(changed) == '"3fa85f64-5717-4562-b3fc-2c963f66afa6-2"'


def test_an_update_event_carries_only_the_fields_that_changed() -> None:
    account = an_account()
    changed = account.changed(EDITOR, TUESDAY, account_balance=Decimal("-1.00"))
    old, new = wire_difference(to_wire(account), to_wire(changed))
    assert old == {
        "accountBalance": Decimal("0.00"),
        "lastUpdatedBy": CREATOR.label,
        "lastUpdatedAt": "2026-01-05T09:00:00Z",
    }
    assert new == {
        "accountBalance": Decimal("-1.00"),
        "lastUpdatedBy": "Rent Officer",
        "lastUpdatedAt": "2026-01-06T09:00:00Z",
    }
    assert wire_difference(to_wire(account), to_wire(account)) == ({}, {})


# The wire form, shared ------------------------------------------------------------------------


def test_an_accounts_shared_wire_form_is_worked_out_once_and_equals_a_fresh_one() -> None:
    account = an_account(consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", Decimal("12.50")),))
    shared = wire_view(account)

    assert wire_view(account) is shared
    assert shared == to_wire(account)
    fresh = to_wire(account)
    fresh["paymentReference"] = "changed by a PATCH"
    assert wire_view(account)["paymentReference"] == "1000000005", "a fresh copy is the caller's to change"
    changed = account.changed(EDITOR, TUESDAY, account_balance=Decimal("-1.00"))
    assert wire_view(changed)["accountBalance"] == Decimal("-1.00"), "a new version has its own"


def test_an_account_raises_its_opening_and_each_change_that_changes_something() -> None:
    opening, editing = Change(CREATOR, uuid.uuid4(), MONDAY), Change(EDITOR, uuid.uuid4(), TUESDAY)
    fields = {
        k: v
        for k, v in vars(an_account()).items()
        if k in ("id", "target_type", "target_id", "account_type", "payment_reference")
    }
    opened = Account.opened(opening, **fields)
    assert opened.created_by == opened.last_updated_by == CREATOR.label and opened.created_at == MONDAY
    assert opened.raised == (AccountChanged(None, opening),)

    assert opened.change(editing, agreement_type=opened.agreement_type) is opened  # nothing changed: nothing raised
    changed = opened.change(editing, agreement_type="Master Account")
    assert changed.version == 2 and changed.last_updated_by == EDITOR.label
    assert changed.raised == (AccountChanged(None, opening), AccountChanged(opened, editing))
    assert [version for _, version in changed.versions_raised()] == [opened, changed]
    assert dataclasses.replace(changed, raised=()) == changed  # what it raised takes no part in equality

    changed.forget_raised()
    assert changed.raised == () and changed.change(editing, agreement_type="X").raised == (
        AccountChanged(changed, editing),
    )
