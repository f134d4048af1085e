"""The balance chart drawn on the server: weekly balances in, the SVG's coordinates and labels out.

Pure (no I/O, no templates): the account page's template draws what `balance_chart` works out, as SVG
elements with presentation attributes and classes (the Content-Security-Policy blocks inline styles), so
the chart is there without JavaScript. Amounts stay Decimal; coordinates are Decimal pixels to 0.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from accounts.entrypoints.pages.common import long_date, money, short_date

WIDTH = 720
HEIGHT = 300
LEFT = 88  # room for the balance labels ("-£1,200")
RIGHT = WIDTH - 44  # room for half the last week's label
TOP = 16
BOTTOM = HEIGHT - 40  # room for the week labels
X_LABEL_EVERY = 13  # a label a quarter (13 weeks)
TARGET_TICKS = 5
PIXEL = Decimal("0.1")


@dataclass(frozen=True)
class Tick:
    at: Decimal  # y of a balance line, or x of a week
    label: str


@dataclass(frozen=True)
class Point:
    x: Decimal
    y: Decimal
    week_starts: date
    balance: Decimal


@dataclass(frozen=True)
class Chart:
    """What the template draws: the frame, the line through the points, the zero line and the labels."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: list[Point]
    zero_y: Decimal
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    summary: str  # the chart in words: the SVG's <desc>

    @property
    def polyline(self) -> str:
        """The line's `points` attribute."""
        return " ".join(f"{point.x},{point.y}" for point in self.points)


def nice_step(span: Decimal, ticks: int = TARGET_TICKS) -> Decimal:
    """A round step (1, 2 or 5 times a power of ten) that cuts `span` into about `ticks` parts."""
    raw = span / ticks
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for multiple in (1, 2, 5):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def axis_money(value: Decimal, step: Decimal) -> str:
    """A balance line's label: whole pounds when the step is whole (shorter), else pence."""
    if step == step.to_integral_value():
        sign = "-" if value < 0 else ""
        return f"{sign}£{abs(value):,.0f}"
    return money(value)


def balance_chart(weeks: Sequence[tuple[date, Decimal]]) -> Chart:
    """The chart of (week start, balance at its end) pairs, oldest first; zero is always on the scale."""
    if not weeks:
        raise ValueError("a chart needs at least one week")
    balances = [balance for _, balance in weeks]
    lowest, highest = min([*balances, Decimal(0)]), max([*balances, Decimal(0)])
    if lowest == highest:
        highest = lowest + 10
    step = nice_step(highest - lowest)
    low = (lowest / step).to_integral_value(ROUND_FLOOR) * step
    high = (highest / step).to_integral_value(ROUND_CEILING) * step

    def y(value: Decimal) -> Decimal:
        return (TOP + (high - value) / (high - low) * (BOTTOM - TOP)).quantize(PIXEL)

    def x(index: int) -> Decimal:
        if len(weeks) == 1:
            return (Decimal(LEFT + RIGHT) / 2).quantize(PIXEL)
        return (LEFT + Decimal(index) * (RIGHT - LEFT) / (len(weeks) - 1)).quantize(PIXEL)

    points = [Point(x(i), y(balance), starts, balance) for i, (starts, balance) in enumerate(weeks)]
    count = int((high - low) / step)
    y_ticks = [Tick(y(low + n * step), axis_money(low + n * step, step)) for n in range(count + 1)]
    last = len(weeks) - 1
    x_ticks = [Tick(points[i].x, short_date(points[i].week_starts)) for i in range(last, -1, -X_LABEL_EVERY)][::-1]
    return Chart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, points, y(Decimal(0)), y_ticks, x_ticks, _summary(points))


def _summary(points: list[Point]) -> str:
    first, final = points[0], points[-1]
    lowest = min(points, key=lambda point: point.balance)
    highest = max(points, key=lambda point: point.balance)
    return (
        f"{len(points)} weeks. The balance was {money(first.balance)} at the end of the week starting "
        f"{long_date(first.week_starts)} and {money(final.balance)} at the end of the week starting "
        f"{long_date(final.week_starts)}. Lowest {money(lowest.balance)} (week starting "
        f"{long_date(lowest.week_starts)}), highest {money(highest.balance)} (week starting "
        f"{long_date(highest.week_starts)})."
    )
