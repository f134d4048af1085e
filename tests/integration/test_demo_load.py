"""`accounts demo load`: what a newcomer sees after loading the demonstration data, on SQLite and PostgreSQL.

Accounts with payment references, statements with charges and payments, accounts in arrears on the
worklist, payments waiting in suspense, every balance the sum of its ledger; and a second load that
posts nothing twice.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import timedelta

import pytest

from accounts.bootstrap import Application
from accounts.demo.loader import demo_tenants
from accounts.domain.account import AccountType
from accounts.domain.ledger import TransactionType
from accounts.domain.payment_reference import has_valid_check_digit
from accounts.domain.rent_week import rent_week_of
from accounts.entrypoints import cli
from accounts.service.arrears import WorklistQuery

TENURES, WEEKS, SEED = 20, 8, 1


def load(application: Application) -> int:
    options = argparse.Namespace(tenures=TENURES, weeks=WEEKS, seed=SEED, quiet=True)
    return cli.cmd_demo_load(application.settings, options)


def test_the_demo_data_is_what_a_user_would_want_to_see(
    application: Application, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load(application) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"demo data: {TENURES} tenures")
    assert f"{WEEKS} week(s)" in out[0] and " 0 rejected" in out[0]

    # Every tenure has its rent account, with a payment reference and a rent.
    current = rent_week_of(application.accounts.clock().date()).starts
    tenants = demo_tenants(TENURES, SEED, current - timedelta(weeks=WEEKS - 1), current)
    accounts = [application.accounts.by_target(uuid.UUID(t.story.tenure_id), AccountType.MASTER) for t in tenants]
    assert all(len(found) == 1 for found in accounts)
    masters = [found[0] for found in accounts]
    assert all(has_valid_check_digit(account.payment_reference) for account in masters)
    assert all(account.consolidated_charges for account in masters)

    # Their statements explain the balance: weekly charges and the payments against them.
    types: set[TransactionType] = set()
    for account in masters:
        statement = application.ledger.statement(account.id, limit=1000)
        types |= {line.transaction.transaction_type for line in statement.lines}
        assert statement.closing_balance == account.account_balance
    assert {TransactionType.CHARGE, TransactionType.PAYMENT} <= types

    # Some, not most, are in arrears that the worklist asks a caseworker to chase.
    worklist = application.worklist.page(WorklistQuery(limit=1000)).entries
    chased = [entry for entry in worklist if entry.collectable_arrears > 0]
    assert 1 <= len(chased) <= TENURES // 2

    # A few payments no account could take wait in suspense.
    assert application.suspense.list().items

    assert cli.cmd_ledger_verify(application.settings, argparse.Namespace(limit=10)) == 0
    assert capsys.readouterr().out.strip() == "every account's balance is the sum of its transactions"

    # Loading again doubles nothing.
    balances = {account.id: account.account_balance for account in masters}
    suspense = len(application.suspense.list().items)
    assert load(application) == 0
    again = capsys.readouterr().out
    assert "0 events applied" in again and "0 charges posted" in again and "0 payments posted" in again
    assert {a.id: application.accounts.get(a.id).account_balance for a in masters} == balances
    assert len(application.suspense.list().items) == suspense


def test_it_refuses_a_production_database(application: Application, capsys: pytest.CaptureFixture[str]) -> None:
    settings = application.settings.model_copy(update={"environment": "production"})
    options = argparse.Namespace(tenures=TENURES, weeks=WEEKS, seed=SEED, quiet=True)
    assert cli.cmd_demo_load(settings, options) == 2
    assert "never loaded into a production database" in capsys.readouterr().err
    assert application.worklist.page(WorklistQuery()).entries == []
