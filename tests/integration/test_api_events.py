"""Every account change made over HTTP leaves its event in the outbox, in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.test_api_support import WRITER, Api, shared_api, tenure_request


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def events_about(api: Api, account_id: str) -> list[dict[str, Any]]:
    """The account's own events (its ledger postings have events of their own: see test_api_ledger.py)."""
    kinds = ("AccountCreatedEvent", "AccountUpdatedEvent")
    return [event for event in api.events() if event["entityId"] == account_id and event["eventType"] in kinds]


def test_creating_an_account_writes_an_account_created_event_with_the_whole_account(api: Api) -> None:
    correlation = str(uuid.uuid4())
    response = api.post(tenure_request(accountBalance=Decimal("-12.5")), headers={"x-correlation-id": correlation})
    account = response.json()

    [event] = events_about(api, account["id"])

    assert event["eventType"] == "AccountCreatedEvent"
    assert event["sourceDomain"] == "Accounts"
    assert event["sourceSystem"] == "AccountsAPI"
    assert event["version"] == "v1"
    assert event["correlationId"] == correlation == response.headers["x-correlation-id"]
    assert event["user"] == WRITER
    assert uuid.UUID(event["id"])
    assert datetime.fromisoformat(event["dateTime"]) == datetime.fromisoformat(account["createdAt"])
    assert event["eventData"]["oldData"] is None
    assert event["eventData"]["newData"] == response.json(parse_float=Decimal)


def test_the_event_carries_money_as_the_api_does_a_number_with_two_decimals(api: Api) -> None:
    account = api.create(accountBalance=Decimal("-12.5"))
    [created] = events_about(api, account["id"])
    assert created["eventData"]["newData"]["accountBalance"] == Decimal("-12.50")
    assert isinstance(created["eventData"]["newData"]["accountBalance"], Decimal)  # a JSON number, not a string


def test_an_effective_change_writes_an_account_updated_event_with_only_what_changed(api: Api) -> None:
    account = api.create()
    correlation = str(uuid.uuid4())
    changed = api.patch(
        account["id"],
        [{"op": "replace", "path": "paymentReference", "value": "7000000001", "operationType": 2}],
        content_type="application/json",
    )
    assert changed.status_code == 200
    again = api.request(
        "PATCH",
        f"/api/v1/accounts/{account['id']}",
        content=b'{"accountBalance": -99.99}',
        headers={"Content-Type": "application/merge-patch+json", "x-correlation-id": correlation},
    )
    assert again.status_code == 200

    created, first, second = events_about(api, account["id"])

    assert created["eventType"] == "AccountCreatedEvent"
    assert first["eventType"] == second["eventType"] == "AccountUpdatedEvent"
    assert first["eventData"]["oldData"] == {
        "paymentReference": account["paymentReference"],
        "lastUpdatedAt": account["lastUpdatedAt"],
    }
    assert first["eventData"]["newData"] == {
        "paymentReference": "7000000001",
        "lastUpdatedAt": changed.json()["lastUpdatedAt"],
    }
    assert second["eventData"]["oldData"]["accountBalance"] == Decimal("0.00")
    assert second["eventData"]["newData"]["accountBalance"] == Decimal("-99.99")
    assert second["correlationId"] == correlation
    assert second["user"] == WRITER
    assert second["sourceDomain"] == "Accounts" and second["sourceSystem"] == "AccountsAPI"


def test_a_change_that_changes_nothing_writes_no_event(api: Api) -> None:
    account = api.create()
    api.patch(account["id"], {"agreementType": account["agreementType"]})
    api.patch(account["id"], [], content_type="application/json")
    assert [e["eventType"] for e in events_about(api, account["id"])] == ["AccountCreatedEvent"]


def test_a_refused_request_writes_no_event(api: Api) -> None:
    account = api.create()
    before = len(api.events())

    api.post(tenure_request(target_id=account["targetId"]))  # 409: one active Master
    api.patch(account["id"], {"createdBy": "me"})  # 400
    api.patch(account["id"], {"accountBalance": 1}, if_match='"stale"')  # 412
    api.patch(account["id"], {"accountBalance": 1}, token=api.reader_token)  # 403

    assert len(api.events()) == before
