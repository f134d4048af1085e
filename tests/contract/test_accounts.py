"""Accounts in storage: what goes in comes out exactly, and the rules across accounts hold at commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from accounts.domain.account import (
    AccountStatus,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.polarity import Polarity
from accounts.domain.tenure import TenureRecord
from accounts.service.accounts import active_master
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.contract.conftest import Store, UowFactory, writers_take_turns
from tests.contract.values import CREATED, OFFICER, a_reference, an_account, read, store


def test_an_account_stored_is_read_back_exactly(uow: UowFactory) -> None:
    tenant = PrimaryTenant(uuid.uuid4(), "Zoë O'Brien-Nowak")
    account = an_account(
        account_status=AccountStatus.SUSPENDED,
        rent_group_type=RentGroupType.LH_SERV_CHARGES,
        agreement_type="Master Account",
        account_balance=Decimal("-999999999999.99"),
        consolidated_balance=Decimal("0.10"),
        start_date=datetime(2021, 4, 1, tzinfo=UTC),
        end_date=datetime(2031, 3, 31, 23, 0, tzinfo=timezone(timedelta(hours=-1))),
        end_reason_code="RTB",
        consolidated_charges=(
            ConsolidatedCharge("Rent", "Weekly", Decimal("123.45")),
            ConsolidatedCharge("Service charge", "Monthly", Decimal("0.01")),
        ),
        tenure=AccountTenure(uuid.uuid4(), TenureTypeRef("LEA", "Leasehold (RTB)"), "1 Mare Street, E8 3RH", (tenant,)),
    )
    store(uow, account)

    stored = read(uow, account.id)

    assert stored == account
    assert stored is not None
    assert stored.account_balance == Decimal("-999999999999.99")
    assert str(stored.consolidated_balance) == "0.10"
    assert stored.consolidated_charges[1].amount == Decimal("0.01")
    assert stored.created_at.tzinfo is not None and stored.created_at == CREATED
    assert stored.end_date == datetime(2031, 4, 1, 0, 0, tzinfo=UTC)


def test_an_unknown_account_reads_as_nothing(uow: UowFactory) -> None:
    assert read(uow, uuid.uuid4()) is None


@pytest.mark.parametrize("balance", ["999999999999.99", "-999999999999.99", "0.01", "-0.01", "0.00"])
def test_money_at_the_edges_of_numeric_14_2_survives_the_round_trip(uow: UowFactory, balance: str) -> None:
    account = an_account(account_balance=Decimal(balance))
    store(uow, account)
    stored = read(uow, account.id)
    assert stored is not None and str(stored.account_balance) == balance


def test_a_new_version_replaces_the_one_it_was_made_from(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)
    changed = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-20.00"))

    with uow() as unit:
        unit.accounts.update(changed, account.version, Decimal("20.00"))
        unit.commit()

    stored = read(uow, account.id)
    assert stored == changed and stored is not None and stored.version == 2


def test_a_version_made_from_a_stale_read_is_refused_and_the_stored_one_kept(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)
    first = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-1.00"))
    second = account.changed(OFFICER, CREATED + timedelta(hours=2), account_balance=Decimal("-2.00"))
    with uow() as unit:
        unit.accounts.update(first, account.version, Decimal("1.00"))
        unit.commit()

    with pytest.raises(ConcurrencyConflict), uow() as unit:
        unit.accounts.update(second, account.version, Decimal("2.00"))

    assert read(uow, account.id) == first


def test_a_change_committed_meanwhile_makes_the_commit_a_conflict(uow: UowFactory, backend: Store) -> None:
    writers_take_turns(backend)
    account = an_account()
    store(uow, account)
    theirs = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-1.00"))
    ours = account.changed(OFFICER, CREATED + timedelta(hours=2), account_balance=Decimal("-2.00"))

    with uow() as unit:
        assert unit.accounts.get(account.id) == account
        unit.accounts.update(ours, account.version, Decimal("2.00"))
        # Another transaction, on another connection, committed meanwhile (reading and writing before we write).
        other = uow()
        with other:
            other.accounts.update(theirs, account.version, Decimal("1.00"))
            other.commit()
        with pytest.raises(ConcurrencyConflict):
            unit.commit()

    assert read(uow, account.id) == theirs


def test_two_accounts_never_share_a_payment_reference(uow: UowFactory) -> None:
    first = an_account()
    store(uow, first)
    second = an_account(payment_reference=first.payment_reference)
    with pytest.raises(ConcurrencyConflict):
        store(uow, second)
    assert read(uow, second.id) is None and read(uow, first.id) == first
    with uow(read_only=True) as unit:
        assert unit.accounts.payment_reference_taken(first.payment_reference)
        assert not unit.accounts.payment_reference_taken("1234567890")


def test_a_payment_reference_given_up_is_free_again(uow: UowFactory) -> None:
    account = an_account()
    store(uow, account)
    corrected = account.changed(OFFICER, CREATED + timedelta(hours=1), payment_reference=a_reference())
    with uow() as unit:
        unit.accounts.update(corrected, account.version, Decimal("0.00"))
        assert not unit.accounts.payment_reference_taken(account.payment_reference)
        assert unit.accounts.payment_reference_taken(corrected.payment_reference)
        unit.commit()
    store(uow, an_account(payment_reference=account.payment_reference))
    with uow(read_only=True) as unit:
        assert unit.accounts.payment_reference_taken(account.payment_reference)


def test_one_active_master_account_per_target_is_all_storage_allows(uow: UowFactory) -> None:
    first = an_account()
    store(uow, first)

    with pytest.raises(ConcurrencyConflict):
        store(uow, an_account(target_id=first.target_id))
    store(uow, an_account(target_id=first.target_id, account_type=AccountType.SUNDRY))
    store(uow, an_account(target_id=first.target_id, account_status=AccountStatus.ENDED))

    with uow(read_only=True) as unit:
        assert active_master(unit, first.target_id) == first
        assert active_master(unit, uuid.uuid4()) is None
        everything = unit.accounts.by_target(first.target_id, None)
        sundries = unit.accounts.by_target(first.target_id, AccountType.SUNDRY)
    assert len(everything) == 3 and first in everything
    assert [a.account_type for a in sundries] == [AccountType.SUNDRY]


def test_a_target_lists_its_accounts_oldest_first(uow: UowFactory) -> None:
    target = uuid.uuid4()
    later = an_account(target_id=target, account_type=AccountType.SUNDRY, created_at=CREATED + timedelta(days=1))
    earlier = an_account(target_id=target, account_type=AccountType.RECHARGE, created_at=CREATED)
    twins = sorted(
        (an_account(target_id=target, account_type=AccountType.SUNDRY, created_at=CREATED) for _ in range(3)),
        key=lambda account: account.id,
    )
    store(uow, later)
    store(uow, earlier)
    for twin in reversed(twins):
        store(uow, twin)
    with uow(read_only=True) as unit:
        listed = [a.id for a in unit.accounts.by_target(target, None)]
    assert listed == [*sorted([earlier.id, *(twin.id for twin in twins)]), later.id]


def test_an_account_moved_to_another_target_is_listed_under_its_new_target_only(uow: UowFactory) -> None:
    account = an_account(account_type=AccountType.SUNDRY)
    store(uow, account)
    new_target = uuid.uuid4()
    moved = account.changed(OFFICER, CREATED + timedelta(hours=1), target_id=new_target)
    with uow() as unit:
        assert unit.accounts.by_target(account.target_id, None) == [account]
        unit.accounts.update(moved, account.version, Decimal("0.00"))
        assert unit.accounts.by_target(account.target_id, None) == []
        assert unit.accounts.by_target(new_target, None) == [moved]
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.accounts.by_target(account.target_id, None) == []
        assert unit.accounts.by_target(new_target, None) == [moved]


def test_arrears_come_from_the_stored_amount_owed_largest_first_and_limited(uow: UowFactory) -> None:
    owed: dict[Decimal, uuid.UUID] = {}
    for amount in (Decimal("5.00"), Decimal("500.00"), Decimal("50.00")):
        account = an_account(account_type=AccountType.SUNDRY, account_balance=-amount)
        owed[amount] = account.id
        store(uow, account, amount)
    store(uow, an_account(account_balance=Decimal("10.00")), Decimal("-10.00"))  # in credit
    store(uow, an_account(account_type=AccountType.RECHARGE), Decimal("0.00"))  # square

    with uow(read_only=True) as unit:
        largest = unit.accounts.arrears(None, "amount_owed", True, 2)
        smallest = unit.accounts.arrears(None, "amount_owed", False, 10)
        masters = unit.accounts.arrears(AccountType.MASTER, "amount_owed", True, 10)
        by_reference = unit.accounts.arrears(AccountType.SUNDRY, "payment_reference", False, 10)

    assert [a.id for a in largest] == [owed[Decimal("500.00")], owed[Decimal("50.00")]]
    assert [a.id for a in smallest] == [owed[Decimal(x)] for x in ("5.00", "50.00", "500.00")]
    assert masters == []
    assert [a.payment_reference for a in by_reference] == sorted(a.payment_reference for a in by_reference)
    assert len(by_reference) == 3


def test_arrears_ties_are_listed_by_id(uow: UowFactory) -> None:
    tied = [an_account(account_type=AccountType.SUNDRY, account_balance=Decimal("-7.00")) for _ in range(4)]
    for account in tied:
        store(uow, account, Decimal("7.00"))
    with uow(read_only=True) as unit:
        up = unit.accounts.arrears(None, "amount_owed", False, 10)
        down = unit.accounts.arrears(None, "amount_owed", True, 10)
    assert [a.id for a in up] == [a.id for a in down] == sorted(a.id for a in tied)


def test_the_target_types_and_their_polarity_are_seeded(uow: UowFactory) -> None:
    with uow(read_only=True) as unit:
        tenure = unit.target_types.get("Tenure")
        names = [target.name for target in unit.target_types.all()]
        unknown = unit.target_types.get("Garage")
    assert tenure is not None and tenure.polarity is Polarity.NEGATIVE_IS_ARREARS
    assert {"Tenure", "Licensing", "HousingBenefit"} <= set(names)
    assert names == sorted(names)
    assert unknown is None


def test_a_tenure_master_account_gives_its_interim_source_with_the_tenure_copy(uow: UowFactory) -> None:
    tenure_id = uuid.uuid4()
    master = an_account(
        target_id=tenure_id,
        rent_group_type=RentGroupType.TENANT,
        start_date=datetime(2021, 4, 1, tzinfo=UTC),
        tenure=AccountTenure(tenure_id, TenureTypeRef("SEC", "Secure"), "1 Mare Street, E8 3RH"),
    )
    store(uow, master)
    store(uow, an_account(target_id=tenure_id, account_type=AccountType.SUNDRY))  # not a Master
    store(uow, an_account(target_type="Licensing"))  # not a tenure
    copy = TenureRecord(tenure_id, {"paymentReference": "", "tenuredAsset": {"propertyReference": "00012345"}})
    with uow() as unit:
        unit.tenures.save(copy, CREATED)
        unit.commit()

    with uow(read_only=True) as unit:
        [source] = list(unit.accounts.interim_sources())
    assert source.account_id == master.id and source.payment_reference == master.payment_reference
    assert source.rent_group_type == "Tenant"
    assert source.start_date == datetime(2021, 4, 1, tzinfo=UTC) and source.end_date is None
    assert source.account_tenure is not None and source.account_tenure["fullAddress"] == "1 Mare Street, E8 3RH"
    assert source.tenure_data == copy.data


@pytest.mark.parametrize("descending", [False, True])
def test_arrears_sorted_by_a_field_some_accounts_lack_list_those_last_going_up_and_first_going_down(
    uow: UowFactory, descending: bool
) -> None:
    ended = [
        an_account(account_type=AccountType.SUNDRY, end_date=datetime(2030, month, 1, tzinfo=UTC)) for month in (3, 1)
    ]
    open_ended = an_account(account_type=AccountType.SUNDRY)
    for account in [*ended, open_ended]:
        store(uow, account, Decimal("1.00"))
    with uow(read_only=True) as unit:
        listed = [a.id for a in unit.accounts.arrears(None, "end_date", descending, 10)]
        no_group = [a.id for a in unit.accounts.arrears(None, "rent_group_type", descending, 10)]
    by_end = [ended[1].id, ended[0].id, open_ended.id]
    assert listed == (by_end[::-1] if descending else by_end)
    assert no_group == sorted(by_end)  # every account lacks a rent group: ties by id, either way


def test_the_accounts_changed_in_a_unit_of_work_are_its_latest_versions_less_those_undone(uow: UowFactory) -> None:
    """What the unit of work writes the accounts' events and interim rows for at commit (`service/changes.py`)."""
    kept, undone = an_account(), an_account()
    with uow() as work:
        work.accounts.add(kept, Decimal("0.00"))
        changed = kept.changed(OFFICER, CREATED, agreement_type="Changed")
        work.accounts.update(changed, kept.version, Decimal("0.00"))
        with pytest.raises(RuntimeError), work.savepoint():
            work.accounts.add(undone, Decimal("0.00"))
            raise RuntimeError("undone")
        assert work.accounts.changed() == [changed]
        assert work.accounts.changed()[0].version == 2
        work.commit()
        assert work.accounts.changed() == []
