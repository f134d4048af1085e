"""Searching accounts (the pages' search box) on in-memory fakes: what is searched for, and "more than shown"."""

from __future__ import annotations

import uuid

from accounts.domain.account import AccountTenure, Actor, PrimaryTenant, TenureTypeRef
from accounts.service.accounts import MAX_SEARCH_TEXT, search_text
from tests.unit.conftest import OnFakes
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")


def at(address: str, *names: str) -> AccountTenure:
    tenants = tuple(PrimaryTenant(uuid.uuid4(), name) for name in names)
    return AccountTenure(uuid.uuid4(), TenureTypeRef("SEC", "Secure"), address, tenants)


def test_a_search_lists_at_most_the_limit_and_says_there_are_more(fakes: OnFakes) -> None:
    made = [
        fakes.app.accounts.create(a_tenure_master(tenure=at(f"{n} Mare Street", "Ann Lee")), OFFICER, uuid.uuid4())
        for n in range(3)
    ]

    some = fakes.app.accounts.search("mare street", limit=2)
    every = fakes.app.accounts.search("  MARE   street ", limit=3)

    references = sorted(account.payment_reference for account in made)
    assert [a.payment_reference for a in some.accounts] == references[:2] and some.more
    assert [a.payment_reference for a in every.accounts] == references and not every.more
    assert every.text == "MARE street"


def test_a_grouped_payment_reference_is_searched_as_its_digits(fakes: OnFakes) -> None:
    account = fakes.app.accounts.create(a_tenure_master(tenure=at("1 Mare Street")), OFFICER, uuid.uuid4())
    grouped = f"{account.payment_reference[:4]} {account.payment_reference[4:]}"

    result = fakes.app.accounts.search(grouped)

    assert result.text == account.payment_reference
    assert [a.id for a in result.accounts] == [account.id]


def test_nothing_typed_searches_nothing(fakes: OnFakes) -> None:
    fakes.app.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())

    result = fakes.app.accounts.search("   ")

    assert (result.text, result.accounts, result.more) == ("", [], False)


def test_a_long_search_is_cut_to_the_longest_kept() -> None:
    assert search_text("x" * 1000) == "x" * MAX_SEARCH_TEXT
