"""Payment references (PRNs): the number tenants type at banks and paypoints.

Allocated PRNs are a 9-digit serial followed by a Damm check digit. Damm catches
every single-digit typo and every swap of two adjacent digits, the two errors people
make most when copying a number by hand. PRNs that came from elsewhere (the
housing system, finance) carry the council's unpublished formula, so for them only
the shape is checked.
"""

from __future__ import annotations

import re

from accounts.domain.errors import ValidationProblem

SERIAL_DIGITS = 9
FIRST_SERIAL = 100_000_000
LAST_SERIAL = 999_999_999

_SHAPE = re.compile(r"^[0-9]{9,10}$")

# The Damm quasigroup of order 10 (a weakly totally anti-symmetric table).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def check_digit(digits: str) -> str:
    """The Damm check digit of a string of digits."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return str(interim)


def has_valid_check_digit(reference: str) -> bool:
    """True when the last digit is the Damm check digit of the others."""
    return bool(reference.isdigit()) and check_digit(reference) == "0"


def from_serial(serial: int) -> str:
    """The 10-digit PRN for an allocation serial."""
    if not FIRST_SERIAL <= serial <= LAST_SERIAL:
        raise ValueError(f"serial {serial} is outside the PRN range")
    body = str(serial)
    return body + check_digit(body)


def serial_of(reference: str) -> int | None:
    """The allocation serial a reference of the allocated shape (10 digits) is made from, else None."""
    if len(reference) == SERIAL_DIGITS + 1 and reference.isdigit():
        return int(reference[:SERIAL_DIGITS])
    return None


def validate(reference: str) -> str:
    """Accept a PRN supplied by a person or system: 9 or 10 digits."""
    if not isinstance(reference, str) or not _SHAPE.match(reference):
        raise ValidationProblem("paymentReference", "must be a string of 9 or 10 digits", reference)
    return reference


# Searching: a person types a payment reference as it is printed, sometimes grouped with spaces or hyphens.
_GROUPED_DIGITS = re.compile(r"^[0-9][0-9 -]*$")
_DIGITS = re.compile(r"^[0-9]+$")


def searched_reference(text: str) -> str | None:
    """The payment reference (or its first digits) a search asks for: digits alone, spaces and hyphens
    aside; None when the text is anything else (part of an address or a name)."""
    stripped = text.strip()
    if not _GROUPED_DIGITS.match(stripped):
        return None
    return stripped.replace(" ", "").replace("-", "")


def is_reference_search(text: str) -> bool:
    """A normalised search text (`searched_reference`'s) that is a payment reference's first digits."""
    return bool(_DIGITS.match(text))


def after_prefix(prefix: str) -> str | None:
    """The first string of digits past every reference that starts with `prefix` (`12` -> `13`, `129` ->
    `13`), so that a prefix is a range of the payment reference index; None when nothing is past it (`99`)."""
    digits = prefix.rstrip("9")
    if not digits:
        return None
    return digits[:-1] + str(int(digits[-1]) + 1)
