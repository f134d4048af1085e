"""The finance side's copy of a tenure: events merged in any order give the in-order copy."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from accounts.domain.account import AccountStatus, RentGroupType
from accounts.domain.errors import ValidationProblem
from accounts.domain.tenure import RentGroupMap, TenureRecord, end_date_of, parse_date

TENURE = uuid.UUID("8b33a554-0f7c-4094-a2f7-7ae2ff910daf")
JANE = "0d1e5ee2-8a87-4a5d-9f6b-0c6c4c7e7b11"
AMIR = "5b2c1f7e-1111-4c3d-9e8f-222233334444"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

CREATED = {
    "id": str(TENURE),
    "paymentReference": "",
    "startOfTenureDate": "2021-04-01",
    "endOfTenureDate": None,
    "tenureType": {"code": "SEC", "description": "Secure"},
    "tenuredAsset": {"fullAddress": "1 Hillman Street, London E8 1DY", "propertyReference": "00012345"},
    "householdMembers": [{"id": JANE, "fullName": "Ms Jane Smith", "isResponsible": True}],
}
# (fields, when): an officer's changes over a week; some fields change twice.
UPDATES = [
    ({"tenuredAsset": {"fullAddress": "9 Mare Street, London E8 3RH"}}, T0 + timedelta(days=1)),
    ({"paymentReference": "2280012345"}, T0 + timedelta(days=2)),
    (
        {
            "householdMembers": [
                {"id": JANE, "fullName": "Ms Jane Smith", "isResponsible": True},
                {"id": AMIR, "fullName": "Mr Amir Begum", "isResponsible": True},
            ]
        },
        T0 + timedelta(days=3),
    ),
    ({"tenuredAsset": {"fullAddress": "14 Well Street, London E9 6NS"}}, T0 + timedelta(days=4)),
    ({"tenureType": {"code": "INT", "description": "Introductory"}}, T0 + timedelta(days=5)),
]


def merged(events: list[tuple[dict, datetime, bool]]) -> TenureRecord:
    record = TenureRecord(TENURE)
    for fields, at, whole in events:
        record.merge(fields, at, whole=whole)
    return record


def test_events_in_any_order_give_the_copy_that_in_order_delivery_gives() -> None:
    events = [(CREATED, T0, True)] + [(fields, at, False) for fields, at in UPDATES]
    in_order = merged(events)
    assert in_order.full_address == "14 Well Street, London E9 6NS"
    assert in_order.payment_reference == "2280012345"
    assert in_order.tenure_type is not None and in_order.tenure_type.code == "INT"
    assert in_order.complete

    for order in itertools.permutations(events):
        shuffled = merged(list(order))
        assert (shuffled.data, shuffled.stamps, shuffled.complete) == (in_order.data, in_order.stamps, True)


def test_an_event_delivered_twice_changes_nothing_the_second_time() -> None:
    record = merged([(CREATED, T0, True)])
    fields, at = UPDATES[0]
    assert record.merge(fields, at) == ["tenuredAsset"]
    before = (dict(record.data), dict(record.stamps))
    assert record.merge(fields, at) == []
    assert (record.data, record.stamps) == before


def test_a_late_old_change_does_not_overwrite_a_newer_one() -> None:
    record = merged([(CREATED, T0, True), (*UPDATES[3], False)])
    applied = record.merge(*UPDATES[0])
    assert applied == []
    assert record.full_address == "14 Well Street, London E9 6NS"


def test_an_update_before_its_create_is_kept_and_the_create_fills_in_the_rest() -> None:
    record = TenureRecord(TENURE)
    record.merge(*UPDATES[0])
    assert not record.complete
    applied = record.merge(CREATED, T0, whole=True)
    assert "tenuredAsset" not in applied and "<complete>" in applied
    assert record.full_address == "9 Mare Street, London E8 3RH"
    assert record.start_date == date(2021, 4, 1)


def test_the_id_is_never_merged_as_a_field() -> None:
    record = merged([(CREATED, T0, True)])
    assert "id" not in record.data
    assert record.merge({"id": str(uuid.uuid4())}, T0 + timedelta(days=9)) == []


def test_the_account_takes_tenants_type_address_and_dates_from_the_tenure() -> None:
    record = merged([(CREATED, T0, True), (*UPDATES[2], False)])
    fields = record.account_fields(RentGroupMap.default(), today=date(2026, 1, 10))
    assert fields["rent_group_type"] is RentGroupType.HOUSING_REVENUE
    assert fields["account_status"] is AccountStatus.ACTIVE
    assert fields["start_date"] == datetime(2021, 4, 1, tzinfo=UTC)
    assert fields["end_date"] is None
    tenure = fields["tenure"]
    assert [tenant.full_name for tenant in tenure.primary_tenants] == ["Ms Jane Smith", "Mr Amir Begum"]
    assert tenure.full_address == "1 Hillman Street, London E8 1DY"


@pytest.mark.parametrize(
    ("end", "today", "status"),
    [
        (None, date(2026, 1, 10), AccountStatus.ACTIVE),
        ("1900-01-01", date(2026, 1, 10), AccountStatus.ACTIVE),
        ("2026-03-31", date(2026, 1, 10), AccountStatus.ACTIVE),
        ("2026-01-10", date(2026, 1, 10), AccountStatus.ENDED),
        ("2025-12-31T00:00:00Z", date(2026, 1, 10), AccountStatus.ENDED),
    ],
)
def test_a_tenure_is_active_until_its_end_date(end: str | None, today: date, status: AccountStatus) -> None:
    record = merged([({**CREATED, "endOfTenureDate": end}, T0, True)])
    assert record.account_fields(RentGroupMap.default(), today)["account_status"] is status


def test_open_ended_tenures_have_no_end_date() -> None:
    assert end_date_of(None) is None
    assert end_date_of("1900-01-01") is None
    assert end_date_of("1900-01-01T00:00:00Z") is None
    assert end_date_of("2030-01-01") == date(2030, 1, 1)


@pytest.mark.parametrize("value", ["01/04/2021", "2021-02-30", 20210401, "tomorrow"])
def test_a_date_that_is_not_iso_8601_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationProblem) as refused:
        parse_date(value, "startOfTenureDate")
    assert refused.value.field == "startOfTenureDate"


def test_an_unmapped_tenure_type_gets_no_rent_group_rather_than_a_guess() -> None:
    rent_groups = RentGroupMap.default()
    assert rent_groups.rent_group_for("ZZZ") is None
    assert rent_groups.rent_group_for(None) is None
    assert rent_groups.rent_group_for(" lea ") is RentGroupType.LH_SERV_CHARGES


def test_a_blank_payment_reference_on_the_tenure_is_no_reference() -> None:
    assert merged([(CREATED, T0, True)]).payment_reference is None
    assert merged([({**CREATED, "paymentReference": " 2280012345 "}, T0, True)]).payment_reference == "2280012345"
