"""The schema comes up once however many processes start together, and later revisions keep the data."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from accounts.adapters.database import tables as t
from accounts.adapters.database.migrate import alembic_config, migrate
from accounts.adapters.database.repositories import account_values
from accounts.adapters.database.rows import WORKLIST_COLUMNS
from accounts.bootstrap import bootstrap
from accounts.domain.account import (
    Account,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.ledger import Direction, TransactionType
from accounts.domain.payment_reference import from_serial
from tests.conftest import make_settings


def test_four_processes_migrating_a_new_database_at_once_all_succeed(postgres_database: str) -> None:
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def migrate_together() -> None:
        start.wait()
        try:
            migrate(postgres_database)
        except BaseException as error:  # collected: the test names what a process died of
            failures.append(error)

    threads = [threading.Thread(target=migrate_together, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a migration is stuck waiting on another"
    assert failures == []
    engine = sa.create_engine(postgres_database)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM target_types")).scalar_one() == 3
        assert connection.execute(sa.text("SELECT count(*) FROM payment_reference_counter")).scalar_one() == 1
    engine.dispose()


def test_migrating_twice_changes_nothing(sqlite_database: str) -> None:
    migrate(sqlite_database)
    migrate(sqlite_database)
    engine = sa.create_engine(sqlite_database)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM target_types")).scalar_one() == 3
    engine.dispose()


def test_accounts_stored_before_revision_0003_are_read_as_before(database_url: str, tmp_path: Path) -> None:
    """0003 keeps each account's wire JSON for the reads; accounts already stored get theirs."""
    migrate(database_url, "0002")
    at = datetime(2025, 4, 7, 9, 30, 15, 123456, tzinfo=UTC)
    tenure_id = uuid.uuid4()
    accounts = [
        Account(
            id=uuid.uuid4(),
            target_type="Tenure",
            target_id=tenure_id,
            account_type=AccountType.MASTER,
            payment_reference="1000000009",
            created_by="Finance Officer",
            created_at=at,
            last_updated_by="Finance Officer",
            last_updated_at=at,
            rent_group_type=RentGroupType.TENANT,
            agreement_type="Master Account",
            account_balance=Decimal("-1234.50"),
            consolidated_balance=Decimal("10.00"),
            start_date=at,
            consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", Decimal("123.45")),),
            tenure=AccountTenure(
                tenure_id, TenureTypeRef("SEC", "Secure"), "1 Mare Street", (PrimaryTenant(uuid.uuid4(), "J Smith"),)
            ),
            version=3,
        ),
        Account(
            id=uuid.uuid4(),
            target_type="Tenure",
            target_id=tenure_id,
            account_type=AccountType.SUNDRY,
            payment_reference="1000000017",
            created_by="Finance Officer",
            created_at=at.replace(second=16),
            last_updated_by="Finance Officer",
            last_updated_at=at,
        ),
    ]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        for account in accounts:
            row = account_values(account, Decimal("0.00"))
            for name in ("wire", *WORKLIST_COLUMNS):  # not columns before 0003 and 0007
                del row[name]
            connection.execute(sa.insert(t.accounts).values(row))
    engine.dispose()

    migrate(database_url)

    application = bootstrap(make_settings(database_url, tmp_path))
    try:
        first = asyncio.run(application.reads.account(accounts[0].id))
        assert first is not None and first.version == 3
        wire = orjson.loads(first.wire)
        assert wire["accountBalance"] == -1234.5 and b'"accountBalance":-1234.50' in first.wire
        assert wire["createdAt"] == "2025-04-07T09:30:15.123456Z"
        assert wire["tenure"]["fullAddress"] == "1 Mare Street"
        assert wire["consolidatedCharges"] == [{"type": "Rent", "frequency": "Weekly", "amount": 123.45}]
        listed = [orjson.loads(item)["id"] for item in asyncio.run(application.reads.by_target(tenure_id, None))]
        assert listed == [str(account.id) for account in accounts]
    finally:
        application.close()


_serials = itertools.count(100_000_000)


