"""Accounts in arrears over HTTP: decided by the target type's polarity, sorted only by known keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from accounts.bootstrap import Application
from accounts.domain.account import AccountType, Actor
from accounts.service.accounts import ARREARS_SORT_NAMES, NewAccount
from tests.integration.test_api_support import Api, assert_problem, invalid_names, shared_api, tenure_request

# name: (target type, account type, balance). Tenure and Licensing charges are negative
# (NegativeIsArrears); housing benefit overpayments are positive (PositiveIsArrears).
LEDGER = {
    "tenant owing 300": ("Tenure", "Master", "-300.00"),
    "tenant owing recharge": ("Tenure", "Sundry", "-50.25"),
    "tenant in credit": ("Tenure", "Master", "40.00"),
    "tenant square": ("Tenure", "Master", "0.00"),
    "benefit overpaid": ("HousingBenefit", "Sundry", "75.00"),
    "benefit owed back": ("HousingBenefit", "Sundry", "-20.00"),
    "licence owing": ("Licensing", "Recharge", "-1000.01"),
}
IN_ARREARS = {"tenant owing 300": 300, "tenant owing recharge": 50.25, "benefit overpaid": 75, "licence owing": 1000.01}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def ledger(api: Api) -> dict[str, dict]:
    """The module's accounts, by name; the module's database holds nothing else."""
    accounts = {}
    for name, (target_type, account_type, balance) in LEDGER.items():
        accounts[name] = api.create(targetType=target_type, accountType=account_type, accountBalance=Decimal(balance))
    return accounts


def arrears(api: Api, **params: object) -> list[dict]:
    response = api.get("/api/v1/accounts/arrears", params=params)
    assert response.status_code == 200, response.text
    return response.json()["accountResponseList"]  # type: ignore[no-any-return]


def names(ledger: dict[str, dict], accounts: list[dict]) -> list[str]:
    by_id = {account["id"]: name for name, account in ledger.items()}
    return [by_id[account["id"]] for account in accounts]


def test_arrears_are_decided_by_the_target_types_polarity_largest_debt_first(api: Api, ledger: dict) -> None:
    found = names(ledger, arrears(api))
    assert found == ["licence owing", "tenant owing 300", "benefit overpaid", "tenant owing recharge"]


def test_smallest_debt_first_when_asked_in_any_case_under_either_parameter_name(api: Api, ledger: dict) -> None:
    expected = ["tenant owing recharge", "benefit overpaid", "tenant owing 300", "licence owing"]
    assert names(ledger, arrears(api, sortBy="AMOUNTOWED", direction="ASC")) == expected
    assert names(ledger, arrears(api, sort="amountowed", direction="asc")) == expected


def test_arrears_of_one_account_type_under_either_parameter_name(api: Api, ledger: dict) -> None:
    assert names(ledger, arrears(api, type="Sundry")) == ["benefit overpaid", "tenant owing recharge"]
    assert names(ledger, arrears(api, accountType="Master")) == ["tenant owing 300"]
    assert arrears(api, type="Recharge", resultsCount=1)[0]["id"] == ledger["licence owing"]["id"]


def test_results_count_limits_the_list(api: Api, ledger: dict) -> None:
    assert names(ledger, arrears(api, resultsCount=2)) == ["licence owing", "tenant owing 300"]
    assert len(arrears(api, resultsCount=1)) == 1
    assert len(arrears(api, resultsCount=10_000)) == 4


@pytest.mark.parametrize("key", ARREARS_SORT_NAMES)
def test_every_documented_sort_key_sorts_and_only_accounts_in_arrears_are_listed(
    api: Api, ledger: dict, key: str
) -> None:
    ascending = arrears(api, sortBy=key, direction="asc")
    descending = arrears(api, sortBy=key.upper(), direction="DESC")
    assert set(names(ledger, ascending)) == set(IN_ARREARS)
    if key == "accountBalance":
        assert [a["accountBalance"] for a in ascending] == sorted(a["accountBalance"] for a in ascending)
        assert names(ledger, descending) == [
            "benefit overpaid",
            "tenant owing recharge",
            "tenant owing 300",
            "licence owing",
        ]
    if key == "paymentReference":
        assert [a["paymentReference"] for a in descending] == sorted(
            (a["paymentReference"] for a in ascending), reverse=True
        )


def test_money_in_the_arrears_list_is_exact(api: Api, ledger: dict) -> None:
    response = api.get("/api/v1/accounts/arrears", params={"resultsCount": 1})
    assert '"accountBalance":-1000.01' in response.text


@pytest.mark.parametrize(
    "key",
    [
        "owed",
        "amount_owed",
        "id",
        "targetId",
        "amountOwed; DROP TABLE accounts; --",
        "amountOwed desc, (SELECT 1)",
        "1",
        "' OR '1'='1",
        "accounts.amount_owed",
    ],
)
def test_an_unknown_sort_key_is_refused_naming_the_allowed_ones_and_nothing_is_touched(
    api: Api, ledger: dict, key: str
) -> None:
    before = api.snapshot()
    for parameter in ("sortBy", "sort"):
        problem = assert_problem(
            api.get("/api/v1/accounts/arrears", params={parameter: key}), 400, "sortBy", *ARREARS_SORT_NAMES
        )
        assert invalid_names(problem) == ["sortBy"]
    assert api.snapshot() == before
    assert len(arrears(api)) == 4


@pytest.mark.parametrize("direction", ["up", "descending", "1", "asc;"])
def test_an_unknown_direction_is_refused_naming_asc_and_desc(api: Api, direction: str) -> None:
    problem = assert_problem(api.get("/api/v1/accounts/arrears", params={"direction": direction}), 400, "asc", "desc")
    assert invalid_names(problem) == ["direction"]


@pytest.mark.parametrize("count", ["0", "-1", "-100", "10001", "99999999999999999999999"])
def test_a_results_count_out_of_range_is_refused(api: Api, count: str) -> None:
    problem = assert_problem(
        api.get("/api/v1/accounts/arrears", params={"resultsCount": count}), 400, "resultsCount", "between 1 and 10000"
    )
    assert invalid_names(problem) == ["resultsCount"]


@pytest.mark.parametrize("count", ["ten", "1.5", ""])
def test_a_results_count_that_is_not_a_whole_number_is_refused(api: Api, count: str) -> None:
    problem = assert_problem(api.get("/api/v1/accounts/arrears", params={"resultsCount": count}), 400, "resultsCount")
    assert invalid_names(problem) == ["resultsCount"]


@pytest.mark.parametrize("parameter", ["type", "accountType"])
def test_an_unknown_account_type_is_refused(api: Api, parameter: str) -> None:
    response = api.get("/api/v1/accounts/arrears", params={parameter: "Rent"})
    problem = assert_problem(response, 400, parameter, "Master", "Recharge", "Sundry")
    assert invalid_names(problem) == [parameter]


# On a database of its own ----------------------------------------------------------------


def test_a_balance_change_or_a_new_target_type_moves_an_account_in_and_out_of_arrears(
    application: Application,
) -> None:
    api = Api(application)
    account = api.create()

    def listed() -> bool:
        return account["id"] in {a["id"] for a in arrears(api)}

    assert not listed()
    api.patch(account["id"], {"accountBalance": -10})
    assert listed()
    api.patch(account["id"], {"targetType": "HousingBenefit"})  # -10 there is money owed back to the tenant
    assert not listed()
    api.patch(account["id"], {"accountBalance": 10})
    assert listed()


def test_the_arrears_list_is_never_cut_short_at_a_storage_page(application: Application) -> None:
    writer = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
    for index in range(120):
        command = NewAccount(
            target_type="Tenure",
            target_id=uuid.uuid4(),
            account_type=AccountType.SUNDRY,
            account_balance=Decimal(-1 - index),
        )
        application.accounts.create(command, writer, uuid.uuid4())
    api = Api(application)
    assert api.post(tenure_request()).status_code == 201  # in credit: not listed

    assert len(arrears(api)) == 100  # the documented default count
    found = arrears(api, resultsCount=1000, direction="asc")

    assert len(found) == 120
    assert [a["accountBalance"] for a in found] == [-1 - index for index in range(120)]
