"""Charge runs: a rent week's charges posted to every account that is charged for it, a batch at a time.

Each charge is a ledger posting like any other (`ledger.post`, then `change_account` with the
transaction), so it carries the account's events and interim row, and the balance stays the sum
of the ledger. A batch of accounts (in id order) is one unit of work: their charges and the run's
progress are committed together, so a run stopped at any moment carries on after the last batch
it committed. A charge's id is derived from (account, charge type, week): one posted by an
earlier run of the week is seen and skipped, never posted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol
from uuid import UUID, uuid4

from accounts.domain.account import Account, Actor, Change
from accounts.domain.charges import (
    BatchDone,
    ChargeRun,
    Refusal,
    WeeklyCharge,
    charge_description,
    is_charged,
    weekly_charges,
)
from accounts.domain.errors import DomainError
from accounts.domain.ledger import PostingRequest, TransactionType
from accounts.domain.rent_week import RentWeek, rent_week_starting
from accounts.service.accounts import AccountConflict, Clock, post_to_account, utc_now
from accounts.service.unit_of_work import UnitOfWork, in_transaction

log = logging.getLogger(__name__)

BATCH_SIZE = 500


class ChargeRunNotFound(Exception):
    def __init__(self, run_id: UUID) -> None:
        self.run_id = run_id
        super().__init__(f"no charge run has id {run_id}")


class Flag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class ChargeRunService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now
    batch_size: int = BATCH_SIZE
    attempts: int = 5

    def start(self, week_starting: date, actor: Actor) -> ChargeRun:
        """A new run for the week starting that Monday; the week's unfinished run, if it has one, instead.

        Anything but a Monday is refused (ValidationProblem naming weekStarting). The charges are posted
        by `run`, in `actor`'s name.
        """
        week = rent_week_starting(week_starting)

        def begin(uow: UnitOfWork) -> ChargeRun:
            existing = uow.charge_runs.unfinished(week.starts)
            if existing is not None:
                return existing
            now = self.clock()
            run = ChargeRun(uuid4(), week, actor, now, now, accounts_total=uow.charge_runs.count_accounts())
            uow.charge_runs.add(run)
            return run

        # Two starts of one week at once: the unique index lets one in; the other finds it on its retry.
        return self._in_transaction(begin)

    def get(self, run_id: UUID) -> ChargeRun:
        with self.uow_factory(read_only=True) as uow:
            run = uow.charge_runs.get(run_id)
        if run is None:
            raise ChargeRunNotFound(run_id)
        return run

    def run(
        self, run_id: UUID, progress: Callable[[ChargeRun], None] | None = None, stop: Flag | None = None
    ) -> ChargeRun:
        """Carry the run on, a batch of accounts at a time, until every account is done (or `stop` is set).

        `progress` is told the run after each batch it committed.
        """
        while True:
            run = self._in_transaction(lambda uow: self._batch(uow, run_id))
            if progress is not None:
                progress(run)
            if run.finished or (stop is not None and stop.is_set()):
                return run

    def _batch(self, uow: UnitOfWork, run_id: UUID) -> ChargeRun:
        # Held until commit: a second process on the same run waits for this batch, then takes the next.
        run = uow.charge_runs.get(run_id, for_update=True)
        if run is None:
            raise ChargeRunNotFound(run_id)
        if run.finished:
            return run
        accounts = uow.accounts.after(run.last_account_id, self.batch_size)
        now = self.clock()
        if not accounts:
            done = run.done(now)
            uow.charge_runs.save(done)
            log.info(
                "charge run %s for %s finished: %d charges posted (%s), %d skipped, %d refused",
                run.id,
                run.week.label,
                run.charges_posted,
                run.amount_posted,
                run.charges_skipped,
                run.charges_refused,
            )
            return done
        batch = BatchDone(last_account_id=accounts[-1].id, accounts=len(accounts))
        due: list[tuple[Account, list[WeeklyCharge]]] = []
        for account in accounts:
            if not is_charged(account, run.week.starts):
                batch.accounts_not_charged += 1
                continue
            charges, refusals = weekly_charges(account, run.week)
            batch.refuse(refusals)
            if charges:
                due.append((account, charges))
        # Which charges an earlier run of the week posted, at once; then what the others' postings read.
        uow.transactions.read_ahead([charge.transaction_id for _, charges in due for charge in charges])
        to_post: list[tuple[Account, list[WeeklyCharge]]] = []
        for account, charges in due:
            new = [charge for charge in charges if uow.transactions.get(charge.transaction_id) is None]
            batch.charges_skipped += len(charges) - len(new)
            if new:
                to_post.append((account, new))
        uow.read_ahead_postings([account for account, _ in to_post], [])
        change = Change(actor=run.started_by, correlation_id=run.id, at=now)
        for account, charges in to_post:
            posted = False
            for charge in charges:
                try:
                    account = post_charge(uow, account, charge, run.week, change)
                except (DomainError, AccountConflict) as problem:
                    # Refused before anything was kept (the posting's rules are all checked first):
                    # the account is left as it was, and the run goes on.
                    batch.refusals.append(Refusal(account.id, charge.charge_type, str(problem)))
                    continue
                posted = True
                batch.charges_posted += 1
                batch.amount_posted += charge.amount
            batch.accounts_charged += posted
        advanced = run.advanced(batch, now)
        uow.charge_runs.save(advanced)
        return advanced

    def _in_transaction(self, work: Callable[[UnitOfWork], ChargeRun]) -> ChargeRun:
        return in_transaction(self.uow_factory, work, self.attempts, "a charge run's batch")


def post_charge(uow: UnitOfWork, account: Account, charge: WeeklyCharge, week: RentWeek, change: Change) -> Account:
    """Post one weekly charge to the account, as every posting is posted; the account after it."""
    request = PostingRequest(
        id=charge.transaction_id,
        transaction_type=TransactionType.CHARGE,
        amount=charge.amount,
        transaction_date=week.starts,
        description=charge_description(charge.charge_type, week),
    )
    _, new = post_to_account(uow, account, request, change)
    return new
