"""The account page in Chromium, on both databases: a caseworker opens an account in arrears that has
charges and payments, reads its summary, pages its statement forward and back (each running balance is
the one before plus the amount, as they read them), downloads the statement as CSV, and reads the balance
chart or its table. Every state of the page passes axe (WCAG 2.2 AA)."""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from accounts.entrypoints.http.ledger import CSV_COLUMNS
from accounts.entrypoints.pages.common import money
from tests.browser.site import Site, assert_accessible, signed_in

SIZE = 5  # statement lines a page: several pages from the demonstration's twelve weeks


def pounds(text: str) -> Decimal:
    """An amount as the page shows it (-£1,234.56) as a Decimal."""
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    return sign * Decimal(text.lstrip("-").removeprefix("£").replace(",", ""))


def an_account_with_charges_and_payments(site: Site) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An account on the arrears worklist that has been paid, with its whole statement (from the API)."""
    with site.api("caseworker") as api:
        worklist = api.get("/arrears-worklist", params={"limit": 100})
        assert worklist.status_code == 200, worklist.text
        for entry in worklist.json()["accounts"]:
            if not entry["lastPaymentDate"] or not entry["tenure"]["primaryTenants"]:
                continue
            lines = api.get(f"/accounts/{entry['accountId']}/transactions", params={"limit": 1000}).json()
            kinds = {line["transactionType"] for line in lines["transactions"]}
            if {"Charge", "Payment"} <= kinds and len(lines["transactions"]) > 2 * SIZE:
                return entry, lines["transactions"]
    pytest.fail("the demonstration data has no account in arrears with charges and payments")


def summary(page: Any) -> dict[str, str]:
    rows = page.locator(".app-account-summary .govuk-summary-list__row")
    return {
        rows.nth(n).locator("dt").inner_text().strip(): rows.nth(n).locator("dd").inner_text().strip()
        for n in range(rows.count())
    }


def statement_page(page: Any) -> tuple[Decimal, list[dict[str, Any]]]:
    """The page's balance brought forward and its lines, as a person reads them."""
    table = page.locator("table.app-statement")
    brought_forward = pounds(table.locator(".app-statement__brought-forward td").inner_text())
    lines = []
    rows = table.locator("tbody tr:not(.app-statement__brought-forward)")
    for n in range(rows.count()):
        cells = rows.nth(n).locator("td")
        lines.append(
            {
                "date": cells.nth(0).locator("time").get_attribute("datetime"),
                "type": cells.nth(1).inner_text().strip(),
                "amount": pounds(cells.nth(3).inner_text()),
                "balance": pounds(cells.nth(4).inner_text()),
            }
        )
    return brought_forward, lines


def assert_balances_chain(brought_forward: Decimal, lines: list[dict[str, Any]]) -> None:
    balance = brought_forward
    for line in lines:
        assert line["balance"] == balance + line["amount"], line
        balance = line["balance"]


