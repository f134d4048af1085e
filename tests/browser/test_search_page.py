"""The search box on every page: a payment reference, part of an address or a tenant's name, typed as a
caseworker would, and the accounts that match (the demonstration data's, on both databases)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import Site, assert_accessible, signed_in


@pytest.fixture(scope="module")
def account(site: Site) -> dict[str, Any]:
    """An account of the demonstration data (the first on the worklist), as the API gives it."""
    with site.api("caseworker") as api:
        entries = api.get("/arrears-worklist").json()["accounts"]
    assert entries, "the demonstration data has accounts in arrears"
    chosen: dict[str, Any] = entries[0]
    return chosen


def search(page: Any, text: str) -> list[dict[str, str]]:
    """Type into the search box on the page, search, and read the results table (empty when none match)."""
    page.get_by_label("Search accounts by payment reference, address or tenant name").fill(text)
    page.locator(".app-search").get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    rows = page.locator("main table tbody tr")
    return [
        {
            "reference": rows.nth(n).locator("td").nth(0).inner_text(),
            "href": rows.nth(n).locator("td a").get_attribute("href") or "",
            "address": rows.nth(n).locator("td").nth(1).inner_text(),
            "tenants": rows.nth(n).locator("td").nth(2).inner_text(),
            "status": rows.nth(n).locator("td").nth(3).inner_text(),
        }
        for n in range(rows.count())
    ]


def test_a_payment_reference_finds_its_account_first(site: Site, browser: Any, account: dict[str, Any]) -> None:
    page = signed_in(browser, site, "caseworker", "/suspense")
    reference = account["paymentReference"]

    (found,) = search(page, reference)

    assert page.locator("h1").inner_text() == f"Accounts matching \u2018{reference}\u2019"
    assert found["reference"] == reference and found["href"] == f"/accounts/{account['accountId']}"
    assert found["address"] == account["tenure"]["fullAddress"]
    assert found["status"] == "Active"
    assert page.get_by_label("Search accounts by payment reference, address or tenant name").input_value() == reference
    assert_accessible(page)

    grouped = search(page, f"{reference[:4]} {reference[4:7]} {reference[7:]}")  # as printed on a rent card
    assert [row["reference"] for row in grouped] == [reference]

    beginning = search(page, reference[:8])
    assert beginning and all(row["reference"].startswith(reference[:8]) for row in beginning)
    assert reference in [row["reference"] for row in beginning]
    page.context.close()


def test_part_of_an_address_finds_the_accounts_there(site: Site, browser: Any, account: dict[str, Any]) -> None:
    page = signed_in(browser, site, "caseworker", "/suspense")
    street = account["tenure"]["fullAddress"].split(",")[0].split(" ", 1)[1]  # "270 Mare Street, ..." -> Mare Street

    found = search(page, street.lower())

    assert found and all(street.lower() in row["address"].lower() for row in found)
    assert account["paymentReference"] in [row["reference"] for row in found]
    assert [row["reference"] for row in found] == sorted(row["reference"] for row in found)
    assert_accessible(page)
    if os.environ.get("ACCOUNTS_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["ACCOUNTS_SCREENSHOTS"]) / "search.png"), full_page=True)
    page.context.close()


def test_a_tenants_name_finds_their_account(site: Site, browser: Any, account: dict[str, Any]) -> None:
    page = signed_in(browser, site, "officer", "/search")
    name = account["tenure"]["primaryTenants"][0]["fullName"]
    surname = name.split()[-1]

    found = search(page, surname.upper())

    assert found and all(surname.lower() in row["tenants"].lower() for row in found)
    assert account["paymentReference"] in [row["reference"] for row in found]
    assert_accessible(page)

    assert search(page, f"{name} of nowhere") == []
    assert "No accounts match" in page.locator("main").inner_text()
    assert_accessible(page)
    page.context.close()
