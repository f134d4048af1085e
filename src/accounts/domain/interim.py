"""The interim finance solution's tenancy-agreement row: the 13 sheet columns.

One row per tenure account, keyed by payment reference, on the tab of its rent
group. Built from the account and, where the listener holds one, the tenure copy
(which alone knows the property reference and the tenant's date of birth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from accounts.domain.account import Account, AccountType, RentGroupType
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


def format_date(value: date | None) -> str:
    """dd/MM/yyyy (DATE_FORMAT), spelt out: strftime is the slowest part of a 100,000-row write."""
    return f"{value.day:02}/{value.month:02}/{value.year:04}" if value else ""


def tab_for(rent_group: RentGroupType | None) -> str:
    return rent_group.value if rent_group in SHEET_RENT_GROUPS else UNMAPPED_TAB


def split_name(full_name: str) -> tuple[str, str, str]:
    """(title, forename, surname) from a person's full name."""
    parts = full_name.split()
    title = ""
    if len(parts) > 1 and parts[0].rstrip(".").upper() in TITLES:
        title = parts.pop(0).rstrip(".")
    if not parts:
        return title, "", ""
    return title, " ".join(parts[:-1]), parts[-1]


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


def interim_row(account: Account, tenure: TenureRecord | None) -> InterimRow:
    tenure_copy = account.tenure
    tenure_type = tenure_copy.tenure_type.code if tenure_copy and tenure_copy.tenure_type else ""
    full_address = (tenure_copy.full_address if tenure_copy else None) or ""
    person_name = tenure_copy.primary_tenants[0].full_name if tenure_copy and tenure_copy.primary_tenants else ""
    property_ref = ""
    date_of_birth = None
    if tenure is not None:
        property_ref = str(tenure.asset.get("propertyReference") or "")
        responsible = tenure.responsible_members
        if responsible:
            date_of_birth = parse_date(responsible[0].get("dateOfBirth"), "dateOfBirth")
    short_address, address, post_code = split_address(full_address)
    title, forename, surname = split_name(person_name)
    return InterimRow(
        payment_ref=account.payment_reference,
        rent_group=tab_for(account.rent_group_type),
        tenure=tenure_type,
        start_date=account.start_date.date() if account.start_date else None,
        end_date=account.end_date.date() if account.end_date else None,
        property_ref=property_ref,
        short_address=short_address,
        address=address,
        post_code=post_code,
        title=title,
        forename=forename,
        surname=surname,
        date_of_birth=date_of_birth,
    )
