"""The finance listener's use case on real databases: tenure events become accounts, exactly once."""

from __future__ import annotations

import random
from decimal import Decimal
from uuid import UUID

from accounts.bootstrap import Application
from accounts.domain.account import AccountStatus, AccountType, RentGroupType, to_wire
from accounts.domain.events import parse_envelope
from accounts.domain.payment_reference import has_valid_check_digit
from tests.fixtures.tenures import all_events, drain, realistic_stories, story


def apply(app: Application, *events: dict) -> None:
    for event in events:
        app.tenure_events.handle(parse_envelope(event))


def master(app: Application, tenure_id: str):
    accounts = app.accounts.by_target(UUID(tenure_id), AccountType.MASTER)
    assert len(accounts) == 1, f"expected one Master account for tenure {tenure_id}, found {len(accounts)}"
    return accounts[0]


def test_a_tenure_created_gives_one_account_with_a_checked_payment_reference(application: Application) -> None:
    tale = story(random.Random(1), tenure_type="SEC")
    apply(application, *tale.events)
    account = master(application, tale.tenure_id)
    assert account.target_type == "Tenure"
    assert account.rent_group_type is RentGroupType.HOUSING_REVENUE
    assert account.agreement_type == "Master Account"
    assert account.account_status is AccountStatus.ACTIVE
    assert len(account.payment_reference) == 10 and has_valid_check_digit(account.payment_reference)
    assert account.tenure is not None
    assert account.tenure.full_address == tale.tenure["tenuredAsset"]["fullAddress"]
    responsible = [m for m in tale.tenure["householdMembers"] if m["isResponsible"]]
    assert [t.full_name for t in account.tenure.primary_tenants] == [m["fullName"] for m in responsible]
    assert account.account_balance == Decimal("0.00")
    assert account.created_by == "housing.officer@hackney.gov.uk"


def test_a_tenure_created_twice_gives_one_account(application: Application) -> None:
    tale = story(random.Random(2))
    apply(application, tale.events[0], tale.events[0])
    master(application, tale.tenure_id)


def test_the_tenures_own_payment_reference_is_kept(application: Application) -> None:
    tale = story(random.Random(3), payment_reference="2280012345")
    apply(application, *tale.events)
    assert master(application, tale.tenure_id).payment_reference == "2280012345"


def test_an_update_before_its_create_is_parked_until_the_create(application: Application) -> None:
    rng = random.Random(4)
    tale = story(rng).moved_to("9 Mare Street, London E8 3RH")
    create, update = tale.events
    apply(application, update)
    assert application.accounts.by_target(UUID(tale.tenure_id), None) == []
    with application.uow(read_only=True) as uow:
        assert [parked.event.id for parked in uow.parked.list(10)] == [UUID(update["id"])]
    apply(application, create)
    assert master(application, tale.tenure_id).tenure.full_address == "9 Mare Street, London E8 3RH"
    with application.uow(read_only=True) as uow:
        assert uow.parked.count() == 0


def test_shuffled_and_duplicated_events_give_the_in_order_accounts(tmp_path) -> None:
    from accounts.bootstrap import bootstrap
    from tests.conftest import make_settings

    stories = realistic_stories(24, seed=11)
    events = all_events(stories)
    in_order = bootstrap(make_settings(f"sqlite:///{tmp_path}/a.db", tmp_path), run_migrations=True)
    shuffled = bootstrap(make_settings(f"sqlite:///{tmp_path}/b.db", tmp_path), run_migrations=True)
    rng = random.Random(5)
    delivered = [event for event in events for _ in range(rng.randint(1, 3))]
    rng.shuffle(delivered)

    drain(lambda event: apply(in_order, event), events)
    drain(lambda event: apply(shuffled, event), delivered)

    assigned = {"id", "paymentReference", "createdAt", "lastUpdatedAt"}  # differ between two databases by design
    for tale in stories:
        want = to_wire(master(in_order, tale.tenure_id))
        got = to_wire(master(shuffled, tale.tenure_id))
        assert {k: v for k, v in got.items() if k not in assigned} == {
            k: v for k, v in want.items() if k not in assigned
        }
    in_order.close()
    shuffled.close()


def test_end_of_tenure_ends_the_account(application: Application) -> None:
    tale = story(random.Random(6)).ended("2026-01-31")
    apply(application, *tale.events)
    account = master(application, tale.tenure_id)
    assert account.account_status is AccountStatus.ENDED
    assert account.end_date is not None and account.end_date.date().isoformat() == "2026-01-31"
