"""The rent week: which week of which rent year a day falls in.

Rent is due on Mondays, so weeks start on Monday. The rent year starts on the first
Monday of April and runs to the day before the next year's first Monday of April: most
rent years have 52 weeks, some 53 (2019/20, 2024/25, 2030/31). The council's charges
code divides by a hard-coded 52; here the number of weeks is worked out from the
calendar, so a 53-week year has its 53rd week.

`periodNo` is the week number in its rent year (1 = the week of the first Monday of
April) and `financialYear` the calendar year the rent year starts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from accounts.domain.errors import ValidationProblem

MONDAY = 0  # date.weekday()
WEEK = timedelta(days=7)


# The calendar never changes: each answer is worked out once (every posting asks for its week, some
# three times, and a charge run posts 100,000 of them for one week).
@lru_cache(maxsize=256)
def rent_year_start(financial_year: int) -> date:
    """The first Monday of April of `financial_year`: the start of its rent year (week 1)."""
    first_of_april = date(financial_year, 4, 1)
    return first_of_april + timedelta(days=(MONDAY - first_of_april.weekday()) % 7)


@lru_cache(maxsize=256)
def weeks_in_rent_year(financial_year: int) -> int:
    """52, or 53 when the next first Monday of April is 371 days away."""
    return (rent_year_start(financial_year + 1) - rent_year_start(financial_year)).days // 7


# The days that have a rent week: the calendar `date` covers years 1 to 9999, and a rent
# year needs the first Monday of April of its own year and of the next.
FIRST_DAY = rent_year_start(1)
LAST_DAY = rent_year_start(9999) - timedelta(days=1)


@dataclass(frozen=True, order=True)
class RentWeek:
    """One rent week; ordered by year, then week number (the calendar order)."""

    financial_year: int
    period_no: int
    starts: date

    def __post_init__(self) -> None:
        # Built only by the functions below or from stored rows they wrote: a week that
        # disagrees with the calendar is a programming error, not a client's mistake.
        if not 1 <= self.period_no <= weeks_in_rent_year(self.financial_year):
            raise ValueError(f"{self.label} does not exist")
        if self.starts != rent_year_start(self.financial_year) + (self.period_no - 1) * WEEK:
            raise ValueError(f"{self.label} does not start on {self.starts.isoformat()}")

    @property
    def ends(self) -> date:
        """The Sunday the week ends on."""
        return self.starts + timedelta(days=6)

    @property
    def label(self) -> str:
        """How officers write it: "2026/27 week 1"."""
        return f"{self.financial_year}/{(self.financial_year + 1) % 100:02d} week {self.period_no}"

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.starts <= day <= self.ends


@lru_cache(maxsize=4096)
def rent_week_of(day: date) -> RentWeek:
    """The rent week `day` falls in.

    Days in late March or early April before the first Monday of April belong to the
    last week of the previous rent year. Raises ValueError outside FIRST_DAY..LAST_DAY.
    """
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day.isoformat()} has no rent week (rent weeks run from {FIRST_DAY} to {LAST_DAY})")
    financial_year = day.year
    start = rent_year_start(financial_year)
    if day < start:
        financial_year -= 1
        start = rent_year_start(financial_year)
    weeks = (day - start).days // 7
    return RentWeek(financial_year, weeks + 1, start + weeks * WEEK)


def rent_weeks_up_to(day: date, count: int) -> list[RentWeek]:
    """The `count` rent weeks ending with the week `day` falls in, oldest first (across rent years:
    weeks are Mondays one after another); fewer where the calendar of rent weeks starts."""
    this_week = rent_week_of(day)
    weeks = []
    for back in range(min(count, (this_week.starts - FIRST_DAY).days // 7 + 1) - 1, -1, -1):
        weeks.append(rent_week_of(this_week.starts - back * WEEK))
    return weeks


def rent_week_starting(monday: date) -> RentWeek:
    """The rent week that starts on `monday` (a client's `weekStarting`)."""
    if monday.weekday() != MONDAY:
        raise ValidationProblem("weekStarting", "must be a Monday", monday)
    try:
        return rent_week_of(monday)
    except ValueError:
        raise ValidationProblem("weekStarting", "is outside the years rent weeks are counted in", monday) from None
