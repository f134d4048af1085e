"""What the interim sync tests share: the service wired with one or both sinks, and the workbook
as finance users see it, read with openpyxl (never with our own reader).

No tests here. The expected cells are worked out from the tenure itself, as the issue
states them, not by calling the code under test.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import openpyxl
import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.adapters.sinks.interim_database import tenancy_agreement
from accounts.bootstrap import Application, bootstrap
from accounts.domain.account import Account, AccountType
from accounts.domain.events import parse_envelope
from tests.conftest import _create_database, _drop_database, make_settings
from tests.fixtures.tenures import EXPECTED_RENT_GROUPS

HEADERS = (
    "Payment Ref",
    "Tenure",
    "Start Date",
    "End Date",
    "Property Ref",
    "Short Address",
    "Address",
    "Post Code",
    "Num Bedrooms",
    "Title",
    "Forename",
    "Surname",
    "Date Of Birth",
)
TABS = [
    "GarParkHRA",
    "HousingGenFund",
    "HousingRevenue",
    "LHMajorWorks",
    "LHServCharges",
    "TempAccGenFun",
    "TempAccomHRA",
    "TravelGenFund",
    "NoInterimRentGroup",
]
Cells = tuple[Any, ...]


# The service: modules using these fixtures import `interim_url_fixture` and `make_app_fixture` --------


@pytest.fixture(name="interim_url")
def interim_url_fixture(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An interim database of the same kind as the service's: a SQLite file, or a fresh PostgreSQL database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'interim' / 'interim.db'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    name, url = _create_database(server)
    try:
        yield url
    finally:
        _drop_database(server, name)


@pytest.fixture(name="make_app")
def make_app_fixture(database_url: str, interim_url: str, tmp_path: Path) -> Iterator[Callable[..., Application]]:
    """The service on one database, configured as asked (several may run on it: a restart, another process)."""
    made: list[Application] = []

    def make(sinks: tuple[str, ...] = ("spreadsheet", "database"), **overrides: Any) -> Application:
        values: dict[str, Any] = {"interim_sinks": list(sinks), "interim_database_url": interim_url, **overrides}
        settings = make_settings(database_url, tmp_path, **values)
        app = bootstrap(settings, run_migrations=True)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()  # its sinks too


def apply(app: Application, *events: dict[str, Any]) -> None:
    for event in events:
        app.tenure_events.handle(parse_envelope(event))


def master(app: Application, tenure_id: str) -> Account:
    accounts = app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)
    assert len(accounts) == 1, accounts
    return accounts[0]


def pending(app: Application, sink: str) -> int:
    with app.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(t.interim_pending).where(t.interim_pending.c.sink == sink)
        return int(connection.execute(query).scalar_one())


def last_error(app: Application, sink: str) -> str | None:
    with app.engine.connect() as connection:
        query = sa.select(t.interim_sinks.c.last_error).where(t.interim_sinks.c.sink == sink)
        return connection.execute(query).scalar()  # type: ignore[no-any-return]


# The workbook, as finance users open it ------------------------------------------------------------


def workbook_tabs(path: Path) -> dict[str, list[Cells]]:
    """Every tab's rows (header first), read with openpyxl."""
    workbook = openpyxl.load_workbook(path)
    try:
        return {sheet.title: [tuple(row) for row in sheet.iter_rows(values_only=True)] for sheet in workbook.worksheets}
    finally:
        workbook.close()


def workbook_rows(path: Path) -> dict[str, tuple[str, Cells]]:
    """Payment ref -> (tab, row); fails on a payment ref that appears twice."""
    found: dict[str, tuple[str, Cells]] = {}
    for tab, rows in workbook_tabs(path).items():
        for row in rows[1:]:
            assert row[0] not in found, f"{row[0]} appears on {found[row[0]][0]} and on {tab}"
            found[row[0]] = (tab, row)
    return found


