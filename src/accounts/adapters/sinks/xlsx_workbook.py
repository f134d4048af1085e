"""The interim finance spreadsheet: one workbook, a tab per rent group, rewritten whole.

Finance users open it to validate what the interim loader will take, so it is
written read-only (protected sheets, read-only on disk, "open read-only"
recommended) and swapped in atomically: a reader sees the old workbook or the
new one, never half of one.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

import openpyxl
import xlsxwriter
from openpyxl.utils.exceptions import InvalidFileException

from accounts.domain.interim import DATE_FORMAT, HEADERS, SHEET_TABS, UNMAPPED_TAB, InterimRow
from accounts.service.ports import InterimSink
from accounts.settings import Settings

# Characters wide, per header; wide enough for typical values without being unwieldy.
_COLUMN_WIDTHS = (12, 8, 11, 11, 12, 30, 50, 10, 13, 7, 20, 20, 13)
_COLUMNS = ("A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M")
_NUM_BEDROOMS = HEADERS.index("Num Bedrooms")
_READ_ONLY_MODE = 0o444
_EXCEL_MAX_ROWS = 1_048_576
_EXCEL_MAX_TEXT = 32_767
_CHUNK_ROWS = 2_000
# Level 1 deflate: about three times faster than the default, for a file about a quarter bigger.
_COMPRESS_LEVEL = 1
_SHARED_STRINGS = "xl/sharedStrings.xml"
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
# Characters XML 1.0 can't carry (lone surrogates can't even be encoded).
_XML_INVALID = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]")
_ESCAPE_LIKE = re.compile(r"(_x[0-9A-Fa-f]{4}_)")
# Anything in a string that needs escaping: markup characters, characters XML can't
# carry, "_xHHHH_" look-alikes, whitespace at either end (which Excel would trim).
_SUSPECT = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]|_x[0-9A-Fa-f]{4}_|^\s|\s$")
# A row's 13 cells (InterimRow.cells()), the way the workbook keeps them until they are written.
_Cells = tuple[Any, ...]


class XlsxWorkbookSink(InterimSink):
    """Rewrites the whole workbook from every row on each delivery."""

    name = "spreadsheet"
    rewrites_everything = True

    @classmethod
    def from_settings(cls, settings: Settings) -> XlsxWorkbookSink:
        return cls(settings.spreadsheet_path)

    @classmethod
    def has_copy(cls, settings: Settings) -> bool:
        """A workbook is there (written when the sink was on), so it can be checked."""
        return settings.spreadsheet_path.exists()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def deliver(self, rows: Iterable[InterimRow]) -> None:
        """Write every row to a temp file beside the target, then swap it in atomically.

        The rows may be streamed (an iterator straight from the database): each is taken
        down to its cells at once, so no more than one InterimRow is held at a time.

        The temp file lives in the same directory so os.replace is a rename on one
        filesystem (atomic), and is fsynced first so a crash cannot leave an empty
        workbook under the real name.
        """
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        temp_path = Path(temp_name)
        try:
            _write_workbook(temp_path, rows)
            with open(temp_path, "rb") as written:
                os.fsync(written.fileno())
            os.chmod(temp_path, _READ_ONLY_MODE)
            # Replacing needs write permission on the directory only, not on the old file.
            os.replace(temp_path, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp_path.unlink()
            raise
        _fsync_directory(directory)

    def remove(self, payment_refs: Sequence[str]) -> None:
        """Nothing to do: the next delivery rewrites the workbook without them."""

    def missing(self) -> bool:
        """The workbook is not there (deleted, or never written): the flusher writes it again."""
        return not self.path.exists()

    def read_rows(self) -> list[InterimRow]:
        """The rows in the workbook now; none when it has not been written yet."""
        if not self.path.exists():
            return []
        return read_workbook(self.path)


def _write_workbook(path: Path, rows: Iterable[InterimRow]) -> None:
    by_tab = _cells_by_tab(rows)
    for tab, tab_rows in by_tab.items():
        if len(tab_rows) >= _EXCEL_MAX_ROWS:
            raise ValueError(f"tab {tab!r} would have {len(tab_rows)} rows; Excel's limit is {_EXCEL_MAX_ROWS - 1}")

    skeleton = _skeleton(by_tab)
    with (
        zipfile.ZipFile(io.BytesIO(skeleton)) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as target,
    ):
        sheets = {f"xl/worksheets/sheet{index}.xml": tab for index, tab in enumerate(SHEET_TABS, start=1)}
        strings = _SharedStrings(source.read(_SHARED_STRINGS))
        for member in source.infolist():
            tab = sheets.pop(member.filename, "")
            if tab:
                _write_sheet_xml(target, member.filename, source.read(member).decode("utf-8"), by_tab[tab], strings)
            elif member.filename != _SHARED_STRINGS:
                target.writestr(member.filename, source.read(member))
        if sheets:
            raise RuntimeError(f"xlsxwriter wrote no {', '.join(sheets)}: has its package layout changed?")
        # Last, once every sheet has added its strings.
        with target.open(_SHARED_STRINGS, "w", force_zip64=True) as stream:
            strings.write(stream)


def _cells_by_tab(rows: Iterable[InterimRow]) -> dict[str, list[_Cells]]:
    """Each row's cells, by tab in tab order, by payment ref within a tab.

    Cells are kept rather than rows (a tuple instead of an object and three dates), and
    repeated texts (dates, tenure types, titles...) are stored once.
    """
    texts: dict[str, str] = {}
    intern = texts.setdefault
    # A repeated payment ref keeps its last row, as the upserting sinks do.
    latest: dict[str, tuple[str, _Cells]] = {}
    for row in rows:
        cells = tuple(intern(value, value) if value.__class__ is str else value for value in row.cells())
        latest[row.payment_ref] = (row.rent_group, cells)
    del texts
    by_tab: dict[str, list[_Cells]] = {tab: [] for tab in SHEET_TABS}
    for ref in sorted(latest):
        rent_group, cells = latest[ref]
        # A rent group without a tab still gets a place, so no account is silently dropped.
        by_tab[rent_group if rent_group in by_tab else UNMAPPED_TAB].append(cells)
    return by_tab


def _skeleton(by_tab: dict[str, list[_Cells]]) -> bytes:
    """The workbook without its data rows, from xlsxwriter: every part but the rows.

    xlsxwriter costs about 8 µs a cell, 9-10 s for 100,000 rows on a slow 2-core machine,
    so it writes only what is fiddly to get right for Excel (styles, protection, panes,
    filters, read-only recommendation) and the rows are streamed in by `_write_sheet_xml`.
    """
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.read_only_recommended()
    header_format = workbook.add_format({"bold": True})
    for tab, tab_rows in by_tab.items():
        worksheet = workbook.add_worksheet(tab)
        for column, width in enumerate(_COLUMN_WIDTHS):
            worksheet.set_column(column, column, width)
        worksheet.freeze_panes(1, 0)
        worksheet.autofilter(0, 0, len(tab_rows), len(HEADERS) - 1)
        # References are text on purpose (leading zeros); don't flag them in Excel.
        worksheet.ignore_errors({"number_stored_as_text": f"A:{_COLUMNS[-1]}"})
        worksheet.protect("", {"autofilter": True})
        worksheet.write_row(0, 0, HEADERS, header_format)
    workbook.close()
    return buffer.getvalue()


def _write_sheet_xml(
    target: zipfile.ZipFile, name: str, skeleton: str, rows: list[_Cells], strings: _SharedStrings
) -> None:
    """Stream the worksheet: xlsxwriter's XML with the data rows spliced in after the header."""
    header_dimension = f'<dimension ref="A1:{_COLUMNS[-1]}1"/>'
    head, marker, tail = skeleton.partition("</sheetData>")
    if not marker or header_dimension not in head:
        raise RuntimeError(f"unexpected worksheet XML from xlsxwriter in {name}")
    if rows:
        head = head.replace(header_dimension, f'<dimension ref="A1:{_COLUMNS[-1]}{len(rows) + 1}"/>', 1)
    with target.open(name, "w", force_zip64=True) as stream:
        stream.write(head.encode("utf-8"))
        for start in range(0, len(rows), _CHUNK_ROWS):
            stream.write(strings.rows_xml(rows[start : start + _CHUNK_ROWS], first_row=start + 2).encode("ascii"))
        stream.write((marker + tail).encode("utf-8"))


