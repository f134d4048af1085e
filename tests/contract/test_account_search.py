"""Searching accounts as a person does: by payment reference (or its first digits), by part of the address,
by part of a tenant's name; the same answers from SQLite, PostgreSQL and the fakes."""

from __future__ import annotations

import uuid

from accounts.domain.account import Account, AccountTenure, PrimaryTenant, TenureTypeRef
from tests.contract.conftest import UowFactory
from tests.contract.values import an_account, store


def housed(reference: str, address: str | None, *names: str) -> Account:
    """A tenure account at `address` with these primary tenants, stored as the service stores it."""
    target = uuid.uuid4()
    tenants = tuple(PrimaryTenant(uuid.uuid4(), name) for name in names)
    tenure = AccountTenure(target, TenureTypeRef("SEC", "Secure"), address, tenants)
    return an_account(payment_reference=reference, target_id=target, tenure=tenure)


def stored(uow: UowFactory, *accounts: Account) -> list[Account]:
    for account in accounts:
        store(uow, account)
    return list(accounts)


def found(uow: UowFactory, text: str, limit: int = 50) -> list[str]:
    with uow(read_only=True) as unit:
        return [account.payment_reference for account in unit.accounts.search(text, limit)]


def test_a_payment_reference_finds_its_account_first_then_those_it_begins(uow: UowFactory) -> None:
    stored(
        uow,
        housed("1234567891", "2 Mare Street", "Ann Lee"),
        housed("123456789", "1 Mare Street", "Bo Diaz"),  # nine digits: a reference from the housing system
        housed("1234567800", "3 Mare Street", "Cy Ng"),
        housed("1234567900", "4 Mare Street", "Di Wu"),
        housed("9123456789", "5 Mare Street", "Ed Fox"),  # holds the digits, but does not begin with them
    )

    assert found(uow, "1234567891") == ["1234567891"]
    assert found(uow, "123456789") == ["123456789", "1234567891"]  # the exact one first
    # The rest in the index's order: as strings, digit by digit.
    assert found(uow, "12345678") == ["1234567800", "123456789", "1234567891"]
    assert found(uow, "1234567") == ["1234567800", "123456789", "1234567891", "1234567900"]
    assert found(uow, "1234567", limit=2) == ["1234567800", "123456789"]
    assert found(uow, "5550001112") == []


def test_a_prefix_of_nines_has_no_end_to_its_range(uow: UowFactory) -> None:
    stored(uow, housed("9999999990", "1 End Road"), housed("9999999999", "2 End Road"), housed("999999998", None))

    assert found(uow, "99999999") == ["999999998", "9999999990", "9999999999"]
    assert found(uow, "9999999999") == ["9999999999"]


def test_digits_are_a_payment_reference_not_a_house_number(uow: UowFactory) -> None:
    stored(uow, housed("5000000001", "12 Acacia Avenue"), housed("1200000001", "7 Oak Road"))

    assert found(uow, "12") == ["1200000001"]
    assert found(uow, "12 acacia") == ["5000000001"]


def test_part_of_an_address_or_a_tenants_name_finds_the_account_case_aside(uow: UowFactory) -> None:
    stored(
        uow,
        housed("3000000003", "Flat 4, Hoxton House, Mare Street, London E8 3RH", "Zoë O'Brien-Nowak", "Sam Patel"),
        housed("3000000001", "12 Amhurst Road, London E8 2AB", "Sam Okafor"),
        housed("3000000002", "9 Dalston Lane, London E8 1DY", "Alex Mare"),
        housed("3000000004", None),  # no address, no tenants
        an_account(payment_reference="3000000005"),  # no tenure at all
    )

    assert found(uow, "hoxton house") == ["3000000003"]
    assert found(uow, "E8 2AB") == ["3000000001"]
    assert found(uow, "o'brien") == ["3000000003"]
    assert found(uow, "Zoë") == ["3000000003"]  # non-ASCII letters as typed (SQLite folds ASCII case only)
    assert found(uow, "PATEL") == ["3000000003"]  # the second tenant too
    assert found(uow, "sam") == ["3000000001", "3000000003"]
    assert found(uow, "mare") == ["3000000002", "3000000003"]  # a street and a surname, by reference
    assert found(uow, "mare", limit=1) in (["3000000002"], ["3000000003"])  # one of them: the scan's first
    assert found(uow, "London E8") == ["3000000001", "3000000002", "3000000003"]
    assert found(uow, "Nobody Here") == []


def test_only_the_address_and_names_are_searched_not_the_rest_of_the_stored_tenure(uow: UowFactory) -> None:
    (account,) = stored(uow, housed("4000000001", "1 Church Walk", "Ann Lee"))
    assert account.tenure is not None
    tenant_id = str(account.tenure.primary_tenants[0].id)

    for text in ("fullAddress", "fullName", "primaryTenants", "tenureType", "Secure", "SEC", tenant_id[:13]):
        assert found(uow, text) == [], text


def test_wildcards_quotes_and_backslashes_match_only_themselves(uow: UowFactory) -> None:
    stored(
        uow,
        housed("6000000001", "Unit_7, 100% Yard", 'Jo "JJ" Smith'),
        housed("6000000002", "Unit 7, 1000 Yard", "Jo JJ Smith"),
        housed("6000000003", "Arch 3\\4, Viaduct", "Li Chen"),
    )

    assert found(uow, "unit_7") == ["6000000001"]
    assert found(uow, "100%") == ["6000000001"]
    assert found(uow, '"jj"') == ["6000000001"]
    assert found(uow, "3\\4") == ["6000000003"]
    assert found(uow, "%") == ["6000000001"]
    assert found(uow, "_") == ["6000000001"]
