"""Payment references: the number tenants type at the bank, and the check digit that catches their typos."""

from __future__ import annotations

import random

import pytest

from accounts.domain import payment_reference as prn
from accounts.domain.errors import ValidationProblem

# Digits a phone keyboard may produce that are not the ASCII digits a bank takes.
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in "1234567890")
# A sample across the whole serial range, the same every run.
SAMPLE = [
    prn.FIRST_SERIAL,
    prn.LAST_SERIAL,
    *random.Random(20260105).sample(range(prn.FIRST_SERIAL, prn.LAST_SERIAL), 300),
]


def test_the_check_digit_follows_damms_published_example() -> None:
    # The worked example of H. Michael Damm's algorithm: 572 has check digit 4.
    assert prn.check_digit("572") == "4"
    assert prn.has_valid_check_digit("5724")
    assert not prn.has_valid_check_digit("5723")


@pytest.mark.parametrize("serial", SAMPLE[:20])
def test_an_allocated_reference_is_ten_digits_the_serial_then_its_check_digit(serial: int) -> None:
    reference = prn.from_serial(serial)
    assert len(reference) == 10 and reference.isdigit()
    assert reference[:9] == str(serial)
    assert prn.has_valid_check_digit(reference)
    assert prn.validate(reference) == reference


def test_every_single_digit_typo_is_caught() -> None:
    checked = 0
    for serial in SAMPLE:
        reference = prn.from_serial(serial)
        for position in range(10):
            for digit in "0123456789":
                if digit == reference[position]:
                    continue
                typo = reference[:position] + digit + reference[position + 1 :]
                assert not prn.has_valid_check_digit(typo), f"{typo} passes for {reference}"
                checked += 1
    assert checked == len(SAMPLE) * 10 * 9


def test_every_swap_of_two_neighbouring_digits_is_caught() -> None:
    checked = 0
    for serial in SAMPLE:
        reference = prn.from_serial(serial)
        for position in range(9):
            a, b = reference[position], reference[position + 1]
            if a == b:
                continue
            swapped = reference[:position] + b + a + reference[position + 2 :]
            assert not prn.has_valid_check_digit(swapped), f"{swapped} passes for {reference}"
            checked += 1
    assert checked > len(SAMPLE) * 7


def test_consecutive_serials_give_different_references() -> None:
    references = {prn.from_serial(serial) for serial in range(prn.FIRST_SERIAL, prn.FIRST_SERIAL + 1000)}
    assert len(references) == 1000


@pytest.mark.parametrize("serial", [0, prn.FIRST_SERIAL - 1, prn.LAST_SERIAL + 1, -5])
def test_a_serial_outside_the_range_has_no_reference(serial: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        prn.from_serial(serial)


@pytest.mark.parametrize("reference", ["2280012345", "228001234", "0000000000"])
def test_references_from_elsewhere_need_only_the_right_shape(reference: str) -> None:
    assert prn.validate(reference) == reference


@pytest.mark.parametrize(
    "reference", ["", "12345678", "12345678901", "12345 6789", FULLWIDTH_DIGITS, "12345678a", None, 1234567890]
)
def test_anything_else_is_not_a_payment_reference(reference: object) -> None:
    with pytest.raises(ValidationProblem) as refused:
        prn.validate(reference)  # type: ignore[arg-type]
    assert refused.value.field == "paymentReference"
    assert "9 or 10 digits" in str(refused.value)


def test_text_that_is_not_digits_never_has_a_valid_check_digit() -> None:
    assert not prn.has_valid_check_digit("")
    assert not prn.has_valid_check_digit("572a")


@pytest.mark.parametrize(
    ("typed", "searched"),
    [
        ("1000000018", "1000000018"),
        (" 1000 0000 18 ", "1000000018"),
        ("100-000-001-8", "1000000018"),
        ("12", "12"),
        ("12 Acacia Avenue", None),
        ("Flat 1", None),
        ("-12", None),
        ("", None),
        (FULLWIDTH_DIGITS, None),  # not what a reference is made of: searched as text
    ],
)
def test_a_search_of_digits_alone_is_for_a_payment_reference(typed: str, searched: str | None) -> None:
    assert prn.searched_reference(typed) == searched


@pytest.mark.parametrize(
    ("prefix", "after"), [("12", "13"), ("129", "13"), ("1", "2"), ("0999", "1"), ("1000000018", "1000000019")]
)
def test_a_prefix_ends_where_the_next_begins(prefix: str, after: str) -> None:
    assert prn.after_prefix(prefix) == after


def test_a_prefix_of_nines_has_no_end() -> None:
    assert prn.after_prefix("9") is None
    assert prn.after_prefix("9999999999") is None
