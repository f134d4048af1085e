"""Payment files and suspense over HTTP (SQLite and PostgreSQL): what is posted, set aside and rejected,
importing again, files too large or not payment files, and resolving suspense by two people."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from accounts.adapters.database import tables as t
from accounts.domain.payment_file import HEADER, payment_transaction_id
from accounts.domain.payment_reference import from_serial
from accounts.entrypoints.http.auth import mint_token
from tests.integration.test_api_support import WRITER, Api, assert_problem, invalid_names, shared_api, to_json

MB = 1024 * 1024
MANAGER = {"name": "Finance Manager", "email": "finance.manager@hackney.gov.uk"}
NOBODY_HAS = from_serial(999_999_990)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def a_reference() -> str:
    """A bank reference no other test uses."""
    return f"BANK-{uuid.uuid4().hex[:12]}"


def upload(api: Api, body: bytes | str | Iterator[bytes], token: str | None = None, **headers: str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return api.request(
        "POST", "/api/v1/payment-files", token, content=content, headers={"Content-Type": "text/csv", **headers}
    )


def csv_of(*lines: str) -> str:
    return "\r\n".join([HEADER, *lines]) + "\r\n"


def balance(api: Api, account_id: str) -> Decimal:
    return Decimal(str(api.account(account_id).json()["accountBalance"]))


def manager_token(api: Api) -> str:
    return mint_token(api.application.settings, **MANAGER, groups=["housing-finance-write"])


def test_each_line_is_posted_set_aside_or_rejected_and_the_answer_says_which(api: Api) -> None:
    account = api.create()
    ended = api.create(accountStatus="Ended")
    ref = account["paymentReference"]
    mistyped = ref[:-1] + str((int(ref[-1]) + 1) % 10)
    paid, unknown, typo, closed = a_reference(), a_reference(), a_reference(), a_reference()

    response = upload(
        api,
        csv_of(
            f"{ref},125.50,2026-04-06,Paypoint,{paid}",
            f"{NOBODY_HAS},20.00,2026-04-06,Bank transfer,{unknown}",
            f"{mistyped},30.00,2026-04-07,Bank transfer,{typo}",
            f"{ended['paymentReference']},40.00,2026-04-07,Direct debit,{closed}",
            f"{ref},twelve,2026-04-07,Paypoint,{a_reference()}",
            f"{ref},10.00,2026-13-01,Paypoint,{a_reference()}",
            f"{ref},10.00,2026-04-07,Paypoint,",
        ),
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert {key: answer[key] for key in ("lines", "posted", "suspense", "rejected", "alreadyImported")} == {
        "lines": 7,
        "posted": 1,
        "suspense": 3,
        "rejected": 3,
        "alreadyImported": 0,
    }
    assert (answer["postedAmount"], answer["suspenseAmount"]) == (125.5, 90.0)
    assert [(line["line"], line["suspenseItem"]["reason"]) for line in answer["suspenseLines"]] == [
        (3, "NoAccountWithReference"),
        (4, "CheckDigitFails"),
        (5, "AccountEnded"),
    ]
    item = answer["suspenseLines"][1]["suspenseItem"]
    assert item["paymentReference"] == mistyped and item["reference"] == typo and item["amount"] == 30.0
    assert "check digit fails" in item["reasonDescription"] and item["status"] == "Unresolved"
    assert answer["rejectedLines"] == [
        {"line": 6, "reason": "amount 'twelve' is not a number"},
        {"line": 7, "reason": "paymentDate '2026-13-01' is not a date (YYYY-MM-DD)"},
        {"line": 8, "reason": "reference is missing: the bank's reference makes the payment importable once"},
    ]
    assert balance(api, account["id"]) == Decimal("125.50")
    payment = api.get(f"/api/v1/accounts/{account['id']}/transactions/{payment_transaction_id(paid)}").json()
    assert (payment["transactionType"], payment["reference"], payment["createdBy"]) == (
        "Payment",
        paid,
        WRITER["email"],
    )


def test_the_same_file_again_and_an_overlapping_one_post_nothing_twice(api: Api) -> None:
    account = api.create()
    ref = account["paymentReference"]
    first, second, third, stray = a_reference(), a_reference(), a_reference(), a_reference()
    day_one = csv_of(
        f"{ref},10.00,2026-04-06,Paypoint,{first}",
        f"{ref},11.00,2026-04-06,Paypoint,{second}",
        f"{NOBODY_HAS},5.00,2026-04-06,Paypoint,{stray}",
    )
    upload(api, day_one)

    again = upload(api, day_one).json()
    overlap = upload(
        api, csv_of(f"{ref},11.00,2026-04-06,Paypoint,{second}", f"{ref},12.00,2026-04-07,Paypoint,{third}")
    ).json()

    assert (again["posted"], again["suspense"], again["alreadyImported"]) == (0, 0, 3)
    assert (overlap["posted"], overlap["alreadyImported"]) == (1, 1)
    assert balance(api, account["id"]) == Decimal("33.00")
    with api.application.engine.connect() as connection:
        items = connection.execute(t.suspense_items.select().where(t.suspense_items.c.reference == stray)).all()
    assert len(items) == 1


def test_a_file_whose_columns_are_wrong_is_refused_whole_and_nothing_is_posted(api: Api) -> None:
    account = api.create()
    body = f"paymentReference,amount,date,method\r\n{account['paymentReference']},10.00,2026-04-06,Paypoint\r\n"

    problem = assert_problem(upload(api, body), 400, "not imported", "missing column(s) paymentDate, reference")

    assert invalid_names(problem) == ["header"]
    assert_problem(upload(api, ""), 400, "empty")
    assert balance(api, account["id"]) == Decimal("0.00")


def test_malformed_csv_rejects_the_lines_it_spoils_and_imports_the_rest(api: Api) -> None:
    account = api.create()
    ref = account["paymentReference"]
    body = (
        csv_of(f"{ref},1.00,2026-04-06,Paypoint,{a_reference()}").encode()
        + f'{ref},2.00,2026-04-06,"Pay"point,{a_reference()}\r\n'.encode()
        + f"{ref},3.00,2026-04-06,Pay\xffpoint,{a_reference()}\r\n".encode("latin-1")
        + f"{ref},4.00\r\n".encode()
        + f"{ref},5.00,2026-04-06,Paypoint,{a_reference()}\r\n".encode()
    )

    answer = upload(api, body).json()

    assert answer["posted"] == 2 and balance(api, account["id"]) == Decimal("6.00")
    assert [(line["line"], line["reason"][:20]) for line in answer["rejectedLines"]] == [
        (3, "is not valid CSV: ',"),
        (4, "is not UTF-8 text"),
        (5, "has 2 fields; the he"),
    ]


def test_a_payment_file_is_sent_as_csv_by_someone_who_may_change_accounts(api: Api) -> None:
    body = csv_of(f"{NOBODY_HAS},1.00,2026-04-06,Paypoint,{a_reference()}")

    assert_problem(upload(api, body, **{"Content-Type": "application/json"}), 415, "text/csv")
    assert_problem(upload(api, body, api.reader_token), 403, "housing-finance-write")
    assert_problem(api.client.post("/api/v1/payment-files", content=body), 401)


def test_a_file_above_its_own_limit_is_refused_with_413_naming_the_limit_and_nothing_is_posted(api: Api) -> None:
    account = api.create()
    line = f"{account['paymentReference']},1.00,2026-04-06,Paypoint,{a_reference()}\r\n"
    fifty_mb = (csv_of() + line).encode().ljust(50 * MB, b"\n")

    declared = upload(api, fifty_mb)

    assert_problem(declared, 413, "20,971,520 bytes", "ACCOUNTS_MAX_PAYMENT_FILE_BYTES")

    def streamed() -> Iterator[bytes]:  # no Content-Length: refused as the bytes pass the limit
        yield (csv_of() + line).encode()
        for _ in range(50):
            yield b"\n" * MB

    assert_problem(upload(api, streamed()), 413, "20,971,520 bytes")
    assert balance(api, account["id"]) == Decimal("0.00")


def test_a_file_larger_than_the_general_body_limit_but_within_its_own_is_imported(api: Api) -> None:
    account = api.create()
    general = api.application.settings.max_body_bytes
    body = csv_of(f"{account['paymentReference']},7.00,2026-04-06,Paypoint,{a_reference()}").encode()
    body = body.ljust(general + 64 * 1024, b"\n")  # blank lines: skipped

    response = upload(api, body)

    assert response.status_code == 200, response.text
    assert response.json()["posted"] == 1 and balance(api, account["id"]) == Decimal("7.00")
    assert_problem(api.post(b"{" + b" " * general + b"}"), 413)  # the other routes keep the general limit


def suspend(api: Api, amount: str = "20.00", day: str = "2026-04-06") -> dict[str, Any]:
    answer = upload(api, csv_of(f"{NOBODY_HAS},{amount},{day},Bank transfer,{a_reference()}")).json()
    return answer["suspenseLines"][0]["suspenseItem"]  # type: ignore[no-any-return]


def propose(api: Api, item_id: str, account_id: str, token: str | None = None) -> httpx.Response:
    return api.request(
        "POST",
        f"/api/v1/suspense/{item_id}/proposal",
        token,
        content=to_json({"accountId": account_id}),
        headers={"Content-Type": "application/json"},
    )


def approve(api: Api, item_id: str, token: str | None = None) -> httpx.Response:
    return api.request("POST", f"/api/v1/suspense/{item_id}/approval", token)


def test_suspense_is_posted_only_when_a_second_person_approves_and_only_once(api: Api) -> None:
    account = api.create()
    item = suspend(api)

    proposed = propose(api, item["id"], account["id"])
    assert proposed.status_code == 200, proposed.text
    assert (proposed.json()["status"], proposed.json()["proposedBy"]) == ("Proposed", WRITER["email"])
    assert proposed.json()["proposedAccountId"] == account["id"]

    assert_problem(approve(api, item["id"]), 403, "cannot approve", "second person")
    assert balance(api, account["id"]) == Decimal("0.00")

    approved = approve(api, item["id"], manager_token(api))
    assert approved.status_code == 200, approved.text
    resolved = approved.json()
    assert (resolved["status"], resolved["approvedBy"]) == ("Resolved", MANAGER["email"])
    assert resolved["resolvedAt"].endswith("Z")
    transaction = resolved["transaction"]
    assert transaction["id"] == resolved["transactionId"] == str(payment_transaction_id(item["reference"]))
    assert transaction["createdBy"] == MANAGER["email"]
    assert WRITER["email"] in transaction["description"] and MANAGER["email"] in transaction["description"]
    assert balance(api, account["id"]) == Decimal("20.00")

    assert_problem(approve(api, item["id"], manager_token(api)), 409, "resolved already")
    assert_problem(propose(api, item["id"], account["id"]), 409, "resolved already")
    assert balance(api, account["id"]) == Decimal("20.00")
    assert api.get(f"/api/v1/suspense/{item['id']}").json()["status"] == "Resolved"


def test_approval_needs_a_proposal_and_unknown_items_and_accounts_are_refused(api: Api) -> None:
    item = suspend(api)

    assert_problem(approve(api, item["id"], manager_token(api)), 409, "no proposal")
    assert invalid_names(assert_problem(propose(api, item["id"], str(uuid.uuid4())), 400, "accountId")) == ["accountId"]
    assert invalid_names(assert_problem(propose(api, item["id"], "not-a-uuid"), 400)) == ["accountId"]
    assert_problem(propose(api, str(uuid.uuid4()), str(uuid.uuid4())), 404, "no suspense item")
    assert_problem(approve(api, str(uuid.uuid4())), 404, "no suspense item")
    assert_problem(api.get(f"/api/v1/suspense/{uuid.uuid4()}"), 404)
    assert_problem(api.get("/api/v1/suspense/nope"), 400, "must be a UUID")
    assert_problem(approve(api, item["id"], api.reader_token), 403, "housing-finance-write")


def test_suspense_lists_open_items_oldest_payment_first_with_reasons_a_page_at_a_time(api: Api) -> None:
    oldest = suspend(api, "1.00", "2000-04-03")
    older = suspend(api, "2.00", "2000-04-04")

    first = api.get("/api/v1/suspense", params={"limit": 1})
    assert first.status_code == 200, first.text
    second = api.get("/api/v1/suspense", params={"limit": 1, "cursor": first.json()["nextCursor"]})

    assert [item["id"] for item in first.json()["items"] + second.json()["items"]] == [oldest["id"], older["id"]]
    assert first.json()["items"][0]["reasonDescription"] == f"no account has payment reference {NOBODY_HAS}"
    assert_problem(api.get("/api/v1/suspense", params={"cursor": "nonsense"}), 400, "cursor")
    assert_problem(api.get("/api/v1/suspense", api.stranger_token), 403)
