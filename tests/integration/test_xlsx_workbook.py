"""The interim workbook on a real disk, checked with openpyxl rather than our own reader."""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from accounts.adapters.sinks.xlsx_workbook import XlsxWorkbookSink, read_workbook
from accounts.domain.interim import HEADERS, SHEET_TABS, UNMAPPED_TAB, InterimRow

EXPECTED_TABS = [
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

FULL = InterimRow(
    payment_ref="0123456789",
    rent_group="HousingRevenue",
    tenure="SEC",
    start_date=date(2021, 4, 5),
    end_date=date(2023, 12, 31),
    property_ref="00012345",
    short_address="Flat 1",
    address="Flat 1, 10 Mare Street, London",
    post_code="E8 1DY",
    num_bedrooms=2,
    title="Mrs",
    forename="Ada",
    surname="Lovelace",
    date_of_birth=date(1960, 1, 2),
)


def sample_rows() -> list[InterimRow]:
    return [
        FULL,
        # Sorted before FULL on its tab; blanks everywhere the dataclass allows them.
        InterimRow(payment_ref="0000000017", rent_group="HousingRevenue"),
        replace(FULL, payment_ref="1000000001", rent_group="GarParkHRA", num_bedrooms=None, end_date=None),
        replace(FULL, payment_ref="1000000002", rent_group="TravelGenFund", title="", forename=""),
        replace(FULL, payment_ref="1000000003", rent_group=UNMAPPED_TAB, tenure="", num_bedrooms=0),
        # Text that must come back exactly: markup, edge spaces, Excel's own escape, a formula.
        replace(
            FULL,
            payment_ref="1000000004",
            rent_group="LHMajorWorks",
            short_address="  Flat <2> & Co ",
            address="1 Road_x000D_Lane, Zoë's Court\nLondon",
            surname="=SUM(A1:A2)",
            forename="0042",
        ),
    ]


def sheet_values(path: Path) -> dict[str, list[tuple[object, ...]]]:
    workbook = openpyxl.load_workbook(path)
    try:
        return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}
    finally:
        workbook.close()


def leftovers(directory: Path, target: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry != target)


def test_writes_every_tab_with_headers_and_sorted_rows(tmp_path: Path) -> None:
    path = tmp_path / "interim.xlsx"
    XlsxWorkbookSink(path).deliver(sample_rows())

    values = sheet_values(path)
    assert list(values) == EXPECTED_TABS == list(SHEET_TABS)
    for tab in EXPECTED_TABS:
        assert values[tab][0] == HEADERS, tab
    housing_revenue = values["HousingRevenue"][1:]
    assert [row[0] for row in housing_revenue] == ["0000000017", "0123456789"]
    assert housing_revenue[1] == (
        "0123456789",
        "SEC",
        "05/04/2021",
        "31/12/2023",
        "00012345",
        "Flat 1",
        "Flat 1, 10 Mare Street, London",
        "E8 1DY",
        2,
        "Mrs",
        "Ada",
        "Lovelace",
        "02/01/1960",
    )
    assert housing_revenue[0] == ("0000000017",) + (None,) * 12  # blanks are empty cells
    assert values["GarParkHRA"][1][8] is None
    assert values[UNMAPPED_TAB][1][:2] == ("1000000003", None)
    assert values[UNMAPPED_TAB][1][8] == 0
    assert values["LHMajorWorks"][1][5] == "  Flat <2> & Co "
    assert values["LHMajorWorks"][1][11] == "=SUM(A1:A2)"  # text, not a formula
    assert values["HousingGenFund"] == [HEADERS]  # a tab without rows is still there


def test_workbook_is_protected_and_read_only_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "interim.xlsx"
    XlsxWorkbookSink(path).deliver(sample_rows())

    workbook = openpyxl.load_workbook(path)
    try:
        assert all(sheet.protection.sheet for sheet in workbook.worksheets)
        assert workbook.worksheets[0].freeze_panes == "A2"
    finally:
        workbook.close()
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o222 == 0
    assert leftovers(tmp_path, path) == []


def test_redelivery_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "interim.xlsx"  # the directory is created
    sink = XlsxWorkbookSink(path)
    rows = sample_rows()
    sink.deliver(rows)
    before = os.stat(path).st_ino

    moved = replace(rows[2], rent_group="TempAccomHRA")
    changed = replace(FULL, surname="Byron", num_bedrooms=3)
    sink.deliver([changed, rows[1], moved, *rows[3:]])

    values = sheet_values(path)
    assert os.stat(path).st_ino != before  # a new file renamed over the old, read-only one
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o222 == 0
    appearances = [tab for tab, tab_rows in values.items() for row in tab_rows if row[0] == moved.payment_ref]
    assert appearances == ["TempAccomHRA"]
    assert values["GarParkHRA"] == [HEADERS]
    full = [row for row in values["HousingRevenue"] if row[0] == FULL.payment_ref]
    assert len(full) == 1
    assert (full[0][8], full[0][11]) == (3, "Byron")
    assert leftovers(path.parent, path) == []


def test_read_rows_round_trips_exactly(tmp_path: Path) -> None:
    sink = XlsxWorkbookSink(tmp_path / "interim.xlsx")
    assert sink.read_rows() == []  # not written yet
    rows = sample_rows()
    sink.deliver(rows)

    def key(row: InterimRow) -> tuple[int, str]:
        return SHEET_TABS.index(row.rent_group), row.payment_ref

    assert sink.read_rows() == sorted(rows, key=key)


