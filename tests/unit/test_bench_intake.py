"""The intake's benchmark rows (issue 15 item 2): each figure against its same-run ceiling and the issue's target."""

from __future__ import annotations

from bench.__main__ import Outcome, intake_rows, sanity
from bench.intake import Accepting, EndToEnd, IntakeRun
from bench.listener import CeilingResult
from bench.topology import EMBEDDED, production


def run(accepted_seconds: float, end_to_end_seconds: float, statuses: dict[str, int] | None = None) -> IntakeRun:
    through = EndToEnd(events=200_000, batch=1_000, sinks=["spreadsheet"], seconds=end_to_end_seconds)
    through.statuses = statuses or {"202": 200}
    through.broker = CeilingResult(messages=200_000, publish_seconds=10.0, consume_seconds=20.0)
    accepting = Accepting(1_000, 100_000, accepted_seconds, 4.0, {"202": 100})
    return IntakeRun([accepting], through)


def cells(outcome: Outcome) -> list[tuple[str, ...]]:
    return [row.cells() for row in intake_rows(outcome)]


def test_the_embedded_rows_hold_the_issue_targets_against_the_ceilings() -> None:
    accepted, through = cells(Outcome(EMBEDDED, intake=run(8.0, 80.0)))

    assert accepted[2:] == ("12,500 /s", "25,000 /s", "0.50", ">= 10,000 /s", "yes")
    # The broker's slower side (consume+ack, 10,000/s) is the end-to-end ceiling.
    assert through[2:] == ("2,500 /s", "10,000 /s", "0.25", ">= 2,000 /s", "yes")


def test_a_missed_target_is_marked_and_production_accepting_has_none() -> None:
    accepted, through = cells(Outcome(production(), intake=run(20.0, 200.0)))

    assert accepted[2] == "5,000 /s" and accepted[5:] == ("-", "-")
    assert through[2] == "1,000 /s" and through[6] == "**MISSED**"


def test_a_refused_batch_is_a_problem_not_a_figure() -> None:
    outcome = Outcome(EMBEDDED, intake=run(8.0, 80.0, {"202": 199, "413": 1}))

    assert any("intake end to end" in problem and "413" in problem for problem in sanity(outcome))
