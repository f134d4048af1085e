"""`accounts payments import FILE`: what it prints (counts, suspense and rejected lines on stdout, progress on
stderr), its exit codes, and its JSON; on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import pytest

from accounts.bootstrap import Application
from accounts.domain.account import Actor
from accounts.domain.payment_file import HEADER, payment_transaction_id
from accounts.domain.payment_reference import from_serial
from accounts.entrypoints import cli
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")


def run(application: Application, path: Path, **options: object) -> int:
    values: dict[str, object] = {"file": str(path), "by": "Income Team", "json": False, "quiet": False}
    values.update(options)
    return cli.cmd_payments_import(application.settings, argparse.Namespace(**values))


def test_the_command_prints_the_counts_and_every_suspense_and_rejected_line(
    application: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = application.accounts.create(a_tenure_master(), OFFICER, uuid.uuid4())
    path = tmp_path / "payments.csv"
    path.write_text(
        f"{HEADER}\n"
        f"{account.payment_reference},10.00,2026-04-06,Paypoint,PP-1\n"
        f"{from_serial(999_999_990)},20.00,2026-04-06,Bank transfer,BACS-2\n"
        f"{account.payment_reference},ten,2026-04-06,Paypoint,PP-3\n",
        encoding="utf-8",
    )

    assert run(application, path) == 0

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "3 line(s): 1 posted (10.00), 1 to suspense (20.00), 1 rejected, 0 already imported"
    assert lines[1].startswith("suspense line 3: 20.00 on 2026-04-06 (Bank transfer, reference BACS-2): no account")
    assert lines[2] == "rejected line 4: amount 'ten' is not a number"
    assert "100% payments.csv: 3 line(s)" in err  # the progress bar, a line a step: stderr is no terminal here
    assert application.accounts.get(account.id).account_balance == 10
    assert application.ledger.transaction(account.id, payment_transaction_id("PP-1")).created_by == "Income Team"

    assert run(application, path, json=True, quiet=True) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["posted"], again["alreadyImported"], again["rejected"]) == (0, 2, 1)


def test_a_file_with_the_wrong_header_exits_1_and_one_that_cannot_be_read_exits_2(
    application: Application, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("ref,amount\n1,2\n", encoding="utf-8")

    assert run(application, wrong) == 1
    assert "not imported: the header row must be paymentReference,amount" in capsys.readouterr().err
    assert run(application, tmp_path / "missing.csv") == 2
    assert "cannot read" in capsys.readouterr().err
