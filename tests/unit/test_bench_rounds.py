"""Rounds of one load merge into the percentiles of all their requests, not the worst round's."""

from __future__ import annotations

from bench.http_items import combined
from bench.loadgen import LoadResult, histogram, histogram_percentile


def a_round(latencies_us: list[int]) -> LoadResult:
    ordered = sorted(latencies_us)
    return LoadResult(
        generator="wrk",
        requests=len(ordered),
        seconds=1.0,
        errors=0,
        p50_ms=ordered[len(ordered) // 2] / 1000,
        p90_ms=ordered[int(len(ordered) * 0.9)] / 1000,
        p99_ms=ordered[int(len(ordered) * 0.99)] / 1000,
        max_ms=ordered[-1] / 1000,
        histogram=histogram(ordered),
    )


def test_a_histogram_percentile_is_the_nearest_rank() -> None:
    pairs = histogram([5, 1, 3, 3, 2, 4, 4, 4, 9, 10])
    assert pairs == [[1, 1], [2, 1], [3, 2], [4, 3], [5, 1], [9, 1], [10, 1]]
    assert histogram_percentile(pairs, 0.5) == 4
    assert histogram_percentile(pairs, 0.9) == 9
    assert histogram_percentile(pairs, 0.99) == 10
    assert histogram_percentile([], 0.99) == 0


def test_rounds_merge_into_the_percentiles_of_every_request() -> None:
    quiet = a_round([3000] * 990 + [4000] * 10)
    stalled = a_round([3000] * 950 + [30000] * 50)  # a stall in one round: its own p99 is 30 ms

    merged = combined([quiet, stalled, quiet])

    assert merged.requests == 3000 and merged.seconds == 3.0
    assert stalled.p99_ms == 30.0
    assert merged.p99_ms == 30.0, "50 of 3,000 requests took 30 ms: more than 1%"
    assert combined([quiet, a_round([3000] * 980 + [30000] * 20), quiet]).p99_ms == 4.0, "20 of 3,000: less than 1%"
    assert merged.max_ms == 30.0 and merged.p50_ms == 3.0


def test_without_histograms_the_worst_round_stands() -> None:
    rounds = [a_round([3000] * 100), a_round([3000] * 90 + [9000] * 10)]
    for result in rounds:
        result.histogram = []
    assert combined(rounds).p99_ms == 9.0
