"""/interim: the interim finance sync as a finance officer watches it.

Each sink's last successful write and the rows it still owes (the figures the metrics report), the last
reconciliation and a button to run one, and the dead letters with their reasons and a button to replay
each. Anyone who may read sees it all; only the write groups get the buttons. The page translates: the
sinks' figures, reconciling and replaying are the services' (`Application.sink_figures`,
`.reconciliations`, `.dead_letters`), the same the commands use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from accounts.entrypoints.http.common import in_thread
from accounts.entrypoints.pages.common import PageProblem, form_of, render, viewer, when
from accounts.service.dead_letters import NoSuchDeadLetter, ReplayOutcome
from accounts.service.operations import SinkFigures
from accounts.service.unit_of_work import DeadLetter, ReconciliationRecord

router = APIRouter(include_in_schema=False)

LETTERS_PER_PAGE = 25
REPLAYS_SHOWN = 10
DIFFERENCES_SHOWN = 50
REASON_SHOWN = 500  # characters of a reason in the table (a malformed body can make a long one)


@router.get("/interim")
def interim_page(
    request: Request, after: str | None = None, reconciled: str | None = None, replayed: str | None = None
) -> Response:
    who = viewer(request)
    application = request.app.state.application
    start = _number(after, "after")
    now = datetime.now(UTC)
    sinks: list[SinkFigures] = application.sink_figures()
    latest: ReconciliationRecord | None = application.reconciliations.latest()
    letters = application.dead_letters.page(after=start, limit=LETTERS_PER_PAGE)
    outcomes: list[ReplayOutcome] = application.dead_letters.outcomes(REPLAYS_SHOWN)
    banner = None
    if reconciled and latest is not None and str(latest.id) == reconciled:
        banner = _reconciled_banner(latest)
    elif replayed:
        outcome = application.dead_letters.outcome(_number(replayed, "replayed"))
        if outcome is not None and outcome.letter.replayed_at is not None:
            banner = _replayed_banner(outcome)
    context: dict[str, Any] = {
        "title": "Interim finance sync",
        "banner": banner,
        "sinks": [_sink(sink, now) for sink in sinks],
        "latest": None if latest is None else _reconciliation(latest, now),
        "letters": [_letter(letter, now) for letter in letters.letters],
        "letters_total": letters.total,
        "next_after": letters.next_after,
        "paged": start is not None,
        "replays": [_replay(outcome, now) for outcome in outcomes],
    }
    return render(request, "interim.html", context, who=who)


@router.post("/interim/reconciliations")
async def run_reconciliation(request: Request) -> Response:
    """Reconcile now, as `accounts interim reconcile` does; the outcome is kept and shown in a banner."""
    who = viewer(request, write=True)
    await form_of(request)
    application = request.app.state.application
    record, _ = await in_thread(application.reconciliations.run, who.principal.actor.label)
    return RedirectResponse(f"/interim?reconciled={record.id}#reconciliation", status_code=303)


@router.post("/interim/dead-letters/{dead_letter_id}/replay")
async def replay_dead_letter(request: Request, dead_letter_id: str) -> Response:
    """Publish one dead letter again, as `accounts events replay --id N` does."""
    viewer(request, write=True)
    await form_of(request)
    number = _number(dead_letter_id, "dead letter")
    application = request.app.state.application
    try:
        await in_thread(application.dead_letters.replay, request.app.state.publisher, [number])
    except NoSuchDeadLetter as error:
        raise PageProblem(
            404, "Dead letter not found", f"There is {error}: it may have been replayed already."
        ) from None
    return RedirectResponse(f"/interim?replayed={number}#replayed", status_code=303)


# What the template shows -------------------------------------------------------------------------


def _number(text: str | None, what: str) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 18:
        raise PageProblem(404, "Page not found", f"{what.capitalize()} must be a whole number, not {text[:40]!r}.")
    return int(text)


def ago(at: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit: just now, 3 minutes ago, 2 hours ago, 5 days ago."""
    if at is None:
        return ""
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "less than a minute ago"


