"""The balance chart's drawing: where each week's balance goes, the scale's round steps, and the words."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from accounts.entrypoints.pages.chart import BOTTOM, LEFT, RIGHT, TOP, balance_chart, nice_step

MONDAY = date(2025, 4, 28)


def weeks_of(*balances: str) -> list[tuple[date, Decimal]]:
    return [(MONDAY + timedelta(weeks=n), Decimal(balance)) for n, balance in enumerate(balances)]


@pytest.mark.parametrize(
    ("span", "step"),
    [("270", "100"), ("100", "20"), ("7", "2"), ("0.5", "0.1"), ("1234.56", "500"), ("10", "2"), ("50", "10")],
)
def test_the_scale_steps_are_1_2_or_5_times_a_power_of_ten(span: str, step: str) -> None:
    assert nice_step(Decimal(span)) == Decimal(step)


def test_an_account_going_into_arrears_is_drawn_from_the_top_left_downwards_with_zero_on_the_scale() -> None:
    chart = balance_chart(weeks_of("0.00", "-100.00", "-170.00", "-270.00"))

    xs = [point.x for point in chart.points]
    assert xs[0] == LEFT and xs[-1] == RIGHT and xs == sorted(xs)
    ys = [point.y for point in chart.points]
    assert ys[0] == TOP == chart.zero_y  # zero is the top of the scale: the balance only went down
    assert ys == sorted(ys) and ys[-1] < BOTTOM
    assert [tick.label for tick in chart.y_ticks] == ["-£300", "-£200", "-£100", "£0"]
    assert chart.y_ticks[0].at == BOTTOM and chart.y_ticks[-1].at == TOP
    assert chart.polyline.split(" ")[0] == f"{LEFT}.0,{TOP}.0"
    assert all(isinstance(value, Decimal) for point in chart.points for value in (point.x, point.y, point.balance))


def test_each_balance_is_placed_in_proportion_on_the_scale() -> None:
    chart = balance_chart(weeks_of("-50.00", "150.00", "25.00"))  # a span of 200: steps of 50

    assert [tick.label for tick in chart.y_ticks] == ["-£50", "£0", "£50", "£100", "£150"]
    height = Decimal(BOTTOM - TOP)
    for point in chart.points:
        assert point.y == (TOP + (150 - point.balance) / 200 * height).quantize(Decimal("0.1"))
    assert chart.zero_y == (TOP + height * 3 / 4).quantize(Decimal("0.1"))


def test_a_year_of_weeks_is_labelled_a_quarter_apart_ending_with_the_current_week() -> None:
    chart = balance_chart(weeks_of(*["-10.00"] * 52))

    assert [tick.label for tick in chart.x_ticks] == ["21 Jul 2025", "20 Oct 2025", "19 Jan 2026", "20 Apr 2026"]
    assert chart.x_ticks[-1].at == RIGHT


def test_a_balance_that_never_moved_still_has_a_scale() -> None:
    chart = balance_chart(weeks_of("0.00", "0.00"))

    assert [tick.label for tick in chart.y_ticks] == ["£0", "£2", "£4", "£6", "£8", "£10"]
    assert {point.y for point in chart.points} == {BOTTOM}


def test_pence_are_shown_when_the_steps_are_smaller_than_a_pound() -> None:
    chart = balance_chart(weeks_of("0.00", "0.30"))

    assert chart.y_ticks[1].label == "£0.10"


def test_one_week_is_drawn_in_the_middle() -> None:
    chart = balance_chart(weeks_of("5.00"))

    assert chart.points[0].x == Decimal(LEFT + RIGHT) / 2


def test_the_chart_in_words_says_where_the_balance_started_ended_and_its_lowest_and_highest() -> None:
    chart = balance_chart(weeks_of("0.00", "-100.00", "-1270.00", "-270.00"))

    assert chart.summary == (
        "4 weeks. The balance was £0.00 at the end of the week starting 28 April 2025 and -£270.00 at the end "
        "of the week starting 19 May 2025. Lowest -£1,270.00 (week starting 12 May 2025), highest £0.00 "
        "(week starting 28 April 2025)."
    )


def test_no_weeks_is_no_chart() -> None:
    with pytest.raises(ValueError, match="at least one week"):
        balance_chart([])
