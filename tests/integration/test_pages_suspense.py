"""The search and suspense pages in process, without a browser: who may see and act, forms from elsewhere
refused, unknown items, the two-person rule's refusal on the page, and names shown as text, never markup."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.integration.test_api_support import tenure_request

PEOPLE = {
    "caseworker": ("Casey Worker", "casey.worker@hackney.gov.uk", ["housing-finance-read"]),
    "officer": ("Fran Officer", "fran.officer@hackney.gov.uk", ["housing-finance-write"]),
    "approver": ("Abi Approver", "abi.approver@hackney.gov.uk", ["housing-finance-write"]),
}
UNKNOWN_REFERENCE = "7000000001"  # no account's: its payment goes to suspense
SCRIPT_NAME = "Ms <script>alert('x')</script> Okafor"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Application, dict[str, str]]]:
    application = bootstrap(make_settings(f"sqlite:///{tmp_path / 'pages.db'}", tmp_path), run_migrations=True)
    tokens = {who: mint_token(application.settings, name=n, email=e, groups=g) for who, (n, e, g) in PEOPLE.items()}
    try:
        yield application, tokens
    finally:
        application.close()


def browser(site: tuple[Application, dict[str, str]], who: str | None) -> TestClient:
    """A client holding `who`'s auth cookie (none: not signed in), as a browser would."""
    application, tokens = site
    client = TestClient(create_app(application), raise_server_exceptions=False, follow_redirects=False)
    if who is not None:
        client.cookies.set("hackneyToken", tokens[who])
    return client