class _SharedStrings:
    """The workbook's shared-string table, starting from the skeleton's (the headers).

    Cells refer to strings by index, as Excel itself writes them: repeated values are
    stored once, the sheet XML needs no escaping, and openpyxl reads it back about
    40% faster than inline strings.
    """

    def __init__(self, skeleton_table: bytes) -> None:
        root = ElementTree.fromstring(skeleton_table)
        # In table order: a cell's <v> is a position in this list.
        self.strings = ["".join(t.text or "" for t in item.iter(f"{{{_MAIN_NS}}}t")) for item in root]
        self.index: dict[str, int] = {}
        for position, text in enumerate(self.strings):
            self.index.setdefault(text, position)
        self.references = int(root.get("count", "0"))

    def rows_xml(self, rows: list[_Cells], first_row: int) -> str:
        """SpreadsheetML for the rows, blank cells left out; adds their strings to the table."""
        columns = _COLUMNS
        index = self.index
        add_string = self.strings.append
        references = 0
        parts: list[str] = []
        append = parts.append
        for number, cells in enumerate(rows, start=first_row):
            append(f'<row r="{number}">')
            for column, value in enumerate(cells):
                if value == "":
                    continue
                if column == _NUM_BEDROOMS:
                    append(f'<c r="{columns[column]}{number}"><v>{int(value)}</v></c>')
                    continue
                position = index.get(value)
                if position is None:
                    position = index[value] = len(self.strings)
                    add_string(value)
                append(f'<c r="{columns[column]}{number}" t="s"><v>{position}</v></c>')
                references += 1
            append("</row>")
        self.references += references
        return "".join(parts)

    def write(self, stream: IO[bytes]) -> None:
        stream.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{_MAIN_NS}" '
            f'count="{self.references}" uniqueCount="{len(self.strings)}">'.encode()
        )
        parts: list[str] = []
        for text in self.strings:
            if len(text) <= _EXCEL_MAX_TEXT and _SUSPECT.search(text) is None:
                parts.append(f"<si><t>{text}</t></si>")
            else:
                parts.append(f"<si>{_text_element(text)}</si>")
            if len(parts) >= _CHUNK_ROWS:
                stream.write("".join(parts).encode("utf-8"))
                parts.clear()
        parts.append("</sst>")
        stream.write("".join(parts).encode("utf-8"))


