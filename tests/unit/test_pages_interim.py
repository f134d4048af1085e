"""How /interim writes times: a date as GOV.UK writes one, and how long ago in the largest whole unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from accounts.entrypoints.pages.interim import ago, when

NOW = datetime(2026, 12, 2, 14, 5, 30, tzinfo=UTC)


def test_a_time_is_written_in_utc_the_way_gov_uk_writes_dates() -> None:
    assert when(NOW) == "2 December 2026 at 14:05 UTC"
    assert when(NOW.astimezone(timezone(timedelta(hours=1)))) == "2 December 2026 at 14:05 UTC"
    assert when(None) == ""


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (timedelta(0), "less than a minute ago"),
        (timedelta(seconds=59), "less than a minute ago"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (timedelta(hours=2, minutes=30), "2 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=40), "40 days ago"),
        (timedelta(seconds=-5), "less than a minute ago"),  # another server's clock a little ahead
    ],
)
def test_how_long_ago_is_said_in_the_largest_whole_unit(before: timedelta, said: str) -> None:
    assert ago(NOW - before, NOW) == said
    assert ago(None, NOW) == ""
