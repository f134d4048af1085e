"""The repositories: SQLAlchemy Core, set-based by design, the one implementation of every storage rule.

The account side (accounts, serials, tenure copies, processed events, interim rows and
their pending marks, the ledger's transactions, the outbox) reads through memory and writes at commit (see
`journal.py`): what a unit of work will ask for may be read ahead in a few `IN (...)`
queries (`read_ahead`), anything else is read when first asked for and remembered, and
its writes go out together at commit with one `executemany` per statement. An API request
is a batch of one through the same statements as the listener's batch of a thousand.

Writes that can race another transaction are guarded when they are written: account and
interim-row updates carry the version read (`WHERE version = :read`), so a change
committed meanwhile makes the commit a `ConcurrencyConflict`, as do the unique keys
(processed events, payment references, one active Master per target). The caller then
retries, or (the listener) goes one event at a time.

The delivery side (the outbox's pending events, the sinks' queues, dead letters) runs in
transactions of its own, statement by statement; a statement that reads a table memory
writes writes what memory kept first (`Memory.execute`), so it always sees it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as postgresql_dml
from sqlalchemy.dialects import sqlite as sqlite_dml

from accounts.adapters.database import tables as t
from accounts.adapters.database.bulk import executemany
from accounts.adapters.database.journal import Journal, Memory, chunks
from accounts.adapters.database.rows import (
    account_from_row,
    account_values,
    aware,
    interim_from_row,
    interim_values,
    outbox_values,
    parked_from_row,
    parked_values,
    processed_values,
    tenure_from_row,
    tenure_values,
    transaction_from_row,
    transaction_values,
)
from accounts.domain.account import Account, AccountType, RentGroupType, oldest_first
from accounts.domain.arrears import WorklistSort
from accounts.domain.events import EventEnvelope
from accounts.domain.interim import InterimRow
from accounts.domain.ledger import Direction, Transaction
from accounts.domain.payment_reference import (
    LAST_SERIAL,
    SERIAL_DIGITS,
    after_prefix,
    is_reference_search,
    serial_of,
)
from accounts.domain.polarity import Polarity, TargetType
from accounts.domain.tenure import TenureRecord
from accounts.service.unit_of_work import (
    ConcurrencyConflict,
    DailyOwed,
    DeadLetter,
    InterimSource,
    LedgerDifference,
    OutboxMessage,
    ParkedEvent,
    StatementCursor,
    WorklistCursor,
)

__all__ = ["PRN_COUNTER", "account_values"]  # the benchmarks' seeding writes accounts as the repositories do

PRN_COUNTER = "prn"
_STREAM_ROWS = 2_000  # rows a batch, reading the interim rows for a rewrite or the ledger's differences
# References read at once when the allocator asks whether one is taken: it asks for consecutive serials.
REFERENCE_RANGE = 256

_accounts = t.accounts.c
_ACCOUNT = sa.select(t.accounts).where(_accounts.id == sa.bindparam("id"))
_ACCOUNT_FOR_UPDATE = _ACCOUNT.with_for_update()
# The accounts of many targets. On PostgreSQL one index probe per target, whatever the planner believes:
# a table grown by a backfill faster than its statistics (or with autovacuum off) has none to go by, and
# `target_id IN (500 ids)` was then planned as a scan of the whole table, a tenth of a second per batch
# at 100,000 accounts. OFFSET 0 keeps the probe a subquery, run once per wanted id on the index.
_ACCOUNTS_BY_TARGETS: dict[str, sa.Executable] = {
    "sqlite": sa.select(t.accounts).where(_accounts.target_id.in_(sa.bindparam("ids", expanding=True))),
    "postgresql": sa.text(
        "SELECT probe.* FROM unnest(CAST(:ids AS uuid[])) AS wanted(target_id)"
        " CROSS JOIN LATERAL (SELECT * FROM accounts WHERE accounts.target_id = wanted.target_id OFFSET 0) AS probe"
    ).columns(*t.accounts.c),
}
# The same, only which accounts each target has (for accounts read already: a charge run's batch).
_ACCOUNT_IDS_BY_TARGETS: dict[str, sa.Executable] = {
    "sqlite": sa.select(_accounts.id, _accounts.target_id).where(
        _accounts.target_id.in_(sa.bindparam("ids", expanding=True))
    ),
    "postgresql": sa.text(
        "SELECT probe.id, probe.target_id FROM unnest(CAST(:ids AS uuid[])) AS wanted(target_id) CROSS JOIN LATERAL"
        " (SELECT id, target_id FROM accounts WHERE accounts.target_id = wanted.target_id OFFSET 0) AS probe"
    ).columns(_accounts.id, _accounts.target_id),
}
_ACCOUNTS_IN = sa.select(t.accounts).where(_accounts.id.in_(sa.bindparam("ids", expanding=True)))
# The next accounts in id order (a charge run's batch), held until the transaction ends.
_ACCOUNTS_AFTER = (
    sa.select(t.accounts)
    .where(_accounts.id > sa.bindparam("after"))
    .order_by(_accounts.id)
    .limit(sa.bindparam("limit"))
    .with_for_update()
)
_FIRST_ACCOUNTS = sa.select(t.accounts).order_by(_accounts.id).limit(sa.bindparam("limit")).with_for_update()
_REFERENCES_BETWEEN = sa.select(_accounts.id, _accounts.payment_reference).where(
    _accounts.payment_reference >= sa.bindparam("low"), _accounts.payment_reference < sa.bindparam("high")
)
_REFERENCE = sa.select(_accounts.id, _accounts.payment_reference).where(
    _accounts.payment_reference == sa.bindparam("reference")
)
# A payment file's batch: the accounts holding its payment references, in one read (locked in id order).
_ACCOUNTS_BY_REFERENCES = sa.select(t.accounts).where(
    _accounts.payment_reference.in_(sa.bindparam("references", expanding=True))
)
_VERSIONS_BY_REFERENCES_FOR_UPDATE = (
    sa.select(_accounts.id, _accounts.version)
    .where(_accounts.payment_reference.in_(sa.bindparam("references", expanding=True)))
    .order_by(_accounts.id)
    .with_for_update()
)
_ACCOUNTS_IN = sa.select(t.accounts).where(_accounts.id.in_(sa.bindparam("ids", expanding=True)))
_INSERT_ACCOUNT = t.accounts.insert()
# An update sets the columns whose account field changed, and always these (derived from them, or stamps).
_ALWAYS_SET = (
    "amount_owed",
    "last_updated_by",
    "last_updated_at",
    "version",
    "wire",
    # The worklist's figures, worked out from the account and its amount owed (`rows.worklist_values`).
    "weekly_charge",
    "weeks_in_arrears",
    "arrears_since",
)
# The others are the account's fields of the same name.
_COMPARED_COLUMNS = tuple(column.key for column in t.accounts.c if column.key not in ("id", *_ALWAYS_SET))
# The worklist: the stored column of each sort, and its partial indexes' own predicate (as a literal).
_WORKLIST_SORTS = {
    WorklistSort.AMOUNT_OWED: "owed",
    WorklistSort.WEEKS_IN_ARREARS: "weeks",
    WorklistSort.DAYS_SINCE_LAST_PAYMENT: "since",
}
_WORKLIST_COLUMNS = {sort: _accounts[t.WORKLIST_SORT_COLUMNS[name]] for sort, name in _WORKLIST_SORTS.items()}
_IN_ARREARS = {sort: sa.text(t.IN_ARREARS[name]) for sort, name in _WORKLIST_SORTS.items()}
_WORKLIST_READ = [column for column in t.accounts.c if column.name != "wire"]  # an account, less its wire JSON
_CENT = Decimal("0.01")
# A person's search (`AccountRepository.search`). A payment reference's first digits: a range of its unique
# index, read in order. Other text: part of the tenure's address or of a primary tenant's name, case aside,
# in the account's `tenure` JSON. A scan, made as cheap as a scan can be: the stored JSON's text must hold the
# text first (as JSON writes it: `json_like`; on PostgreSQL `strpos` of the lowered text, a third quicker than
# ILIKE), and only the rows that do are read as JSON; and no ORDER BY, so the scan goes in the table's order
# and stops at the limit's match (ordered by reference, the planner chose a whole scan and a sort whenever it
# expected the index's order to take long: 8 s at 1,000,000 accounts where this takes a tenth of that).
_SEARCH_BY_REFERENCE = (
    sa.select(*_WORKLIST_READ)
    .where(_accounts.payment_reference >= sa.bindparam("low"))
    .order_by(_accounts.payment_reference)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
_SEARCH_BY_REFERENCE_BELOW = _SEARCH_BY_REFERENCE.where(_accounts.payment_reference < sa.bindparam("high"))
_SEARCH_TEXT: dict[str, sa.TextClause] = {
    "sqlite": sa.text(
        "accounts.tenure LIKE :json_pattern ESCAPE '\\' AND ("
        "json_extract(accounts.tenure, '$.fullAddress') LIKE :pattern ESCAPE '\\'"
        " OR EXISTS (SELECT 1 FROM json_each(accounts.tenure, '$.primaryTenants') AS tenant"
        " WHERE json_extract(tenant.value, '$.fullName') LIKE :pattern ESCAPE '\\'))"
    ).bindparams(sa.bindparam("pattern", type_=sa.String), sa.bindparam("json_pattern", type_=sa.String)),
    "postgresql": sa.text(
        "strpos(lower(CAST(accounts.tenure AS text)), lower(:json_text)) > 0 AND ("
        "accounts.tenure ->> 'fullAddress' ILIKE :pattern ESCAPE '\\'"
        " OR EXISTS (SELECT 1 FROM json_array_elements(accounts.tenure -> 'primaryTenants') AS tenant"
        " WHERE tenant ->> 'fullName' ILIKE :pattern ESCAPE '\\'))"
    ).bindparams(sa.bindparam("pattern", type_=sa.String), sa.bindparam("json_text", type_=sa.String)),
}
_SEARCH_BY_TEXT = {
    dialect: sa.select(*_WORKLIST_READ)
    .where(_accounts.tenure.is_not(None), match)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    for dialect, match in _SEARCH_TEXT.items()
}
# The SET clause is every column in the parameters; the b_ names are the WHERE clause's.
_UPDATE_ACCOUNT = t.accounts.update().where(
    _accounts.id == sa.bindparam("b_id"), _accounts.version == sa.bindparam("b_expected_version")
)

_counter = t.payment_reference_counter
_READ_COUNTER = sa.select(_counter.c.next_serial).where(_counter.c.name == PRN_COUNTER).with_for_update()
_WRITE_COUNTER = _counter.update().where(_counter.c.name == PRN_COUNTER).values(next_serial=sa.bindparam("serial"))

_PROCESSED_IN = sa.select(t.processed_events.c.event_id).where(
    t.processed_events.c.event_id.in_(sa.bindparam("ids", expanding=True))
)
_INSERT_PROCESSED = t.processed_events.insert()

_copies = t.tenure_copies.c
_TENURE = sa.select(t.tenure_copies).where(_copies.tenure_id == sa.bindparam("tenure_id"))
_TENURE_FOR_UPDATE = _TENURE.with_for_update()
# Sorted, so that two workers locking overlapping batches (PostgreSQL) take the locks in one order.
_TENURES_IN = (
    sa.select(t.tenure_copies)
    .where(_copies.tenure_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_copies.tenure_id)
    .with_for_update()
)
# The same, unlocked: a charge run reads tenure copies (for the interim rows) without holding the listener up.
_TENURES_IN_UNLOCKED = sa.select(t.tenure_copies).where(_copies.tenure_id.in_(sa.bindparam("ids", expanding=True)))
_INSERT_TENURE = t.tenure_copies.insert()
_UPDATE_TENURE = t.tenure_copies.update().where(_copies.tenure_id == sa.bindparam("b_tenure_id"))

_rows = t.interim_rows.c
_INTERIM_BY_ACCOUNTS = sa.select(t.interim_rows).where(_rows.account_id.in_(sa.bindparam("ids", expanding=True)))
_INSERT_INTERIM_ROW = t.interim_rows.insert()
_UPDATE_INTERIM_ROW = t.interim_rows.update().where(
    _rows.account_id == sa.bindparam("b_account_id"), _rows.version == sa.bindparam("b_version")
)
_DELETE_INTERIM_ROW = t.interim_rows.delete().where(
    _rows.account_id == sa.bindparam("b_account_id"), _rows.version == sa.bindparam("b_version")
)
_SINKS = sa.select(t.interim_sinks.c.sink).order_by(t.interim_sinks.c.sink)

_pending = t.interim_pending.c


def _next_pending_version(pending_version: Any, version: Any) -> Any:
    """Pending versions only ever rise: a reused payment reference restarts its row at version 1, and a
    delivery in flight must not clear the new row's entry with the old, higher version it read."""
    return sa.case((pending_version >= version, pending_version + 1), else_=version)