def api(site: tuple[Application, dict[str, str]]) -> TestClient:
    application, tokens = site
    client = TestClient(create_app(application), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {tokens['officer']}"
    return client


def an_account_and_a_suspense_item(site: tuple[Application, dict[str, str]]) -> tuple[dict[str, Any], str]:
    """An account whose tenant's name holds markup, and a payment of 12.34 in suspense (a reference no one has)."""
    client = api(site)
    body = tenure_request()
    body["tenure"]["primaryTenants"][0]["fullName"] = SCRIPT_NAME
    account = client.post("/api/v1/accounts", json=body)
    assert account.status_code == 201, account.text
    csv = f"paymentReference,amount,paymentDate,method,reference\r\n{UNKNOWN_REFERENCE},12.34,2026-04-06,BACS,B-1\r\n"
    imported = client.post("/api/v1/payment-files", content=csv, headers={"Content-Type": "text/csv"})
    assert imported.json()["suspense"] == 1, imported.text
    (item,) = client.get("/api/v1/suspense").json()["items"]
    return account.json(), item["id"]


def form_token(client: TestClient, path: str) -> str:
    """The form token the page at `path` carries in its forms (and its cookie)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrfToken" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def item_state(site: tuple[Application, dict[str, str]], item_id: str) -> dict[str, Any]:
    return api(site).get(f"/api/v1/suspense/{item_id}").json()  # type: ignore[no-any-return]


def test_without_a_cookie_the_pages_ask_to_sign_in(site: tuple[Application, dict[str, str]]) -> None:
    _, item_id = an_account_and_a_suspense_item(site)
    client = browser(site, None)
    for path in ("/search?q=okafor", "/suspense", f"/suspense/{item_id}"):
        page = client.get(path)
        assert page.status_code == 401 and '<h1 class="govuk-heading-l">Sign in</h1>' in page.text, path
    posted = client.post(f"/suspense/{item_id}/approval", data={"csrfToken": "x"})
    assert posted.status_code == 401


def test_a_caseworker_sees_the_list_without_actions_and_a_post_of_theirs_is_refused(
    site: tuple[Application, dict[str, str]],
) -> None:
    account, item_id = an_account_and_a_suspense_item(site)
    client = browser(site, "caseworker")

    listed = client.get("/suspense")
    assert listed.status_code == 200 and UNKNOWN_REFERENCE in listed.text
    assert "Find the account" not in listed.text and "View" in listed.text
    item = client.get(f"/suspense/{item_id}?q=okafor")
    assert item.status_code == 200 and '<form action="/suspense/' not in item.text
    assert "You can see it, but not change it" in item.text

    token = form_token(client, "/suspense")
    for action, data in (("proposal", {"accountId": account["id"]}), ("approval", {})):
        refused = client.post(f"/suspense/{item_id}/{action}", data={"csrfToken": token, **data})
        assert refused.status_code == 403 and "You cannot do this" in refused.text
        assert "housing-finance-write" in refused.text
    assert item_state(site, item_id)["status"] == "Unresolved"


def test_a_form_without_its_token_or_from_elsewhere_is_refused(site: tuple[Application, dict[str, str]]) -> None:
    account, item_id = an_account_and_a_suspense_item(site)
    client = browser(site, "officer")
    token = form_token(client, f"/suspense/{item_id}?q=okafor")

    for data, headers in (
        ({"accountId": account["id"]}, {}),
        ({"accountId": account["id"], "csrfToken": "guessed"}, {}),
        ({"accountId": account["id"], "csrfToken": token}, {"Origin": "https://evil.example"}),
    ):
        refused = client.post(f"/suspense/{item_id}/proposal", data=data, headers=headers)
        assert refused.status_code == 403, refused.text
        assert item_state(site, item_id)["status"] == "Unresolved"

    proposed = client.post(f"/suspense/{item_id}/proposal", data={"accountId": account["id"], "csrfToken": token})
    assert proposed.status_code == 303 and proposed.headers["location"] == f"/suspense?proposed={item_id}"
    assert item_state(site, item_id)["proposedAccountId"] == account["id"]


def test_two_officers_place_a_payment_and_the_proposer_alone_cannot(site: tuple[Application, dict[str, str]]) -> None:
    account, item_id = an_account_and_a_suspense_item(site)
    officer, approver = browser(site, "officer"), browser(site, "approver")
    token = form_token(officer, f"/suspense/{item_id}")

    unchosen = officer.post(f"/suspense/{item_id}/proposal", data={"csrfToken": token, "q": "okafor"})
    assert unchosen.status_code == 400 and "Choose the account the payment belongs to" in unchosen.text
    officer.post(f"/suspense/{item_id}/proposal", data={"accountId": account["id"], "csrfToken": token})
    banner = officer.get(f"/suspense?proposed={item_id}").text
    assert f"Account {account['paymentReference']} proposed for the payment of £12.34" in banner

    own = officer.post(f"/suspense/{item_id}/approval", data={"csrfToken": token})
    assert own.status_code == 403
    assert "You proposed this account, so you cannot approve it too" in own.text
    assert "govuk-error-summary" in own.text and item_state(site, item_id)["status"] == "Proposed"

    approved = approver.post(f"/suspense/{item_id}/approval", data={"csrfToken": form_token(approver, "/suspense")})
    assert approved.status_code == 303 and approved.headers["location"] == f"/suspense?posted={item_id}"
    listed = approver.get(approved.headers["location"]).text
    assert f"Payment of £12.34 posted to account {account['paymentReference']}" in listed
    assert UNKNOWN_REFERENCE not in listed.split("</h1>", 1)[1]  # no longer listed
    balance = api(site).get(f"/api/v1/accounts/{account['id']}").json()["accountBalance"]
    assert Decimal(str(balance)) == Decimal("12.34")

    again = approver.post(f"/suspense/{item_id}/approval", data={"csrfToken": form_token(approver, "/suspense")})
    assert again.status_code == 409 and "The payment cannot be approved" in again.text


def test_unknown_items_are_not_found(site: tuple[Application, dict[str, str]]) -> None:
    client = browser(site, "officer")
    token = form_token(client, "/suspense")
    for path in (f"/suspense/{uuid.uuid4()}", "/suspense/not-an-id"):
        page = client.get(path)
        assert page.status_code == 404 and "Page not found" in page.text, path
    refused = client.post(f"/suspense/{uuid.uuid4()}/approval", data={"csrfToken": token})
    assert refused.status_code == 404
    assert client.get("/suspense?cursor=nonsense").status_code == 400


def test_names_and_searches_are_shown_as_text(site: tuple[Application, dict[str, str]]) -> None:
    _, item_id = an_account_and_a_suspense_item(site)
    client = browser(site, "officer")

    for path in ("/search?q=okafor", f"/suspense/{item_id}?q=okafor", "/search?q=<b>bold</b>"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<b>bold" not in page.text, path
    assert "Ms &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Okafor" in client.get("/search?q=okafor").text
