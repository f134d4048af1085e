"""The interim finance sync through the service, on SQLite and PostgreSQL: tenure events and API
changes -> the sync table -> the workbook (read with openpyxl) and the interim database.

The worker's flushers are not running here: each test delivers with `flush_all`, the pass
the flusher makes, so what is pending at any moment is exact. tests/e2e/test_interim_worker.py
runs the same through the worker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from accounts.bootstrap import Application
from accounts.domain.account import AccountTenure, AccountType, Actor, PrimaryTenant, RentGroupType, TenureTypeRef
from accounts.service.accounts import NewAccount
from tests.fixtures.tenures import all_events, realistic_stories, story
from tests.integration.test_api_support import Api
from tests.integration.test_interim_sync_support import (  # noqa: F401 (fixtures)
    HEADERS,
    TABS,
    apply,
    assert_finance_workbook,
    expected_cells,
    interim_database_down,
    interim_rows,
    interim_url_fixture,
    last_error,
    make_app_fixture,
    master,
    pending,
    workbook_rows,
    workbook_tabs,
)

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")


def workbook(app: Application) -> Path:
    return app.settings.spreadsheet_path


def test_tenure_events_reach_the_workbook_in_the_interim_loaders_format(application: Application) -> None:
    stories = realistic_stories(18, seed=401)  # quiet, moved, retyped, household changes, ended
    stories.append(story(random.Random(402), tenure_type="ZZZ"))  # a tenure type with no rent group
    apply(application, *all_events(stories))

    application.interim.flush_all()

    tabs = assert_finance_workbook(workbook(application))
    rows = workbook_rows(workbook(application))
    assert len(rows) == len(stories)
    for tale in stories:
        ref = master(application, tale.tenure_id).payment_reference
        tab, row = expected_cells(tale.tenure, ref)
        assert rows[ref] == (tab, row), tale.tenure_id
    assert [row[0] for row in tabs["NoInterimRentGroup"][1:]] == [
        master(application, stories[-1].tenure_id).payment_reference
    ]
    ended = [row for _, row in rows.values() if row[3] is not None]
    assert ended and all(row[3] == "31/01/2026" for row in ended)  # dd/MM/yyyy, text as the loader reads it


def test_a_tenure_update_rewrites_its_row_and_a_rent_group_change_moves_it(application: Application) -> None:
    rng = random.Random(403)
    tale = story(rng, tenure_type="SEC")
    apply(application, *tale.events)
    application.interim.flush_all()
    ref = master(application, tale.tenure_id).payment_reference
    assert workbook_rows(workbook(application))[ref][0] == "HousingRevenue"

    done = len(tale.events)
    tale.moved_to("Flat 9, 40 Amhurst Road, London E8 2PX").retyped("LEA").person_added(rng).person_removed(0)
    apply(application, *tale.events[done:])
    application.interim.flush_all()

    rows = workbook_rows(workbook(application))  # fails on a duplicate anywhere in the workbook
    assert list(rows) == [ref]
    assert rows[ref] == expected_cells(tale.tenure, ref)
    assert rows[ref][0] == "LHServCharges"
    assert rows[ref][1][5:8] == ("Flat 9", "Flat 9, 40 Amhurst Road, London", "E8 2PX")
    assert workbook_tabs(workbook(application))["HousingRevenue"] == [HEADERS]


def test_an_account_created_on_the_api_without_a_tenure_copy_still_gets_a_row(application: Application) -> None:
    tenure_id = uuid4()
    account = application.accounts.create(
        NewAccount(
            target_type="Tenure",
            target_id=tenure_id,
            account_type=AccountType.MASTER,
            rent_group_type=RentGroupType.TEMP_ACCOM_HRA,
            agreement_type="Master Account",
            start_date=datetime(2024, 2, 29, tzinfo=UTC),
            tenure=AccountTenure(
                tenure_id=tenure_id,
                tenure_type=TenureTypeRef("TGA", "Temp Hostel"),
                full_address="Room 4, 1 Well Street, London E9 6NS",
                primary_tenants=(PrimaryTenant(uuid4(), "Dr Adaeze Okafor"),),
            ),
        ),
        OFFICER,
        uuid4(),
    )
    # Accounts that are not a tenure's Master account are not tenancy agreements.
    application.accounts.create(
        NewAccount(target_type="Tenure", target_id=tenure_id, account_type=AccountType.SUNDRY), OFFICER, uuid4()
    )
    # Over HTTP, the body the existing clients send: rent group "Tenant" has no tab of its own.
    other = Api(application).create()

    application.interim.flush_all()

    rows = workbook_rows(workbook(application))
    assert rows == {
        account.payment_reference: (
            "TempAccomHRA",
            (
                account.payment_reference,
                "TGA",
                "29/02/2024",
                None,
                None,  # the property ref and the date of birth are known from a tenure copy only
                "Room 4",
                "Room 4, 1 Well Street, London",
                "E9 6NS",
                None,
                "Dr",
                "Adaeze",
                "Okafor",
                None,
            ),
        ),
        other["paymentReference"]: (
            "NoInterimRentGroup",
            (
                other["paymentReference"],
                "SEC",
                None,
                None,
                None,
                "Flat 3",
                "Flat 3, 12 Hillman Street, London",
                "E8 1DY",
                None,
                "Ms",
                "Jane",
                "Smith",
                None,
            ),
        ),
    }


def test_a_payment_reference_corrected_on_the_api_moves_the_row_in_both_sinks(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    app = make_app()
    app.interim.enable_sinks()
    tale = story(random.Random(404), tenure_type="TGA")
    apply(app, *tale.events)
    app.interim.flush_all()
    old = master(app, tale.tenure_id)
    assert list(interim_rows(interim_url)) == [old.payment_reference]

    api = Api(app)
    patch = [{"op": "replace", "path": "paymentReference", "value": "2000000017", "operationType": 2}]
    response = api.patch(str(old.id), patch, content_type="application/json")
    assert response.status_code == 200, response.text
    assert pending(app, "database") == 2  # the new key to write, the old one to remove
    app.interim.flush_all()

    _, expected = expected_cells(tale.tenure, "2000000017")
    assert workbook_rows(workbook(app)) == {"2000000017": ("TempAccomHRA", expected)}
    stored = interim_rows(interim_url)
    assert list(stored) == ["2000000017"]
    assert stored["2000000017"]["rent_group"] == "TempAccomHRA"
    assert stored["2000000017"]["surname"] == expected[11]
    assert pending(app, "database") == pending(app, "spreadsheet") == 0


def test_an_account_that_stops_being_a_tenure_master_account_leaves_both_sinks(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    app = make_app()
    app.interim.enable_sinks()
    tales = [story(random.Random(405 + n), tenure_type="SEC") for n in range(2)]
    apply(app, *all_events(tales))
    app.interim.flush_all()
    leaving, staying = (master(app, tale.tenure_id) for tale in tales)

    response = Api(app).patch(str(leaving.id), {"accountType": "Sundry"})
    assert response.status_code == 200, response.text
    app.interim.flush_all()

    assert list(workbook_rows(workbook(app))) == [staying.payment_reference]
    assert list(interim_rows(interim_url)) == [staying.payment_reference]

    response = Api(app).patch(str(leaving.id), {"accountType": "Master"})  # and back again
    assert response.status_code == 200, response.text
    app.interim.flush_all()
    both = sorted([leaving.payment_reference, staying.payment_reference])
    assert sorted(workbook_rows(workbook(app))) == both
    assert sorted(interim_rows(interim_url)) == both


def test_both_sinks_in_parallel_hold_the_same_rows(make_app: Callable[..., Application], interim_url: str) -> None:
    app = make_app()
    app.interim.enable_sinks()
    stories = realistic_stories(30, seed=406)
    apply(app, *all_events(stories))
    app.interim.flush_all()

    sheet = {ref: (tab, row) for ref, (tab, row) in workbook_rows(workbook(app)).items()}
    stored = interim_rows(interim_url)
    assert sorted(sheet) == sorted(stored) == sorted(master(app, tale.tenure_id).payment_reference for tale in stories)
    for ref, (tab, row) in sheet.items():
        record = stored[ref]
        assert record["rent_group"] == tab
        assert (record["tenure"], record["property_ref"], record["surname"]) == (row[1], row[4], row[11])
        start = record["start_date"]
        assert f"{start.day:02}/{start.month:02}/{start.year}" == row[2]
    assert app.interim.rebuild().pending == {"spreadsheet": 0, "database": 0}


def test_the_database_sink_catches_up_after_an_outage_and_account_updates_never_wait(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    app = make_app()
    app.interim.enable_sinks()
    rng = random.Random(407)
    first = [story(rng) for _ in range(5)]
    apply(app, *all_events(first))
    app.interim.flush_all()
    assert len(interim_rows(interim_url)) == 5

    with interim_database_down(app, interim_url):
        later = [story(rng) for _ in range(7)]
        apply(app, *all_events(later))  # the listener goes on: every change commits
        first[0].moved_to("77 Mare Street, London E8 3RH")
        apply(app, first[0].events[-1])
        app.interim.flush_all()  # the workbook is delivered; the database sink fails and keeps its rows
        assert pending(app, "database") == 8
        assert pending(app, "spreadsheet") == 0
        assert "interim database" in (last_error(app, "database") or "")
        assert len(workbook_rows(workbook(app))) == 12
        app.interim.flush_all()  # still down: still pending, nothing lost
        assert pending(app, "database") == 8

    app.interim.flush_all()

    assert pending(app, "database") == 0
    assert last_error(app, "database") is None
    stored = interim_rows(interim_url)
    for tale in first + later:
        ref = master(app, tale.tenure_id).payment_reference
        assert stored[ref]["address"] == expected_cells(tale.tenure, ref)[1][6]
    assert len(stored) == 12


def test_a_recreated_empty_interim_database_gets_its_tables_back(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    """Restored from nothing (or a fresh server): the sink creates its tables again; `rebuild` refills it."""
    from tests.integration.test_interim_sync_support import execute

    app = make_app(sinks=("database",))
    app.interim.enable_sinks()
    apply(app, *story(random.Random(408)).events)
    app.interim.flush_all()
    execute(interim_url, "DROP TABLE tenancy_agreement", "DROP TABLE tenancy_agreement_staging")

    tale = story(random.Random(409))
    apply(app, *tale.events)
    app.interim.flush_all()  # fails on the missing tables, and keeps the row
    assert pending(app, "database") == 1
    app.interim.flush_all()  # the next pass creates them again
    assert list(interim_rows(interim_url)) == [master(app, tale.tenure_id).payment_reference]

    report = app.interim.rebuild()
    assert report.pending == {"database": 0}
    assert len(interim_rows(interim_url)) == 2


def test_a_sink_switched_on_later_gets_every_row_and_one_switched_off_for_a_while_misses_nothing(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    rng = random.Random(410)
    spreadsheet_only = make_app(sinks=("spreadsheet",))
    spreadsheet_only.interim.enable_sinks()
    tales = [story(rng) for _ in range(4)]
    apply(spreadsheet_only, *all_events(tales))
    spreadsheet_only.interim.flush_all()

    # Phase 2 starts: the database is added by configuration alone, and gets every existing row.
    both = make_app()
    assert both.interim.enable_sinks() == ["database"]
    both.interim.flush_all()
    assert len(interim_rows(interim_url)) == 4

    # The database sink switched off (the API process, say, still has the old configuration)...
    tales[1].moved_to("3 Pembury Road, London E5 8QD")
    apply(spreadsheet_only, tales[1].events[-1])
    late = story(rng)
    apply(spreadsheet_only, *late.events)
    spreadsheet_only.interim.flush_all()
    # ...and switched on again: what changed meanwhile is owed to it all the same.
    both.interim.enable_sinks()
    both.interim.flush_all()

    stored = interim_rows(interim_url)
    assert len(stored) == 5
    ref = master(both, tales[1].tenure_id).payment_reference
    assert stored[ref]["short_address"] == "3 Pembury Road"
    assert master(both, late.tenure_id).payment_reference in stored


def test_rebuild_after_the_workbook_is_deleted_writes_it_again_identically(application: Application) -> None:
    apply(application, *all_events(realistic_stories(12, seed=411)))
    application.interim.flush_all()
    path = workbook(application)
    before = workbook_tabs(path)
    path.unlink()

    report = application.interim.rebuild()

    assert report.pending == {"spreadsheet": 0}
    assert_finance_workbook(path)
    assert workbook_tabs(path) == before


def test_a_deleted_workbook_is_written_again_by_the_next_flush(application: Application) -> None:
    apply(application, *story(random.Random(412)).events)
    application.interim.flush_all()
    before = workbook_tabs(workbook(application))
    workbook(application).unlink()

    assert application.interim.flush(application.interim.sinks[0]) == 0  # nothing was pending...
    assert workbook_tabs(workbook(application)) == before  # ...but the workbook is back


def test_rebuild_with_no_accounts_writes_an_empty_workbook(application: Application) -> None:
    application.interim.rebuild()
    tabs = assert_finance_workbook(workbook(application))
    assert all(rows == [HEADERS] for rows in tabs.values())
    assert list(tabs) == TABS


def test_text_the_databases_cannot_hold_never_fails_the_account_change(
    make_app: Callable[..., Application], interim_url: str
) -> None:
    """An overlong address or a NUL in a name would fail the account change (PostgreSQL) or stall the sink."""
    app = make_app()
    app.interim.enable_sinks()
    tale = story(random.Random(413), tenure_type="SEC")
    tale.tenure["tenuredAsset"]["fullAddress"] = "Flat 1, " + "Very Long Building Name " * 40 + "London E8 1DY"
    tale.tenure["tenuredAsset"]["propertyReference"] = "P" * 30
    tale.tenure["householdMembers"][0]["fullName"] = "Ms Nul\x00l Byte" + "x" * 150
    tale.tenure["householdMembers"][0]["dateOfBirth"] = "not a date"
    tale.events[0]["eventData"]["newData"] = tale.tenure
    apply(app, *tale.events)
    app.interim.flush_all()

    ref = master(app, tale.tenure_id).payment_reference
    tab, row = workbook_rows(workbook(app))[ref]
    assert tab == "HousingRevenue"
    assert row[7] == "E8 1DY" and len(row[6]) <= 500 and row[4] == "P" * 20
    assert row[10] == "Null" and len(row[11]) == 100 and row[12] is None
    assert pending(app, "database") == 0
    assert interim_rows(interim_url)[ref]["forename"] == "Null"


def test_a_workbook_that_cannot_be_written_keeps_its_rows_and_catches_up(
    make_app: Callable[..., Application], tmp_path: Path
) -> None:
    """A full disk or a missing share: the account changes go on, the workbook follows when it can."""
    blocked = tmp_path / "share"
    blocked.write_text("not a directory: the workbook cannot be written under it")
    app = make_app(sinks=("spreadsheet",), spreadsheet_path=blocked / "interim.xlsx")
    app.interim.enable_sinks()
    tales = [story(random.Random(414 + n)) for n in range(3)]
    apply(app, *all_events(tales))

    app.interim.flush_all()
    assert pending(app, "spreadsheet") == 3
    assert (last_error(app, "spreadsheet") or "").startswith(("FileExistsError", "NotADirectoryError"))

    blocked.unlink()  # the share is back
    apply(app, *story(random.Random(417)).events)
    app.interim.flush_all()

    assert pending(app, "spreadsheet") == 0
    assert len(workbook_rows(blocked / "interim.xlsx")) == 4
    assert_finance_workbook(blocked / "interim.xlsx")
