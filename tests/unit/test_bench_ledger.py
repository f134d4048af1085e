"""The ledger's benchmark rows: the issue's targets, the ceiling's ratio, and what says a run did not work."""

from __future__ import annotations

import re

from bench.__main__ import Outcome, ledger_rows, sanity
from bench.cpu import CpuUse
from bench.ledger import LedgerRun, VerifyRun
from bench.ledger_verify import DIFFERING
from bench.loadgen import Load, LoadResult, wrk_script
from bench.table import check_markdown, markdown
from bench.topology import EMBEDDED


def load(rps: float, p50: float = 5.0, p99: float = 20.0, errors: int = 0) -> LoadResult:
    return LoadResult("wrk", int(rps * 10), 10.0, errors, p50, p50 * 2, p99, p99 * 2)


def an_outcome(post: float = 1500, p99: float = 30, statement_p50: float = 4, verify_s: float = 3) -> Outcome:
    outcome = Outcome(EMBEDDED)
    outcome.ledger = LedgerRun(
        size=100_000,
        spread=4_700,
        post=load(post, p99=p99),
        hot=load(400, p99=90),
        ceiling=load(6_000),
        statement=load(150, p50=statement_p50),
        statement_lines=1_001,
        posted=int(post * 10) + 4_000 + 50,
        peak_rss=150 * 1024 * 1024,
    )
    outcome.verify = VerifyRun(100_000, 1_000_000, verify_s, 1, DIFFERING, 0.0, CpuUse())
    return outcome


def test_the_ledger_rows_meet_the_issue_targets_and_form_a_table() -> None:
    rows = ledger_rows(an_outcome())

    assert [row.met for row in rows] == [True, True, None, True, True]
    assert rows[0].ceiling == "6,000 /s" and rows[0].ratio == "0.25" and rows[0].target == ">= 1,000 /s"
    assert check_markdown(markdown(rows)) == len(rows)


def test_a_missed_target_is_marked_never_lowered() -> None:
    rows = ledger_rows(an_outcome(post=999, p99=50, statement_p50=10, verify_s=10))

    assert [row.cells()[-1] for row in rows] == ["**MISSED**", "**MISSED**", "-", "**MISSED**", "**MISSED**"]
    assert [row.target for row in rows] == [">= 1,000 /s", "< 50 ms", "-", "< 10 ms", "< 10 s"]


def test_a_run_that_did_not_work_is_a_problem() -> None:
    assert sanity(an_outcome()) == []
    repeated = an_outcome()
    assert repeated.ledger is not None
    repeated.ledger.posted = 10  # fewer transactions than 201s: some ids were sent twice
    assert any("not new" in problem for problem in sanity(repeated))
    failing = an_outcome()
    assert failing.ledger is not None
    failing.ledger.post = load(1500, errors=3)
    assert any("ledger posting: 3 failed" in problem for problem in sanity(failing))
    unchecked = an_outcome()
    assert unchecked.verify is not None
    unchecked.verify.differing = 0  # the seed's planted differences were not found
    assert any("ledger verify" in problem for problem in sanity(unchecked))


def test_the_posting_script_sends_a_new_id_each_request_and_each_run_its_own_seed() -> None:
    posting = Load("posting", 8000, "token", 20, 1.0, paths=["/api/v1/accounts/a/transactions"])

    first, second = wrk_script(posting, 1), wrk_script(posting, 2)

    assert "math.randomseed(1)" in first and "math.randomseed(2)" in second
    assert "uuid4()" in first and 'wrk.format("POST"' in first and '"/api/v1/accounts/a/transactions"' in first
    assert re.search(r"%[sdx]", first.split("local function uuid4")[0]) is None, "every placeholder filled in"
    get = wrk_script(Load("get", 8000, "token", 50, 1.0, paths=["/x"]), 3)
    assert 'wrk.format("GET"' in get and "POST" not in get and "BENCH-RESULT" in get
