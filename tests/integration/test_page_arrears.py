"""The /arrears page in-process, on SQLite and PostgreSQL: who may see it, what its table says (as the JSON
route says it), filters, sorts, pages both ways, escaped names, and bad values answered with a 400 page."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import jwt
import pytest

from tests.integration.test_api_support import Api, shared_api

WEEKLY_100 = [{"type": "Rent", "frequency": "Weekly", "amount": Decimal("100.00")}]
SCRIPT_NAME = '<script>alert("owed")</script> O\'Brien & Sons'


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def accounts(api: Api) -> list[dict[str, Any]]:
    """57 accounts owing £10 to £570 (more than a page), a garage among them, and a name that is markup."""
    made = []
    for n in range(1, 58):
        overrides: dict[str, Any] = {"accountBalance": Decimal(-10 * n), "consolidatedCharges": WEEKLY_100}
        if n == 7:
            overrides["rentGroupType"] = "Garages"
        if n == 3:
            tenure_id = str(uuid.uuid4())
            overrides["targetId"] = tenure_id
            overrides["tenure"] = {
                "tenureId": tenure_id,
                "fullAddress": "1 <b>Bold</b> Road, London E8",
                "primaryTenants": [{"id": str(uuid.uuid4()), "fullName": SCRIPT_NAME}],
            }
        made.append(api.create(**overrides))
    return made


class Table(HTMLParser):
    """The worklist's rows as a person reads them: each cell's text, and each row's link."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.in_body = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag == "td":
            self.cell = []
        elif self.in_body and tag == "a" and self.cell is not None and not self.rows[-1]:
            self.links.append(dict(attrs)["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def page(api: Api, query: str = "", token: str | None = None, status: int = 200) -> tuple[str, Table]:
    cookie = {"Cookie": f"hackneyToken={token or api.reader_token}"}
    response = api.client.get(f"/arrears{query}", headers=cookie)
    assert response.status_code == status, response.text[-2000:]
    table = Table()
    table.feed(response.text)
    return response.text, table


def link(text: str, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', text)
    return html.unescape(found.group(1)).removeprefix("/arrears") if found else None


def owed(table: Table) -> list[Decimal]:
    return [Decimal(row[3].removeprefix("£").replace(",", "")) for row in table.rows]


def test_without_a_cookie_the_sign_in_page_and_outside_the_groups_a_403_page(api: Api) -> None:
    response = api.client.get("/arrears?minWeeksInArrears=2")
    assert response.status_code == 401 and '<h1 class="govuk-heading-l">Sign in</h1>' in response.text
    text, _ = page(api, token=api.stranger_token, status=403)
    assert "You cannot see this" in text and "housing-finance-read" in text
    forged = jwt.encode({"sub": "x", "groups": ["housing-finance-read"], "exp": 4102444800}, "not-the-secret" * 3)
    text, _ = page(api, token=forged, status=401)
    assert "Your sign-in is no longer valid" in text and "<table" not in text


def test_the_table_lists_what_the_json_route_lists_largest_debt_first(api: Api, accounts: list) -> None:
    text, table = page(api)
    listed = api.get("/api/v1/arrears-worklist").json()["accounts"]
    assert len(table.rows) == 50 == len(listed)
    assert table.links == [f"/accounts/{entry['accountId']}" for entry in listed]
    assert [row[0] for row in table.rows] == [entry["paymentReference"] for entry in listed]
    address, tenants = "Flat 3, 12 Hillman Street, London E8 1DY", "Ms Jane Smith"
    assert table.rows[0] == [listed[0]["paymentReference"], address, tenants, "£570.00", "5.7", "Never paid", "0"]
    assert owed(table) == sorted(owed(table), reverse=True)
    assert 'aria-sort="descending"' in text and "by amount owed, largest first" in text


def test_filters_by_weeks_amount_and_rent_group(api: Api, accounts: list) -> None:
    _, table = page(api, "?minWeeksInArrears=5.5")
    assert owed(table) == [Decimal(10 * n) for n in range(57, 54, -1)]
    _, table = page(api, "?minAmountOwed=%C2%A3560")  # as typed, with the pound sign
    assert owed(table) == [Decimal(570), Decimal(560)]
    text, table = page(api, "?rentGroupType=Garages&minWeeksInArrears=")
    assert owed(table) == [Decimal(70)] and '<option value="Garages" selected>' in text
    assert link(text, "next") is None and link(text, "prev") is None


def test_sorting_both_ways_by_a_heading_link(api: Api, accounts: list) -> None:
    text, _ = page(api, "?minAmountOwed=500")
    ascending = re.search(r'href="([^"]+)">Amount owed<', text)
    assert ascending is not None and "direction=asc" in ascending.group(1) and "minAmountOwed=500" in ascending.group(1)
    text, table = page(api, html.unescape(ascending.group(1)).removeprefix("/arrears"))
    assert owed(table) == [Decimal(10 * n) for n in range(50, 58)]
    assert 'aria-sort="ascending"' in text and "smallest first" in text
    assert 'name="sortBy" value="amountOwed"' in text and 'name="direction" value="asc"' in text  # kept on filtering


def test_next_and_previous_pages(api: Api, accounts: list) -> None:
    text, first = page(api)
    assert link(text, "prev") is None
    forward = link(text, "next")
    assert forward is not None
    text, second = page(api, forward)
    assert owed(second) == [Decimal(10 * n) for n in range(7, 0, -1)]
    assert link(text, "next") is None
    back = link(text, "prev")
    assert back is not None
    text, again = page(api, back)
    assert again.rows == first.rows and link(text, "prev") is None and link(text, "next") == forward


def test_names_and_addresses_are_escaped(api: Api, accounts: list) -> None:
    text, table = page(api, "?minAmountOwed=30&sortBy=amountOwed&direction=asc")
    assert table.rows[0][1:3] == ["1 <b>Bold</b> Road, London E8", SCRIPT_NAME]
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#34;owed&#34;)&lt;/script&gt;" in text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?minWeeksInArrears=lots", "Enter minimum weeks as a number, like 4 or 2.5"),
        ("?minWeeksInArrears=-1", "Minimum weeks must be 0 or more"),
        ("?minAmountOwed=12.345", "Enter minimum amount in pounds and pence"),
        ("?minAmountOwed=NaN", "Enter minimum amount as a number"),
        ("?minAmountOwed=1e400", "Minimum amount must be less than"),
        ("?rentGroupType=Castles", "Select a rent group from the list"),
        ("?sortBy=tenantName", "The order asked for is not one this worklist has"),
        ("?direction=sideways", "The order asked for is not one this worklist has"),
        ("?cursor=not-a-cursor", "The link to this page is out of date"),
        ("?before=not-a-cursor", "The link to this page is out of date"),
    ],
)
def test_bad_values_get_an_error_summary_and_a_400(api: Api, accounts: list, query: str, message: str) -> None:
    text, table = page(api, query, status=400)
    assert "<title>Error: Arrears worklist" in text and "There is a problem" in text and message in text
    assert not table.rows


def test_a_cursor_from_another_order_or_both_ways_at_once_is_a_400(api: Api, accounts: list) -> None:
    text, _ = page(api)
    forward = link(text, "next") or ""
    text, _ = page(api, forward.replace("direction=desc", "direction=asc"), status=400)
    assert "The link to this page is out of date" in text
    cursor = forward.split("cursor=")[1]
    text, _ = page(api, f"{forward}&before={cursor}", status=400)
    assert "The link to this page is out of date" in text
