"""The benchmark table formatter: well-formed Markdown whatever the cells hold."""

from __future__ import annotations

import pytest
from bench.table import COLUMNS, Row, check_markdown, markdown, number, plain, ratio


def test_a_row_renders_its_verdict() -> None:
    assert Row("1 reads", "req/s", "10", met=True).cells()[-1] == "yes"
    assert Row("1 reads", "req/s", "10", met=False).cells()[-1] == "**MISSED**"
    assert Row("2 writes", "req/s", "10").cells()[-1] == "-"


def test_the_markdown_table_is_well_formed_and_escapes_pipes() -> None:
    rows = [
        Row("1 reads", "GET /accounts | by id", "1,234 /s", "2,000 /s", ratio(1234, 2000), ">= 0.50", True),
        Row("6 memory", "peak RSS", "120 MB", target="< 300 MB", met=True),
    ]
    text = markdown(rows)
    assert check_markdown(text) == 2
    assert "GET /accounts \\| by id" in text
    assert text.splitlines()[0] == "| " + " | ".join(COLUMNS) + " |"


def test_malformed_tables_are_refused() -> None:
    good = markdown([Row("1", "m", "f")])
    with pytest.raises(ValueError):
        check_markdown(good.replace("| f |", "| f | extra |"))
    with pytest.raises(ValueError):
        check_markdown(good.replace("|---|", "|-x-|", 1))
    with pytest.raises(ValueError):
        check_markdown("just text")


def test_numbers_and_ratios() -> None:
    assert number(12345.678, "/s") == "12,346 /s"
    assert number(12.34, "ms") == "12.3 ms"
    assert number(1.234) == "1.23"
    assert ratio(1, 4) == "0.25"
    assert ratio(1, 0) == "-"


def test_the_plain_table_lines_up() -> None:
    lines = plain([Row("1 reads", "x", "1")]).splitlines()
    assert lines[0].startswith("item") and set(lines[1]) <= {"-", " "}