def _pending_upsert(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=[_pending.sink, _pending.payment_ref],
        set_={"version": _next_pending_version(_pending.version, insert.excluded.version)},
    )


# Insert a sink's mark, or move an existing one on (the same statement in both dialects' words).
_PENDING_UPSERTS = {
    "sqlite": _pending_upsert(sqlite_dml.insert(t.interim_pending)),
    "postgresql": _pending_upsert(postgresql_dml.insert(t.interim_pending)),
}
_PENDING_UNLOCKED = (
    sa.select(_pending.payment_ref)
    .where(_pending.sink == sa.bindparam("sink"), _pending.payment_ref.in_(sa.bindparam("refs", expanding=True)))
    .with_for_update(skip_locked=True)
)
_CLEAR_PENDING = t.interim_pending.delete().where(
    _pending.sink == sa.bindparam("b_sink"),
    _pending.payment_ref == sa.bindparam("ref"),
    _pending.version <= sa.bindparam("delivered_version"),
)
_INSERT_OUTBOX = t.outbox.insert()

_ledger = t.account_transactions.c
_TRANSACTION = sa.select(t.account_transactions).where(_ledger.id == sa.bindparam("id"))
_REVERSAL = sa.select(t.account_transactions).where(_ledger.reverses_id == sa.bindparam("id"))
_TRANSACTIONS_IN = sa.select(t.account_transactions).where(_ledger.id.in_(sa.bindparam("ids", expanding=True)))
_INSERT_TRANSACTION = t.account_transactions.insert()
_statement_place = sa.tuple_(*t.STATEMENT_ORDER)


def _cents(money: Any) -> Any:
    """Money as a whole number of pence, in SQL: sums of it are exact on both databases (SQLite keeps
    NUMERIC as a binary number, and a million of them summed as such could drift off the penny)."""
    return sa.cast(sa.func.round(money * 100), sa.BigInteger)