def assert_finance_workbook(path: Path) -> dict[str, list[Cells]]:
    """The interim loader's format, read-only: every tab, exact headers, protected sheets, no write bits."""
    tabs = workbook_tabs(path)
    assert list(tabs) == TABS
    for tab, rows in tabs.items():
        assert rows[0] == HEADERS, tab
        refs = [row[0] for row in rows[1:]]
        assert refs == sorted(refs), f"{tab} is not in payment ref order"
    workbook = openpyxl.load_workbook(path)
    try:
        assert all(sheet.protection.sheet for sheet in workbook.worksheets)
    finally:
        workbook.close()
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o222 == 0, oct(os.stat(path).st_mode)
    assert [entry.name for entry in path.parent.iterdir() if entry.name.startswith(f".{path.name}.")] == []
    return tabs


def dmy(iso: str | None) -> str | None:
    """An ISO date (or date-time) as the sheet shows it: dd/MM/yyyy."""
    if not iso or iso.startswith("1900-01-01"):
        return None
    year, month, day = iso[:10].split("-")
    return f"{day}/{month}/{year}"


def expected_cells(tenure: dict[str, Any], payment_ref: str) -> tuple[str, Cells]:
    """The tab and the row the issue says a tenure gets, from the tenure itself (fixture shapes)."""
    code = tenure["tenureType"]["code"]
    asset = tenure["tenuredAsset"]
    full_address = asset["fullAddress"]
    head, _, post_code = full_address.rpartition(" ")  # the fixtures end every address with "... London E8 1DY"
    head, _, outward = head.rpartition(" ")
    address = head.rstrip(", ")
    post_code = f"{outward} {post_code}"
    first = next(member for member in tenure["householdMembers"] if member["isResponsible"])
    title, forename, surname = first["fullName"].split(" ", 2)  # fixture names: "Title Forename Surname"
    row = (
        payment_ref,
        code,
        dmy(tenure["startOfTenureDate"]),
        dmy(tenure.get("endOfTenureDate")),
        asset["propertyReference"],
        address.split(",")[0],
        address,
        post_code,
        None,
        title,
        forename,
        surname,
        dmy(first["dateOfBirth"]),
    )
    return EXPECTED_RENT_GROUPS.get(code) or "NoInterimRentGroup", row


# The interim database ------------------------------------------------------------------------


def interim_rows(url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(tenancy_agreement.name):
                return {}
            return {row.payment_ref: row._asdict() for row in connection.execute(sa.select(tenancy_agreement))}
    finally:
        engine.dispose()


def execute(url: str, *statements: Any) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT" if url.startswith("postgresql") else None)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement) if isinstance(statement, str) else statement)
    finally:
        engine.dispose()


@contextlib.contextmanager
def interim_database_down(app: Application, url: str) -> Iterator[None]:
    """The interim database unreachable, its data kept: renamed away (PostgreSQL) or its directory moved (SQLite)."""
    database = sa.engine.make_url(url).database or ""
    if url.startswith("sqlite"):
        directory = Path(database).parent
        away = directory.with_name(directory.name + "-away")
        directory.rename(away)
        _dispose_database_sink(app)  # pooled connections would still reach the moved file
        try:
            yield
        finally:
            away.rename(directory)
        return
    server = url.rsplit("/", 1)[0] + "/postgres"
    _rename_database(server, database, f"{database}_away")
    try:
        yield
    finally:
        _rename_database(server, f"{database}_away", database)


def _rename_database(server: str, name: str, new_name: str) -> None:
    """Rename, first closing every session on it (a running flusher may reconnect in between: try again)."""
    for _ in range(50):
        try:
            execute(
                server,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                f'ALTER DATABASE "{name}" RENAME TO "{new_name}"',
            )
            return
        except sa.exc.OperationalError as error:
            if "being accessed by other users" not in str(error):
                raise
            time.sleep(0.05)
    raise AssertionError(f"could not rename database {name}")


def _dispose_database_sink(app: Application) -> None:
    for sink in app.sinks:
        if sink.name == "database":
            sink.close()
