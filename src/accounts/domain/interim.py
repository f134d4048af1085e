"""The interim finance solution's tenancy-agreement row: the 13 sheet columns.

One row per tenure account, keyed by payment reference, on the tab of its rent
group. Built from the account and, where the listener holds one, the tenure copy
(which alone knows the property reference and the tenant's date of birth).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from accounts.domain.account import Account, AccountType, RentGroupType, wire_view
from accounts.domain.errors import ValidationProblem
from accounts.domain.tenure import TenureRecord, parse_date

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

# The interim loader's tabs, one per rent group.
SHEET_RENT_GROUPS = (
    RentGroupType.GAR_PARK_HRA,
    RentGroupType.HOUSING_GEN_FUND,
    RentGroupType.HOUSING_REVENUE,
    RentGroupType.LH_MAJOR_WORKS,
    RentGroupType.LH_SERV_CHARGES,
    RentGroupType.TEMP_ACC_GEN_FUN,
    RentGroupType.TEMP_ACCOM_HRA,
    RentGroupType.TRAVEL_GEN_FUND,
)
# Where accounts go whose rent group has no tab of its own, so none is dropped.
UNMAPPED_TAB = "NoInterimRentGroup"
SHEET_TABS = (*tuple(group.value for group in SHEET_RENT_GROUPS), UNMAPPED_TAB)

DATE_FORMAT = "%d/%m/%Y"  # dd/MM/yyyy

TITLES = {"MR", "MRS", "MS", "MISS", "MX", "DR", "REV", "PROF", "SIR", "LADY", "LORD", "DAME"}
SURNAME_PARTICLES = {"da", "de", "del", "della", "der", "di", "dos", "du", "la", "le", "van", "von"}
# The longest text each column takes: what fits both the sync table and the interim database.
TEXT_LIMITS = {
    "tenure": 20,
    "property_ref": 20,
    "short_address": 200,
    "address": 500,
    "post_code": 10,
    "title": 20,
    "forename": 100,
    "surname": 100,
}
_NO_ID = UUID(int=0)  # a tenure copy read for its data alone
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_POSTCODE = re.compile(r"[,\s]*\b([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class InterimRow:
    payment_ref: str
    rent_group: str  # the tab: a SHEET_TABS value
    tenure: str = ""
    start_date: date | None = None
    end_date: date | None = None
    property_ref: str = ""
    short_address: str = ""
    address: str = ""
    post_code: str = ""
    num_bedrooms: int | None = None
    title: str = ""
    forename: str = ""
    surname: str = ""
    date_of_birth: date | None = None

    def cells(self) -> tuple[Any, ...]:
        """The 13 cells in header order, dates as dd/MM/yyyy text."""
        return (
            self.payment_ref,
            self.tenure,
            format_date(self.start_date),
            format_date(self.end_date),
            self.property_ref,
            self.short_address,
            self.address,
            self.post_code,
            "" if self.num_bedrooms is None else self.num_bedrooms,
            self.title,
            self.forename,
            self.surname,
            format_date(self.date_of_birth),
        )

    def differences(self, other: InterimRow) -> list[str]:
        """The names of the fields that differ from `other`."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


# InterimRow's fields in order, and the name finance users know each by: its sheet header, or the tab.
ROW_FIELDS = tuple(f.name for f in fields(InterimRow))
FIELD_LABELS = {
    "rent_group": "Rent Group (tab)",
    **dict(zip((name for name in ROW_FIELDS if name != "rent_group"), HEADERS, strict=True)),
}


def format_date(value: date | None) -> str:
    """dd/MM/yyyy (DATE_FORMAT), spelt out: strftime is the slowest part of a 100,000-row write."""
    return f"{value.day:02}/{value.month:02}/{value.year:04}" if value else ""


def tab_for(rent_group: str | None) -> str:
    """The rent group's tab (a RentGroupType is a str too), or the tab for those without one."""
    return str(rent_group) if rent_group in SHEET_RENT_GROUPS else UNMAPPED_TAB


def split_name(full_name: str) -> tuple[str, str, str]:
    """(title, forename, surname) from a person's full name."""
    parts = full_name.split()
    title = ""
    if len(parts) > 1 and parts[0].rstrip(".").upper() in TITLES:
        title = parts.pop(0).rstrip(".")
    if not parts:
        return title, "", ""
    # A surname may start with a particle: "Grace Da Silva", "Jan van der Berg".
    start = len(parts) - 1
    while start > 1 and parts[start - 1].lower() in SURNAME_PARTICLES:
        start -= 1
    return title, " ".join(parts[:start]), " ".join(parts[start:])