def _text_element(value: str) -> str:
    """A <t> element for any string, escaped the way Excel reads it back unchanged."""
    value = value[:_EXCEL_MAX_TEXT]
    # Excel's own escape for characters XML 1.0 can't carry is _xHHHH_, so a literal
    # "_xHHHH_" in the data has its underscore escaped first.
    value = _ESCAPE_LIKE.sub(r"_x005F\1", value)
    value = _XML_INVALID.sub(lambda match: f"_x{ord(match.group()):04X}_", value)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if value[:1].isspace() or value[-1:].isspace():
        return f'<t xml:space="preserve">{value}</t>'
    return f"<t>{value}</t>"


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_workbook(path: Path) -> list[InterimRow]:
    """Every row of an interim workbook, checking it is one: known tabs, exact headers.

    Raises ValueError naming the tab (and cell) for anything the interim loader would
    not accept, so `import-sheet` and `reconcile` fail loudly on the wrong file.
    """
    try:
        workbook = openpyxl.load_workbook(Path(path), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError) as error:
        raise ValueError(f"{path} is not an .xlsx workbook: {error}") from error
    try:
        dates: dict[Any, date] = {}  # dates repeat a lot; parse each text once
        result: list[InterimRow] = []
        for worksheet in workbook.worksheets:
            tab = worksheet.title
            if tab not in SHEET_TABS:
                raise ValueError(f"{path}: unknown tab {tab!r}; the tabs are {', '.join(SHEET_TABS)}")
            # Dimensions recorded by other tools may be wrong; read what is really there.
            worksheet.reset_dimensions()
            result.extend(_read_sheet(tab, worksheet.iter_rows(values_only=True), dates))
        return result
    finally:
        workbook.close()