# Each transaction's change to what is owed, in pence: + IncreaseOwed, - ReduceOwed.
_OWED_CHANGE = sa.case(
    (_ledger.direction == Direction.INCREASE_OWED.value, _cents(_ledger.amount)), else_=-_cents(_ledger.amount)
)
_OWED_BEFORE = sa.select(sa.func.coalesce(sa.func.sum(_OWED_CHANGE), 0)).where(
    _ledger.account_id == sa.bindparam("account_id"),
    _statement_place
    < sa.tuple_(sa.bindparam("transaction_date", type_=sa.Date), sa.bindparam("position", type_=sa.Integer)),
)

# The balance chart's read: what is owed before the first day (the one row whose day is NULL), then what
# each day from it to the last adds. Two selects in one statement, each on the statement index.
_OWED_BY_DAY = sa.union_all(
    sa.select(
        sa.cast(sa.null(), sa.Date).label("day"), sa.func.coalesce(sa.func.sum(_OWED_CHANGE), 0).label("owed")
    ).where(
        _ledger.account_id == sa.bindparam("account_id"),
        _ledger.transaction_date < sa.bindparam("first_day", type_=sa.Date),
    ),
    sa.select(_ledger.transaction_date.label("day"), sa.func.sum(_OWED_CHANGE).label("owed"))
    .where(
        _ledger.account_id == sa.bindparam("account_id"),
        _ledger.transaction_date >= sa.bindparam("first_day", type_=sa.Date),
        _ledger.transaction_date <= sa.bindparam("last_day", type_=sa.Date),
    )
    .group_by(_ledger.transaction_date),
)


def _differences() -> sa.Select[Any]:
    """Every account whose balance in pence is not its ledger's, in one pass over the ledger: its rows
    summed by account (the statement index gives them account by account, no sort), joined to the accounts."""
    owed = (
        sa.select(_ledger.account_id, sa.func.sum(_OWED_CHANGE).label("owed"))
        .group_by(_ledger.account_id)
        .subquery("ledger")
    )
    a, types = t.accounts.c, t.target_types.c
    owed_cents = sa.func.coalesce(owed.c.owed, 0)
    ledger_cents = sa.case((types.polarity == Polarity.NEGATIVE_IS_ARREARS.value, -owed_cents), else_=owed_cents)
    return (
        sa.select(a.id, a.account_balance, ledger_cents.label("ledger_cents"))
        .select_from(
            t.accounts.join(t.target_types, types.name == a.target_type).outerjoin(owed, owed.c.account_id == a.id)
        )
        .where(_cents(a.account_balance) != ledger_cents)
    )


_DIFFERENCES = _differences()


def worklist_query(
    rent_group: RentGroupType | None,
    min_weeks: Decimal | None,
    min_owed: Decimal | None,
    sort: WorklistSort,
    descending: bool,
    after: WorklistCursor | None,
    limit: int,
) -> sa.Select[Any]:
    """The worklist's page (`AccountRepository.worklist`): a range of one partial index, read in its order.

    The sort's own in-arrears predicate as a literal (its indexes', `tables.IN_ARREARS`), equality on the rent group (the
    leading column of the group indexes), the keyset `(value, id)` past the cursor, and ORDER BY
    the index's own columns in one direction, so the first page reads `limit` index entries and
    their rows, however many accounts there are.
    """
    column = _WORKLIST_COLUMNS[sort]
    # Days since the last payment grow as the day they count from goes back.
    going_down = descending != (sort is WorklistSort.DAYS_SINCE_LAST_PAYMENT)
    query = sa.select(*_WORKLIST_READ)
    if after is not None:
        # The keyset first: read upwards, both it and `amount_owed > 0` bound the amount-owed index from below,
        # and SQLite seeks by the first it is given (in the other order, a page deep in the list read the
        # index from its start: 170 ms at 1,000,000 accounts, not 0.1).
        place = sa.tuple_(column, _accounts.id)
        cursor = sa.tuple_(sa.literal(after.value, column.type), sa.literal(after.account_id, _accounts.id.type))
        query = query.where(place < cursor if going_down else place > cursor)
    query = query.where(_IN_ARREARS[sort])
    if rent_group is not None:
        query = query.where(_accounts.rent_group_type == rent_group.value)
    if min_weeks is not None:
        query = query.where(_accounts.weeks_in_arrears >= min_weeks)
    if min_owed is not None:
        query = query.where(_accounts.amount_owed >= min_owed)
    order = (column.desc(), _accounts.id.desc()) if going_down else (column.asc(), _accounts.id.asc())
    return query.order_by(*order).limit(limit)


def search_query(dialect: str, text: str, limit: int) -> tuple[sa.Select[Any], dict[str, Any]]:
    """A person's search (`AccountRepository.search`) as a statement and its parameters (the benchmark's plans too)."""
    if is_reference_search(text):
        high = after_prefix(text)
        query = _SEARCH_BY_REFERENCE if high is None else _SEARCH_BY_REFERENCE_BELOW
        return query, {"low": text, "high": high, "limit": limit}
    in_json = json_like(text)
    parameters = {
        "pattern": like_pattern(text),
        "json_text": in_json,
        "json_pattern": like_pattern(in_json),
        "limit": limit,
    }
    return _SEARCH_BY_TEXT[dialect], parameters


