"""What a sink is owed survives a payment reference being freed and reused by another account."""

from __future__ import annotations

from accounts.bootstrap import Application


def test_a_reused_payment_reference_stays_owed_after_an_older_delivery_clears(application: Application) -> None:
    with application.uow() as uow:
        uow.interim.mark_pending(["database"], "1000000005", 5)  # the old account's row, fifth version
        uow.commit()
    with application.uow(read_only=True) as uow:
        in_flight = uow.deliveries.pending("database", 10)  # a delivery reads what is owed...
    with application.uow() as uow:
        uow.interim.mark_pending(["database"], "1000000005", 1)  # ...while another account takes the reference
        uow.commit()
    with application.uow() as uow:
        uow.deliveries.clear_pending("database", in_flight)  # the delivery of the old row finishes
        uow.commit()
    with application.uow(read_only=True) as uow:
        assert [ref for ref, _ in uow.deliveries.pending("database", 10)] == ["1000000005"]
