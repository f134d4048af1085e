"""The finance side's copy of a tenure, and what a rent account takes from it.

Tenure events may arrive twice, late or out of order, and updates carry only the
fields that changed. So the copy remembers, for every top-level field, the time of
the change that last set it: a field is only overwritten by a newer change. Merging
in any order then gives the copy that in-order delivery gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from accounts.domain.account import (
    AccountStatus,
    AccountTenure,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.errors import ValidationProblem

OPEN_END = date(1900, 1, 1)

# Tenure type code -> rent group. The council can replace it with a JSON file
# ({"SEC": "HousingRevenue", ...}) through ACCOUNTS_RENT_GROUP_MAP_PATH.
DEFAULT_RENT_GROUPS: dict[str, RentGroupType] = {
    "SEC": RentGroupType.HOUSING_REVENUE,  # Secure
    "INT": RentGroupType.HOUSING_REVENUE,  # Introductory
    "NON": RentGroupType.HOUSING_REVENUE,  # Non-Secure
    "PVG": RentGroupType.HOUSING_REVENUE,  # Private Garage
    "LEA": RentGroupType.LH_SERV_CHARGES,  # Leasehold (RTB)
    "FRS": RentGroupType.LH_SERV_CHARGES,  # Freehold (Serv)
    "FRE": RentGroupType.LH_SERV_CHARGES,  # Freehold
    "SHO": RentGroupType.LH_SERV_CHARGES,  # Shared Owners
    "SPS": RentGroupType.LH_SERV_CHARGES,  # Shared Equity
    "DEC": RentGroupType.LH_SERV_CHARGES,  # Private Sale LH
    "ASY": RentGroupType.TEMP_ACC_GEN_FUN,  # Asylum Seeker
    "TBB": RentGroupType.TEMP_ACC_GEN_FUN,  # Temp B&B
    "TAF": RentGroupType.TEMP_ACCOM_HRA,  # Temp Annex
    "TGA": RentGroupType.TEMP_ACCOM_HRA,  # Temp Hostel
    "MPA": RentGroupType.TEMP_ACCOM_HRA,  # Licence Temp Ac
    "TRA": RentGroupType.TRAVEL_GEN_FUND,  # Travellers
    "GPS": RentGroupType.GAR_PARK_HRA,  # Garage / parking space
}


@dataclass(frozen=True)
class RentGroupMap:
    by_tenure_type: Mapping[str, RentGroupType]

    def rent_group_for(self, tenure_type_code: str | None) -> RentGroupType | None:
        """None for a tenure type the council has not mapped: never guessed."""
        if not tenure_type_code:
            return None
        return self.by_tenure_type.get(tenure_type_code.strip().upper())

    @classmethod
    def default(cls) -> RentGroupMap:
        return cls(dict(DEFAULT_RENT_GROUPS))

    @classmethod
    def from_file(cls, path: Path) -> RentGroupMap:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected an object of tenure type code -> rent group")
        mapping: dict[str, RentGroupType] = {}
        for code, group in raw.items():
            try:
                mapping[str(code).strip().upper()] = RentGroupType(group)
            except ValueError:
                allowed = ", ".join(member.value for member in RentGroupType)
                raise ValueError(
                    f"{path}: {code!r} maps to unknown rent group {group!r}; use one of {allowed}"
                ) from None
        return cls(mapping)


def parse_date(value: Any, field_name: str) -> date | None:
    """Tenure dates arrive as `2021-04-01`, `2021-04-01T00:00:00Z` or null."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValidationProblem(field_name, "must be an ISO-8601 date", value)
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        raise ValidationProblem(field_name, "must be an ISO-8601 date", value) from None


def end_date_of(value: Any) -> date | None:
    """The tenure's end, or None when it is open (null or 1900-01-01)."""
    end = parse_date(value, "endOfTenureDate")
    return None if end is None or end == OPEN_END else end


def as_utc_midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class TenureRecord:
    """The merged copy of one tenure, with when each top-level field was last set."""

    tenure_id: UUID
    data: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    def merge(self, fields: Mapping[str, Any], at: datetime, *, whole: bool = False) -> list[str]:
        """Apply the fields newer than what is held; return the names applied."""
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sorts as text
        applied = []
        for name, value in fields.items():
            if name == "id":
                continue
            held = self.stamps.get(name)
            if held is None or held < stamp:
                self.data[name] = value
                self.stamps[name] = stamp
                applied.append(name)
        if whole and not self.complete:
            self.complete = True
            applied.append("<complete>")
        return applied

    # What the finance side reads from the tenure.

    @property
    def payment_reference(self) -> str | None:
        value = self.data.get("paymentReference")
        return value.strip() if isinstance(value, str) and value.strip() else None

    @property
    def tenure_type(self) -> TenureTypeRef | None:
        raw = self.data.get("tenureType")
        if not isinstance(raw, dict) or not raw.get("code"):
            return None
        return TenureTypeRef(str(raw.get("code")), str(raw.get("description") or ""))

    @property
    def asset(self) -> dict[str, Any]:
        raw = self.data.get("tenuredAsset")
        return raw if isinstance(raw, dict) else {}

    @property
    def full_address(self) -> str | None:
        value = self.asset.get("fullAddress")
        return str(value) if value else None

    @property
    def responsible_members(self) -> list[dict[str, Any]]:
        members = self.data.get("householdMembers") or []
        if not isinstance(members, list):
            return []
        return [m for m in members if isinstance(m, dict) and m.get("isResponsible") is True]

    @property
    def start_date(self) -> date | None:
        return parse_date(self.data.get("startOfTenureDate"), "startOfTenureDate")

    @property
    def end_date(self) -> date | None:
        return end_date_of(self.data.get("endOfTenureDate"))

    def is_active(self, today: date) -> bool:
        end = self.end_date
        return end is None or end > today

    def account_tenure(self) -> AccountTenure:
        tenants = []
        for member in self.responsible_members:
            try:
                tenants.append(PrimaryTenant(UUID(str(member.get("id"))), str(member.get("fullName") or "")))
            except ValueError:
                raise ValidationProblem("householdMembers.id", "must be a UUID", member.get("id")) from None
        return AccountTenure(
            tenure_id=self.tenure_id,
            tenure_type=self.tenure_type,
            full_address=self.full_address,
            primary_tenants=tuple(tenants),
        )

    def account_fields(self, rent_groups: RentGroupMap, today: date) -> dict[str, Any]:
        """The account fields a tenure decides (keyword names of `Account`)."""
        tenure_type = self.tenure_type
        return {
            "rent_group_type": rent_groups.rent_group_for(tenure_type.code if tenure_type else None),
            "start_date": as_utc_midnight(self.start_date),
            "end_date": as_utc_midnight(self.end_date),
            "account_status": AccountStatus.ACTIVE if self.is_active(today) else AccountStatus.ENDED,
            "tenure": self.account_tenure(),
        }