def _read_sheet(tab: str, values: Iterable[tuple[Any, ...]], dates: dict[Any, date]) -> list[InterimRow]:
    rows = iter(values)
    _check_header(tab, next(rows, None))
    width = len(HEADERS)
    result = []
    for row_number, raw in enumerate(rows, start=2):
        cells = raw if len(raw) == width else _padded(tab, row_number, raw)
        if (cells[0] is None or cells[0] == "") and all(cell is None or cell == "" for cell in cells):
            continue
        try:
            result.append(_interim_row(tab, cells, dates))
        except _BadCell as error:
            raise ValueError(f"tab {tab!r}, cell {_column_letter(error.column)}{row_number}: {error}") from None
    return result


def _check_header(tab: str, header: tuple[Any, ...] | None) -> None:
    found = tuple(header or ())
    while found and found[-1] in (None, ""):
        found = found[:-1]
    if found == HEADERS:
        return
    if not found:
        raise ValueError(f"tab {tab!r}: row 1 has no headers; expected {' | '.join(HEADERS)}")
    for column, expected in enumerate(HEADERS):
        actual = found[column] if column < len(found) else None
        if actual != expected:
            raise ValueError(
                f"tab {tab!r}: header in column {_column_letter(column)} is {actual!r}, expected {expected!r}"
            )
    raise ValueError(f"tab {tab!r}: unexpected header {found[len(HEADERS)]!r} in column {_column_letter(len(HEADERS))}")


def _padded(tab: str, row_number: int, raw: tuple[Any, ...]) -> tuple[Any, ...]:
    cells = tuple(raw[: len(HEADERS)])
    for offset, cell in enumerate(raw[len(HEADERS) :]):
        if cell not in (None, ""):
            where = f"tab {tab!r}, cell {_column_letter(len(HEADERS) + offset)}{row_number}"
            raise ValueError(f"{where}: {cell!r} is beyond the {len(HEADERS)} interim columns")
    return cells + (None,) * (len(HEADERS) - len(cells))


class _BadCell(ValueError):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column


def _interim_row(tab: str, cells: tuple[Any, ...], dates: dict[Any, date]) -> InterimRow:
    payment_ref = _text(cells, 0).strip()
    if not payment_ref:
        raise _BadCell(0, "a row without a payment ref")
    return InterimRow(
        payment_ref=payment_ref,
        rent_group=tab,
        tenure=_text(cells, 1),
        start_date=_date(cells, 2, dates),
        end_date=_date(cells, 3, dates),
        property_ref=_text(cells, 4),
        short_address=_text(cells, 5),
        address=_text(cells, 6),
        post_code=_text(cells, 7),
        num_bedrooms=_whole_number(cells, 8),
        title=_text(cells, 9),
        forename=_text(cells, 10),
        surname=_text(cells, 11),
        date_of_birth=_date(cells, 12, dates),
    )


def _text(cells: tuple[Any, ...], column: int) -> str:
    value = cells[column]
    if value.__class__ is str:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a reference Excel turned into a number
    return str(value)


def _date(cells: tuple[Any, ...], column: int, dates: dict[Any, date]) -> date | None:
    value = cells[column]
    if value is None or value == "":
        return None
    parsed = dates.get(value)
    if parsed is None:
        if isinstance(value, datetime):
            parsed = value.date()  # a real date cell, typed in by hand
        elif isinstance(value, date):
            parsed = value
        else:
            try:
                parsed = datetime.strptime(str(value).strip(), DATE_FORMAT).date()
            except ValueError:
                raise _BadCell(column, f"{value!r} is not a dd/MM/yyyy date") from None
        dates[value] = parsed
    return parsed


def _whole_number(cells: tuple[Any, ...], column: int) -> int | None:
    value = cells[column]
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _BadCell(column, f"{value!r} is not a whole number")


def _column_letter(column: int) -> str:
    letters = ""
    column += 1
    while column:
        column, remainder = divmod(column - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters
