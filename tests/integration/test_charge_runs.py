"""Charge runs on SQLite and PostgreSQL: exactly the right accounts charged the right amounts, once;
over HTTP (202, progress, problems) and from the command line."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application
from accounts.domain.account import Account, AccountStatus, Actor, ConsolidatedCharge
from accounts.domain.charges import RunStatus, charge_id
from accounts.domain.ledger import TransactionType
from accounts.service.charge_runs import ChargeRunService
from tests.integration.test_api_support import Api, assert_problem, invalid_names, to_json
from tests.unit.test_service_accounts import a_tenure_master

OFFICER = Actor("Rent Officer", "rent.officer@hackney.gov.uk")
MONDAY = date(2026, 4, 6)  # 2026/27 week 1
RENT = ConsolidatedCharge("Rent", "Weekly", Decimal("100.00"))


def an_account(app: Application, *charges: ConsolidatedCharge, **changes: Any) -> Account:
    account = app.accounts.create(a_tenure_master(consolidated_charges=charges or (RENT,)), OFFICER, uuid.uuid4())
    if changes:
        account, _ = app.accounts.change(account.id, lambda _: changes, OFFICER, uuid.uuid4())
    return account


def charges_posted(app: Application) -> list[tuple[Any, ...]]:
    """Every Charge in the ledger: (account, amount, date, periodNo, financialYear, description)."""
    ledger = t.account_transactions.c
    query = (
        sa.select(
            ledger.account_id,
            ledger.amount,
            ledger.transaction_date,
            ledger.period_no,
            ledger.financial_year,
            ledger.description,
        )
        .where(ledger.transaction_type == TransactionType.CHARGE.value)
        .order_by(ledger.account_id, ledger.description)
    )
    with app.engine.connect() as connection:
        return [(row[0], Decimal(row[1]).quantize(Decimal("0.01")), *row[2:]) for row in connection.execute(query)]


def test_a_run_charges_exactly_the_accounts_active_on_the_monday_and_a_rerun_posts_nothing(
    application: Application,
) -> None:
    app = application
    weekly = an_account(app)
    mixed = an_account(
        app,
        ConsolidatedCharge("Rent", "Monthly", Decimal("520.00")),
        ConsolidatedCharge("Service charge", "Fortnightly", Decimal("10.01")),
        ConsolidatedCharge("Heating", "Yearly", Decimal("104.00")),
    )
    starts_that_monday = an_account(app, start_date=datetime(2026, 4, 6, 9, 0, tzinfo=UTC))
    not_charged = [
        an_account(app, account_status=AccountStatus.ENDED),
        an_account(app, account_status=AccountStatus.SUSPENDED),
        an_account(app, start_date=datetime(2026, 4, 7, tzinfo=UTC)),
        an_account(app, start_date=datetime(2020, 4, 7, tzinfo=UTC), end_date=datetime(2026, 4, 5, tzinfo=UTC)),
    ]
    refused = an_account(app, ConsolidatedCharge("Ground rent", "Quarterly", Decimal("50.00")))
    service = ChargeRunService(app.uow, batch_size=3)

    run = service.run(service.start(MONDAY, OFFICER).id)

    assert run.status is RunStatus.FINISHED
    assert (run.accounts_total, run.accounts_done, run.accounts_not_charged) == (8, 8, 4)
    assert (run.accounts_charged, run.charges_posted, run.charges_refused) == (3, 5, 1)
    assert run.amount_posted == Decimal("327.01")
    assert [(r.account_id, r.charge_type) for r in run.refusals] == [(refused.id, "Ground rent")]
    expected = sorted(
        [
            (weekly.id, Decimal("100.00"), MONDAY, 1, 2026, "Rent for 2026/27 week 1"),
            (mixed.id, Decimal("2.00"), MONDAY, 1, 2026, "Heating for 2026/27 week 1"),
            (mixed.id, Decimal("120.00"), MONDAY, 1, 2026, "Rent for 2026/27 week 1"),
            (mixed.id, Decimal("5.01"), MONDAY, 1, 2026, "Service charge for 2026/27 week 1"),  # 5.005 up
            (starts_that_monday.id, Decimal("100.00"), MONDAY, 1, 2026, "Rent for 2026/27 week 1"),
        ],
        key=lambda row: (str(row[0]), row[5]),
    )
    assert sorted(charges_posted(app), key=lambda row: (str(row[0]), row[5])) == expected
    assert app.accounts.get(mixed.id).account_balance == Decimal("-127.01")
    assert app.ledger.transaction(weekly.id, charge_id(weekly.id, "Rent", MONDAY)).created_by == OFFICER.label
    for account in not_charged:
        assert app.accounts.get(account.id).account_balance == Decimal("0.00")

    again = service.run(service.start(MONDAY, OFFICER).id)

    assert again.id != run.id and (again.charges_posted, again.charges_skipped) == (0, 5)
    assert len(charges_posted(app)) == 5
    assert list(app.ledger.verify()) == []


def test_each_charge_carries_the_events_of_a_posting(application: Application) -> None:
    account = an_account(application)
    service = ChargeRunService(application.uow)
    run = service.run(service.start(MONDAY, OFFICER).id)

    with application.uow(read_only=True) as uow:
        events = [m for m in uow.outbox.pending(100) if m.group_id == str(account.id)]
    assert [e.payload.count(b"AccountTransactionPostedEvent") for e in events][-1] == 1
    assert str(run.id).encode() in events[-1].payload  # the run is the events' correlation id


def test_a_run_after_an_interrupted_batch_posts_each_charge_once(application: Application) -> None:
    accounts = [an_account(application) for _ in range(7)]
    service = ChargeRunService(application.uow, batch_size=3)
    run = service.start(MONDAY, OFFICER)

    class Once:
        def is_set(self) -> bool:
            return True

    first = service.run(run.id, stop=Once())  # one batch committed, then stopped
    assert (first.accounts_done, first.charges_posted) == (3, 3)
    resumed = service.run(service.start(MONDAY, OFFICER).id)

    assert resumed.id == run.id and (resumed.accounts_done, resumed.charges_posted) == (7, 7)
    assert {row[0] for row in charges_posted(application)} == {a.id for a in accounts}
    assert list(application.ledger.verify()) == []


# Over HTTP ------------------------------------------------------------------------------------


def start(api: Api, body: Any, token: str | None = None, content_type: str = "application/json") -> Any:
    content = body if isinstance(body, bytes | str) else to_json(body)
    headers = {"Content-Type": content_type}
    return api.request("POST", "/api/v1/charge-runs", token, content=content, headers=headers)


def wait_until_finished(api: Api, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = api.get(f"/api/v1/charge-runs/{run_id}")
        assert response.status_code == 200, response.text
        if response.json()["status"] == "Finished" or time.monotonic() > deadline:
            return response.json()  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_a_run_started_over_http_runs_in_the_background_and_reports_its_totals(application: Application) -> None:
    api = Api(application)
    accounts = [
        api.create(consolidatedCharges=[{"type": "Rent", "frequency": "Weekly", "amount": 95.5}]) for _ in range(3)
    ]

    response = start(api, {"weekStarting": "2026-04-06"})

    assert response.status_code == 202, response.text
    started = response.json()
    assert response.headers["Location"] == f"/api/v1/charge-runs/{started['id']}"
    assert (started["weekStarting"], started["financialYear"], started["periodNo"]) == ("2026-04-06", 2026, 1)
    assert started["startedBy"] == "finance.officer@hackney.gov.uk"
    finished = wait_until_finished(api, started["id"])
    assert finished["status"] == "Finished" and finished["rentWeek"] == "2026/27 week 1"
    assert (finished["accountsDone"], finished["chargesPosted"], finished["amountPosted"]) == (3, 3, 286.5)
    for account in accounts:
        assert api.account(account["id"]).json()["accountBalance"] == -95.5

    again = start(api, {"weekStarting": "2026-04-06"})
    assert again.status_code == 202 and again.json()["id"] != started["id"]
    assert wait_until_finished(api, again.json()["id"])["chargesSkipped"] == 3


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"weekStarting": "2026-04-05"}, "must be a Monday"),  # a Sunday
        ({"weekStarting": "2026-04-07"}, "must be a Monday"),
        ({"weekStarting": "2026-13-01"}, ""),
        ({"weekStarting": "06/04/2026"}, "valid date"),
        ({"weekStarting": 20260406}, "ISO-8601"),
        ({}, "required"),
    ],
)
def test_a_week_that_is_not_a_monday_or_not_a_date_is_refused_naming_week_starting(
    application: Application, body: dict[str, Any], reason: str
) -> None:
    problem = assert_problem(start(Api(application), body), 400, reason)
    assert invalid_names(problem) == ["weekStarting"]


def test_charge_runs_need_a_write_token_to_start_and_a_read_token_to_read(application: Application) -> None:
    api = Api(application)
    assert_problem(start(api, {"weekStarting": "2026-04-06"}, api.reader_token), 403)
    assert_problem(start(api, {"weekStarting": "2026-04-06"}, api.stranger_token), 403)
    assert_problem(start(api, "weekStarting=2026-04-06", content_type="text/plain"), 415)
    assert_problem(start(api, "[1]"), 400, "JSON object")
    assert_problem(start(api, {"weekStarting": "2026-04-06", "extra": 1}), 400, "extra")
    assert_problem(api.get(f"/api/v1/charge-runs/{uuid.uuid4()}"), 404, "charge run")
    assert_problem(api.get("/api/v1/charge-runs/not-a-uuid"), 400, "UUID")
    assert_problem(api.get(f"/api/v1/charge-runs/{uuid.uuid4()}", api.stranger_token), 403)


# From the command line ----------------------------------------------------------------------------


def test_the_command_shows_a_progress_bar_and_a_summary(
    application: Application,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from accounts.entrypoints import cli
    from accounts.settings import get_settings

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # the command sets its own: put them back after
    monkeypatch.setattr(root, "level", root.level)
    get_settings.cache_clear()  # read from the environment set here
    request.addfinalizer(get_settings.cache_clear)
    for _ in range(3):
        an_account(application)
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", application.settings.database_url)
    monkeypatch.setenv("ACCOUNTS_INTERIM_SINKS", "")
    monkeypatch.setenv("ACCOUNTS_CHARGE_RUN_BATCH_SIZE", "2")
    monkeypatch.chdir(tmp_path)

    assert cli.main(["charges", "run", "--week-starting", "2026-04-06", "--user", "Rent Officer"]) == 0
    out, err = capsys.readouterr()
    assert "[####" in err and "100% 3/3 accounts, 3 charges posted" in err  # a line a step: stderr is no terminal here
    assert "2026/27 week 1 (week starting 2026-04-06): Finished" in out
    assert "3 posted, 300.00 in total" in out

    assert cli.main(["charges", "run", "--week-starting", "2026-04-05", "--quiet"]) == 2
    assert "weekStarting must be a Monday: 2026-04-05" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["charges", "run", "--week-starting", "next monday"])
    assert "weekStarting must be a date such as 2026-04-06" in capsys.readouterr().err