def test_a_repeated_payment_ref_keeps_its_last_row(tmp_path: Path) -> None:
    sink = XlsxWorkbookSink(tmp_path / "interim.xlsx")
    sink.deliver([FULL, replace(FULL, rent_group="TempAccGenFun", surname="Last")])
    assert sink.read_rows() == [replace(FULL, rent_group="TempAccGenFun", surname="Last")]


def test_a_large_workbook_round_trips(tmp_path: Path) -> None:
    rows = [
        replace(FULL, payment_ref=f"{number:010d}", rent_group=SHEET_TABS[number % len(SHEET_TABS)])
        for number in range(3000)
    ]
    sink = XlsxWorkbookSink(tmp_path / "interim.xlsx")
    sink.deliver(rows)
    assert sorted(sink.read_rows(), key=lambda row: row.payment_ref) == rows


def test_a_reader_never_sees_a_half_written_workbook(tmp_path: Path) -> None:
    path = tmp_path / "interim.xlsx"
    sink = XlsxWorkbookSink(path)
    sink.deliver([FULL])
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read_repeatedly() -> None:
        while not done.is_set():
            try:
                seen.append(len(read_workbook(path)))
            except BaseException as error:
                errors.append(error)
                return

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    sizes = (400, 10, 800, 1)
    deadline = time.monotonic() + 20
    try:
        # Keep swapping workbooks of different sizes under the reader until it has read plenty.
        while len(seen) < 30 and not errors and time.monotonic() < deadline:
            for size in sizes:
                sink.deliver([replace(FULL, payment_ref=f"{number:010d}") for number in range(size)])
    finally:
        done.set()
        reader.join()
    assert errors == []
    assert len(seen) >= 30
    assert set(seen) <= set(sizes)  # always one whole workbook or another


def test_failed_delivery_leaves_the_old_workbook_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "interim.xlsx"
    sink = XlsxWorkbookSink(path)
    sink.deliver([FULL])
    with pytest.raises(ValueError):  # fails half-way through writing the rows
        sink.deliver([replace(FULL, num_bedrooms="two")])  # type: ignore[arg-type]
    assert sink.read_rows() == [FULL]
    assert leftovers(tmp_path, path) == []


def write_workbook(path: Path, tabs: dict[str, list[tuple[object, ...]]]) -> None:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for tab, rows in tabs.items():
        sheet = workbook.create_sheet(tab)
        for row in rows:
            sheet.append(row)
    workbook.save(path)


def test_read_workbook_accepts_a_hand_made_workbook(tmp_path: Path) -> None:
    path = tmp_path / "from-finance.xlsx"
    write_workbook(
        path,
        {
            "TempAccomHRA": [
                HEADERS,
                ("0123456789", "SEC", "05/04/2021", None, "00012345", None, None, None, 2.0),
                (),  # an empty row in the middle is ignored
                (123456789, "", None, None, None, None, None, None, "3", None, None, None, "02/01/1960"),
            ]
        },
    )
    assert read_workbook(path) == [
        InterimRow(
            payment_ref="0123456789",
            rent_group="TempAccomHRA",
            tenure="SEC",
            start_date=date(2021, 4, 5),
            property_ref="00012345",
            num_bedrooms=2,
        ),
        InterimRow(payment_ref="123456789", rent_group="TempAccomHRA", num_bedrooms=3, date_of_birth=date(1960, 1, 2)),
    ]


def test_read_workbook_rejects_a_wrong_header_naming_the_tab(tmp_path: Path) -> None:
    path = tmp_path / "wrong.xlsx"
    wrong = list(HEADERS)
    wrong[2] = "Start"
    write_workbook(path, {"GarParkHRA": [HEADERS], "LHServCharges": [tuple(wrong)]})
    with pytest.raises(ValueError, match=r"'LHServCharges'.*column C.*'Start'.*'Start Date'"):
        read_workbook(path)


def test_read_workbook_rejects_a_missing_or_extra_header(tmp_path: Path) -> None:
    path = tmp_path / "short.xlsx"
    write_workbook(path, {"GarParkHRA": [HEADERS[:-1]]})
    with pytest.raises(ValueError, match=r"'GarParkHRA'.*column M.*None.*'Date Of Birth'"):
        read_workbook(path)
    write_workbook(path, {"GarParkHRA": [(*HEADERS, "Notes")]})
    with pytest.raises(ValueError, match=r"'GarParkHRA'.*'Notes'.*column N"):
        read_workbook(path)
    write_workbook(path, {"GarParkHRA": []})
    with pytest.raises(ValueError, match=r"'GarParkHRA'.*no headers"):
        read_workbook(path)


def test_read_workbook_rejects_an_unknown_tab(tmp_path: Path) -> None:
    path = tmp_path / "unknown.xlsx"
    write_workbook(path, {"GarParkHRA": [HEADERS], "Sheet1": [HEADERS]})
    with pytest.raises(ValueError, match=r"unknown tab 'Sheet1'"):
        read_workbook(path)


def test_read_workbook_names_the_cell_of_a_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "bad-date.xlsx"
    write_workbook(path, {"HousingRevenue": [HEADERS, ("0123456789", "SEC", "2021-04-05")]})
    with pytest.raises(ValueError, match=r"'HousingRevenue', cell C2: '2021-04-05' is not a dd/MM/yyyy date"):
        read_workbook(path)


def test_read_workbook_rejects_a_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "notes.xlsx"
    path.write_text("not a workbook")
    with pytest.raises(ValueError, match=r"not an \.xlsx workbook"):
        read_workbook(path)
