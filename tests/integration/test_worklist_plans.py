"""The worklist's pages after a cursor seek into their index on SQLite, both ways: a page deep in the list
(the /arrears page's "Previous" reads upwards from its first account) costs what the first page costs."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from accounts.adapters.database.engine import create_engine
from accounts.adapters.database.repositories import worklist_query
from accounts.bootstrap import Application
from accounts.domain.account import RentGroupType
from accounts.domain.arrears import WorklistSort
from accounts.service.unit_of_work import WorklistCursor

KEYSET = {
    "amountOwed": "(amount_owed,id)",
    "weeksInArrears": "(weeks_in_arrears,id)",
    "daysSinceLastPayment": "(arrears_since,id)",
}


@pytest.mark.parametrize("sort", list(WorklistSort))
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("group", [None, RentGroupType.GARAGES])
def test_a_page_after_a_cursor_seeks_by_the_keyset(
    sqlite_application: Application, sort: WorklistSort, descending: bool, group: RentGroupType | None
) -> None:
    value = date(2025, 1, 1) if sort is WorklistSort.DAYS_SINCE_LAST_PAYMENT else Decimal("400.00")
    query = worklist_query(group, None, None, sort, descending, WorklistCursor(value, uuid.uuid4()), 51)
    engine = create_engine(sqlite_application.settings.database_url)
    try:
        with engine.connect() as connection:
            sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
            (plan,) = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        engine.dispose()
    assert plan.startswith("SEARCH accounts USING INDEX ix_accounts_worklist_"), plan
    assert KEYSET[sort.value] in plan, plan  # a seek to the place, not a walk from the index's start