def before_0007(row: dict[str, object]) -> dict[str, object]:
    """An account's row as a schema before revision 0007 (the arrears worklist's columns) holds it."""
    return {name: value for name, value in row.items() if name not in WORKLIST_COLUMNS}


def _account_at(balance: str, target_type: str = "Tenure", **overrides: object) -> Account:
    at = datetime(2025, 4, 7, 9, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "target_type": target_type,
        "target_id": uuid.uuid4(),
        "account_type": AccountType.MASTER,
        "payment_reference": from_serial(next(_serials)),
        "created_by": "Finance Officer",
        "created_at": at,
        "last_updated_by": "Finance Officer",
        "last_updated_at": at,
        "account_balance": Decimal(balance),
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


def test_revision_0004_opens_every_stored_balance_in_the_ledger(database_url: str, tmp_path: Path) -> None:
    """Each non-zero balance becomes one OpeningBalance of that balance; the ledger then explains every account."""
    migrate(database_url, "0003")
    balances = {  # (target type, balance): a Tenure owes on a negative balance, a HousingBenefit recovery on a positive
        "owing": ("Tenure", "-1234.50"),
        "in credit": ("Tenure", "20.01"),
        "settled": ("Tenure", "0.00"),
        "recovery owing": ("HousingBenefit", "300.00"),
        "recovery in credit": ("HousingBenefit", "-0.01"),
        "largest": ("Licensing", "-999999999999.99"),
    }
    named = {name: _account_at(balance, target_type) for name, (target_type, balance) in balances.items()}
    # More accounts than the migration reads at once.
    many = [_account_at("1.00" if n % 2 else "0.00") for n in range(5_003)]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        rows = [before_0007(account_values(account, Decimal("0.00"))) for account in [*named.values(), *many]]
        connection.execute(sa.insert(t.accounts), rows)
    engine.dispose()

    before = datetime.now(UTC)
    migrate(database_url)

    application = bootstrap(make_settings(database_url, tmp_path))
    try:
        with application.uow(read_only=True) as unit:
            assert list(unit.transactions.differences()) == []
            ledgers = {
                account.id: unit.transactions.page(account.id, from_date=None, to_date=None, after=None, limit=10)
                for account in named.values()
            }
    finally:
        application.close()

    for name, account in named.items():
        ledger = [transaction for _, transaction in ledgers[account.id]]
        if account.account_balance == 0:
            assert ledger == [], name
            continue
        (opening,) = ledger
        assert opening.transaction_type is TransactionType.OPENING_BALANCE, name
        assert opening.balance_after == account.account_balance, name
        assert opening.amount == abs(account.account_balance), name
        assert opening.created_by == "migration" and opening.reverses_id is None
        assert opening.posted_at.tzinfo is not None and before <= opening.posted_at <= datetime.now(UTC)
        assert opening.transaction_date == opening.posted_at.date()
    owing_more = {name: ledgers[named[name].id][0][1].direction for name in ("owing", "recovery owing", "in credit")}
    assert owing_more == {
        "owing": Direction.INCREASE_OWED,
        "recovery owing": Direction.INCREASE_OWED,
        "in credit": Direction.REDUCE_OWED,
    }
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        opened = connection.execute(sa.select(t.account_transactions.c.account_id)).scalars().all()
    engine.dispose()
    assert sorted(opened) == sorted(a.id for a in [*named.values(), *many] if a.account_balance != 0)


def test_revision_0004_is_undone_by_dropping_the_ledger(sqlite_database: str) -> None:
    migrate(sqlite_database)
    engine = sa.create_engine(sqlite_database)
    with engine.connect() as connection:
        config = alembic_config(sqlite_database)
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        connection.commit()
        assert "account_transactions" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
        connection.commit()
        assert "account_transactions" in sa.inspect(connection).get_table_names()
    engine.dispose()


def test_the_migrated_schema_is_the_one_tables_declares(database_url: str) -> None:
    """Tables, columns, types, keys and indexes: what the migrations build is what the code reads and writes."""
    migrate(database_url)
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, t.metadata) == []
    engine.dispose()
