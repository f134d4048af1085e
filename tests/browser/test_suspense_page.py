"""Suspense in the browser: payments that could not be posted, listed with why; one finance officer proposes
the account (found by the search), a different one approves, and the payment is posted; the proposer alone
cannot approve, and a caseworker sees the list but cannot act. On both databases, axe-clean in each state."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import Site, assert_accessible, signed_in


@pytest.fixture(scope="module")
def account(site: Site) -> dict[str, Any]:
    """An account of the demonstration data (the first on the worklist), as the API gives it."""
    with site.api("caseworker") as api:
        entries = api.get("/arrears-worklist").json()["accounts"]
    chosen: dict[str, Any] = entries[0]
    return chosen


def stray_payment(site: Site, amount: str) -> str:
    """A payment with a reference no account holds, imported as a payment file is: set aside in suspense.
    Its bank reference (the suspense row's `data-reference`) is returned."""
    bank = f"PAGE-{uuid.uuid4().hex[:12]}"
    csv = (
        f"paymentReference,amount,paymentDate,method,reference\r\n70000001,{amount},2026-11-30,Bank Transfer,{bank}\r\n"
    )
    with site.api("officer") as api:
        imported = api.post("/payment-files", content=csv, headers={"Content-Type": "text/csv"})
    assert imported.status_code == 200 and imported.json()["suspense"] == 1, imported.text
    return bank


def balance(site: Site, account_id: str) -> Decimal:
    with site.api("caseworker") as api:
        return Decimal(str(api.get(f"/accounts/{account_id}").json()["accountBalance"]))


def row(page: Any, bank: str) -> Any:
    return page.locator(f'main tr[data-reference="{bank}"]')


def propose(page: Any, bank: str, account: dict[str, Any]) -> None:
    """From the list: open the payment, search for the account by its payment reference, choose it, propose."""
    row(page, bank).get_by_role("link", name="Find the account").click()
    assert page.locator("h1").inner_text().endswith("in suspense")
    assert_accessible(page)
    page.get_by_label("Search for the account by payment reference, address or tenant name").fill(
        account["paymentReference"]
    )
    page.locator(".app-account-search").get_by_role("button", name="Search").click()
    page.get_by_label(f"{account['paymentReference']}: {account['tenure']['fullAddress']}").check()
    assert_accessible(page)
    page.get_by_role("button", name="Propose this account").click()


def test_the_list_shows_each_payment_with_why_it_could_not_be_posted(site: Site, browser: Any) -> None:
    page = signed_in(browser, site, "officer", "/suspense")

    assert page.locator("h1").inner_text() == "Payments in suspense"
    rows = page.locator("main table tbody tr")
    assert rows.count() >= 1, "the demonstration data has payments in suspense"
    first = rows.first.locator("td")
    assert first.nth(3).inner_text().startswith("No account has payment reference")
    assert first.nth(4).inner_text() == "Unresolved"
    assert_accessible(page)
    page.context.close()


def test_one_officer_proposes_another_approves_and_the_payment_is_posted(
    site: Site, browser: Any, account: dict[str, Any]
) -> None:
    bank = stray_payment(site, "23.45")
    before = balance(site, account["accountId"])
    officer = signed_in(browser, site, "officer", "/suspense")

    propose(officer, bank, account)

    banner = officer.locator(".govuk-notification-banner")
    assert f"Account {account['paymentReference']} proposed for the payment of £23.45" in banner.inner_text()
    assert row(officer, bank).locator("td").nth(4).inner_text().startswith("Proposed")
    assert f"proposed by {site_email('officer')}" in row(officer, bank).inner_text()
    assert_accessible(officer)
    if os.environ.get("ACCOUNTS_SCREENSHOTS"):
        officer.screenshot(path=str(Path(os.environ["ACCOUNTS_SCREENSHOTS"]) / "suspense.png"), full_page=True)

    # The same officer cannot approve their own proposal: said on the page, nothing posted.
    row(officer, bank).get_by_role("link", name="Check and approve").click()
    officer.get_by_role("button", name="Approve and post £23.45").click()
    summary = officer.locator(".govuk-error-summary")
    assert "You proposed this account, so you cannot approve it too" in summary.inner_text()
    assert_accessible(officer)
    assert balance(site, account["accountId"]) == before

    approver = signed_in(browser, site, "approver", "/suspense")
    row(approver, bank).get_by_role("link", name="Check and approve").click()
    assert_accessible(approver)
    approver.get_by_role("button", name="Approve and post £23.45").click()

    banner = approver.locator(".govuk-notification-banner")
    assert f"Payment of £23.45 posted to account {account['paymentReference']}" in banner.inner_text()
    assert row(approver, bank).count() == 0
    assert_accessible(approver)
    assert balance(site, account["accountId"]) == before + Decimal("23.45")
    officer.context.close()
    approver.context.close()


def test_a_caseworker_sees_the_payments_but_cannot_act(site: Site, browser: Any) -> None:
    bank = stray_payment(site, "5.00")
    page = signed_in(browser, site, "caseworker", "/suspense")

    assert row(page, bank).count() == 1
    assert page.locator("main button").count() == 0
    assert row(page, bank).get_by_role("link", name="Find the account").count() == 0
    assert_accessible(page)

    row(page, bank).get_by_role("link", name="View").click()
    assert page.locator("main button, main form").count() == 0
    assert "You can see it, but not change it" in page.locator("main").inner_text()
    assert_accessible(page)
    page.context.close()


def site_email(who: str) -> str:
    from tests.browser.site import PEOPLE

    return PEOPLE[who][1]
