"""Values the contract suite stores: accounts, events, tenure copies and interim rows."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from accounts.domain.account import Account, AccountType, Actor
from accounts.domain.events import EventEnvelope, account_created
from accounts.domain.interim import InterimRow
from accounts.domain.payment_reference import from_serial
from accounts.service.unit_of_work import UnitOfWork

OFFICER = Actor("Finance Officer", "finance.officer@hackney.gov.uk")
CREATED = datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=UTC)
# References from the top of the serial range: the allocator hands out serials from the bottom.
_references = itertools.count(900_000_000)


def a_reference() -> str:
    return from_serial(next(_references))


def an_account(**overrides: object) -> Account:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "target_type": "Tenure",
        "target_id": uuid.uuid4(),
        "account_type": AccountType.MASTER,
        "payment_reference": a_reference(),
        "created_by": OFFICER.label,
        "created_at": CREATED,
        "last_updated_by": OFFICER.label,
        "last_updated_at": CREATED,
    }
    values.update(overrides)
    return Account(**values)  # type: ignore[arg-type]


def an_event(account: Account | None = None) -> EventEnvelope:
    return account_created(account or an_account(), OFFICER, uuid.uuid4(), CREATED)


def a_row(payment_ref: str | None = None, **overrides: object) -> InterimRow:
    values: dict[str, object] = {
        "payment_ref": payment_ref or a_reference(),
        "rent_group": "HousingRevenue",
        "tenure": "Secure",
        "start_date": date(2021, 4, 1),
        "property_ref": "00012345",
        "short_address": "1 Mare Street",
        "address": "1 Mare Street, Hackney, London",
        "post_code": "E8 3RH",
        "num_bedrooms": 2,
        "title": "Ms",
        "forename": "Zoë",
        "surname": "O'Brien-Nowak",
        "date_of_birth": date(1970, 2, 28),
    }
    values.update(overrides)
    return InterimRow(**values)  # type: ignore[arg-type]


def store(uow: Callable[..., UnitOfWork], account: Account, amount_owed: Decimal | None = None) -> None:
    """Add the account in a unit of work of its own, and commit."""
    with uow() as unit:
        unit.accounts.add(account, -account.account_balance if amount_owed is None else amount_owed)
        unit.commit()


def read(uow: Callable[..., UnitOfWork], account_id: uuid.UUID) -> Account | None:
    with uow(read_only=True) as unit:
        return unit.accounts.get(account_id)
