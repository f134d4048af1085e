"""What every account change carries, written by the unit of work at commit.

An account raises `AccountChanged` when it is opened or changed (`domain/account.py`);
at commit the unit of work turns what its accounts raised into their outbox events and
their interim (tenancy-agreement) rows, in the same transaction. So the API, the listener
and every later writer (a charge run, a payment file) carry the same side effects by
changing the account alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from accounts.domain.account import Account
from accounts.domain.events import account_events
from accounts.domain.interim import interim_row, is_interim_account, row_sources_changed
from accounts.service.ports import ACCOUNTS_TOPIC

if TYPE_CHECKING:
    from accounts.service.unit_of_work import UnitOfWork


def write_raised(uow: UnitOfWork) -> None:
    """Every changed account's events into the outbox and its interim row in step (once, at commit).

    The row is worked out again only when what it is made of changed; a change of the tenure copy
    alone is synced by whoever changed the copy (`service/tenure_events.py`).
    """
    for account in uow.accounts.changed():
        raised = account.raised
        if not raised:
            continue
        for event in account_events(account):
            uow.outbox.add(ACCOUNTS_TOPIC, event, group_id=str(account.id))
        if row_sources_changed(raised[0].before, account):  # a posting, say, leaves the row as it was
            sync_interim_row(uow, account, raised[-1].change.at)
        account.forget_raised()


def sync_interim_row(uow: UnitOfWork, account: Account, at: datetime) -> None:
    """Keep the account's tenancy-agreement row, and tell each sink when it changed."""
    if not is_interim_account(account):
        # No longer a tenure Master account (its type was changed): its row leaves every sink.
        remove_interim_row(uow, account.id)
        return
    previous = uow.interim.by_account(account.id)
    row = interim_row(account, uow.tenures.get(account.target_id))
    if row == previous:
        return
    version = uow.interim.save(account.id, row, at)
    sinks = owed(uow)
    uow.interim.mark_pending(sinks, row.payment_ref, version)
    if previous is not None and previous.payment_ref != row.payment_ref:
        # The old key's row must disappear from the sinks too.
        uow.interim.mark_pending(sinks, previous.payment_ref, version)


def remove_interim_row(uow: UnitOfWork, account_id: UUID) -> None:
    """The account's row leaves every sink (it is no tenure account, or no account at all)."""
    removed = uow.interim.remove(account_id)
    if removed is not None:
        uow.interim.mark_pending(owed(uow), *removed)


def owed(uow: UnitOfWork) -> Sequence[str]:
    """Every sink ever enabled, not only those configured in this process: a sink switched
    off for a while, or configured only in another process, misses no change."""
    return list(dict.fromkeys([*uow.interim_sinks, *uow.interim.registered_sinks()]))
