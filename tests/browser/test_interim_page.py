"""/interim in Chromium, on both databases: a finance officer sees each sink's last write and rows pending,
runs a reconciliation and reads its outcome, finds a tenure event that could not be applied with its
reason, mends the cause and replays it; a caseworker sees the same and has no button."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accounts.domain.payment_reference import FIRST_SERIAL, from_serial
from tests.browser.site import Site, assert_accessible, signed_in
from tests.fixtures.tenures import story
from tests.integration.test_api_support import tenure_request

# A payment reference far above the demonstration's allocations: an account made through the API takes it,
# then a new tenure arrives claiming it too (its event cannot be applied: dead-lettered, with the reason).
TAKEN = from_serial(FIRST_SERIAL + 800_000)
FREED = from_serial(FIRST_SERIAL + 800_001)
HELD = from_serial(FIRST_SERIAL + 800_002)


def until(page: Any, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Reload the page until the condition holds (the worker applies and delivers in the background)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.25)
        page.reload()


def screenshot(page: Any) -> None:
    folder = os.environ.get("ACCOUNTS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "interim.png"), full_page=True)


def test_an_officer_sees_each_sink_and_runs_a_reconciliation(site: Site, browser: Any) -> None:
    page = signed_in(browser, site, "officer", "/interim")
    assert page.locator("h1").inner_text() == "Interim finance sync"
    sinks = page.locator("#sinks-table tbody tr")
    until(page, lambda: "Up to date" in sinks.first.inner_text(), "the spreadsheet to take every row")
    [name, last_write, pending, status] = [cell.inner_text() for cell in sinks.first.locator("th, td").all()]
    assert (name, pending, status.strip()) == ("spreadsheet", "0", "Up to date")
    assert " UTC" in last_write and "ago" in last_write
    assert_accessible(page)

    page.get_by_role("button", name="Run a reconciliation").click()
    banner = page.locator(".govuk-notification-banner")
    assert "Reconciliation finished: the accounts agree with every copy" in banner.inner_text()
    assert page.url.startswith(f"{site.url}/interim?reconciled=")
    summary = page.locator("#reconciliation-summary").inner_text()
    assert "fran.officer@hackney.gov.uk" in summary and "sync-table, spreadsheet" in summary
    assert "The accounts agree with every copy" in summary and "less than a minute ago" in summary
    assert_accessible(page)

    page.goto("/interim")  # the outcome is kept: it is there without the banner
    assert page.locator(".govuk-notification-banner").count() == 0
    assert "fran.officer@hackney.gov.uk" in page.locator("#reconciliation-summary").inner_text()
    page.context.close()


def test_a_dead_letter_is_listed_with_its_reason_then_mended_and_replayed(site: Site, browser: Any) -> None:
    tale = story(random.Random(1414), tenure_type="SEC", payment_reference=TAKEN)
    [created] = tale.events
    with site.api("officer") as api:
        holder = api.post("/accounts", json=tenure_request(paymentReference=TAKEN))
        assert holder.status_code == 201, holder.text
        assert api.post("/events", json=created).status_code == 202

    page = signed_in(browser, site, "officer", "/interim")
    letters = page.locator("#dead-letters-table tbody tr")
    until(page, lambda: created["id"] in page.locator("main").inner_text(), "the event to be dead-lettered")
    row = letters.filter(has_text=created["id"])
    text = row.inner_text()
    assert "TenureCreatedEvent" in text and f"AccountConflict: paymentReference {TAKEN} is already used" in text
    assert "1 tenure event could not be applied" in page.locator("#dead-letters-count").inner_text()
    number = row.locator("th").inner_text()
    assert_accessible(page)
    screenshot(page)

    with site.api("officer") as api:  # the cause mended: the other account gives the reference up
        changed = api.patch(
            f"/accounts/{holder.json()['id']}",
            content=f'{{"paymentReference": "{FREED}"}}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert changed.status_code == 200, changed.text

    row.get_by_role("button", name=f"Replay dead letter {number}").click()
    assert f"Dead letter {number} was published again" in page.locator(".govuk-notification-banner").inner_text()
    assert page.locator(f"#dead-letter-{number}").count() == 0  # no longer waiting
    assert_accessible(page)
    replayed = page.locator(f"#replayed-{number}")
    until(page, lambda: "Applied" in replayed.inner_text(), "the replayed event to be applied")
    assert "The listener has applied it." in page.locator(".govuk-notification-banner").inner_text()
    assert page.locator(f"#dead-letter-{number}").count() == 0
    assert_accessible(page)
    with site.api("caseworker") as api:
        [account] = api.get("/accounts", params={"targetId": str(tale.tenure_id)}).json()["accountResponseList"]
        assert account["paymentReference"] == TAKEN
    page.context.close()


def test_a_caseworker_sees_the_sync_but_has_no_button(site: Site, browser: Any) -> None:
    with site.api("officer") as api:  # a letter of its own, so that the table is there to see
        assert api.post("/accounts", json=tenure_request(paymentReference=HELD)).status_code == 201
        poison = story(random.Random(1415), payment_reference=HELD).events[0]
        assert api.post("/events", json=poison).status_code == 202
    page = signed_in(browser, site, "caseworker", "/interim")
    until(page, lambda: poison["id"] in page.locator("main").inner_text(), "the event to be dead-lettered")
    assert page.locator("#sinks-table").inner_text().count("spreadsheet") == 1
    assert page.locator("#reconciliation-summary").count() == 1
    assert page.get_by_role("button", name="Run a reconciliation").count() == 0
    assert page.locator("#dead-letters-table button, form[action^='/interim/']").count() == 0
    assert_accessible(page)
    page.context.close()
