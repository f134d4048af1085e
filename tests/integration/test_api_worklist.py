"""The arrears worklist over HTTP, on SQLite and PostgreSQL: figures, filters, sorts, pages and bad parameters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from accounts.bootstrap import Application
from tests.integration.test_api_support import Api, assert_problem, invalid_names, shared_api, to_json

WORKLIST = "/api/v1/arrears-worklist"
TODAY = datetime.now(UTC).date()
WEEKLY_100 = [{"type": "Rent", "frequency": "Weekly", "amount": Decimal("100.00")}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def pay(api: Api, account_id: str, amount: str, days_ago: int) -> None:
    """A tenant's payment, posted as any client posts one."""
    body = {
        "id": str(uuid.uuid4()),
        "transactionType": "Payment",
        "amount": Decimal(amount),
        "transactionDate": (TODAY - timedelta(days=days_ago)).isoformat(),
    }
    response = api.request(
        "POST",
        f"/api/v1/accounts/{account_id}/transactions",
        content=to_json(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def ledger(api: Api) -> dict[str, dict[str, Any]]:
    """The module's accounts, by name; the module's database holds nothing else."""
    accounts = {
        "jones": api.create(accountBalance=Decimal("-1050.00"), consolidatedCharges=WEEKLY_100),
        "smith": api.create(
            accountBalance=Decimal("-250.00"),
            consolidatedCharges=WEEKLY_100,
            startDate=(datetime.now(UTC) - timedelta(days=400)).isoformat(),
        ),
        "garage": api.create(accountBalance=Decimal("-310.00"), rentGroupType="Garages"),
        "patel": api.create(
            accountBalance=Decimal("-174.99"),
            consolidatedCharges=[{"type": "Rent", "frequency": "Fortnightly", "amount": Decimal("150.00")}],
        ),
        "in credit": api.create(accountBalance=Decimal("40.00"), consolidatedCharges=WEEKLY_100),
        "square": api.create(consolidatedCharges=WEEKLY_100),
    }
    pay(api, accounts["jones"]["id"], "50.00", days_ago=30)
    pay(api, accounts["garage"]["id"], "10.00", days_ago=5)
    pay(api, accounts["patel"]["id"], "75.00", days_ago=100)
    return accounts


def worklist(api: Api, **params: object) -> dict[str, Any]:
    response = api.get(WORKLIST, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def names(ledger: dict[str, dict[str, Any]], page: dict[str, Any]) -> list[str]:
    by_id = {account["id"]: name for name, account in ledger.items()}
    return [by_id[entry["accountId"]] for entry in page["accounts"]]


def test_accounts_in_arrears_largest_debt_first_with_every_figure(api: Api, ledger: dict) -> None:
    response = api.get(WORKLIST)
    page = response.json()

    assert names(ledger, page) == ["jones", "garage", "smith", "patel"]
    assert page["asOf"] == TODAY.isoformat() and page["nextCursor"] is None
    assert (page["sortBy"], page["direction"]) == ("amountOwed", "desc")
    jones = page["accounts"][0]
    assert {key: value for key, value in jones.items() if key != "tenure"} == {
        "accountId": ledger["jones"]["id"],
        "paymentReference": ledger["jones"]["paymentReference"],
        "rentGroupType": "Tenant",
        "amountOwed": 1000,
        "weeklyCharge": 100,
        "weeksInArrears": 10,
        "collectableArrears": 900,  # this week's 100.00 may still be in the post
        "lastPaymentDate": (TODAY - timedelta(days=30)).isoformat(),
        "lastPaymentAmount": 50,
        "daysSinceLastPayment": 30,
    }
    assert jones["tenure"]["fullAddress"] == "Flat 3, 12 Hillman Street, London E8 1DY"
    assert [tenant["fullName"] for tenant in jones["tenure"]["primaryTenants"]] == ["Ms Jane Smith"]
    assert '"amountOwed":1000.00,"weeklyCharge":100.00,"weeksInArrears":10.0' in response.text


def test_the_figures_of_an_account_never_paid_one_without_charges_and_one_charged_fortnightly(
    api: Api, ledger: dict
) -> None:
    by_name = dict(zip(names(ledger, page := worklist(api)), page["accounts"], strict=True))
    smith, garage, patel = by_name["smith"], by_name["garage"], by_name["patel"]
    assert (smith["lastPaymentDate"], smith["lastPaymentAmount"], smith["daysSinceLastPayment"]) == (None, None, 400)
    assert (smith["weeksInArrears"], smith["collectableArrears"]) == (2.5, 150)
    assert (garage["weeklyCharge"], garage["weeksInArrears"], garage["collectableArrears"]) == (0, None, 300)
    assert (garage["rentGroupType"], garage["daysSinceLastPayment"]) == ("Garages", 5)
    assert (patel["weeklyCharge"], patel["weeksInArrears"], patel["collectableArrears"]) == (75, 1.3, 24.99)


ORDERS = {
    "amountOwed": ["jones", "garage", "smith", "patel"],
    "weeksInArrears": ["jones", "smith", "patel", "garage"],  # no weekly charge: as 0 weeks
    "daysSinceLastPayment": ["smith", "patel", "jones", "garage"],
}


@pytest.mark.parametrize("sort", list(ORDERS))
def test_each_sort_both_ways_in_any_case(api: Api, ledger: dict, sort: str) -> None:
    assert names(ledger, worklist(api, sortBy=sort)) == ORDERS[sort]
    assert names(ledger, worklist(api, sortBy=sort.upper(), direction="DESC")) == ORDERS[sort]
    assert names(ledger, worklist(api, sortBy=sort.lower(), direction="asc")) == ORDERS[sort][::-1]


def test_the_filters_alone_and_together(api: Api, ledger: dict) -> None:
    assert names(ledger, worklist(api, rentGroupType="Garages")) == ["garage"]
    assert names(ledger, worklist(api, rentGroupType="HraRents")) == []
    assert names(ledger, worklist(api, minWeeksInArrears="2.5")) == ["jones", "smith"]
    assert names(ledger, worklist(api, minWeeksInArrears=0)) == ORDERS["amountOwed"]
    assert names(ledger, worklist(api, minAmountOwed="250")) == ["jones", "garage", "smith"]
    assert names(ledger, worklist(api, minAmountOwed="99.99")) == ORDERS["amountOwed"]
    together = worklist(api, rentGroupType="Tenant", minWeeksInArrears=1, sortBy="daysSinceLastPayment")
    assert names(ledger, together) == ["smith", "patel", "jones"]


@pytest.mark.parametrize("sort", list(ORDERS))
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_pages_of_one_list_every_account_once_in_order(api: Api, ledger: dict, sort: str, direction: str) -> None:
    seen: list[str] = []
    params: dict[str, object] = {"sortBy": sort, "direction": direction, "limit": 1}
    while True:
        page = worklist(api, **params)
        seen.extend(names(ledger, page))
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]
    expected = ORDERS[sort] if direction == "desc" else ORDERS[sort][::-1]
    assert seen == expected


def test_the_list_is_for_readers_and_needs_a_token(api: Api, ledger: dict) -> None:
    assert api.get(WORKLIST, token=api.writer_token).status_code == 200
    assert_problem(api.get(WORKLIST, token=api.stranger_token), 403)
    assert_problem(api.client.get(WORKLIST), 401)


@pytest.mark.parametrize(
    ("parameter", "value", "words"),
    [
        ("sortBy", "amount_owed", ["amountOwed", "weeksInArrears", "daysSinceLastPayment"]),
        ("sortBy", "amountOwed; DROP TABLE accounts", ["amountOwed"]),
        ("direction", "up", ["asc", "desc"]),
        ("limit", "0", ["limit"]),
        ("limit", "1001", ["limit"]),
        ("limit", "ten", ["limit"]),
        ("minWeeksInArrears", "-1", ["minWeeksInArrears"]),
        ("minWeeksInArrears", "four", ["minWeeksInArrears"]),
        ("minWeeksInArrears", "NaN", ["minWeeksInArrears"]),
        ("minAmountOwed", "-0.01", ["minAmountOwed"]),
        ("minAmountOwed", "1.005", ["minAmountOwed"]),
        ("minAmountOwed", "1e13", ["minAmountOwed"]),
        ("rentGroupType", "Rent", ["rentGroupType", "Tenant", "Garages"]),
        ("cursor", "not-a-cursor", ["cursor"]),
        ("cursor", "YW1vdW50T3dlZHxkZXNjfDEwMHxub3QtYS11dWlk", ["cursor"]),  # amountOwed|desc|100|not-a-uuid
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    api: Api, ledger: dict, parameter: str, value: str, words: list[str]
) -> None:
    problem = assert_problem(api.get(WORKLIST, params={parameter: value}), 400, *words)
    assert invalid_names(problem) == [parameter]


def test_a_cursor_only_continues_the_order_it_came_from(api: Api, ledger: dict) -> None:
    cursor = worklist(api, limit=1)["nextCursor"]
    for params in ({"sortBy": "weeksInArrears"}, {"direction": "asc"}):
        problem = assert_problem(api.get(WORKLIST, params={**params, "cursor": cursor}), 400, "cursor", "amountOwed")
        assert invalid_names(problem) == ["cursor"]
    assert names(ledger, worklist(api, limit=1, cursor=cursor)) == ["garage"]
    assert names(ledger, worklist(api, cursor=cursor, minAmountOwed=301)) == []


# On a database of its own ----------------------------------------------------------------


def test_a_payment_posted_moves_the_last_payment_and_the_days_since(application: Application) -> None:
    api = Api(application)
    first = api.create(accountBalance=Decimal("-500.00"), consolidatedCharges=WEEKLY_100)
    second = api.create(accountBalance=Decimal("-400.00"), consolidatedCharges=WEEKLY_100)
    pay(api, second["id"], "10.00", days_ago=3)

    def by_days() -> list[tuple[str, str | None, int]]:
        page = worklist(api, sortBy="daysSinceLastPayment")
        return [(e["accountId"], e["lastPaymentDate"], e["daysSinceLastPayment"]) for e in page["accounts"]]

    assert by_days() == [(second["id"], (TODAY - timedelta(days=3)).isoformat(), 3), (first["id"], None, 0)]

    pay(api, first["id"], "120.00", days_ago=10)
    paid = (TODAY - timedelta(days=10)).isoformat()
    assert by_days() == [(first["id"], paid, 10), (second["id"], (TODAY - timedelta(days=3)).isoformat(), 3)]
    entry = worklist(api)["accounts"][0]
    assert (entry["accountId"], entry["amountOwed"], entry["lastPaymentAmount"]) == (second["id"], 390, 10)

    pay(api, first["id"], "5.00", days_ago=20)  # back-dated: the later payment stays the last
    assert by_days()[0] == (first["id"], paid, 10)
    # GET /accounts/{id} reads as before: the last payment is not in the existing clients' format.
    assert not {"lastPaymentDate", "lastPaymentAmount"} & set(api.account(first["id"]).json())


def test_pages_through_many_equal_debts_have_no_duplicates_or_gaps(application: Application) -> None:
    api = Api(application)
    ids = {api.create(accountBalance=Decimal("-100.00"), consolidatedCharges=WEEKLY_100)["id"] for _ in range(12)}
    for sort in ORDERS:
        for direction in ("desc", "asc"):
            seen: list[str] = []
            params: dict[str, object] = {"sortBy": sort, "direction": direction, "limit": 5}
            while True:
                page = worklist(api, **params)
                seen.extend(entry["accountId"] for entry in page["accounts"])
                if page["nextCursor"] is None:
                    break
                params["cursor"] = page["nextCursor"]
            assert len(seen) == len(set(seen)) == 12 and set(seen) == ids, (sort, direction)
