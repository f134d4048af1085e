"""The interim database sink on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts.adapters.sinks.interim_database import (
    InterimDatabaseSink,
    tenancy_agreement,
    tenancy_agreement_staging,
)
from accounts.domain.interim import InterimRow
from accounts.service.ports import TransientError

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/interim"


def make_row(number: int, **changes: object) -> InterimRow:
    row = InterimRow(
        payment_ref=f"{number:010d}",
        rent_group="HousingRevenue" if number % 2 else "TempAccomHRA",
        tenure="SEC",
        start_date=date(2021, 4, 5),
        end_date=None if number % 3 else date(2024, 1, 31),
        property_ref=f"{number:08d}",
        short_address=f"Flat {number}",
        address=f"Flat {number}, 10 Mare Street, London",
        post_code="E8 1DY",
        num_bedrooms=None if number % 4 == 0 else number % 4,
        title="Ms",
        forename="Zoë",
        surname=f"Okafor-{number}",
        date_of_birth=date(1980, 2, 29),
    )
    return replace(row, **changes)  # type: ignore[arg-type]


@pytest.fixture
def sink(database_url: str) -> Iterator[InterimDatabaseSink]:
    sink = InterimDatabaseSink(database_url)
    yield sink
    sink.close()


def count(url: str, table: sa.Table) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def test_delivered_rows_read_back_equal(sink: InterimDatabaseSink, database_url: str) -> None:
    assert sink.read_rows() == []  # before the first delivery: no tables, no rows
    rows = [make_row(number) for number in range(1, 8)]
    rows.append(InterimRow(payment_ref="0000000099", rent_group="NoInterimRentGroup"))  # blanks throughout
    sink.deliver(rows)
    assert sink.read_rows() == rows
    assert count(database_url, tenancy_agreement_staging) == 0


def test_redelivery_updates_in_place_without_duplicates(sink: InterimDatabaseSink, database_url: str) -> None:
    rows = [make_row(number) for number in range(1, 6)]
    sink.deliver(rows)
    sink.deliver(rows)  # idempotent
    assert sink.read_rows() == rows

    changed = make_row(3, surname="Changed", num_bedrooms=5, rent_group="GarParkHRA", end_date=date(2025, 3, 1))
    extra = make_row(6)
    sink.deliver([changed, extra])

    assert sink.read_rows() == [*rows[:2], changed, *rows[3:], extra]
    assert count(database_url, tenancy_agreement) == 6
    assert count(database_url, tenancy_agreement_staging) == 0


def test_batches_smaller_than_the_delivery(database_url: str) -> None:
    sink = InterimDatabaseSink(database_url, batch_size=7)
    try:
        rows = [make_row(number) for number in range(1, 51)]
        sink.deliver(rows)
        sink.deliver([*rows[10:30], make_row(20, surname="Twice"), make_row(51)])  # last one wins
        expected = [make_row(20, surname="Twice") if row.payment_ref == f"{20:010d}" else row for row in rows]
        assert sink.read_rows() == [*expected, make_row(51)]
        assert count(database_url, tenancy_agreement_staging) == 0
    finally:
        sink.close()


def test_remove_deletes_only_the_given_refs(sink: InterimDatabaseSink) -> None:
    rows = [make_row(number) for number in range(1, 6)]
    sink.deliver(rows)
    sink.remove([rows[1].payment_ref, rows[3].payment_ref, "0999999999"])
    sink.remove([rows[1].payment_ref])  # idempotent
    assert sink.read_rows() == [rows[0], rows[2], rows[4]]


def test_create_schema_is_idempotent(sink: InterimDatabaseSink, database_url: str) -> None:
    sink.create_schema()
    sink.create_schema()
    other = InterimDatabaseSink(database_url)  # a second process finding the tables already there
    try:
        other.deliver([make_row(1)])
    finally:
        other.close()
    assert sink.read_rows() == [make_row(1)]


def test_load_workbook_rows_merges_like_deliver(sink: InterimDatabaseSink) -> None:
    sink.load_workbook_rows([make_row(1), make_row(2)])
    sink.load_workbook_rows([make_row(2, title="Dr")])
    assert sink.read_rows() == [make_row(1), make_row(2, title="Dr")]


def test_unreachable_database_is_a_transient_error() -> None:
    sink = InterimDatabaseSink(UNREACHABLE)
    try:
        with pytest.raises(TransientError, match=r"127\.0\.0\.1:1"):
            sink.deliver([make_row(1)])
        with pytest.raises(TransientError):
            sink.read_rows()
        with pytest.raises(TransientError):
            sink.remove([make_row(1).payment_ref])
    finally:
        sink.close()


def test_delivery_works_once_the_database_is_back(database_url: str) -> None:
    down = InterimDatabaseSink(UNREACHABLE)
    with pytest.raises(TransientError):
        down.deliver([make_row(1)])
    down.close()

    # The flusher retries the same rows against the database once it answers again.
    back = InterimDatabaseSink(database_url)
    try:
        back.deliver([make_row(1)])
        assert back.read_rows() == [make_row(1)]
    finally:
        back.close()


def test_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'interim' / 'tenancy.db'}"
    sink = InterimDatabaseSink(url)
    try:
        sink.deliver([make_row(1)])
        assert sink.read_rows() == [make_row(1)]
    finally:
        sink.close()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        InterimDatabaseSink("sqlite://", batch_size=0)