def like_pattern(text: str) -> str:
    """`%text%` for LIKE with backslash as the escape: the text's own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def json_like(text: str) -> str:
    """The text as the stored JSON writes it inside a string (a quote as \\", a backslash doubled): what
    the JSON's own text must hold for one of its strings to hold `text`."""
    return orjson.dumps(text).decode()[1:-1]


def _pounds(cents: Any) -> Decimal:
    """A sum in pence as money: two places, never -0.00."""
    return Decimal(int(cents)).scaleb(-2) + Decimal("0.00")


def _expect_rows(changed: int, expected: int, what: str) -> None:
    if changed != expected:
        raise ConcurrencyConflict(f"{what}: {changed} of {expected} rows were still as read")


def _copy_record(record: TenureRecord | None) -> TenureRecord | None:
    """A copy a caller may merge into without changing the remembered one."""
    if record is None:
        return None
    return TenureRecord(record.tenure_id, dict(record.data), dict(record.stamps), record.complete)


# The account side -------------------------------------------------------------------------


class SqlAccountRepository:
    """Accounts by id and by target in memory; adds and updates written at commit, updates guarded by version."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.connection = memory.connection
        self.journal: Journal = memory.journal
        self._current: dict[UUID, Account] = {}  # every account read or written: its current version
        self._stored_version: dict[UUID, int] = {}  # the version in the database (absent: added here)
        self._stored: dict[UUID, Account] = {}  # that version, as read or written: an update sets what differs
        self._locked: set[UUID] = set()  # read FOR UPDATE
        self._targets: dict[UUID, tuple[UUID, ...]] = {}  # targets read whole: their accounts' ids
        self._owner: dict[str, UUID | None] = {}  # payment reference -> the account holding it, or None: free
        self._free_ranges: list[tuple[str, str]] = []  # [low, high): references read, absent ones free
        self._dirty: dict[UUID, Decimal] = {}  # written here: its amount owed
        memory.keeps_writes(self)

    def _remember(self, row: sa.Row[Any], *, fresh: bool = False) -> Account:
        """The row's account, unless this unit of work already knows better (it changed it, or read it)."""
        known = self._current.get(row.id)
        if known is not None and (not fresh or row.id in self._dirty or known.version == row.version):
            return known  # read again, fresh: the same version is the same account (versions only rise)
        account = account_from_row(row)
        self._current[account.id] = account
        self._stored_version[account.id] = account.version
        self._stored[account.id] = account
        self._owner.setdefault(account.payment_reference, account.id)
        return account

    def read_ahead(self, target_ids: Iterable[UUID]) -> None:
        unknown = [target_id for target_id in dict.fromkeys(target_ids) if target_id not in self._targets]
        for chunk in chunks(unknown):
            found: dict[UUID, list[UUID]] = {target_id: [] for target_id in chunk}
            query = _ACCOUNTS_BY_TARGETS[self.connection.dialect.name]
            for row in self.connection.execute(query, {"ids": chunk}):
                found[row.target_id].append(self._remember(row).id)
            for target_id, ids in found.items():
                self._targets[target_id] = tuple(ids)

    def read_ahead_targets_of(self, accounts: Iterable[Account]) -> None:
        """`read_ahead` for the targets of accounts read already: which accounts each target has is read,
        and only the accounts not known yet (few: most targets have one) are read whole."""
        unknown = [t for t in dict.fromkeys(account.target_id for account in accounts) if t not in self._targets]
        query = _ACCOUNT_IDS_BY_TARGETS[self.connection.dialect.name]
        for chunk in chunks(unknown):
            found: dict[UUID, list[UUID]] = {target_id: [] for target_id in chunk}
            for account_id, target_id in self.connection.execute(query, {"ids": chunk}):
                found[target_id].append(account_id)
            missing = [i for ids in found.values() for i in ids if i not in self._current]
            for part in chunks(missing):
                for row in self.connection.execute(_ACCOUNTS_IN, {"ids": part}):
                    self._remember(row)
            for target_id, ids in found.items():
                self._targets[target_id] = tuple(i for i in ids if i in self._current)

    def known_ids(self) -> list[UUID]:
        return list(self._current)

    def added(self, account_id: UUID) -> bool:
        """Added in this unit of work (so with nothing of its own in the database yet)."""
        return account_id in self._current and account_id not in self._stored_version

    def get(self, account_id: UUID, *, for_update: bool = False) -> Account | None:
        known = account_id in self._current
        if not known or (for_update and account_id not in self._locked and not self.added(account_id)):
            # SQLite writers are serialised by BEGIN IMMEDIATE instead of FOR UPDATE.
            query = _ACCOUNT_FOR_UPDATE if for_update else _ACCOUNT
            row = self.connection.execute(query, {"id": account_id}).first()
            if row is None:
                return self._current.get(account_id)
            self._remember(row, fresh=for_update)
            if for_update:
                self._locked.add(account_id)
        return self._current[account_id]

    def after(self, account_id: UUID | None, limit: int) -> list[Account]:
        if account_id is None:
            rows = self.connection.execute(_FIRST_ACCOUNTS, {"limit": limit})
        else:
            rows = self.connection.execute(_ACCOUNTS_AFTER, {"after": account_id, "limit": limit})
        found = [self._remember(row, fresh=True) for row in rows]
        self._locked.update(account.id for account in found)
        return found

    def by_target(self, target_id: UUID, account_type: AccountType | None) -> list[Account]:
        if target_id not in self._targets:
            self.read_ahead([target_id])
        accounts = sorted((self._current[i] for i in self._targets[target_id]), key=oldest_first)
        return [a for a in accounts if account_type is None or a.account_type is account_type]

    def payment_reference_taken(self, payment_reference: str) -> bool:
        if payment_reference in self._owner:
            return self._owner[payment_reference] is not None
        serial = serial_of(payment_reference)
        if serial is not None:
            if any(low <= payment_reference < high for low, high in self._free_ranges):
                return False
            if serial + REFERENCE_RANGE <= LAST_SERIAL:
                # The allocator asks about consecutive serials: read the next few at once.
                low, high = payment_reference, f"{serial + REFERENCE_RANGE:0{SERIAL_DIGITS}d}0"
                for row in self.connection.execute(_REFERENCES_BETWEEN, {"low": low, "high": high}):
                    self._owner.setdefault(row.payment_reference, row.id)
                self._free_ranges.append((low, high))
                return self._owner.get(payment_reference) is not None
        found = self.connection.execute(_REFERENCE, {"reference": payment_reference}).first()
        self._owner.setdefault(payment_reference, found.id if found is not None else None)
        return self._owner[payment_reference] is not None

    def by_payment_references(self, references: Sequence[str], *, for_update: bool = False) -> dict[str, Account]:
        wanted = list(dict.fromkeys(references))
        if for_update:
            self._lock_by_references(sorted(r for r in wanted if self._owner.get(r) not in self._locked))
        else:
            for chunk in chunks(sorted(r for r in wanted if r not in self._owner)):
                for row in self.connection.execute(_ACCOUNTS_BY_REFERENCES, {"references": chunk}):
                    self._remember(row)
                for reference in chunk:
                    self._owner.setdefault(reference, None)  # read, and no account holds it
        found = {reference: self._owner[reference] for reference in wanted}
        return {reference: self._current[owner] for reference, owner in found.items() if owner is not None}

    def _lock_by_references(self, references: list[str]) -> None:
        """Lock the accounts (in id order) reading their versions only: those read before at the same version are
        as read; the others (changed meanwhile, or never read) are read whole, in one more query."""
        for chunk in chunks(references):
            stale = []
            for row in self.connection.execute(_VERSIONS_BY_REFERENCES_FOR_UPDATE, {"references": chunk}):
                known = self._current.get(row.id)
                if known is None or (known.version != row.version and row.id not in self._dirty):
                    stale.append(row.id)
                self._locked.add(row.id)
            if stale:
                for whole in self.connection.execute(_ACCOUNTS_IN, {"ids": stale}):
                    self._remember(whole, fresh=True)
            for reference in chunk:
                self._owner.setdefault(reference, None)  # read, and no account holds it

    def add(self, account: Account, amount_owed: Decimal) -> None:
        if account.target_id not in self._targets:
            self.read_ahead([account.target_id])
        journal = self.journal
        journal.set(self._current, account.id, account)
        journal.set(self._targets, account.target_id, (*self._targets[account.target_id], account.id))
        journal.set(self._owner, account.payment_reference, account.id)
        journal.set(self._dirty, account.id, amount_owed)

    def update(self, account: Account, expected_version: int, amount_owed: Decimal) -> None:
        current = self.get(account.id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict(f"account {account.id} is no longer at version {expected_version}")
        journal = self.journal
        if current.target_id != account.target_id:
            # Both targets read first: the database still lists the account under its old one.
            self.read_ahead([current.target_id, account.target_id])
            before = tuple(i for i in self._targets[current.target_id] if i != account.id)
            journal.set(self._targets, current.target_id, before)
            journal.set(self._targets, account.target_id, (*self._targets[account.target_id], account.id))
        journal.set(self._current, account.id, account)
        if current.payment_reference != account.payment_reference:
            journal.set(self._owner, current.payment_reference, None)
            journal.set(self._owner, account.payment_reference, account.id)
        journal.set(self._dirty, account.id, amount_owed)

    def changed(self) -> list[Account]:
        return [self._current[account_id] for account_id in self._dirty]

    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> None:
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns they set
        for account_id, amount_owed in self._dirty.items():
            account = self._current[account_id]
            values = account_values(account, amount_owed)
            stored = self._stored_version.get(account_id)
            if stored is None:
                inserts.append(values)
                continue
            # Only the columns that differ from the stored version (and the derived ones): a posting sets
            # its balance, not every column, so the indexes on the others are left alone and their values
            # are not converted for the driver again (a charge run updates 100,000 accounts this way).
            before = self._stored[account_id]
            changed = {"b_id": account_id, "b_expected_version": stored}
            changed.update(
                (column, values[column])
                for column in _COMPARED_COLUMNS
                if getattr(account, column) != getattr(before, column)
            )
            changed.update((column, values[column]) for column in _ALWAYS_SET)
            updates.setdefault(tuple(changed), []).append(changed)
        if inserts:
            executemany(self.connection, _INSERT_ACCOUNT, inserts)
        for rows in updates.values():
            _expect_rows(executemany(self.connection, _UPDATE_ACCOUNT, rows), len(rows), "accounts")
        for account_id in self._dirty:
            account = self._current[account_id]
            self._stored_version[account_id] = account.version
            self._stored[account_id] = account
        self._dirty = {}

    def arrears(
        self, account_type: AccountType | None, sort_column: str, descending: bool, limit: int
    ) -> list[Account]:
        column = t.accounts.c[sort_column]
        query = sa.select(t.accounts).where(t.accounts.c.amount_owed > 0)
        if account_type is not None:
            query = query.where(t.accounts.c.account_type == account_type.value)
        order = column.desc() if descending else column.asc()
        if column.nullable:
            # Accounts without the value sort as PostgreSQL sorts them (SQLite put them first going up).
            order = order.nulls_first() if descending else order.nulls_last()
        query = query.order_by(order, t.accounts.c.id).limit(limit)
        return [account_from_row(row) for row in self.memory.execute(query)]

    def worklist(
        self,
        rent_group: RentGroupType | None,
        min_weeks: Decimal | None,
        min_owed: Decimal | None,
        sort: WorklistSort,
        descending: bool,
        after: WorklistCursor | None,
        limit: int,
    ) -> list[tuple[Account, Decimal]]:
        query = worklist_query(rent_group, min_weeks, min_owed, sort, descending, after, limit)
        rows = self.memory.execute(query)
        return [(account_from_row(row), Decimal(row.amount_owed).quantize(_CENT)) for row in rows]

    def search(self, text: str, limit: int) -> list[Account]:
        query, parameters = search_query(self.connection.dialect.name, text, limit)
        found = [account_from_row(row) for row in self.memory.execute(query, parameters)]
        return sorted(found, key=lambda account: account.payment_reference)

    def interim_sources(self) -> Iterator[InterimSource]:
        a, copies = t.accounts, t.tenure_copies
        query = (
            sa.select(a.c.id, a.c.payment_reference, a.c.rent_group_type, a.c.start_date, a.c.end_date, a.c.tenure)
            .add_columns(copies.c.data)
            .select_from(a.outerjoin(copies, copies.c.tenure_id == a.c.target_id))
            .where(a.c.target_type == "Tenure", a.c.account_type == AccountType.MASTER.value)
        )
        rows: Iterable[Any] = self.memory.execute(query)
        for account_id, reference, rent_group, start, end, tenure, data in rows:
            # SQLite hands timestamps back naive: made UTC, as every other read of them is.
            yield InterimSource(account_id, reference, rent_group, aware(start), aware(end), tenure, data)


_TARGET_TYPE = sa.select(t.target_types).where(t.target_types.c.name == sa.bindparam("name"))


class SqlTargetTypeRepository:
    """Target types change only with a migration: each is read once per database connection (kept in the
    pooled connection's `info`, which lives as long as it does), not once per unit of work."""

    def __init__(self, memory: Memory) -> None:
        self.connection = memory.connection
        self._known: dict[str, TargetType | None] = self.connection.info.setdefault("target_types", {})

    def get(self, name: str) -> TargetType | None:
        if name in self._known:
            return self._known[name]
        row = self.connection.execute(_TARGET_TYPE, {"name": name}).first()
        found = TargetType(row.name, Polarity(row.polarity), row.description) if row else None
        self._known[name] = found
        return found

    def all(self) -> list[TargetType]:
        rows = self.connection.execute(sa.select(t.target_types).order_by(t.target_types.c.name))
        found = [TargetType(row.name, Polarity(row.polarity), row.description) for row in rows]
        self._known.update((target_type.name, target_type) for target_type in found)
        return found


class SqlPaymentReferenceSerials:
    """The counter is read once, locked, and written once at commit: the same serials, one statement each way."""

    def __init__(self, memory: Memory) -> None:
        self.connection = memory.connection
        self.journal = memory.journal
        self._state: dict[str, int] = {}  # "read": as read; "next": the next to hand out
        memory.keeps_writes(self)

    def next_serial(self) -> int:
        if "read" not in self._state:
            read = int(self.connection.execute(_READ_COUNTER).scalar_one())
            self._state["read"] = self._state["next"] = read
        serial = self._state["next"]
        self.journal.set(self._state, "next", serial + 1)
        return serial

    def dirty(self) -> bool:
        return bool(self._state) and self._state["next"] != self._state["read"]

    def flush(self) -> None:
        self.connection.execute(_WRITE_COUNTER, {"serial": self._state["next"]})
        self._state["read"] = self._state["next"]


class SqlProcessedEvents:
    def __init__(self, memory: Memory) -> None:
        self.connection = memory.connection
        self.journal = memory.journal
        self._seen: dict[UUID, bool] = {}
        self._rows: list[dict[str, Any]] = []
        memory.keeps_writes(self)

    def read_ahead(self, event_ids: Sequence[UUID]) -> None:
        unknown = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in self._seen]
        for chunk in chunks(unknown):
            found = set(self.connection.execute(_PROCESSED_IN, {"ids": chunk}).scalars())
            for event_id in chunk:
                self._seen[event_id] = event_id in found

    def seen(self, event_id: UUID) -> bool:
        if event_id not in self._seen:
            self.read_ahead([event_id])
        return self._seen[event_id]

    def record(self, event: EventEnvelope, outcome: str, at: datetime) -> None:
        self.journal.set(self._seen, event.id, True)
        self.journal.append(self._rows, processed_values(event, outcome, at))

    def dirty(self) -> bool:
        return bool(self._rows)

    def flush(self) -> None:
        executemany(self.connection, _INSERT_PROCESSED, self._rows)
        self._rows = []


class SqlTenureCopies:
    """Copies read are remembered (those read for update, locked on PostgreSQL); saves are written at commit."""

    def __init__(self, memory: Memory) -> None:
        self.connection = memory.connection
        self.journal = memory.journal
        self._held: dict[UUID, TenureRecord | None] = {}  # the current value (None: no row)
        self._stored: set[UUID] = set()  # a row exists in the database
        self._locked: set[UUID] = set()
        self._dirty: dict[UUID, datetime] = {}  # saved here: when
        memory.keeps_writes(self)

    def _remember(self, tenure_id: UUID, row: sa.Row[Any] | None) -> None:
        if tenure_id in self._dirty:
            return  # what this unit of work saved is newer than what it reads
        self._held[tenure_id] = None if row is None else tenure_from_row(row)
        if row is not None:
            self._stored.add(tenure_id)

    def read_ahead(self, tenure_ids: Sequence[UUID], *, lock: bool = True) -> None:
        """Read and lock the copies (sorted: two batches lock in one order); `lock=False`: read them only."""
        known = self._locked if lock else self._held
        unknown = sorted(tenure_id for tenure_id in set(tenure_ids) if tenure_id not in known)
        query = _TENURES_IN if lock else _TENURES_IN_UNLOCKED
        for chunk in chunks(unknown):
            found = {row.tenure_id: row for row in self.connection.execute(query, {"ids": chunk})}
            for tenure_id in chunk:
                self._remember(tenure_id, found.get(tenure_id))
                if lock:
                    self._locked.add(tenure_id)

    def get(self, tenure_id: UUID, *, for_update: bool = False) -> TenureRecord | None:
        if tenure_id not in self._held or (for_update and tenure_id not in self._locked):
            query = _TENURE_FOR_UPDATE if for_update else _TENURE
            self._remember(tenure_id, self.connection.execute(query, {"tenure_id": tenure_id}).first())
            if for_update:
                self._locked.add(tenure_id)
        return _copy_record(self._held[tenure_id])

    def save(self, record: TenureRecord, at: datetime) -> None:
        if record.tenure_id not in self._held:
            self.get(record.tenure_id)  # whether it is an insert or an update
        self.journal.set(self._held, record.tenure_id, _copy_record(record))
        self.journal.set(self._dirty, record.tenure_id, at)

    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> None:
        inserts, updates = [], []
        for tenure_id, at in self._dirty.items():
            record = self._held[tenure_id]
            assert record is not None
            if tenure_id in self._stored:
                updates.append({"b_tenure_id": tenure_id, **tenure_values(record, at)})
            else:
                inserts.append({"tenure_id": tenure_id, **tenure_values(record, at)})
        if inserts:
            executemany(self.connection, _INSERT_TENURE, inserts)
        if updates:
            _expect_rows(executemany(self.connection, _UPDATE_TENURE, updates), len(updates), "tenure copies")
        self._stored.update(self._dirty)
        self._dirty = {}


class SqlInterimRows:
    """Each account's row and its version in memory; saves, removals and pending marks written at commit."""

    def __init__(self, memory: Memory, new_account: Callable[[UUID], bool]) -> None:
        self.connection = memory.connection
        self.journal = memory.journal
        self._new_account = new_account  # an account added in this unit of work has no row in the database
        self._current: dict[UUID, tuple[InterimRow, int] | None] = {}  # by account: the row and its version
        self._stored_version: dict[UUID, int] = {}  # by account: the version in the database
        self._dirty: dict[UUID, datetime] = {}  # saved or removed here: when
        self._marks: list[tuple[tuple[str, ...], str, int]] = []  # (sinks, payment ref, version)
        self._sinks: list[str] | None = None
        memory.keeps_writes(self)

    def read_ahead(self, account_ids: Iterable[UUID]) -> None:
        unknown = [account_id for account_id in dict.fromkeys(account_ids) if account_id not in self._current]
        for chunk in chunks(unknown):
            for row in self.connection.execute(_INTERIM_BY_ACCOUNTS, {"ids": chunk}):
                self._current[row.account_id] = (interim_from_row(row), int(row.version))
                self._stored_version[row.account_id] = int(row.version)
            for account_id in chunk:
                self._current.setdefault(account_id, None)

    def _entry(self, account_id: UUID) -> tuple[InterimRow, int] | None:
        if account_id not in self._current:
            if self._new_account(account_id):
                return None
            self.read_ahead([account_id])
        return self._current[account_id]

    def by_account(self, account_id: UUID) -> InterimRow | None:
        entry = self._entry(account_id)
        return None if entry is None else entry[0]

    def save(self, account_id: UUID, row: InterimRow, at: datetime) -> int:
        entry = self._entry(account_id)
        version = 1 if entry is None else entry[1] + 1
        self.journal.set(self._current, account_id, (row, version))
        self.journal.set(self._dirty, account_id, at)
        return version

    def remove(self, account_id: UUID) -> tuple[str, int] | None:
        entry = self._entry(account_id)
        if entry is None:
            return None
        self.journal.set(self._current, account_id, None)
        self.journal.set(self._dirty, account_id, datetime.min)  # a removal: no time is written
        return entry[0].payment_ref, entry[1] + 1

    def mark_pending(self, sinks: Sequence[str], payment_ref: str, version: int) -> None:
        if sinks:
            self.journal.append(self._marks, (tuple(sinks), payment_ref, version))

    def registered_sinks(self) -> list[str]:
        """Read once a unit of work: sinks are registered by `enable_sinks` in a transaction of its own."""
        if self._sinks is None:
            self._sinks = list(self.connection.execute(_SINKS).scalars())
        return list(self._sinks)

    def dirty(self) -> bool:
        return bool(self._dirty or self._marks)

    def flush(self) -> None:
        deletes, inserts, updates = [], [], []
        for account_id, at in self._dirty.items():
            entry = self._current[account_id]
            stored = self._stored_version.get(account_id)
            if entry is None:
                if stored is not None:
                    deletes.append({"b_account_id": account_id, "b_version": stored})
                continue
            row, version = entry
            values = {"version": version, "updated_at": at, **interim_values(row)}
            if stored is None:
                inserts.append({"account_id": account_id, **values})
            else:
                updates.append({"b_account_id": account_id, "b_version": stored, **values})
        # Deletes and updates before inserts: a payment reference given up may be taken by another row.
        if deletes:
            _expect_rows(executemany(self.connection, _DELETE_INTERIM_ROW, deletes), len(deletes), "interim rows")
        if updates:
            _expect_rows(executemany(self.connection, _UPDATE_INTERIM_ROW, updates), len(updates), "interim rows")
        if inserts:
            executemany(self.connection, _INSERT_INTERIM_ROW, inserts)
        for account_id in self._dirty:
            entry = self._current[account_id]
            if entry is None:
                self._stored_version.pop(account_id, None)
            else:
                self._stored_version[account_id] = entry[1]
        self._dirty = {}
        marks = [
            {"sink": sink, "payment_ref": payment_ref, "version": version}
            for sinks, payment_ref, version in self._marks
            for sink in sinks
        ]
        self._marks = []
        if marks:  # in order: a later mark of the same row comes after
            executemany(self.connection, _PENDING_UPSERTS[self.connection.dialect.name], marks)


class SqlTransactions:
    """The ledger: transactions by id and by what they reverse in memory; added ones written at commit, in order.

    Nothing is ever updated, so nothing is guarded by a version: the unique keys (the id, one
    reversal per transaction) refuse a duplicate at commit, a ConcurrencyConflict. The statement
    queries (`page`, `owed_before`, `differences`) read the database, what was kept written first.
    """

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.connection = memory.connection
        self.journal = memory.journal
        self._known: dict[UUID, Transaction | None] = {}  # by id: read, or added here (None: no such)
        self._reversals: dict[UUID, Transaction | None] = {}  # by the id it reverses
        self._posted: list[Transaction] = []  # added here, in posting order
        self._written = 0  # how many of them are in the database
        memory.keeps_writes(self)

    def _remember(self, row: sa.Row[Any]) -> Transaction:
        found = transaction_from_row(row)
        self._known.setdefault(found.id, found)
        if found.reverses_id is not None:
            self._reversals.setdefault(found.reverses_id, found)
        return found

    def get(self, transaction_id: UUID) -> Transaction | None:
        if transaction_id not in self._known:
            row = self.connection.execute(_TRANSACTION, {"id": transaction_id}).first()
            if row is None:
                self._known[transaction_id] = None
            else:
                self._remember(row)
        return self._known[transaction_id]

    def read_ahead(self, transaction_ids: Sequence[UUID]) -> None:
        unknown = [
            transaction_id for transaction_id in dict.fromkeys(transaction_ids) if transaction_id not in self._known
        ]
        for chunk in chunks(unknown):
            for row in self.connection.execute(_TRANSACTIONS_IN, {"ids": chunk}):
                self._remember(row)
            for transaction_id in chunk:
                self._known.setdefault(transaction_id, None)

    def get_many(self, transaction_ids: Sequence[UUID]) -> dict[UUID, Transaction]:
        self.read_ahead(transaction_ids)
        return {i: found for i in transaction_ids if (found := self._known[i]) is not None}

    def reversal_of(self, transaction_id: UUID) -> Transaction | None:
        if transaction_id not in self._reversals:
            row = self.connection.execute(_REVERSAL, {"id": transaction_id}).first()
            if row is None:
                self._reversals[transaction_id] = None
            else:
                self._remember(row)
        return self._reversals[transaction_id]

    def add(self, transaction: Transaction) -> None:
        journal = self.journal
        journal.set(self._known, transaction.id, transaction)
        if transaction.reverses_id is not None:
            journal.set(self._reversals, transaction.reverses_id, transaction)
        journal.append(self._posted, transaction)

    def posted(self) -> list[Transaction]:
        return list(self._posted)

    def dirty(self) -> bool:
        return len(self._posted) > self._written

    def flush(self) -> None:
        rows = [transaction_values(transaction) for transaction in self._posted[self._written :]]
        executemany(self.connection, _INSERT_TRANSACTION, rows)  # in order: `position` is the posting order
        self._written = len(self._posted)

    def page(
        self,
        account_id: UUID,
        *,
        from_date: date | None,
        to_date: date | None,
        after: StatementCursor | None,
        limit: int,
    ) -> list[tuple[StatementCursor, Transaction]]:
        query = sa.select(t.account_transactions).where(_ledger.account_id == account_id)
        if from_date is not None:
            query = query.where(_ledger.transaction_date >= from_date)
        if to_date is not None:
            query = query.where(_ledger.transaction_date <= to_date)
        if after is not None:
            place = sa.tuple_(sa.literal(after.transaction_date, sa.Date), sa.literal(after.position, sa.Integer))
            query = query.where(_statement_place > place)
        query = query.order_by(*t.STATEMENT_ORDER).limit(limit)
        return [
            (StatementCursor(row.transaction_date, row.position), transaction_from_row(row))
            for row in self.memory.execute(query)
        ]

    def owed_before(self, account_id: UUID, before: StatementCursor) -> Decimal:
        parameters = {
            "account_id": account_id,
            "transaction_date": before.transaction_date,
            "position": before.position,
        }
        return _pounds(self.memory.execute(_OWED_BEFORE, parameters).scalar_one())

    def owed_by_day(self, account_id: UUID, first_day: date, last_day: date) -> DailyOwed:
        parameters = {"account_id": account_id, "first_day": first_day, "last_day": last_day}
        before, days = Decimal("0.00"), {}
        for row in self.memory.execute(_OWED_BY_DAY, parameters):
            if row.day is None:
                before = _pounds(row.owed)
            else:
                days[row.day] = _pounds(row.owed)
        return DailyOwed(before, days)

    def differences(self) -> Iterator[LedgerDifference]:
        query = _DIFFERENCES.execution_options(yield_per=_STREAM_ROWS)
        for row in self.memory.execute(query):
            balance = Decimal(row.account_balance).quantize(Decimal("0.01"))
            yield LedgerDifference(row.id, balance, _pounds(row.ledger_cents))

    def count(self) -> int:
        query = sa.select(sa.func.count()).select_from(t.account_transactions)
        return int(self.memory.execute(query).scalar_one())


_parked = t.parked_events.c
_PARKED_FOR = sa.select(t.parked_events).where(_parked.tenure_id.in_(sa.bindparam("ids", expanding=True)))
_INSERT_PARKED = t.parked_events.insert()
_DELETE_PARKED = t.parked_events.delete().where(_parked.event_id == sa.bindparam("b_event_id"))


class SqlParkedEvents:
    """Each tenure's parked events, read once and remembered; parks and removals written at commit."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.connection = memory.connection
        self.journal = memory.journal
        self._by_tenure: dict[UUID, tuple[ParkedEvent, ...]] = {}  # as it stands in this unit of work
        self._parked: dict[UUID, dict[str, Any]] = {}  # parked here: the rows to insert
        self._removed: dict[UUID, bool] = {}  # stored ones to delete
        memory.keeps_writes(self)

    def read_ahead(self, tenure_ids: Iterable[UUID]) -> None:
        unknown = [tenure_id for tenure_id in dict.fromkeys(tenure_ids) if tenure_id not in self._by_tenure]
        for chunk in chunks(unknown):
            found: dict[UUID, list[ParkedEvent]] = {tenure_id: [] for tenure_id in chunk}
            for row in self.connection.execute(_PARKED_FOR, {"ids": chunk}):
                found[row.tenure_id].append(parked_from_row(row))
            for tenure_id, events in found.items():
                self._by_tenure[tenure_id] = tuple(sorted(events, key=_happened))

    def for_tenure(self, tenure_id: UUID) -> list[ParkedEvent]:
        if tenure_id not in self._by_tenure:
            self.read_ahead([tenure_id])
        return list(self._by_tenure[tenure_id])

    def park(self, event: EventEnvelope, reason: str, at: datetime) -> None:
        known = self.for_tenure(event.entity_id)
        if any(parked.event.id == event.id for parked in known):
            return  # delivered again while it waits
        parked = ParkedEvent(event, reason, at)
        self.journal.set(self._by_tenure, event.entity_id, tuple(sorted([*known, parked], key=_happened)))
        self.journal.set(self._parked, event.id, parked_values(parked))

    def remove(self, tenure_id: UUID, event_ids: Sequence[UUID]) -> None:
        gone = set(event_ids)
        kept = tuple(parked for parked in self.for_tenure(tenure_id) if parked.event.id not in gone)
        self.journal.set(self._by_tenure, tenure_id, kept)
        for event_id in gone:
            if event_id in self._parked:
                self.journal.set(self._parked, event_id, {})  # parked and applied in one unit of work
            else:
                self.journal.set(self._removed, event_id, True)

    def list(self, limit: int) -> list[ParkedEvent]:
        query = sa.select(t.parked_events).order_by(_parked.parked_at, _parked.event_id).limit(limit)
        return [parked_from_row(row) for row in self.memory.execute(query)]

    def count(self) -> int:
        return int(self.memory.execute(sa.select(sa.func.count()).select_from(t.parked_events)).scalar_one())

    def dirty(self) -> bool:
        return bool(self._parked or self._removed)

    def flush(self) -> None:
        executemany(self.connection, _INSERT_PARKED, [row for row in self._parked.values() if row])
        executemany(self.connection, _DELETE_PARKED, [{"b_event_id": event_id} for event_id in self._removed])
        self._parked, self._removed = {}, {}


def _happened(parked: ParkedEvent) -> tuple[datetime, str]:
    return (parked.event.date_time, str(parked.event.id))


class SqlOutbox:
    """Events are kept with the change and written at commit; the relay reads and marks them in its own transactions."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.connection = memory.connection
        self.journal = memory.journal
        self._rows: list[dict[str, Any]] = []
        memory.keeps_writes(self)

    def add(self, topic: str, event: EventEnvelope, group_id: str) -> None:
        self.journal.append(self._rows, outbox_values(topic, event, group_id))

    def dirty(self) -> bool:
        return bool(self._rows)

    def flush(self) -> None:
        executemany(self.connection, _INSERT_OUTBOX, self._rows)
        self._rows = []

    def pending(self, limit: int) -> list[OutboxMessage]:
        o = t.outbox.c
        query = (
            sa.select(o.position, o.topic, o.group_id, o.event_id, o.payload)
            .where(o.published_at.is_(None))
            .order_by(o.position)
            .limit(limit)
        )
        return [
            OutboxMessage(row.position, row.topic, row.group_id, row.event_id, row.payload.encode())
            for row in self.memory.execute(query)
        ]

    def mark_published(self, positions: Sequence[int], at: datetime) -> None:
        if positions:
            self.memory.execute(t.outbox.update().where(t.outbox.c.position.in_(positions)).values(published_at=at))

    def count_pending(self) -> int:
        query = sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
        return int(self.memory.execute(query).scalar_one())

    def oldest_pending_at(self) -> datetime | None:
        o = t.outbox.c
        query = sa.select(o.created_at).where(o.published_at.is_(None)).order_by(o.position).limit(1)
        return aware(self.memory.execute(query).scalar())


# The delivery side ------------------------------------------------------------------------


class SqlInterimDeliveries:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def pending(self, sink: str, limit: int) -> list[tuple[str, int]]:
        query = (
            sa.select(_pending.payment_ref, _pending.version)
            .where(_pending.sink == sink)
            .order_by(_pending.version, _pending.payment_ref)
            .limit(limit)
        )
        return [(row.payment_ref, row.version) for row in self.memory.execute(query)]

    def has_pending(self, sink: str) -> bool:
        query = sa.select(_pending.payment_ref).where(_pending.sink == sink).limit(1)
        return self.memory.execute(query).first() is not None

    def count_pending(self, sink: str) -> int:
        query = sa.select(sa.func.count()).select_from(t.interim_pending).where(_pending.sink == sink)
        return int(self.memory.execute(query).scalar_one())

    def rows(self, payment_refs: Sequence[str]) -> list[InterimRow]:
        if not payment_refs:
            return []
        query = sa.select(t.interim_rows).where(_rows.payment_ref.in_(payment_refs))
        return [interim_from_row(row) for row in self.memory.execute(query)]

    def all(self) -> list[InterimRow]:
        return list(self.stream())

    def stream(self) -> Iterator[InterimRow]:
        query = sa.select(t.interim_rows).order_by(_rows.payment_ref)
        # A server-side cursor where the driver has one: rows arrive a batch at a time.
        for row in self.memory.execute(query.execution_options(yield_per=_STREAM_ROWS)):
            yield interim_from_row(row)

    def account_ids(self) -> dict[str, UUID]:
        query = sa.select(_rows.payment_ref, _rows.account_id)
        return {row.payment_ref: row.account_id for row in self.memory.execute(query)}

    def clear_pending(self, sink: str, delivered: Sequence[tuple[str, int]]) -> None:
        # Rows a listener transaction holds are being marked again (they stay pending, for the next
        # delivery): skip them rather than wait, as waiting deadlocks against a listener batch that
        # marks rows in another order (PostgreSQL breaks it after a second's stall). SQLite has no
        # row locks (its writers take turns), so there is nothing to skip.
        connection = self.memory.connection
        if connection.dialect.name != "sqlite":
            refs = sorted(ref for ref, _ in delivered)
            free: set[str] = set()
            for chunk in chunks(refs):
                free.update(self.memory.execute(_PENDING_UNLOCKED, {"sink": sink, "refs": chunk}).scalars())
            delivered = [(ref, version) for ref, version in delivered if ref in free]
        if delivered:
            self.memory.flush()
            executemany(
                connection,
                _CLEAR_PENDING,
                [{"b_sink": sink, "ref": ref, "delivered_version": version} for ref, version in delivered],
            )

    def enable_sinks(self, sinks: Sequence[str], at: datetime) -> list[str]:
        known = set(self.memory.execute(_SINKS).scalars())
        new = [sink for sink in sinks if sink not in known]
        for sink in new:
            self.memory.execute(t.interim_sinks.insert().values(sink=sink, enabled_at=at))
            self.queue_everything(sink)
        return new

    def queue_everything(self, sink: str) -> int:
        self.memory.execute(t.interim_pending.delete().where(_pending.sink == sink))
        result = self.memory.execute(
            t.interim_pending.insert()
            .from_select(
                ["sink", "payment_ref", "version"], sa.select(sa.literal(sink), _rows.payment_ref, _rows.version)
            )
            # An INSERT's row count is kept only when asked for (PostgreSQL's driver answered -1 without it).
            .execution_options(preserve_rowcount=True)
        )
        return int(result.rowcount or 0)

    def note_delivery(self, sink: str, at: datetime, error: str | None) -> None:
        values: dict[str, Any] = {"last_error": error}
        if error is None:
            values["last_delivered_at"] = at
        self.memory.execute(t.interim_sinks.update().where(t.interim_sinks.c.sink == sink).values(values))

    def last_delivered_at(self, sink: str) -> datetime | None:
        query = sa.select(t.interim_sinks.c.last_delivered_at).where(t.interim_sinks.c.sink == sink)
        return aware(self.memory.execute(query).scalar())

    def last_error(self, sink: str) -> str | None:
        query = sa.select(t.interim_sinks.c.last_error).where(t.interim_sinks.c.sink == sink)
        error = self.memory.execute(query).scalar()
        return None if error is None else str(error)


_letters = t.dead_letters.c


class SqlDeadLetters:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def add(
        self,
        source: str,
        body: bytes,
        reason: str,
        attempts: int,
        at: datetime,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> None:
        self.memory.execute(
            t.dead_letters.insert().values(
                source=source[:80],
                body=body,
                reason=reason,
                attempts=attempts,
                created_at=at,
                event_id=event_id[:64] if event_id else None,
                event_type=event_type[:80] if event_type else None,
            )
        )

    def list(
        self, include_replayed: bool = False, *, after: int | None = None, limit: int | None = None
    ) -> builtins.list[DeadLetter]:
        query = sa.select(t.dead_letters).order_by(_letters.id)
        if not include_replayed:
            query = query.where(_letters.replayed_at.is_(None))
        if after is not None:
            query = query.where(_letters.id > after)
        if limit is not None:
            query = query.limit(limit)
        return self._letters(query)

    def count(self, include_replayed: bool = False) -> int:
        query = sa.select(sa.func.count()).select_from(t.dead_letters)
        if not include_replayed:
            query = query.where(_letters.replayed_at.is_(None))
        return int(self.memory.execute(query).scalar_one())

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        found = self._letters(sa.select(t.dead_letters).where(_letters.id == dead_letter_id))
        return found[0] if found else None

    def by_event_id(self, event_id: str) -> builtins.list[DeadLetter]:
        return self._letters(sa.select(t.dead_letters).where(_letters.event_id == event_id).order_by(_letters.id))

    def replayed(self, limit: int) -> builtins.list[DeadLetter]:
        query = (
            sa.select(t.dead_letters)
            .where(_letters.replayed_at.is_not(None))
            .order_by(_letters.replayed_at.desc(), _letters.id.desc())
            .limit(limit)
        )
        return self._letters(query)

    def _letters(self, query: sa.Select[Any]) -> builtins.list[DeadLetter]:
        return [
            DeadLetter(
                id=row.id,
                source=row.source,
                event_id=row.event_id,
                event_type=row.event_type,
                body=bytes(row.body),
                reason=row.reason,
                attempts=row.attempts,
                created_at=aware(row.created_at),  # type: ignore[arg-type]
                replayed_at=aware(row.replayed_at),
            )
            for row in self.memory.execute(query)
        ]

    def mark_replayed(self, dead_letter_id: int, at: datetime) -> None:
        self.memory.execute(t.dead_letters.update().where(t.dead_letters.c.id == dead_letter_id).values(replayed_at=at))
