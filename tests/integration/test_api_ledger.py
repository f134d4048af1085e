"""The activity ledger over HTTP: posting, retrying, reversing, the statement, and every refusal
(SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from accounts.adapters.database import tables as t
from tests.integration.test_api_support import (
    WRITER,
    Api,
    assert_problem,
    invalid_names,
    shared_api,
    to_json,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def post(api: Api, account_id: str, body: Any, if_match: str | None = None, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    content = body if isinstance(body, bytes | str) else to_json(body)
    return api.request("POST", f"/api/v1/accounts/{account_id}/transactions", token, content=content, headers=headers)


def a_posting(kind: str = "Charge", amount: str = "100.00", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "transactionType": kind,
        "amount": Decimal(amount),
        "transactionDate": "2026-04-06",
    }
    body.update(overrides)
    return body


def reverse(api: Api, account_id: str, transaction_id: str, body: Any) -> httpx.Response:
    return api.request(
        "POST",
        f"/api/v1/accounts/{account_id}/transactions/{transaction_id}/reversal",
        content=to_json(body),
        headers={"Content-Type": "application/json"},
    )


def statement(api: Api, account_id: str, **params: Any) -> httpx.Response:
    return api.get(f"/api/v1/accounts/{account_id}/transactions", params=params)


def balance(api: Api, account_id: str) -> Decimal:
    return Decimal(str(api.account(account_id).json()["accountBalance"]))


def test_a_charge_is_posted_with_its_rent_week_and_makes_a_tenure_balance_more_negative(api: Api) -> None:
    account = api.create()
    body = a_posting("Charge", "125.50", description="Rent", transactionDate="2026-04-06")

    response = post(api, account["id"], body)

    assert response.status_code == 201, response.text
    posted = response.json()
    assert response.headers["Location"] == f"/api/v1/accounts/{account['id']}/transactions/{body['id']}"
    assert response.headers["ETag"] == f'"{account["id"]}-2"'
    assert posted["id"] == body["id"] and posted["accountId"] == account["id"]
    assert (posted["transactionType"], posted["direction"]) == ("Charge", "IncreaseOwed")
    assert posted["amount"] == 125.5 and posted["balanceAfter"] == -125.5
    assert (posted["periodNo"], posted["financialYear"]) == (1, 2026)
    assert posted["createdBy"] == WRITER["email"] and posted["postedAt"].endswith("Z")
    assert balance(api, account["id"]) == Decimal("-125.50")
    assert api.get(response.headers["Location"]).json() == posted


def test_a_payment_reduces_what_is_owed_and_the_balance_is_the_sum(api: Api) -> None:
    account = api.create()
    post(api, account["id"], a_posting("Charge", "100.00"))
    post(api, account["id"], a_posting("Payment", "60.25", reference="BACS-1"))
    post(api, account["id"], a_posting("HousingBenefit", "10.00"))
    post(api, account["id"], a_posting("Adjustment", "0.25", direction="IncreaseOwed"))

    assert balance(api, account["id"]) == Decimal("-30.00")


def test_the_same_id_with_the_same_content_posts_nothing_twice(api: Api) -> None:
    account = api.create()
    body = a_posting("Payment", "20.00", reference="PAYPOINT-77")
    first = post(api, account["id"], body)
    again = post(api, account["id"], body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert balance(api, account["id"]) == Decimal("20.00")
    assert statement(api, account["id"]).json()["transactions"] == [first.json()]


def test_the_same_id_with_other_content_is_a_conflict(api: Api) -> None:
    account = api.create()
    body = a_posting("Payment", "20.00")
    post(api, account["id"], body)

    problem = assert_problem(
        post(api, account["id"], {**body, "amount": Decimal("21.00")}), 409, "different transaction"
    )
    assert invalid_names(problem) == ["id"]
    other = api.create()
    assert_problem(
        post(api, other["id"], body), 409, "different transaction"
    )  # the id is the ledger's, not the account's
    assert balance(api, account["id"]) == Decimal("20.00") and balance(api, other["id"]) == Decimal("0.00")


def test_an_ended_account_refuses_charges_but_takes_payments_and_refunds(api: Api) -> None:
    account = api.create(accountStatus="Ended", endReasonCode="RTB")

    assert_problem(post(api, account["id"], a_posting("Charge")), 409, "Ended")
    assert post(api, account["id"], a_posting("Payment", "5.00")).status_code == 201
    assert post(api, account["id"], a_posting("Refund", "5.00")).status_code == 201
    assert balance(api, account["id"]) == Decimal("0.00")


def test_if_match_is_honoured_when_sent(api: Api) -> None:
    account = api.create()
    stale = api.account(account["id"]).headers["ETag"]
    assert post(api, account["id"], a_posting(), if_match=stale).status_code == 201

    assert_problem(post(api, account["id"], a_posting(), if_match=stale), 412)
    assert balance(api, account["id"]) == Decimal("-100.00")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transactionType": "Bribe"}, "transactionType"),
        ({"transactionType": "OpeningBalance"}, "transactionType"),
        ({"transactionType": "Reversal"}, "transactionType"),
        ({"amount": Decimal("0.00")}, "amount"),
        ({"amount": Decimal("-5.00")}, "amount"),
        ({"amount": Decimal("1.005")}, "amount"),
        ({"amount": "12.50"}, "amount"),
        ({"transactionDate": "2026-13-01"}, "transactionDate"),
        ({"transactionDate": "06/04/2026"}, "transactionDate"),
        ({"transactionDate": 1775433600}, "transactionDate"),
        ({"id": "not-a-uuid"}, "id"),
        ({"direction": "IncreaseOwed"}, "direction"),
        ({"transactionType": "Adjustment"}, "direction"),
        ({"balanceAfter": 5}, "balanceAfter"),
    ],
)
def test_bad_postings_are_refused_naming_the_field_and_nothing_is_posted(
    api: Api, change: dict[str, Any], field: str
) -> None:
    account = api.create()

    problem = assert_problem(post(api, account["id"], {**a_posting(), **change}), 400)

    assert field in invalid_names(problem)
    assert balance(api, account["id"]) == Decimal("0.00")
    assert statement(api, account["id"]).json()["transactions"] == []


def test_not_a_number_is_refused(api: Api) -> None:
    account = api.create()
    raw = to_json(a_posting()).replace(b'"amount":100.00', b'"amount":NaN')
    assert_problem(post(api, account["id"], raw), 400)


def test_postings_need_a_write_token_and_an_account(api: Api) -> None:
    account = api.create()
    assert_problem(post(api, account["id"], a_posting(), token=api.reader_token), 403)
    assert_problem(post(api, str(uuid.uuid4()), a_posting()), 404)
    assert_problem(post(api, "nope", a_posting()), 400)
    response = api.request(
        "POST",
        f"/api/v1/accounts/{account['id']}/transactions",
        content=b"amount=5",
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(response, 415)


def test_a_reversal_undoes_exactly_one_transaction_once(api: Api) -> None:
    account = api.create()
    charge = post(api, account["id"], a_posting("Charge", "80.00")).json()

    reversal = reverse(api, account["id"], charge["id"], {"reason": "charged the wrong week"})

    assert reversal.status_code == 201, reversal.text
    body = reversal.json()
    assert (body["transactionType"], body["direction"], body["amount"]) == ("Reversal", "ReduceOwed", 80)
    assert body["reversesId"] == charge["id"] and body["description"] == "charged the wrong week"
    assert balance(api, account["id"]) == Decimal("0.00")
    again = reverse(api, account["id"], charge["id"], {"reason": "charged the wrong week"})
    assert again.status_code == 200 and again.json() == body  # a retry: the same Reversal
    assert_problem(reverse(api, account["id"], charge["id"], {"reason": "another"}), 409, "already been reversed")
    assert_problem(reverse(api, account["id"], body["id"], {"reason": "undo the undo"}), 409, "cannot be reversed")
    assert balance(api, account["id"]) == Decimal("0.00")


def test_a_reversal_of_another_accounts_transaction_is_not_found(api: Api) -> None:
    mine, theirs = api.create(), api.create()
    charge = post(api, theirs["id"], a_posting()).json()

    assert_problem(reverse(api, mine["id"], charge["id"], {"reason": "not mine"}), 404)
    assert_problem(reverse(api, mine["id"], str(uuid.uuid4()), {"reason": "none"}), 404)
    problem = assert_problem(reverse(api, theirs["id"], charge["id"], {"reason": ""}), 400)
    assert invalid_names(problem) == ["reason"]


def test_the_statement_is_oldest_first_with_running_opening_and_closing_balances(api: Api) -> None:
    account = api.create()
    for day, kind, amount in [
        ("2026-04-13", "Charge", "100.00"),
        ("2026-04-06", "Charge", "100.00"),  # posted later, dated earlier: listed first
        ("2026-04-14", "Payment", "150.00"),
        ("2026-04-20", "Charge", "100.00"),
    ]:
        assert post(api, account["id"], a_posting(kind, amount, transactionDate=day)).status_code == 201

    whole = statement(api, account["id"]).json()
    assert [line["transactionDate"] for line in whole["transactions"]] == [
        "2026-04-06",
        "2026-04-13",
        "2026-04-14",
        "2026-04-20",
    ]
    assert [line["balanceAfter"] for line in whole["transactions"]] == [-100, -200, -50, -150]
    assert (whole["openingBalance"], whole["closingBalance"], whole["nextCursor"]) == (0, -150, None)

    first = statement(api, account["id"], limit=2).json()
    second = statement(api, account["id"], limit=2, cursor=first["nextCursor"]).json()
    assert [line["id"] for line in first["transactions"] + second["transactions"]] == [
        line["id"] for line in whole["transactions"]
    ]
    assert (second["openingBalance"], second["closingBalance"]) == (first["closingBalance"], -150)
    assert second["nextCursor"] is None

    ranged = statement(api, account["id"], **{"from": "2026-04-13", "to": "2026-04-14"}).json()
    assert [line["balanceAfter"] for line in ranged["transactions"]] == [-200, -50]
    assert (ranged["openingBalance"], ranged["closingBalance"]) == (-100, -50)


def test_the_statement_as_csv(api: Api) -> None:
    account = api.create()
    post(api, account["id"], a_posting("Charge", "100.00", description="Rent, week 1"))
    post(api, account["id"], a_posting("Payment", "40.00"))

    response = api.get(f"/api/v1/accounts/{account['id']}/transactions", headers={"Accept": "text/csv"})

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["transactionType"], r["amount"], r["balanceAfter"]) for r in rows] == [
        ("Charge", "100.00", "-100.00"),
        ("Payment", "40.00", "-60.00"),
    ]
    assert rows[0]["description"] == "Rent, week 1"


def test_bad_statement_requests(api: Api) -> None:
    account = api.create()
    assert_problem(statement(api, account["id"], cursor="garbage!"), 400, "cursor")
    assert_problem(statement(api, account["id"], limit=0), 400)
    assert_problem(statement(api, account["id"], **{"from": "2026-05-01", "to": "2026-04-01"}), 400)
    assert_problem(statement(api, str(uuid.uuid4())), 404)
    assert_problem(api.get(f"/api/v1/accounts/{account['id']}/transactions", token=api.stranger_token), 403)


def test_existing_clients_patch_of_the_balance_posts_an_adjustment_in_the_statement(api: Api) -> None:
    account = api.create()
    post(api, account["id"], a_posting("Charge", "100.00"))

    patched = api.patch(account["id"], {"accountBalance": Decimal("-30.00")})

    assert patched.status_code == 200, patched.text
    lines = statement(api, account["id"]).json()["transactions"]
    assert [(line["transactionType"], line["direction"], line["amount"]) for line in lines] == [
        ("Charge", "IncreaseOwed", 100),
        ("Adjustment", "ReduceOwed", 70),
    ]
    assert lines[-1]["createdBy"] == WRITER["email"]
    assert balance(api, account["id"]) == Decimal("-30.00")


def test_an_account_created_with_a_balance_opens_its_ledger_with_it(api: Api) -> None:
    account = api.create(accountBalance=Decimal("-250.75"))

    [opening] = statement(api, account["id"]).json()["transactions"]
    assert (opening["transactionType"], opening["amount"], opening["balanceAfter"]) == (
        "OpeningBalance",
        250.75,
        -250.75,
    )
    assert opening["direction"] == "IncreaseOwed"


def test_each_posting_writes_its_event_and_the_accounts_in_the_same_transaction(api: Api) -> None:
    account = api.create()
    before = len(api.events())
    body = a_posting("Payment", "12.00")
    post(api, account["id"], body)

    events = api.events()[before:]
    assert [e["eventType"] for e in events] == ["AccountUpdatedEvent", "AccountTransactionPostedEvent"]
    assert events[1]["eventData"]["newData"]["id"] == body["id"]
    assert events[0]["eventData"]["newData"]["accountBalance"] == 12


def test_ledger_verify_finds_every_balance_the_sum_of_its_transactions(api: Api) -> None:
    account = api.create()
    post(api, account["id"], a_posting("Charge", "10.00"))
    assert list(api.application.ledger.verify()) == []

    with api.application.engine.begin() as connection:  # someone edits the table behind the service's back
        connection.execute(
            t.accounts.update().where(t.accounts.c.id == uuid.UUID(account["id"])).values(account_balance=5)
        )
    [difference] = list(api.application.ledger.verify())
    assert (str(difference.account_id), difference.account_balance, difference.ledger_balance) == (
        account["id"],
        Decimal("5.00"),
        Decimal("-10.00"),
    )
    with api.application.engine.begin() as connection:
        connection.execute(
            t.accounts.update().where(t.accounts.c.id == uuid.UUID(account["id"])).values(account_balance=-10)
        )


def test_the_arrears_follow_the_ledger(api: Api) -> None:
    account = api.create()
    post(api, account["id"], a_posting("Charge", "999999.00"))
    found = api.get("/api/v1/accounts/arrears", params={"resultsCount": 1}).json()["accountResponseList"]
    assert found[0]["id"] == account["id"]
