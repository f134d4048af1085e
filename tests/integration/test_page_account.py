"""The account page's server side, in process (SQLite and PostgreSQL): who may see it, what an unknown
account shows, data escaped, the statement's pages and its CSV download agreeing with the API's."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from html import unescape

import pytest
from fastapi.testclient import TestClient

from accounts.entrypoints.http.ledger import CSV_COLUMNS
from tests.integration.test_api_ledger import a_posting, post
from tests.integration.test_api_support import Api, shared_api


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


def browser(api: Api, token: str | None) -> TestClient:
    """A browser's view of the site: the auth cookie, no Authorization header."""
    cookies = {"hackneyToken": token} if token else None
    return TestClient(api.client.app, cookies=cookies, raise_server_exceptions=False)


def charged_account(api: Api, charges: int = 3, **overrides: object) -> dict[str, object]:
    account = api.create(**overrides)
    for week in range(charges):
        charge = a_posting("Charge", "100.00", transactionDate=(date(2026, 4, 6) + timedelta(weeks=week)).isoformat())
        assert post(api, str(account["id"]), charge).status_code == 201
    payment = a_posting("Payment", "30.50", transactionDate="2026-04-10", description="Direct debit")
    assert post(api, str(account["id"]), payment).status_code == 201
    return account


def cells(html: str, css_class: str) -> list[str]:
    return [unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(css_class + r'">(.*?)</td>', html)]


def statement_table(html: str) -> str:
    return re.search(r'<table class="[^"]*app-statement".*?</table>', html, re.S).group(0)  # type: ignore[union-attr]


def test_without_a_cookie_the_account_page_asks_to_sign_in_and_a_stranger_is_told_which_group(api: Api) -> None:
    account = api.create()
    for path in (f"/accounts/{account['id']}", f"/accounts/{account['id']}/statement.csv"):
        response = browser(api, None).get(path)
        assert response.status_code == 401 and "Sign in" in response.text, path
        stranger = browser(api, api.stranger_token).get(path)
        assert stranger.status_code == 403 and "housing-finance-read" in stranger.text, path


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/{unknown}",
        "/accounts/not-an-id",
        "/accounts/{unknown}/statement.csv",
        "/accounts/not-an-id/statement.csv",
        "/accounts/{known}?page=not-a-cursor",
    ],
)
def test_an_unknown_or_malformed_account_is_a_404_page(api: Api, path: str) -> None:
    known = api.create()["id"]
    response = browser(api, api.reader_token).get(path.format(unknown=uuid.uuid4(), known=known))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1" in response.text and "not found" in response.text


def test_a_tenant_name_and_address_are_shown_escaped(api: Api) -> None:
    tenure_id = str(uuid.uuid4())
    account = api.create(
        targetId=tenure_id,
        tenure={
            "tenureId": tenure_id,
            "tenureType": {"code": "SEC", "description": "Secure"},
            "fullAddress": "1 <b>Bold</b> Street & Co, London E8",
            "primaryTenants": [{"id": str(uuid.uuid4()), "fullName": "<script>alert('owned')</script> Smith"}],
        },
    )
    page = browser(api, api.reader_token).get(f"/accounts/{account['id']}")

    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<b>Bold</b>" not in page.text
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; Smith" in page.text
    assert "1 &lt;b&gt;Bold&lt;/b&gt; Street &amp; Co, London E8" in page.text


def test_the_page_shows_the_summary_the_statement_with_running_balances_and_the_chart(api: Api) -> None:
    account = charged_account(api)
    page = browser(api, api.reader_token).get(f"/accounts/{account['id']}")

    assert page.status_code == 200
    text = unescape(re.sub(r"<[^>]+>", " ", page.text))
    for shown in ("Active", str(account["paymentReference"]), "Tenant", "Secure (SEC)", "Ms Jane Smith", "-£269.50"):
        assert shown in text, shown
    # Oldest first: charge 6 April, payment 10 April, charges 13 and 20 April.
    assert cells(page.text, "govuk-table__cell govuk-table__cell--numeric")[-8:] == [
        "-£100.00", "-£100.00", "£30.50", "-£69.50", "-£100.00", "-£169.50", "-£100.00", "-£269.50",
    ]  # fmt: skip
    assert re.search(r'<svg class="app-chart" role="img" aria-labelledby="chart-title chart-desc"', page.text)
    assert 'id="chart-title"' in page.text and 'id="chart-desc"' in page.text and "<polyline" in page.text
    assert " style=" not in page.text  # the Content-Security-Policy would block it


def test_the_statement_pages_forward_and_back_with_balances_carried_over(api: Api) -> None:
    account = charged_account(api, charges=5)  # six lines: pages of 4 and 2
    client = browser(api, api.reader_token)
    first = client.get(f"/accounts/{account['id']}?size=4")
    assert "Statement, page 1" in first.text and 'rel="prev"' not in first.text
    later = unescape(re.search(r'href="([^"]+)" rel="next"', first.text).group(1))  # type: ignore[union-attr]
    second = client.get(later)
    assert "Statement, page 2" in second.text and 'rel="next"' not in second.text
    numeric = "govuk-table__cell govuk-table__cell--numeric"
    brought_forward = cells(statement_table(second.text), numeric)[0]
    assert brought_forward == cells(statement_table(first.text), numeric)[-1] == "-£269.50"
    earlier = unescape(re.search(r'href="([^"]+)" rel="prev"', second.text).group(1))  # type: ignore[union-attr]
    assert statement_table(client.get(earlier).text) == statement_table(first.text)


def test_the_csv_download_is_the_whole_statement_as_the_api_gives_it(api: Api) -> None:
    account = charged_account(api)
    download = browser(api, api.reader_token).get(f"/accounts/{account['id']}/statement.csv")

    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == (
        f'attachment; filename="statement-{account["paymentReference"]}.csv"'
    )
    assert download.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row["transactionDate"], row["amount"], row["balanceAfter"]) for row in rows] == [
        ("2026-04-06", "100.00", "-100.00"),
        ("2026-04-10", "30.50", "-69.50"),
        ("2026-04-13", "100.00", "-169.50"),
        ("2026-04-20", "100.00", "-269.50"),
    ]
    api_csv = api.get(f"/api/v1/accounts/{account['id']}/transactions", headers={"Accept": "text/csv"})
    assert download.text == api_csv.text
    assert all(Decimal(row["amount"]) > 0 for row in rows)
