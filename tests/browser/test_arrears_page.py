"""The arrears worklist page in Chromium, on both databases: a caseworker signs in, reads the worklist, filters
it by weeks and by rent group, sorts by a column both ways, pages forward and back and opens an account;
axe-core finds no WCAG 2.2 AA violation in any of those states."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import Site, assert_accessible, signed_in
from tests.integration.test_api_support import tenure_request, to_json

# The demonstration data leaves a handful of accounts in arrears; a caseworker's list is longer. These make
# it more than a page (50): Tenant accounts owing £101 to £155 on £100 a week.
LONG_LIST = 55
WEEKLY_100 = [{"type": "Rent", "frequency": "Weekly", "amount": Decimal("100.00")}]
STREETS = ["Mare Street", "Well Street", "Amhurst Road", "Sandringham Road", "Kingsland Road", "Morning Lane"]
NAMES = ["Mr Kwame Mensah", "Ms Priya Shah", "Mrs Elif Yilmaz", "Mr Tom Murphy", "Ms Ana Costa", "Mr Li Wei"]


@pytest.fixture(scope="module")
def worklist(site: Site) -> list[dict[str, Any]]:
    """Every account on the worklist as the JSON route lists it (largest debt first), once the long list is in."""
    with site.api("officer") as api:
        for n in range(1, LONG_LIST + 1):
            body = tenure_request(
                accountBalance=Decimal(-100 - n),
                consolidatedCharges=WEEKLY_100,
                startDate=(datetime.now(UTC) - timedelta(days=3 * n)).isoformat(),
            )
            body["tenure"]["fullAddress"] = f"{n} {STREETS[n % len(STREETS)]}, Hackney, London E8 {n % 9}AB"
            body["tenure"]["primaryTenants"][0]["fullName"] = NAMES[n % len(NAMES)]
            made = api.post("/accounts", content=to_json(body), headers={"Content-Type": "application/json"})
            assert made.status_code == 201, made.text
        listed = api.get("/arrears-worklist", params={"limit": 1000}).json()["accounts"]
    assert len(listed) > 50
    return listed  # type: ignore[no-any-return]


def rows(page: Any) -> list[list[str]]:
    """The table's rows as a person reads them, cell by cell."""
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "table.app-worklist tbody tr",
        "rows => rows.map(row => Array.from(row.cells).map(cell => cell.innerText.replace(/\\s+/g, ' ').trim()))",
    )


def references(page: Any) -> list[str]:
    return [row[0] for row in rows(page)]


def owed(page: Any) -> list[Decimal]:
    return [Decimal(row[3].removeprefix("£").replace(",", "")) for row in rows(page)]


def weeks(page: Any) -> list[Decimal]:
    """Weeks in arrears as shown; an account with no weekly charge shows a dash and sorts as 0."""
    return [Decimal(row[4]) if re.fullmatch(r"[\d.]+", row[4]) else Decimal(0) for row in rows(page)]


def sorted_heading(page: Any) -> tuple[str, str]:
    heading = page.locator("th[aria-sort]")
    assert heading.count() == 1
    name = " ".join(heading.locator("a").inner_text().split(",")[0].split())  # without what choosing it does
    return name, heading.get_attribute("aria-sort")


def screenshot(page: Any, name: str) -> None:
    """Saved for the README when ACCOUNTS_SCREENSHOTS names a folder (docs/pages)."""
    folder = os.environ.get("ACCOUNTS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_the_caseworker_sees_the_worklist_largest_debt_first(site: Site, browser: Any, worklist: list) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears")
    assert page.locator("h1").inner_text() == "Arrears worklist"
    assert references(page) == [entry["paymentReference"] for entry in worklist[:50]]
    first = rows(page)[0]
    entry = worklist[0]
    tenants = ", ".join(tenant["fullName"] for tenant in entry["tenure"]["primaryTenants"])
    assert first[1:4] == [entry["tenure"]["fullAddress"], tenants, f"£{Decimal(entry['amountOwed']):,.2f}"]
    assert sorted_heading(page) == ("Amount owed", "descending")
    assert_accessible(page)
    page.context.close()


