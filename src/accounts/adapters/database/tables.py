"""The service's tables: one schema for SQLite (embedded) and PostgreSQL.

Alembic migrations are generated from this metadata; the partial indexes are the
ones the queries of the API and the listener rely on.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Money = sa.Numeric(14, 2, asdecimal=True)
Timestamp = sa.DateTime(timezone=True)

target_types = sa.Table(
    "target_types",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("polarity", sa.String(40), nullable=False),
    sa.Column("description", sa.String(200), nullable=False, server_default=""),
)

WeeksInArrears = sa.Numeric(16, 1, asdecimal=True)
# Only accounts in arrears are on the worklist: its indexes hold those alone, each sort's its own.
# Literals, so both databases' planners match a query's own predicate to its index (a bound 0 would
# not). The sorts other than amount owed say it `+amount_owed > 0`: the same accounts, but a term no
# planner can read as a range of amount owed, so under a rent group they never take the rent group's
# amount-owed index (an equality and a range, then a sort of the whole group: SQLite did, without
# statistics) over their own, which is read in order and stops at the page's end.
WORKLIST_SORT_COLUMNS = {"owed": "amount_owed", "weeks": "weeks_in_arrears", "since": "arrears_since"}
IN_ARREARS = {"owed": "amount_owed > 0", "weeks": "+amount_owed > 0", "since": "+amount_owed > 0"}


def _worklist_indexes() -> list[sa.Index]:
    """The worklist's partial indexes: by each sort, ties by id, and each again under a rent group."""
    indexes = []
    for name, column in WORKLIST_SORT_COLUMNS.items():
        where = sa.text(IN_ARREARS[name])
        for prefix, columns in (("", (column, "id")), ("group_", ("rent_group_type", column, "id"))):
            indexes.append(
                sa.Index(f"ix_accounts_worklist_{prefix}{name}", *columns, sqlite_where=where, postgresql_where=where)
            )
    return indexes


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("target_type", sa.String(40), sa.ForeignKey("target_types.name"), nullable=False),
    sa.Column("target_id", sa.Uuid, nullable=False),
    sa.Column("account_type", sa.String(20), nullable=False),
    sa.Column("rent_group_type", sa.String(40)),
    sa.Column("agreement_type", sa.String(100)),
    sa.Column("account_balance", Money, nullable=False),
    sa.Column("consolidated_balance", Money, nullable=False),
    # Derived from the balance and the target type's polarity; kept for the arrears index.
    sa.Column("amount_owed", Money, nullable=False),
    sa.Column("payment_reference", sa.String(10), nullable=False),
    sa.Column("parent_account_id", sa.Uuid),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_updated_by", sa.String(320), nullable=False),
    sa.Column("last_updated_at", Timestamp, nullable=False),
    sa.Column("start_date", Timestamp),
    sa.Column("end_date", Timestamp),
    sa.Column("end_reason_code", sa.String(50)),
    sa.Column("account_status", sa.String(20), nullable=False),
    sa.Column("consolidated_charges", sa.JSON, nullable=False),
    sa.Column("tenure", sa.JSON),
    sa.Column("version", sa.Integer, nullable=False),
    # The account as the API answers it (its wire JSON), written with every change: the
    # reads serve it as it is instead of building an Account and serialising it each time.
    sa.Column("wire", sa.Text),
    # The arrears worklist's figures (`domain/arrears.py`), written with every change (`rows.account_values`):
    # what it filters and sorts by, served by the partial indexes below.
    # The defaults are only what adding the columns to stored rows needed (migration 0007): every write sets them.
    sa.Column("weekly_charge", Money, nullable=False, server_default=sa.text("0")),
    sa.Column("weeks_in_arrears", WeeksInArrears, nullable=False, server_default=sa.text("0")),  # 0: no weekly charge
    sa.Column("arrears_since", sa.Date, nullable=False, server_default=sa.text("'1970-01-01'")),  # last paid, or start
    sa.Column("last_payment_date", sa.Date),
    sa.Column("last_payment_amount", Money),
    sa.Index("ix_accounts_target", "target_id", "account_type"),
    sa.Index("ux_accounts_payment_reference", "payment_reference", unique=True),
    sa.Index("ix_accounts_arrears_by_type", "account_type", "amount_owed"),
    sa.Index("ix_accounts_arrears", "amount_owed"),
    *_worklist_indexes(),
    # At most one active Master account per target.
    sa.Index(
        "ux_accounts_active_master",
        "target_id",
        unique=True,
        sqlite_where=sa.text("account_type = 'Master' AND account_status <> 'Ended'"),
        postgresql_where=sa.text("account_type = 'Master' AND account_status <> 'Ended'"),
    ),
)

