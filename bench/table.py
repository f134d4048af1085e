"""The results table: one row per figure, as a ratio to its ceiling where it has one.

Kept free of everything else in the benchmarks so it can be unit-tested on its own
(`tests/unit/test_bench_table.py`) and so the smoke run can check what it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("item", "measure", "figure", "ceiling", "ratio", "target", "met?")


@dataclass(frozen=True)
class Row:
    """One figure. `met` is None when the figure has no target (it is reported for the growth table)."""

    item: str
    measure: str
    figure: str
    ceiling: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        verdict = "-" if self.met is None else ("yes" if self.met else "**MISSED**")
        return (self.item, self.measure, self.figure, self.ceiling, self.ratio, self.target, verdict)


def ratio(figure: float, ceiling: float) -> str:
    """figure / ceiling, two decimals; '-' when the ceiling is not a usable number."""
    if ceiling <= 0:
        return "-"
    return f"{figure / ceiling:.2f}"


def number(value: float, unit: str = "", places: int | None = None) -> str:
    """A figure for the table: thousands separated, sensible places, unit after a space."""
    if places is None:
        places = 0 if abs(value) >= 100 else (1 if abs(value) >= 10 else 2)
    text = f"{value:,.{places}f}"
    return f"{text} {unit}" if unit else text


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown(rows: Sequence[Row], columns: Sequence[str] = COLUMNS) -> str:
    """A GitHub-flavoured Markdown table; cells are escaped so a '|' cannot break a row."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = row.cells()
        if len(cells) != len(columns):
            raise ValueError(f"row {row} has {len(cells)} cells for {len(columns)} columns")
        lines.append("| " + " | ".join(_escape(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def plain(rows: Sequence[Row], columns: Sequence[str] = COLUMNS) -> str:
    """The same table aligned for a terminal."""
    body = [tuple(columns), *(row.cells() for row in rows)]
    widths = [max(len(line[index]) for line in body) for index in range(len(columns))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in body]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in rendered) + "\n"


def check_markdown(text: str, columns: Sequence[str] = COLUMNS) -> int:
    """Check a Markdown table is well formed; the number of data rows. Raises ValueError otherwise."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError("a table needs a header and a separator line")
    header = _split(lines[0])
    if header != list(columns):
        raise ValueError(f"unexpected header {header}")
    separator = _split(lines[1])
    if len(separator) != len(columns) or any(set(cell) - set(":-") or not cell for cell in separator):
        raise ValueError(f"malformed separator line {lines[1]!r}")
    for number_, line in enumerate(lines[2:], start=3):
        cells = _split(line)
        if len(cells) != len(columns):
            raise ValueError(f"line {number_} has {len(cells)} cells, expected {len(columns)}: {line!r}")
        if any(not cell for cell in cells):
            raise ValueError(f"line {number_} has an empty cell: {line!r}")
    return len(lines) - 2


def _split(line: str) -> list[str]:
    stripped = line.strip()
    if not (stripped.startswith("|") and stripped.endswith("|")):
        raise ValueError(f"not a table line: {line!r}")
    cells, current, escaped = [], "", False
    for char in stripped[1:-1]:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append(current.strip())
    return cells
