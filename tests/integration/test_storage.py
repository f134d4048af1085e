"""The account storage on SQLite and PostgreSQL: what goes in comes out exactly, and the rules hold in the database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts.adapters.database import engine as engine_module
from accounts.adapters.database import tables as t
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import (
    Account,
    AccountStatus,
    AccountTenure,
    AccountType,
    Actor,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.events import account_created
from accounts.domain.payment_reference import from_serial, has_valid_check_digit
from accounts.domain.polarity import Polarity
from accounts.service.accounts import active_master
from accounts.service.ports import ACCOUNTS_TOPIC, TransientError
from accounts.service.unit_of_work import ConcurrencyConflict
from tests.conftest import make_settings
from tests.integration.test_api_support import shared_api

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
CREATED = datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=UTC)
_references = iter(range(100_000_000, 999_999_999))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stored_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Application]:
    """One migrated database per engine for the module (creating one per test is slow on PostgreSQL)."""
    for api in shared_api(request, tmp_path_factory):
        yield api.application


@pytest.fixture
def application(stored_app: Application) -> Iterator[Application]:
    """The module's database, emptied of accounts and events after each test."""
    yield stored_app
    with stored_app.engine.begin() as connection:
        connection.execute(t.outbox.delete())
        connection.execute(t.accounts.delete())


def an_account(**overrides: object) -> Account:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "target_type": "Tenure",
        "target_id": uuid.uuid4(),
        "account_type": AccountType.MASTER,
        "payment_reference": from_serial(next(_references)),
        "created_by": OFFICER.label,
        "created_at": CREATED,
        "last_updated_by": OFFICER.label,
        "last_updated_at": CREATED,
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


def store(app: Application, account: Account, amount_owed: Decimal | None = None) -> None:
    with app.uow() as uow:
        owed = -account.account_balance if amount_owed is None else amount_owed
        uow.accounts.add(account, owed)
        uow.commit()


def read(app: Application, account_id: uuid.UUID) -> Account | None:
    with app.uow(read_only=True) as uow:
        return uow.accounts.get(account_id)


def count(app: Application, table: sa.Table) -> int:
    with app.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_an_account_stored_is_read_back_exactly(application: Application) -> None:
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
    store(application, account)

    stored = read(application, account.id)

    assert stored == account
    assert stored is not None
    assert stored.account_balance == Decimal("-999999999999.99")
    assert str(stored.consolidated_balance) == "0.10"
    assert stored.consolidated_charges[1].amount == Decimal("0.01")
    assert stored.created_at.tzinfo is not None and stored.created_at == CREATED
    assert stored.end_date == datetime(2031, 4, 1, 0, 0, tzinfo=UTC)


def test_an_unknown_account_reads_as_nothing(application: Application) -> None:
    assert read(application, uuid.uuid4()) is None


@pytest.mark.parametrize("balance", ["999999999999.99", "-999999999999.99", "0.01", "-0.01", "0.00"])
def test_money_at_the_edges_of_numeric_14_2_survives_the_round_trip(application: Application, balance: str) -> None:
    account = an_account(account_balance=Decimal(balance))
    store(application, account)
    stored = read(application, account.id)
    assert stored is not None and str(stored.account_balance) == balance


def test_a_new_version_replaces_the_one_it_was_made_from(application: Application) -> None:
    account = an_account()
    store(application, account)
    changed = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-20.00"))

    with application.uow() as uow:
        uow.accounts.update(changed, account.version, Decimal("20.00"))
        uow.commit()

    stored = read(application, account.id)
    assert stored == changed and stored is not None and stored.version == 2


def test_a_version_made_from_a_stale_read_is_refused_and_the_stored_one_kept(application: Application) -> None:
    account = an_account()
    store(application, account)
    first = account.changed(OFFICER, CREATED + timedelta(hours=1), account_balance=Decimal("-1.00"))
    second = account.changed(OFFICER, CREATED + timedelta(hours=2), account_balance=Decimal("-2.00"))
    with application.uow() as uow:
        uow.accounts.update(first, account.version, Decimal("1.00"))
        uow.commit()

    with pytest.raises(ConcurrencyConflict), application.uow() as uow:
        uow.accounts.update(second, account.version, Decimal("2.00"))

    assert read(application, account.id) == first


def test_two_accounts_never_share_a_payment_reference_in_the_database(application: Application) -> None:
    first = an_account()
    store(application, first)
    with pytest.raises(ConcurrencyConflict):
        store(application, an_account(payment_reference=first.payment_reference))
    assert count(application, t.accounts) == 1
    with application.uow(read_only=True) as uow:
        assert uow.accounts.payment_reference_taken(first.payment_reference)
        assert not uow.accounts.payment_reference_taken("1234567890")


def test_the_database_itself_allows_one_active_master_account_per_target(application: Application) -> None:
    first = an_account()
    store(application, first)

    with pytest.raises(ConcurrencyConflict):
        store(application, an_account(target_id=first.target_id))
    store(application, an_account(target_id=first.target_id, account_type=AccountType.SUNDRY))
    store(application, an_account(target_id=first.target_id, account_status=AccountStatus.ENDED))

    with application.uow(read_only=True) as uow:
        assert active_master(uow, first.target_id) == first
        assert active_master(uow, uuid.uuid4()) is None
        everything = uow.accounts.by_target(first.target_id, None)
        sundries = uow.accounts.by_target(first.target_id, AccountType.SUNDRY)
    assert len(everything) == 3 and first in everything
    assert [a.account_type for a in sundries] == [AccountType.SUNDRY]


def test_a_target_lists_its_accounts_oldest_first(application: Application) -> None:
    target = uuid.uuid4()
    later = an_account(target_id=target, account_type=AccountType.SUNDRY, created_at=CREATED + timedelta(days=1))
    earlier = an_account(target_id=target, account_type=AccountType.RECHARGE, created_at=CREATED)
    store(application, later)
    store(application, earlier)
    with application.uow(read_only=True) as uow:
        assert [a.id for a in uow.accounts.by_target(target, None)] == [earlier.id, later.id]


def test_nothing_written_in_a_unit_of_work_that_is_not_committed_survives(application: Application) -> None:
    account = an_account()
    with application.uow() as uow:
        uow.accounts.add(account, Decimal("0.00"))
        uow.outbox.add(ACCOUNTS_TOPIC, account_created(account, OFFICER, uuid.uuid4(), CREATED), str(account.id))
        uow.payment_references.next_serial()
    assert read(application, account.id) is None
    assert count(application, t.outbox) == 0


def test_the_account_and_its_event_are_committed_together(application: Application) -> None:
    account = an_account()
    event = account_created(account, OFFICER, uuid.uuid4(), CREATED)
    with application.uow() as uow:
        uow.accounts.add(account, Decimal("0.00"))
        uow.outbox.add(ACCOUNTS_TOPIC, event, str(account.id))
        uow.commit()
    with application.uow(read_only=True) as uow:
        [message] = uow.outbox.pending(10)
        assert uow.outbox.count_pending() == 1
    assert message.event_id == event.id
    assert message.group_id == str(account.id)
    assert b'"eventType":"AccountCreatedEvent"' in message.payload


def test_allocation_serials_are_consecutive_and_never_handed_out_twice_even_at_once(
    application: Application,
) -> None:
    serials: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def allocate() -> None:
        barrier.wait()
        for _ in range(5):
            with application.uow() as uow:
                serial = uow.payment_references.next_serial()
                uow.commit()
            with lock:
                serials.append(serial)

    threads = [threading.Thread(target=allocate) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(serials) == 60 == len(set(serials))
    assert sorted(serials) == list(range(min(serials), min(serials) + 60))
    assert all(has_valid_check_digit(from_serial(serial)) for serial in serials)


def test_a_serial_taken_by_a_rolled_back_transaction_is_given_again(application: Application) -> None:
    with application.uow() as uow:
        abandoned = uow.payment_references.next_serial()
    with application.uow() as uow:
        assert uow.payment_references.next_serial() == abandoned
        uow.commit()


def test_arrears_come_from_the_stored_amount_owed_largest_first_and_limited(application: Application) -> None:
    owed = {Decimal("5.00"): None, Decimal("500.00"): None, Decimal("50.00"): None}
    for amount in owed:
        account = an_account(account_type=AccountType.SUNDRY, account_balance=-amount)
        owed[amount] = account.id  # type: ignore[assignment]
        store(application, account, amount)
    store(application, an_account(account_balance=Decimal("10.00")), Decimal("-10.00"))  # in credit
    store(application, an_account(account_type=AccountType.RECHARGE), Decimal("0.00"))  # square

    with application.uow(read_only=True) as uow:
        largest = uow.accounts.arrears(None, "amount_owed", True, 2)
        smallest = uow.accounts.arrears(None, "amount_owed", False, 10)
        masters = uow.accounts.arrears(AccountType.MASTER, "amount_owed", True, 10)

    assert [a.id for a in largest] == [owed[Decimal("500.00")], owed[Decimal("50.00")]]
    assert [a.id for a in smallest] == [owed[Decimal(x)] for x in ("5.00", "50.00", "500.00")]
    assert masters == []


def test_the_target_types_and_their_polarity_are_seeded(application: Application) -> None:
    with application.uow(read_only=True) as uow:
        tenure = uow.target_types.get("Tenure")
        names = [target.name for target in uow.target_types.all()]
        unknown = uow.target_types.get("Garage")
    assert tenure is not None and tenure.polarity is Polarity.NEGATIVE_IS_ARREARS
    assert {"Tenure", "Licensing", "HousingBenefit"} <= set(names)
    assert names == sorted(names)
    assert unknown is None


def test_a_database_that_is_not_there_is_a_transient_error() -> None:
    from accounts.adapters.database.engine import create_engine
    from accounts.adapters.database.unit_of_work import SqlAlchemyUnitOfWork
    from accounts.service.ports import TransientError

    dead = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(TransientError), SqlAlchemyUnitOfWork(dead) as uow:
            uow.accounts.get(uuid.uuid4())
    finally:
        dead.dispose()


def test_writers_in_one_process_take_turns_and_a_writer_kept_waiting_hears_the_database_is_busy(
    sqlite_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: write transactions queue on the process's writer turn; reads never wait for it."""
    application = bootstrap(make_settings(sqlite_database, tmp_path), run_migrations=True)
    monkeypatch.setattr(engine_module, "WRITER_WAIT_SECONDS", 0.2)
    holding, release = threading.Event(), threading.Event()

    def hold_a_write_transaction() -> None:
        with application.uow() as uow:
            holding.set()
            release.wait(10)
            uow.commit()

    holder = threading.Thread(target=hold_a_write_transaction)
    holder.start()
    try:
        assert holding.wait(10)
        with application.uow(read_only=True) as uow:  # a read goes ahead
            assert uow.target_types.get("Tenure") is not None
        with pytest.raises(TransientError, match="busy"), application.uow() as uow:
            pass
    finally:
        release.set()
        holder.join(10)
    with application.uow() as uow:  # the turn was given back
        uow.commit()
    application.close()
