"""`accounts interim reconcile | rebuild | import-sheet` on SQLite and PostgreSQL, on agreeing and on
deliberately drifted data: the interim database edited behind our back, a drifted workbook,
rows deleted, the sync table itself stale."""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application
from accounts.entrypoints import cli
from tests.fixtures.tenures import all_events, realistic_stories, story
from tests.integration.test_interim_sync_support import (  # noqa: F401 (fixtures)
    HEADERS,
    apply,
    execute,
    interim_rows,
    interim_url_fixture,
    make_app_fixture,
    master,
    workbook_tabs,
)


def reconcile(app: Application, capsys: pytest.CaptureFixture[str], **overrides: object) -> tuple[int, list[str]]:
    settings = app.settings.model_copy(update=overrides) if overrides else app.settings
    code = cli.cmd_interim_reconcile(settings, argparse.Namespace(limit=200))
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture
def synced(make_app: Callable[..., Application]) -> tuple[Application, list[str]]:
    """Both sinks delivered: eight tenure accounts; their payment refs in order."""
    app = make_app()
    app.interim.enable_sinks()
    stories = realistic_stories(8, seed=501)
    apply(app, *all_events(stories))
    app.interim.flush_all()
    return app, sorted(master(app, tale.tenure_id).payment_reference for tale in stories)