def test_filtering_by_minimum_weeks_and_by_rent_group(site: Site, browser: Any, worklist: list) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears")
    page.get_by_label("Minimum weeks in arrears").fill("1.5")
    page.get_by_role("button", name="Apply filters").click()
    assert "minWeeksInArrears=1.5" in page.url  # a view to bookmark
    expected = [e["paymentReference"] for e in worklist if Decimal(str(e["weeksInArrears"] or 0)) >= Decimal("1.5")]
    assert references(page) == expected and expected
    assert all(w >= Decimal("1.5") for w in weeks(page))
    assert page.get_by_label("Minimum weeks in arrears").input_value() == "1.5"
    assert_accessible(page)
    screenshot(page, "arrears.png")  # a filtered list: the page, short enough to read in the README

    groups = {e["rentGroupType"] for e in worklist} - {"Tenant"}
    group = sorted(groups)[0]
    page.get_by_label("Minimum weeks in arrears").fill("")
    page.get_by_label("Rent group").select_option(group)
    page.get_by_role("button", name="Apply filters").click()
    assert f"rentGroupType={group}" in page.url
    assert references(page) == [e["paymentReference"] for e in worklist if e["rentGroupType"] == group]
    assert_accessible(page)

    page.get_by_role("link", name="Clear filters").click()
    assert len(rows(page)) == 50
    page.context.close()


def test_a_filter_that_is_not_a_number_is_shown_back_with_an_error_summary(site: Site, browser: Any) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears")
    page.get_by_label("Minimum amount owed").fill("lots")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Apply filters").click()
    assert navigation.value.status == 400
    assert page.title().startswith("Error: Arrears worklist")
    summary = page.locator(".govuk-error-summary")
    assert "Enter minimum amount as a number" in summary.inner_text()
    summary.get_by_role("link").click()
    assert page.evaluate("document.activeElement.id") == "min-owed"
    assert page.get_by_label("Minimum amount owed").input_value() == "lots"
    assert_accessible(page)
    page.context.close()


def test_sorting_by_a_column_both_ways(site: Site, browser: Any, worklist: list) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears?minAmountOwed=150")
    page.get_by_role("link", name="Weeks in arrears").click()
    assert sorted_heading(page) == ("Weeks in arrears", "descending")
    shown = weeks(page)
    assert shown == sorted(shown, reverse=True) and len(set(shown)) > 1
    assert all(amount >= 150 for amount in owed(page))  # the filter is kept
    assert_accessible(page)

    page.get_by_role("link", name="Weeks in arrears").click()
    assert sorted_heading(page) == ("Weeks in arrears", "ascending")
    assert weeks(page) == sorted(shown)
    assert_accessible(page)

    page.get_by_role("link", name="Amount owed").click()
    assert sorted_heading(page) == ("Amount owed", "descending")
    page.get_by_role("link", name="Amount owed").click()
    assert sorted_heading(page) == ("Amount owed", "ascending")
    assert owed(page) == sorted(owed(page)) and owed(page)[0] >= 150
    page.context.close()


def test_the_next_page_and_back(site: Site, browser: Any, worklist: list) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears")
    first = references(page)
    assert page.get_by_role("link", name="Previous page").count() == 0
    page.get_by_role("link", name="Next page").click()
    assert references(page) == [entry["paymentReference"] for entry in worklist[50:100]]
    assert_accessible(page)
    page.get_by_role("link", name="Previous page").click()
    assert references(page) == first
    assert page.get_by_role("link", name="Previous page").count() == 0
    assert_accessible(page)
    page.context.close()


def test_a_row_leads_to_its_account(site: Site, browser: Any, worklist: list) -> None:
    page = signed_in(browser, site, "caseworker", "/arrears")
    entry = worklist[2]
    page.get_by_role("link", name=entry["paymentReference"], exact=True).click()
    assert page.url == f"{site.url}/accounts/{entry['accountId']}"
    assert page.locator("h1").inner_text() == entry["tenure"]["fullAddress"]  # the account the row was
    assert entry["paymentReference"] in page.locator(".govuk-caption-l").inner_text()
    page.context.close()
