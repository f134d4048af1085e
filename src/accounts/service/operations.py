"""What an operations team watches, read from the store and the broker: backlogs and their age.

Asked for at each scrape of the metrics (a few indexed counts), never kept: what is
reported is what the database and the broker hold at that moment, in whichever process asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from accounts.service.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class SinkFigures:
    name: str
    pending: int  # rows the sink has still to receive
    last_delivered_at: datetime | None  # its last delivery without a failure
    last_error: str | None = None  # why its last delivery failed; None when it went well


@dataclass(frozen=True)
class Figures:
    outbox_waiting: int  # account events not yet published
    outbox_oldest_at: datetime | None
    sinks: list[SinkFigures]
    postings: int  # ledger transactions ever posted
    parked: int  # tenure events waiting for their tenure's create


def figures(uow_factory: Callable[..., UnitOfWork], sinks: Sequence[str]) -> Figures:
    with uow_factory(read_only=True) as uow:
        return Figures(
            outbox_waiting=uow.outbox.count_pending(),
            outbox_oldest_at=uow.outbox.oldest_pending_at(),
            sinks=sink_figures(uow, sinks),
            postings=uow.transactions.count(),
            parked=uow.parked.count(),
        )


def sink_figures(uow: UnitOfWork, sinks: Sequence[str]) -> list[SinkFigures]:
    """Each sink's backlog and how its deliveries went (the metrics, and the /interim page)."""
    return [
        SinkFigures(
            name,
            uow.deliveries.count_pending(name),
            uow.deliveries.last_delivered_at(name),
            uow.deliveries.last_error(name),
        )
        for name in sinks
    ]
