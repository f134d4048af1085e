"""The batch's undo journal: a savepoint rolled back in memory leaves what was there before it."""

from __future__ import annotations

from accounts.adapters.database.journal import Journal


def test_a_rolled_back_savepoint_undoes_only_its_own_changes() -> None:
    journal = Journal()
    seen: dict[str, int] = {"a": 1}
    rows: list[str] = ["first"]

    outer = journal.begin()
    journal.set(seen, "a", 2)
    journal.append(rows, "second")
    inner = journal.begin()
    journal.set(seen, "a", 3)
    journal.set(seen, "b", 1)
    journal.append(rows, "third")
    journal.rollback(inner)

    assert seen == {"a": 2} and rows == ["first", "second"]
    journal.release(outer)
    assert seen == {"a": 2} and rows == ["first", "second"]


def test_changes_outside_a_savepoint_and_released_ones_stay() -> None:
    journal = Journal()
    seen: dict[str, int] = {}
    journal.set(seen, "kept", 1)  # no savepoint open: nothing to undo it with
    mark = journal.begin()
    journal.set(seen, "released", 1)
    journal.release(mark)
    mark = journal.begin()
    journal.set(seen, "undone", 1)
    journal.set(seen, "kept", 2)
    journal.rollback(mark)
    assert seen == {"kept": 1, "released": 1}