def _sink(sink: SinkFigures, now: datetime) -> dict[str, Any]:
    if sink.last_error:
        state, colour = "Failing", "red"
    elif sink.pending:
        state, colour = "Rows waiting", "yellow"
    else:
        state, colour = "Up to date", "green"
    return {
        "name": sink.name,
        "pending": sink.pending,
        "last_write": when(sink.last_delivered_at),
        "last_write_ago": ago(sink.last_delivered_at, now),
        "last_write_iso": sink.last_delivered_at.isoformat() if sink.last_delivered_at else "",
        "error": sink.last_error,
        "state": state,
        "colour": colour,
    }


def _reconciliation(record: ReconciliationRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "finished": when(record.finished_at),
        "finished_ago": ago(record.finished_at, now),
        "finished_iso": record.finished_at.isoformat(),
        "seconds": max(0.0, (record.finished_at - record.started_at).total_seconds()),
        "run_by": record.run_by,
        "targets": ", ".join(record.targets),
        "expected": record.expected,
        "matched": record.matched,
        "counts": [
            ("Missing", record.missing),
            ("Extra (no tenure account has them)", record.extra),
            ("Different", record.changed),
            ("Duplicated", record.duplicate),
            ("Could not be read", record.unreadable),
        ],
        "difference_count": record.difference_count,
        "differences": record.differences[:DIFFERENCES_SHOWN],
        "differences_more": record.difference_count - min(len(record.differences), DIFFERENCES_SHOWN),
    }


def _letter(letter: DeadLetter, now: datetime) -> dict[str, Any]:
    reason = letter.reason if len(letter.reason) <= REASON_SHOWN else letter.reason[:REASON_SHOWN] + "…"
    return {
        "id": letter.id,
        "event_id": letter.event_id or "Not readable",
        "event_type": letter.event_type or "Not readable",
        "reason": reason,
        "attempts": letter.attempts,
        "created": when(letter.created_at),
        "created_ago": ago(letter.created_at, now),
    }


OUTCOMES = {
    "applied": ("Applied", "green"),
    "dead-lettered again": ("Dead-lettered again", "red"),
    "waiting": ("Waiting for the listener", "yellow"),
    "published": ("Published again", "grey"),
}


def _replay(outcome: ReplayOutcome, now: datetime) -> dict[str, Any]:
    text, colour = OUTCOMES[outcome.state]
    return {
        "id": outcome.letter.id,
        "event_id": outcome.letter.event_id or "Not readable",
        "event_type": outcome.letter.event_type or "Not readable",
        "replayed": when(outcome.letter.replayed_at),
        "replayed_ago": ago(outcome.letter.replayed_at, now),
        "state": text,
        "colour": colour,
        "again": outcome.again.id if outcome.again else None,
    }


def _reconciled_banner(record: ReconciliationRecord) -> dict[str, Any]:
    checked = ", ".join(record.targets)
    if record.difference_count == 0:
        return {
            "type": "success",
            "heading": "Reconciliation finished: the accounts agree with every copy",
            "text": f"{record.matched:,} rows matched in {checked}.",
        }
    return {
        "type": "important",
        "heading": f"Reconciliation finished: {record.difference_count:,} "
        f"difference{'' if record.difference_count == 1 else 's'} found",
        "text": f"{record.matched:,} rows matched in {checked}. The differences are listed under Last reconciliation.",
    }


def _replayed_banner(outcome: ReplayOutcome) -> dict[str, Any]:
    letter = outcome.letter
    heading = f"Dead letter {letter.id} was published again"
    if outcome.state == "applied":
        return {"type": "success", "heading": heading, "text": "The listener has applied it."}
    if outcome.state == "dead-lettered again" and outcome.again is not None:
        return {
            "type": "important",
            "heading": heading,
            "text": f"It could not be applied and was dead-lettered again as letter {outcome.again.id}: "
            f"{outcome.again.reason[:REASON_SHOWN]}",
        }
    return {
        "type": "success",
        "heading": heading,
        "text": "The listener will apply it or dead-letter it again within seconds: see Recently replayed below.",
    }