def test_a_caseworker_reads_an_account_pages_its_statement_downloads_it_and_reads_its_chart(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    entry, transactions = an_account_with_charges_and_payments(site)
    page = signed_in(browser, site, "caseworker", f"/accounts/{entry['accountId']}?size={SIZE}")

    # The summary: as the worklist has it.
    assert page.locator("h1").inner_text() == entry["tenure"]["fullAddress"]
    shown = summary(page)
    assert shown["Payment reference"] == entry["paymentReference"]
    assert shown["Rent group"] == entry["rentGroupType"]
    assert shown["Status"] == "Active"
    assert shown["Address"] == entry["tenure"]["fullAddress"]
    for tenant in entry["tenure"]["primaryTenants"]:
        assert tenant["fullName"] in shown["Tenants"]
    assert shown["Weekly charge"] == money(Decimal(str(entry["weeklyCharge"])))
    assert shown["Weeks in arrears"] == str(entry["weeksInArrears"])
    assert shown["Amount owed"] == money(Decimal(str(entry["amountOwed"])))
    balance = pounds(shown["Balance"])
    assert_accessible(page)

    # The statement, page by page: each brought forward is the page before's last balance.
    pages = [statement_page(page)]
    assert pages[0][0] == Decimal("0.00")
    assert page.locator(".govuk-pagination__prev").count() == 0
    while page.locator(".govuk-pagination__next").count():
        page.locator(".govuk-pagination__next a").click()
        pages.append(statement_page(page))
        assert pages[-1][0] == pages[-2][1][-1]["balance"]
        assert page.locator("caption", has_text="Statement, page").inner_text() == f"Statement, page {len(pages)}"
    assert len(pages) >= 3
    assert_accessible(page)
    for brought_forward, lines in pages:
        assert_balances_chain(brought_forward, lines)
    read = [line for _, lines in pages for line in lines]
    assert [(line["date"], line["type"]) for line in read] == [
        (t["transactionDate"], t["transactionType"]) for t in transactions
    ]
    assert read[-1]["balance"] == balance
    # ... and back again, page by page, to the first.
    for earlier in range(len(pages) - 2, -1, -1):
        page.locator(".govuk-pagination__prev a").click()
        assert statement_page(page) == pages[earlier]
    assert page.locator(".govuk-pagination__prev").count() == 0

    # The whole statement as CSV: the lines read on the pages.
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download the whole statement (CSV)").click()
    download = downloading.value
    assert download.suggested_filename == f"statement-{entry['paymentReference']}.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(newline="") as file:
        reader = csv.reader(file)
        assert tuple(next(reader)) == CSV_COLUMNS
        rows = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in reader]
    assert [(row["transactionDate"], row["transactionType"], Decimal(row["balanceAfter"])) for row in rows] == [
        (line["date"], line["type"], line["balance"]) for line in read
    ]
    assert all(abs(Decimal(row["amount"])) == abs(line["amount"]) for row, line in zip(rows, read, strict=True))

    # The chart: an image with a name and a description, and the same figures as a table.
    chart = page.locator("svg.app-chart[role=img]")
    assert chart.get_attribute("aria-labelledby") == "chart-title chart-desc"
    assert "52 rent weeks" in chart.locator("title").text_content()
    assert chart.locator("desc").text_content().startswith("52 weeks. The balance was")
    assert chart.locator("polyline").get_attribute("points").count(",") == 52
    page.get_by_text("The balance each week, as a table").click()
    weeks = page.locator(".app-chart-table tbody tr")
    assert weeks.count() == 52
    assert pounds(weeks.nth(51).locator("td").nth(2).inner_text()) == balance
    assert_accessible(page)

    if folder := os.environ.get("ACCOUNTS_SCREENSHOTS"):
        page.goto(f"/accounts/{entry['accountId']}")
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "account.png"), full_page=True)
    page.context.close()


def test_the_account_page_works_without_javascript(site: Site, browser: Any) -> None:
    entry, _ = an_account_with_charges_and_payments(site)
    context = browser.new_context(base_url=site.url, java_script_enabled=False)
    context.add_cookies([{"name": "hackneyToken", "value": site.tokens["officer"], "url": site.url, "httpOnly": True}])
    page = context.new_page()
    page.goto(f"/accounts/{entry['accountId']}?size={SIZE}")
    assert page.locator("svg.app-chart polyline").count() == 1
    page.locator(".govuk-pagination__next a").click()
    assert page.locator("caption", has_text="Statement, page").inner_text() == "Statement, page 2"
    context.close()


def test_an_unknown_account_is_a_page_saying_so(site: Site, browser: Any) -> None:
    page = signed_in(browser, site, "caseworker", "/accounts/00000000-0000-4000-8000-000000000000")
    assert page.locator("h1").inner_text() == "Account not found"
    assert_accessible(page)
    page.context.close()
