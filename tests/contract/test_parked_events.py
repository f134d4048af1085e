"""Tenure events parked until their tenure's create: kept at commit, read in the order they happened."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from accounts.domain.events import EventEnvelope
from tests.contract.conftest import UowFactory
from tests.contract.values import CREATED, an_event


def about(tenure_id: uuid.UUID, minutes: int) -> EventEnvelope:
    """An event about that tenure, happened `minutes` after CREATED."""
    return dataclasses.replace(an_event(), entity_id=tenure_id, date_time=CREATED + timedelta(minutes=minutes))


def test_parked_events_are_kept_at_commit_and_read_back_in_the_order_they_happened(uow: UowFactory) -> None:
    tenure, other = uuid.uuid4(), uuid.uuid4()
    late, early, elsewhere = about(tenure, 30), about(tenure, 10), about(other, 20)
    with uow() as unit:
        for event in (late, early, elsewhere):
            unit.parked.park(event, "its tenure has not been seen yet", CREATED)
        unit.parked.park(late, "delivered again", CREATED)  # changes nothing
        assert [p.event.id for p in unit.parked.for_tenure(tenure)] == [early.id, late.id]
        unit.commit()

    with uow(read_only=True) as unit:
        found = unit.parked.for_tenure(tenure)
        assert [p.event for p in found] == [early, late]  # the envelope as it came, exactly
        assert found[1].reason == "its tenure has not been seen yet" and found[1].parked_at == CREATED
        assert unit.parked.count() == 3 and len(unit.parked.list(2)) == 2


def test_removed_events_are_gone_and_a_savepoint_undoes_a_park(uow: UowFactory) -> None:
    tenure = uuid.uuid4()
    kept, applied = about(tenure, 1), about(tenure, 2)
    with uow() as unit:
        unit.parked.park(kept, "waiting", CREATED)
        unit.parked.park(applied, "waiting", CREATED)
        unit.commit()
    with uow() as unit:
        unit.parked.remove(tenure, [applied.id])
        with pytest.raises(RuntimeError), unit.savepoint():
            unit.parked.park(about(tenure, 3), "undone", CREATED)
            raise RuntimeError("this event failed")
        assert [p.event.id for p in unit.parked.for_tenure(tenure)] == [kept.id]
        unit.commit()
    with uow(read_only=True) as unit:
        assert [p.event.id for p in unit.parked.for_tenure(tenure)] == [kept.id] and unit.parked.count() == 1


def test_an_event_parked_and_applied_in_one_unit_of_work_leaves_nothing(uow: UowFactory) -> None:
    tenure = uuid.uuid4()
    event = about(tenure, 1)
    with uow() as unit:
        unit.parked.park(event, "waiting", CREATED)
        unit.parked.remove(tenure, [event.id])
        unit.commit()
    with uow(read_only=True) as unit:
        assert unit.parked.count() == 0
