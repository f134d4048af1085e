"""The charge runs' routes: start a week's run (carried on in a thread of this process) and read its progress."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from accounts.domain.charges import ChargeRun, run_to_wire
from accounts.entrypoints.http.common import (
    in_thread,
    json_request_body,
    json_response,
    model_from_json,
    services,
    writer,
)
from accounts.entrypoints.http.problems import problem_responses
from accounts.entrypoints.http.reads import authorise_read, parse_uuid
from accounts.entrypoints.http.schemas import MoneyOut, RentDay, Wire
from accounts.service.charge_runs import ChargeRunService

log = logging.getLogger(__name__)
RunId = Annotated[str, Path(description="The charge run's id", json_schema_extra={"format": "uuid"})]


class ChargeRunIn(Wire):
    """POST /api/v1/charge-runs."""

    weekStarting: RentDay = Field(description="The Monday the rent week starts on, such as 2026-04-06")


class RefusalOut(BaseModel):
    accountId: UUID
    chargeType: str
    reason: str


class ChargeRunOut(BaseModel):
    id: UUID
    weekStarting: date = Field(description="The Monday the rent week starts on")
    financialYear: int
    periodNo: int
    rentWeek: str = Field(examples=["2026/27 week 1"])
    status: str = Field(description="Running until every account is done, then Finished")
    startedBy: str
    startedAt: datetime
    updatedAt: datetime
    finishedAt: datetime | None
    accountsTotal: int = Field(description="Accounts stored when the run started")
    accountsDone: int
    accountsCharged: int
    accountsNotCharged: int = Field(description="Not Active, not started or ended before the Monday")
    chargesPosted: int
    amountPosted: MoneyOut = Field(description="The charges posted by this run, added up")
    chargesSkipped: int = Field(description="Posted before by a run of the same week: never posted twice")
    chargesRefused: int
    refusals: list[RefusalOut] = Field(description="The first 1,000 refused, with the reason")


class BackgroundRuns:
    """The runs this process carries on, one thread each; a run already going here is not started twice.

    A thread that stops (the process ends, the database fails) leaves the run unfinished: starting
    the week again carries it on from its last committed batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[UUID, threading.Thread] = {}

    def carry_on(self, service: ChargeRunService, run: ChargeRun) -> None:
        if run.finished:
            return
        with self._lock:
            going = self._threads.get(run.id)
            if going is not None and going.is_alive():
                return
            thread = threading.Thread(
                target=self._run, args=(service, run.id), name=f"charge-run-{run.id}", daemon=True
            )
            self._threads[run.id] = thread
            thread.start()

    def _run(self, service: ChargeRunService, run_id: UUID) -> None:
        try:
            service.run(run_id)
        except Exception:
            log.exception("charge run %s stopped; starting its week again carries it on", run_id)
        finally:
            with self._lock:
                if self._threads.get(run_id) is threading.current_thread():
                    del self._threads[run_id]

    def join(self, timeout: float | None = None) -> None:
        """Wait for the runs going now (tests, shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)


def background_runs(request: Request) -> BackgroundRuns:
    state = request.app.state
    runs: BackgroundRuns | None = getattr(state, "charge_runs_background", None)
    if runs is None:
        runs = state.charge_runs_background = BackgroundRuns()
    return runs


def add_charge_run_routes(router: APIRouter) -> None:
    @router.post(
        "/charge-runs",
        status_code=202,
        response_model=ChargeRunOut,
        responses=problem_responses(400, 401, 403, 413, 415, 503),
        openapi_extra=json_request_body(ChargeRunIn),
        summary="Charge a rent week to every account active on its Monday; runs in the background",
    )
    async def start_charge_run(request: Request) -> Response:
        who = writer(request)
        asked = await model_from_json(request, ChargeRunIn, "charge run")
        service: ChargeRunService = services(request).charge_runs
        run = await in_thread(service.start, asked.weekStarting, who)
        background_runs(request).carry_on(service, run)
        return json_response(run_to_wire(run), 202, {"Location": f"/api/v1/charge-runs/{run.id}"})

    @router.get(
        "/charge-runs/{id}",
        response_model=ChargeRunOut,
        responses=problem_responses(400, 401, 403, 404, 503),
        summary="A charge run's progress and totals",
    )
    def get_charge_run(request: Request, id: RunId) -> Response:
        authorise_read(request)
        run_id = parse_uuid(id, "id")
        return json_response(run_to_wire(services(request).charge_runs.get(run_id)))