def test_agreeing_accounts_workbook_and_interim_database_exit_0(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = synced
    code, lines = reconcile(app, capsys)
    assert code == 0, lines
    assert lines == ["the accounts agree with: sync-table, spreadsheet, database"]


def test_a_drifted_interim_database_is_reported_row_by_row_with_field_names(
    synced: tuple[Application, list[str]], interim_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app, refs = synced
    changed, deleted = refs[0], refs[1]
    before = interim_rows(interim_url)
    tab = "GarParkHRA" if before[changed]["rent_group"] != "GarParkHRA" else "TravelGenFund"
    execute(
        interim_url,
        f"UPDATE tenancy_agreement SET surname = 'Edited', rent_group = '{tab}' WHERE payment_ref = '{changed}'",
        f"DELETE FROM tenancy_agreement WHERE payment_ref = '{deleted}'",
        "INSERT INTO tenancy_agreement (payment_ref, rent_group, tenure, property_ref, short_address, address, "
        "post_code, title, forename, surname, loaded_at) VALUES ('9999999999', 'HousingRevenue', 'SEC', '', '', '', "
        "'', '', '', 'Nobody', CURRENT_TIMESTAMP)",
    )

    code, lines = reconcile(app, capsys)

    assert code == 1
    assert lines == [
        f"database: {changed} changed: Rent Group (tab) expected '{before[changed]['rent_group']}', found '{tab}'; "
        f"Surname expected '{before[changed]['surname']}', found 'Edited'",
        f"database: {deleted} missing (expected on {before[deleted]['rent_group']})",
        "database: 9999999999 extra: no tenure account has this payment ref (found on HousingRevenue)",
        "3 difference(s) (1 changed, 1 extra, 1 missing) between the accounts and: sync-table, spreadsheet, database",
    ]

    # `rebuild` puts it right: rows rewritten, the stray row removed.
    assert cli.cmd_interim_rebuild(app.settings, argparse.Namespace()) == 0
    assert "removed 1 row(s) no account has from database" in capsys.readouterr().out
    assert reconcile(app, capsys)[0] == 0


def drift_workbook(path: Path, change: Callable[[dict[str, list[list[object]]]], None]) -> None:
    """Rewrite the workbook by hand, as someone editing a copy in Excel would, changed by `change`."""
    tabs = {tab: [list(row) for row in rows] for tab, rows in workbook_tabs(path).items()}
    change(tabs)
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for tab, rows in tabs.items():
        sheet = workbook.create_sheet(tab)
        for row in rows:
            sheet.append(row)
    os.chmod(path, 0o644)
    workbook.save(path)


def test_a_drifted_workbook_is_reported_row_by_row_with_field_names(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    app, refs = synced
    path = app.settings.spreadsheet_path
    located = {row[0]: tab for tab, rows in workbook_tabs(path).items() for row in rows[1:]}
    moved, dated, deleted, doubled = refs[:4]
    target = "GarParkHRA" if located[moved] != "GarParkHRA" else "TravelGenFund"
    originals: dict[str, list[object]] = {}

    def change(tabs: dict[str, list[list[object]]]) -> None:
        added: list[tuple[str, list[object]]] = []
        for rows in tabs.values():
            for row in list(rows[1:]):
                if row[0] == moved:
                    rows.remove(row)
                    added.append((target, row))
                elif row[0] == dated:
                    originals[dated] = list(row)
                    row[2] = "01/01/1999"
                    row[12] = "31/12/1950"
                elif row[0] == deleted:
                    rows.remove(row)
                elif row[0] == doubled:
                    added.append(("NoInterimRentGroup", list(row)))
        added.append(("TempAccomHRA", ["1234567890", "SEC", "01/04/2020", None, None, None, None, None, None]))
        for tab, row in added:
            tabs[tab].append(row)

    drift_workbook(path, change)

    code, lines = reconcile(app, capsys)

    assert code == 1
    spreadsheet = sorted(line for line in lines if line.startswith("spreadsheet: "))
    assert (
        f"spreadsheet: {moved} changed: Rent Group (tab) expected '{located[moved]}', found '{target}'" in spreadsheet
    )
    start, birth = originals[dated][2], originals[dated][12]
    assert (
        f"spreadsheet: {dated} changed: Start Date expected {start}, found 01/01/1999; "
        f"Date Of Birth expected {birth}, found 31/12/1950" in spreadsheet
    )
    assert f"spreadsheet: {deleted} missing (expected on {located[deleted]})" in spreadsheet
    assert f"spreadsheet: {doubled} duplicate: 2 rows, on {located[doubled]}, NoInterimRentGroup" in spreadsheet
    assert (
        "spreadsheet: 1234567890 extra: no tenure account has this payment ref (found on TempAccomHRA)" in spreadsheet
    )
    assert len(spreadsheet) == 5
    assert not [line for line in lines if line.startswith("database: ")]  # the database agrees
    assert lines[-1].startswith("5 difference(s) (2 changed, 1 duplicate, 1 extra, 1 missing)")


def test_a_missing_workbook_or_an_unreachable_interim_database_is_a_disagreement(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    app, refs = synced
    app.settings.spreadsheet_path.unlink()
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/interim"

    code, lines = reconcile(app, capsys, interim_database_url=unreachable)

    assert code == 1
    missing = [line for line in lines if line.startswith("spreadsheet: ")]
    assert [line.split(" ")[1:3] for line in missing] == [[ref, "missing"] for ref in refs]
    assert any(line.startswith("database: could not be read: TransientError: interim database") for line in lines)


def test_a_stale_sync_table_is_reported_and_rebuild_brings_it_back_from_the_accounts(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str], interim_url: str
) -> None:
    """What an upgrade that changes the row layout leaves behind: sync rows the accounts no longer give."""
    app, refs = synced
    with app.engine.begin() as connection:
        connection.execute(t.interim_rows.update().where(t.interim_rows.c.payment_ref == refs[0]).values(surname="Old"))
        connection.execute(t.interim_rows.delete().where(t.interim_rows.c.payment_ref == refs[1]))
    app.interim.rebuild()  # would write the stale rows... were they not first brought back in line
    with app.engine.begin() as connection:
        connection.execute(t.interim_rows.update().where(t.interim_rows.c.payment_ref == refs[2]).values(forename="X"))

    code, lines = reconcile(app, capsys)
    assert code == 1
    assert [line.split(":")[0] for line in lines[:-1]] == ["sync-table"]
    assert lines[0].startswith(f"sync-table: {refs[2]} changed: Forename expected ")

    assert cli.cmd_interim_rebuild(app.settings, argparse.Namespace()) == 0
    assert "1 sync row(s) corrected from the accounts" in capsys.readouterr().out
    assert reconcile(app, capsys) == (0, ["the accounts agree with: sync-table, spreadsheet, database"])
    assert sorted(interim_rows(interim_url)) == refs


def test_import_sheet_loads_the_workbook_into_an_interim_database(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app, refs = synced
    fresh = f"sqlite:///{tmp_path / 'fresh-interim.db'}"
    sheet = str(app.settings.spreadsheet_path)

    code = cli.cmd_interim_import_sheet(app.settings, argparse.Namespace(file=sheet, database_url=fresh))
    assert code == 0
    assert f"loaded {len(refs)} tenancy agreement row(s)" in capsys.readouterr().out
    assert reconcile(app, capsys, interim_database_url=fresh)[0] == 0
    # Loading the same workbook again changes nothing (a merge by payment ref).
    assert cli.cmd_interim_import_sheet(app.settings, argparse.Namespace(file=sheet, database_url=fresh)) == 0
    assert sorted(interim_rows(fresh)) == refs


def test_import_sheet_refuses_a_workbook_with_a_payment_ref_twice_or_not_a_workbook(
    synced: tuple[Application, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app, refs = synced
    path = app.settings.spreadsheet_path
    fresh = f"sqlite:///{tmp_path / 'fresh-interim.db'}"

    drift_workbook(path, lambda tabs: tabs["GarParkHRA"].append([refs[0], "SEC"]))
    code = cli.cmd_interim_import_sheet(app.settings, argparse.Namespace(file=str(path), database_url=fresh))
    assert code == 1
    error = capsys.readouterr().err
    assert f"payment ref {refs[0]} appears 2 times" in error
    assert interim_rows(fresh) == {}

    text = tmp_path / "notes.xlsx"
    text.write_text("not a workbook")
    assert cli.cmd_interim_import_sheet(app.settings, argparse.Namespace(file=str(text), database_url=fresh)) == 2
    assert "not an .xlsx workbook" in capsys.readouterr().err


def test_reconcile_without_an_interim_database_checks_the_workbook_alone(
    make_app: Callable[..., Application], capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(sinks=("spreadsheet",), interim_database_url=None)
    apply(app, *story(random.Random(502)).events)
    app.interim.flush_all()
    assert reconcile(app, capsys) == (0, ["the accounts agree with: sync-table, spreadsheet"])