# How a target's accounts are listed (`domain.account.oldest_first`): the stored reads order by these.
OLDEST_FIRST = (accounts.c.created_at, accounts.c.id)

# Allocation serials for payment references: one row, bumped inside the creating transaction.
payment_reference_counter = sa.Table(
    "payment_reference_counter",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("next_serial", sa.BigInteger, nullable=False),
)

# The transactional outbox: written with the change, published by the relay.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(80), nullable=False),
    sa.Column("group_id", sa.String(80), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("published_at", Timestamp),
    sa.Index(
        "ix_outbox_unpublished",
        "position",
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)

# Exactly-once effect: an event id is recorded in the same transaction as its change.
processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("event_type", sa.String(80), nullable=False),
    sa.Column("entity_id", sa.Uuid),
    sa.Column("outcome", sa.String(200), nullable=False),
    sa.Column("processed_at", Timestamp, nullable=False),
)

# The finance side's merged copy of each tenure, with per-field change times.
tenure_copies = sa.Table(
    "tenure_copies",
    metadata,
    sa.Column("tenure_id", sa.Uuid, primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("stamps", sa.JSON, nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# The embedded broker: a durable queue inside the service's own database.
embedded_messages = sa.Table(
    "embedded_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("group_id", sa.String(80), nullable=False),
    sa.Column("message_id", sa.String(128), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("available_at", Timestamp, nullable=False),
    sa.Column("leased_until", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_embedded_messages_ready", "topic", "available_at"),
    # A claim skips the groups with a message in flight: found through this, not by reading the queue.
    sa.Index("ix_embedded_messages_leased", "topic", "leased_until"),
)

# Messages that can never be processed, with the reason; listed and replayed by the CLI.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(80), nullable=False),
    sa.Column("event_id", sa.String(64)),
    sa.Column("event_type", sa.String(80)),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("replayed_at", Timestamp),
    sa.Index("ix_dead_letters_event_id", "event_id"),  # a replayed letter's later ones (what became of it)
)

# Each reconciliation of the interim copies, as it finished (the /interim page shows the latest).
interim_reconciliations = sa.Table(
    "interim_reconciliations",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=False),
    sa.Column("run_by", sa.String(200), nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),  # the sync table and each sink checked
    sa.Column("expected", sa.Integer, nullable=False),
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("missing", sa.Integer, nullable=False),
    sa.Column("extra", sa.Integer, nullable=False),
    sa.Column("changed", sa.Integer, nullable=False),
    sa.Column("duplicate", sa.Integer, nullable=False),
    sa.Column("unreadable", sa.Integer, nullable=False),
    sa.Column("differences", sa.JSON, nullable=False),  # the first ones, described
    sa.Index("ix_interim_reconciliations_finished", "finished_at"),
)

# The interim sync table: one tenancy-agreement row per tenure account, written with the change.
interim_rows = sa.Table(
    "interim_rows",
    metadata,
    sa.Column("payment_ref", sa.String(10), primary_key=True),
    sa.Column("account_id", sa.Uuid, nullable=False),
    sa.Column("rent_group", sa.String(40), nullable=False),
    sa.Column("tenure", sa.String(20), nullable=False),
    sa.Column("start_date", sa.Date),
    sa.Column("end_date", sa.Date),
    sa.Column("property_ref", sa.String(40), nullable=False),
    sa.Column("short_address", sa.String(200), nullable=False),
    sa.Column("address", sa.String(500), nullable=False),
    sa.Column("post_code", sa.String(10), nullable=False),
    sa.Column("num_bedrooms", sa.Integer),
    sa.Column("title", sa.String(20), nullable=False),
    sa.Column("forename", sa.String(200), nullable=False),
    sa.Column("surname", sa.String(200), nullable=False),
    sa.Column("date_of_birth", sa.Date),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ux_interim_rows_account", "account_id", unique=True),
)

# Rows a sink still has to receive: written with the row change, removed once delivered.
interim_pending = sa.Table(
    "interim_pending",
    metadata,
    sa.Column("sink", sa.String(40), primary_key=True),
    sa.Column("payment_ref", sa.String(10), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

# Sinks that have been given every row once; a newly enabled sink is backfilled.
interim_sinks = sa.Table(
    "interim_sinks",
    metadata,
    sa.Column("sink", sa.String(40), primary_key=True),
    sa.Column("enabled_at", Timestamp, nullable=False),
    sa.Column("last_delivered_at", Timestamp),
    sa.Column("last_error", sa.Text),
)

# The activity ledger: every transaction ever posted to an account, never changed once written.
# `position` is the posting order (the database's own counter); a statement lists an account's
# transactions by transaction date, then posting order.
account_transactions = sa.Table(
    "account_transactions",
    metadata,
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),  # chosen by the client: the idempotency key
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("transaction_type", sa.String(20), nullable=False),
    sa.Column("amount", Money, nullable=False),
    sa.Column("direction", sa.String(20), nullable=False),
    sa.Column("transaction_date", sa.Date, nullable=False),
    sa.Column("posted_at", Timestamp, nullable=False),
    sa.Column("period_no", sa.SmallInteger, nullable=False),
    sa.Column("financial_year", sa.SmallInteger, nullable=False),
    sa.Column("description", sa.String(500)),
    sa.Column("reference", sa.String(100)),
    sa.Column("created_by", sa.String(320), nullable=False),
    # A transaction is reversed at most once: the unique index refuses a second reversal.
    sa.Column("reverses_id", sa.Uuid, unique=True),
    sa.Column("balance_after", Money, nullable=False),
    sa.Index("ix_account_transactions_statement", "account_id", "transaction_date", "position"),
)
STATEMENT_ORDER = (account_transactions.c.transaction_date, account_transactions.c.position)

# Tenure events that came before their tenure's TenureCreatedEvent: kept, however long, and applied
# (in dateTime order) in the same transaction as the create when it arrives.
parked_events = sa.Table(
    "parked_events",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("tenure_id", sa.Uuid, nullable=False, index=True),
    sa.Column("event_type", sa.String(80), nullable=False),
    sa.Column("date_time", Timestamp, nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),  # the envelope as it came, for applying it later
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("parked_at", Timestamp, nullable=False),
)

# Payments a payment file could not post (no account has the reference, the check digit fails, the account
# has ended), until one person proposes an account and another approves. One item per bank reference, as
# one payment per bank reference: a file imported again sets nothing aside twice.
suspense_items = sa.Table(
    "suspense_items",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("payment_reference", sa.String(100), nullable=False),  # as the file gave it
    sa.Column("amount", Money, nullable=False),
    sa.Column("payment_date", sa.Date, nullable=False),
    sa.Column("method", sa.String(100), nullable=False),
    sa.Column("reference", sa.String(100), nullable=False, unique=True),  # the bank's: the idempotency key
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("proposed_account_id", sa.Uuid),
    sa.Column("proposed_by", sa.String(320)),
    sa.Column("approved_by", sa.String(320)),
    sa.Column("resolved_at", Timestamp),
    sa.Column("transaction_id", sa.Uuid),  # the Payment posted when it was resolved
    sa.Column("version", sa.Integer, nullable=False),
    # The list of open items, oldest payment first: read in index order.
    sa.Index(
        "ix_suspense_items_open",
        "payment_date",
        "reference",
        sqlite_where=sa.text("status <> 'Resolved'"),
        postgresql_where=sa.text("status <> 'Resolved'"),
    ),
    sa.Index("ix_suspense_items_listed", "payment_date", "reference"),
)

# Charge runs: one row per run, its progress written with each batch of charges it posts, so a run
# that was stopped carries on after `last_account_id`. At most one unfinished run per week.
charge_runs = sa.Table(
    "charge_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("week_starting", sa.Date, nullable=False),
    sa.Column("financial_year", sa.SmallInteger, nullable=False),
    sa.Column("period_no", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_by_name", sa.String(320), nullable=False),
    sa.Column("started_by_email", sa.String(320), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
    sa.Column("accounts_total", sa.Integer, nullable=False),
    sa.Column("last_account_id", sa.Uuid),
    sa.Column("accounts_done", sa.Integer, nullable=False),
    sa.Column("accounts_charged", sa.Integer, nullable=False),
    sa.Column("accounts_not_charged", sa.Integer, nullable=False),
    sa.Column("charges_posted", sa.Integer, nullable=False),
    sa.Column("amount_posted", Money, nullable=False),
    sa.Column("charges_skipped", sa.Integer, nullable=False),
    sa.Column("charges_refused", sa.Integer, nullable=False),
    sa.Column("refusals", sa.JSON, nullable=False),  # the first 1,000: account id, charge type, reason
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index(
        "ux_charge_runs_unfinished_week",
        "week_starting",
        unique=True,
        sqlite_where=sa.text("finished_at IS NULL"),
        postgresql_where=sa.text("finished_at IS NULL"),
    ),
)