def split_address(full_address: str) -> tuple[str, str, str]:
    """(short address, address without the postcode, postcode)."""
    text = " ".join(full_address.split())
    post_code = ""
    match = _POSTCODE.search(text)
    if match:
        post_code = f"{match.group(1)} {match.group(2)}".upper()
        text = text[: match.start()].rstrip(", ")
    short = text.split(",")[0].strip()
    return short, text, post_code


def is_interim_account(account: Account) -> bool:
    """Tenancy agreements are the tenures' Master accounts."""
    return account.target_type == "Tenure" and account.account_type is AccountType.MASTER


# What an account's row is made of (with the tenure copy): a change touching none of these leaves it as it was.
ROW_SOURCES = (
    "target_type",
    "account_type",
    "payment_reference",
    "rent_group_type",
    "start_date",
    "end_date",
    "tenure",
)


def row_sources_changed(before: Account | None, after: Account) -> bool:
    """Whether the account's row may differ after the change (a balance posted, a status changed: it may not)."""
    return before is None or any(getattr(before, name) != getattr(after, name) for name in ROW_SOURCES)


def interim_row(account: Account, tenure: TenureRecord | None) -> InterimRow:
    """The account's row; `tenure` is the listener's copy of its tenure, when it has one."""
    return interim_row_from(
        account.payment_reference,
        account.rent_group_type,
        account.start_date,
        account.end_date,
        wire_view(account)["tenure"],  # worked out once per account: its event and stored JSON need it too
        tenure.data if tenure is not None else None,
    )


def interim_row_from(
    payment_reference: str,
    rent_group_type: str | None,
    start_date: datetime | None,
    end_date: datetime | None,
    account_tenure: Mapping[str, Any] | None,
    tenure_data: Mapping[str, Any] | None,
) -> InterimRow:
    """The row from the account's stored values: its `tenure` in wire form, and the tenure copy's data.

    The one place the row is worked out; reconciling 100,000 accounts builds rows from
    the stored values straight away, without making an `Account` of each.
    """
    account_tenure = account_tenure or {}
    tenure_type = account_tenure.get("tenureType") or {}
    full_address = account_tenure.get("fullAddress") or ""
    tenants = account_tenure.get("primaryTenants") or []
    first_tenant = tenants[0] if tenants else {}
    person_name = str(first_tenant.get("fullName") or "")
    property_ref = ""
    member: Mapping[str, Any] = {}
    if tenure_data is not None:
        record = TenureRecord(_NO_ID, dict(tenure_data))
        property_ref = str(record.asset.get("propertyReference") or "")
        if first_tenant:
            # The same person as the name: the responsible member with the primary tenant's id.
            wanted = str(first_tenant.get("id") or "").lower()
            member = next((m for m in record.responsible_members if str(m.get("id", "")).lower() == wanted), {})
    short_address, address, post_code = split_address(str(full_address))
    if member.get("type") == "Organisation":
        title, forename, surname = "", "", " ".join(person_name.split())
    else:
        title, forename, surname = split_name(person_name)
    return InterimRow(
        payment_ref=payment_reference,
        rent_group=tab_for(rent_group_type),
        tenure=_fit(str(tenure_type.get("code") or ""), "tenure"),
        start_date=_utc_date(start_date),
        end_date=_utc_date(end_date),
        property_ref=_fit(property_ref, "property_ref"),
        short_address=_fit(short_address, "short_address"),
        address=_fit(address, "address"),
        post_code=_fit(post_code, "post_code"),
        title=_fit(title, "title"),
        forename=_fit(forename, "forename"),
        surname=_fit(surname, "surname"),
        date_of_birth=_date_of_birth(member.get("dateOfBirth")),
    )


def _utc_date(value: datetime | None) -> date | None:
    """The UTC day of a stored timestamp (naive ones are UTC already)."""
    if value is None:
        return None
    return (value.astimezone(UTC) if value.tzinfo is not None else value).date()


def _fit(value: str, name: str) -> str:
    """Text both the sync table and the interim database can hold: no control characters, cut to size.

    A value too long or unstorable there would fail the account change (PostgreSQL
    refuses NUL and over-long text) or hold up every row of the sink's batch.
    """
    if not value:
        return ""
    if not value.isprintable():  # rare: the check is a fast pass for the common case
        value = _CONTROL.sub("", value)
    limit = TEXT_LIMITS[name]
    if len(value) > limit or value[:1].isspace() or value[-1:].isspace():
        value = value.strip()[:limit].rstrip()
    return value


def _date_of_birth(value: Any) -> date | None:
    """The member's date of birth; blank when missing or not a date (never fails the change)."""
    try:
        return parse_date(value, "dateOfBirth")
    except ValidationProblem:
        return None
