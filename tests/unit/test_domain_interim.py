"""The interim finance row: one tenancy agreement as the 13 spreadsheet columns, names and addresses split."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from accounts.domain.account import (
    Account,
    AccountTenure,
    AccountType,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.interim import (
    HEADERS,
    UNMAPPED_TAB,
    interim_row,
    is_interim_account,
    split_address,
    split_name,
    tab_for,
)
from accounts.domain.tenure import TenureRecord

JANE = uuid.UUID("0d1e5ee2-8a87-4a5d-9f6b-0c6c4c7e7b11")
TENURE = uuid.UUID("8b33a554-0f7c-4094-a2f7-7ae2ff910daf")


@pytest.mark.parametrize(
    ("full_name", "parts"),
    [
        ("Ms Jane Smith", ("Ms", "Jane", "Smith")),
        ("Dr. Amir Begum", ("Dr", "Amir", "Begum")),
        ("MRS ADAEZE OKAFOR", ("MRS", "ADAEZE", "OKAFOR")),
        ("Jane Smith", ("", "Jane", "Smith")),
        ("Patrick O'Brien", ("", "Patrick", "O'Brien")),
        ("Mary Anne Hughes", ("", "Mary Anne", "Hughes")),
        ("  Li   Chen  ", ("", "Li", "Chen")),
        ("Madonna", ("", "", "Madonna")),
        ("Mr", ("", "", "Mr")),
        ("", ("", "", "")),
    ],
)
def test_a_full_name_splits_into_title_forename_and_surname(full_name: str, parts: tuple[str, str, str]) -> None:
    assert split_name(full_name) == parts


@pytest.mark.parametrize(
    ("full_address", "parts"),
    [
        (
            "Flat 3, 12 Hillman Street, London E8 1DY",
            ("Flat 3", "Flat 3, 12 Hillman Street, London", "E8 1DY"),
        ),
        ("9 Mare Street, London, e83rh", ("9 Mare Street", "9 Mare Street, London", "E8 3RH")),
        ("1 Amhurst Road N16 7UX", ("1 Amhurst Road", "1 Amhurst Road", "N16 7UX")),
        ("  14   Well Street,  London   E9 6NS ", ("14 Well Street", "14 Well Street, London", "E9 6NS")),
        ("Garage 7, Pembury Estate", ("Garage 7", "Garage 7, Pembury Estate", "")),
        ("", ("", "", "")),
    ],
)
def test_an_address_splits_into_short_address_address_and_postcode(
    full_address: str, parts: tuple[str, str, str]
) -> None:
    assert split_address(full_address) == parts


def test_each_sheet_rent_group_has_its_own_tab_and_the_rest_share_one() -> None:
    assert tab_for(RentGroupType.HOUSING_REVENUE) == "HousingRevenue"
    assert tab_for(RentGroupType.TEMP_ACCOM_HRA) == "TempAccomHRA"
    assert tab_for(RentGroupType.TENANT) == UNMAPPED_TAB
    assert tab_for(None) == UNMAPPED_TAB


def an_account(**overrides: object) -> Account:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "target_type": "Tenure",
        "target_id": TENURE,
        "account_type": AccountType.MASTER,
        "payment_reference": "2280012345",
        "created_by": "officer",
        "created_at": datetime(2026, 1, 5, tzinfo=UTC),
        "last_updated_by": "officer",
        "last_updated_at": datetime(2026, 1, 5, tzinfo=UTC),
        "rent_group_type": RentGroupType.HOUSING_REVENUE,
        "start_date": datetime(2021, 4, 1, tzinfo=UTC),
        "end_date": datetime(2031, 3, 31, tzinfo=UTC),
        "tenure": AccountTenure(
            TENURE,
            TenureTypeRef("SEC", "Secure"),
            "Flat 3, 12 Hillman Street, London E8 1DY",
            (PrimaryTenant(JANE, "Ms Jane Smith"),),
        ),
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


def test_the_row_of_a_tenure_account_fills_the_thirteen_columns_in_order() -> None:
    tenure = TenureRecord(
        TENURE,
        data={
            "tenuredAsset": {"propertyReference": "00012345"},
            "householdMembers": [
                {"id": str(JANE), "fullName": "Ms Jane Smith", "isResponsible": True, "dateOfBirth": "1980-02-29"},
                {"id": str(uuid.uuid4()), "fullName": "Tom Smith", "isResponsible": False, "dateOfBirth": "2010-01-01"},
            ],
        },
    )

    row = interim_row(an_account(), tenure)

    assert len(HEADERS) == len(row.cells()) == 13
    assert dict(zip(HEADERS, row.cells(), strict=True)) == {
        "Payment Ref": "2280012345",
        "Tenure": "SEC",
        "Start Date": "01/04/2021",
        "End Date": "31/03/2031",
        "Property Ref": "00012345",
        "Short Address": "Flat 3",
        "Address": "Flat 3, 12 Hillman Street, London",
        "Post Code": "E8 1DY",
        "Num Bedrooms": "",
        "Title": "Ms",
        "Forename": "Jane",
        "Surname": "Smith",
        "Date Of Birth": "29/02/1980",
    }
    assert row.rent_group == "HousingRevenue"
    assert row.date_of_birth == date(1980, 2, 29)


def test_without_the_listeners_tenure_copy_the_row_still_has_what_the_account_knows() -> None:
    row = interim_row(an_account(end_date=None), None)
    assert row.property_ref == "" and row.date_of_birth is None
    assert row.end_date is None and row.cells()[3] == ""
    assert (row.title, row.forename, row.surname) == ("Ms", "Jane", "Smith")


def test_an_account_with_no_tenure_copy_gives_a_row_of_blanks_but_its_key() -> None:
    row = interim_row(an_account(tenure=None, rent_group_type=None), None)
    assert row.payment_ref == "2280012345"
    assert row.rent_group == UNMAPPED_TAB
    assert (row.tenure, row.address, row.surname) == ("", "", "")


def test_only_a_tenures_master_account_is_a_tenancy_agreement() -> None:
    assert is_interim_account(an_account())
    assert not is_interim_account(an_account(account_type=AccountType.SUNDRY))
    assert not is_interim_account(an_account(target_type="Licensing"))


def test_rows_that_differ_name_the_columns_that_differ() -> None:
    row = interim_row(an_account(), None)
    moved = interim_row(an_account(payment_reference="2280012346"), None)
    assert moved.differences(row) == ["payment_ref"]
    assert row.differences(row) == []
