"""Requests racing each other: the database decides, and no change is ever lost or doubled."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application
from accounts.domain.payment_reference import has_valid_check_digit
from tests.integration.test_api_support import Api, tenure_request

RACERS = 20


def race(count: int, request: Callable[[int], Any]) -> list[Any]:
    """Run `count` requests at once (released together by a barrier); their responses in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = request(index)
        except BaseException as error:  # a crash must fail the test, not vanish with its thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.fixture
def api(application: Application) -> Api:
    return Api(application)


def test_a_tenure_created_by_twenty_at_once_gives_one_master_account(api: Api) -> None:
    body = tenure_request()

    responses = race(RACERS, lambda _: api.post(body))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in responses if r.status_code not in (201, 409)]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["invalidParams"][0]["name"] == "targetId"
    listed = api.get(f"/api/v1/accounts?targetId={body['targetId']}").json()["accountResponseList"]
    assert len(listed) == 1 and listed[0]["accountType"] == "Master"
    assert api.count(t.accounts) == 1
    assert [e["eventType"] for e in api.events()] == ["AccountCreatedEvent"]


def test_twenty_changes_from_the_same_read_let_exactly_one_through(api: Api) -> None:
    account = api.create()
    etag = api.account(account["id"]).headers["ETag"]

    responses = race(RACERS, lambda index: api.patch(account["id"], {"accountBalance": -(index + 1)}, if_match=etag))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * (RACERS - 1), [r.text for r in responses if r.status_code not in (200, 412)]
    [winner] = [response for response in responses if response.status_code == 200]
    stored = api.account(account["id"])
    assert stored.json()["accountBalance"] == winner.json()["accountBalance"]
    assert stored.headers["ETag"] == winner.headers["ETag"] == f'"{account["id"]}-2"'
    # The one balance change that went through is explained by its Adjustment in the ledger.
    assert [e["eventType"] for e in api.events()] == [
        "AccountCreatedEvent",
        "AccountUpdatedEvent",
        "AccountTransactionPostedEvent",
    ]


def test_twenty_changes_without_if_match_are_all_applied_one_after_another(api: Api) -> None:
    account = api.create()

    responses = race(
        RACERS,
        lambda index: api.patch(
            account["id"], [{"op": "replace", "path": "endReasonCode", "value": f"R{index}"}], "application/json"
        ),
    )

    assert sorted(response.status_code for response in responses) == [200] * RACERS, [r.text for r in responses]
    assert api.account(account["id"]).headers["ETag"] == f'"{account["id"]}-{RACERS + 1}"'
    assert len(api.events()) == RACERS + 1


def test_twenty_new_tenures_at_once_get_twenty_different_checked_payment_references(api: Api) -> None:
    responses = race(RACERS, lambda _: api.post(tenure_request(target_id=str(uuid.uuid4()))))

    assert [response.status_code for response in responses] == [201] * RACERS, [r.text for r in responses]
    references = {response.json()["paymentReference"] for response in responses}
    assert len(references) == RACERS
    assert all(has_valid_check_digit(reference) for reference in references)


def test_twenty_claims_on_the_same_payment_reference_give_it_to_one_account(api: Api) -> None:
    responses = race(RACERS, lambda _: api.post(tenure_request(paymentReference="7000000001")))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in responses if r.status_code not in (201, 409)]
    assert api.count(t.accounts) == 1
