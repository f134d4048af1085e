"""Rent weeks: Monday to Sunday, counted from the first Monday of April, 52 or 53 to a rent year."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.domain.errors import ValidationProblem
from accounts.domain.rent_week import (
    FIRST_DAY,
    LAST_DAY,
    RentWeek,
    rent_week_of,
    rent_week_starting,
    rent_weeks_up_to,
    rent_year_start,
    weeks_in_rent_year,
)

# The first Monday of April, read off a calendar.
FIRST_MONDAYS_OF_APRIL = {
    2015: date(2015, 4, 6),
    2016: date(2016, 4, 4),
    2017: date(2017, 4, 3),
    2018: date(2018, 4, 2),
    2019: date(2019, 4, 1),
    2020: date(2020, 4, 6),
    2021: date(2021, 4, 5),
    2022: date(2022, 4, 4),
    2023: date(2023, 4, 3),
    2024: date(2024, 4, 1),
    2025: date(2025, 4, 7),
    2026: date(2026, 4, 6),
    2027: date(2027, 4, 5),
    2028: date(2028, 4, 3),
    2029: date(2029, 4, 2),
    2030: date(2030, 4, 1),
    2031: date(2031, 4, 7),
}


@pytest.mark.parametrize(("year", "monday"), sorted(FIRST_MONDAYS_OF_APRIL.items()))
def test_the_rent_year_starts_on_the_first_monday_of_april(year: int, monday: date) -> None:
    assert rent_year_start(year) == monday
    assert monday.strftime("%A") == "Monday"


def test_the_first_of_april_starts_the_rent_year_when_it_is_a_monday() -> None:
    assert rent_year_start(2024) == date(2024, 4, 1)
    assert rent_year_start(2030) == date(2030, 4, 1)


@pytest.mark.parametrize("year", [2013, 2019, 2024, 2030, 2035])
def test_some_rent_years_have_53_weeks(year: int) -> None:
    assert weeks_in_rent_year(year) == 53


@pytest.mark.parametrize("year", [y for y in range(2014, 2035) if y not in (2019, 2024, 2030)])
def test_the_other_rent_years_have_52_weeks(year: int) -> None:
    assert weeks_in_rent_year(year) == 52


def test_2026_27_runs_from_monday_6_april_2026_to_sunday_4_april_2027() -> None:
    first, last = rent_week_of(date(2026, 4, 6)), rent_week_of(date(2027, 4, 4))

    assert first == RentWeek(2026, 1, date(2026, 4, 6))
    assert first.label == "2026/27 week 1"
    assert last == RentWeek(2026, 52, date(2027, 3, 29))
    assert last.ends == date(2027, 4, 4)
    assert last.label == "2026/27 week 52"
    assert rent_week_of(date(2027, 4, 5)) == RentWeek(2027, 1, date(2027, 4, 5))


def test_the_53rd_week_of_2024_25_ends_the_day_before_the_next_rent_year() -> None:
    last = rent_week_of(date(2025, 4, 6))

    assert (last.financial_year, last.period_no) == (2024, 53)
    assert (last.starts, last.ends) == (date(2025, 3, 31), date(2025, 4, 6))
    assert last.label == "2024/25 week 53"
    assert rent_week_of(date(2025, 4, 7)).label == "2025/26 week 1"


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 4, 1), "2025/26 week 52"),  # a Wednesday before the first Monday of April
        (date(2026, 4, 5), "2025/26 week 52"),  # the Sunday before
        (date(2026, 3, 31), "2025/26 week 52"),
        (date(2026, 1, 1), "2025/26 week 39"),  # January belongs to the rent year begun last April
        (date(2025, 12, 31), "2025/26 week 39"),
        (date(2026, 4, 6), "2026/27 week 1"),
        (date(2026, 4, 12), "2026/27 week 1"),  # the Sunday of week 1
        (date(2026, 4, 13), "2026/27 week 2"),
        (date(2031, 4, 6), "2030/31 week 53"),
        (date(2000, 2, 29), "1999/00 week 48"),  # the two-digit end year wraps round the century
    ],
)
def test_days_across_the_year_boundary_fall_in_the_right_rent_year(day: date, label: str) -> None:
    assert rent_week_of(day).label == label


def test_week_numbers_run_1_to_52_or_53_without_gaps() -> None:
    for year in (2023, 2024, 2026):
        weeks = sorted({rent_week_of(rent_year_start(year) + timedelta(days=n)) for n in range(400)})
        in_year = [week for week in weeks if week.financial_year == year]
        assert [week.period_no for week in in_year] == list(range(1, weeks_in_rent_year(year) + 1))
        assert in_year[0].starts == rent_year_start(year)
        assert in_year[-1].ends == rent_year_start(year + 1) - timedelta(days=1)


def test_every_day_of_several_rent_years_falls_in_exactly_one_week_of_seven_days() -> None:
    start, end = date(2018, 1, 1), date(2032, 12, 31)
    days_per_week: dict[RentWeek, list[date]] = {}
    day = start
    while day <= end:
        days_per_week.setdefault(rent_week_of(day), []).append(day)
        day += timedelta(days=1)

    full_weeks = [days for week, days in days_per_week.items() if week.starts >= start and week.ends <= end]
    assert all(len(days) == 7 for days in full_weeks)
    for week, days in days_per_week.items():
        assert all(day in week for day in days)
        assert week.starts.weekday() == 0
        assert (week.ends - week.starts).days == 6


@given(st.dates(min_value=FIRST_DAY, max_value=LAST_DAY))
def test_any_day_falls_in_the_week_that_starts_on_its_monday(day: date) -> None:
    week = rent_week_of(day)

    assert week.starts <= day <= week.ends
    assert week.starts == day - timedelta(days=day.weekday())
    assert 1 <= week.period_no <= weeks_in_rent_year(week.financial_year)
    assert rent_year_start(week.financial_year) <= day < rent_year_start(week.financial_year + 1)
    assert rent_week_starting(week.starts) == week


@given(st.dates(min_value=FIRST_DAY + timedelta(days=7), max_value=LAST_DAY))
def test_the_week_before_is_the_previous_week_number_or_the_last_week_of_the_year_before(day: date) -> None:
    week, before = rent_week_of(day), rent_week_of(day - timedelta(days=7))

    assert before < week
    if week.period_no > 1:
        assert (before.financial_year, before.period_no) == (week.financial_year, week.period_no - 1)
    else:
        assert (before.financial_year, before.period_no) == (
            week.financial_year - 1,
            weeks_in_rent_year(week.financial_year - 1),
        )


@given(st.integers(min_value=1, max_value=9998))
def test_a_rent_year_is_whole_weeks_starting_on_a_monday_in_the_first_week_of_april(year: int) -> None:
    start = rent_year_start(year)

    assert start.weekday() == 0
    assert (start.month, start.year) == (4, year) and start.day <= 7
    assert weeks_in_rent_year(year) in (52, 53)


def test_weeks_order_by_the_calendar() -> None:
    weeks = [rent_week_of(date(2026, 4, 6)), rent_week_of(date(2025, 12, 1)), rent_week_of(date(2026, 3, 30))]

    assert sorted(weeks) == [weeks[1], weeks[2], weeks[0]]


def test_a_week_is_found_by_its_monday() -> None:
    assert rent_week_starting(date(2024, 4, 1)) == RentWeek(2024, 1, date(2024, 4, 1))
    assert rent_week_starting(date(2025, 3, 31)).label == "2024/25 week 53"


@pytest.mark.parametrize("day", [date(2026, 4, 7), date(2026, 4, 5), date(2026, 4, 11)])
def test_a_week_asked_for_by_a_day_other_than_monday_is_refused_naming_the_field(day: date) -> None:
    with pytest.raises(ValidationProblem) as refused:
        rent_week_starting(day)

    assert (refused.value.field, refused.value.rule, refused.value.value) == ("weekStarting", "must be a Monday", day)
    assert str(refused.value) == "weekStarting must be a Monday"


def test_a_monday_outside_the_counted_years_is_refused_not_crashed_on() -> None:
    with pytest.raises(ValidationProblem) as refused:
        rent_week_starting(date(9999, 12, 27))

    assert refused.value.field == "weekStarting"


@pytest.mark.parametrize("day", [date.min, FIRST_DAY - timedelta(days=1), LAST_DAY + timedelta(days=1), date.max])
def test_days_without_a_rent_year_on_the_calendar_are_a_value_error(day: date) -> None:
    with pytest.raises(ValueError, match="has no rent week"):
        rent_week_of(day)


def test_the_first_and_last_days_with_a_rent_week() -> None:
    assert rent_week_of(FIRST_DAY) == RentWeek(1, 1, FIRST_DAY)
    assert rent_week_of(LAST_DAY).ends == LAST_DAY


@pytest.mark.parametrize(
    ("year", "period", "starts"),
    [(2026, 0, date(2026, 3, 30)), (2026, 53, date(2027, 4, 5)), (2026, 2, date(2026, 4, 6))],
)
def test_a_week_that_disagrees_with_the_calendar_cannot_be_made(year: int, period: int, starts: date) -> None:
    with pytest.raises(ValueError):
        RentWeek(year, period, starts)


def test_the_last_52_rent_weeks_run_monday_to_monday_back_across_the_rent_year() -> None:
    weeks = rent_weeks_up_to(date(2026, 4, 8), 52)  # a Wednesday in week 1 of 2026/27

    assert len(weeks) == 52
    assert weeks[-1].label == "2026/27 week 1" and weeks[-1].starts == date(2026, 4, 6)
    assert weeks[-2].label == "2025/26 week 52"
    assert weeks[0].starts == date(2026, 4, 6) - timedelta(weeks=51)
    assert all(later.starts - earlier.starts == timedelta(days=7) for earlier, later in itertools.pairwise(weeks))


def test_the_last_weeks_stop_where_the_calendar_of_rent_weeks_starts() -> None:
    assert [week.starts for week in rent_weeks_up_to(FIRST_DAY + timedelta(days=8), 52)] == [
        FIRST_DAY,
        FIRST_DAY + timedelta(days=7),
    ]
