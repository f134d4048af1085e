"""The demonstration data's generator: the same seed gives the same tenures and payments, a realistic mix."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from accounts.demo.loader import Habit, demo_tenants, payment_file, week_payments

CURRENT = date(2026, 11, 30)
FIRST = CURRENT - timedelta(weeks=51)


def test_a_seed_gives_the_same_tenures_and_payments_and_another_seed_others() -> None:
    one, again, other = (demo_tenants(50, seed, FIRST, CURRENT) for seed in (1, 1, 2))
    assert [t.story.events for t in one] == [t.story.events for t in again]
    assert [t.story.tenure_id for t in one] != [t.story.tenure_id for t in other]
    paid = [week_payments(t, "1000000010", 1, FIRST, CURRENT) for t in one]
    assert paid == [week_payments(t, "1000000010", 1, FIRST, CURRENT) for t in again]


def test_most_tenants_pay_and_about_one_in_ten_falls_behind() -> None:
    habits = Counter(tenant.habit for tenant in demo_tenants(1000, 7, FIRST, CURRENT))
    assert habits[Habit.PAYS] + habits[Habit.MONTHLY] > 700
    assert 60 <= habits[Habit.PARTLY] + habits[Habit.STOPPED] <= 160


def test_a_weeks_payments_are_a_payment_file() -> None:
    tenant = next(t for t in demo_tenants(20, 1, FIRST, CURRENT) if t.habit is Habit.PAYS)
    text = payment_file(week_payments(tenant, "1000000010", 1, CURRENT, CURRENT))
    assert text.startswith("paymentReference,amount,paymentDate,method,reference\r\n")
