"""Security item 6: the API fuzzed from its own OpenAPI document (schemathesis, in process).

For every operation, requests generated from the document, valid and deliberately
invalid, are sent with a writer's token; about half the cases aimed at one account
are pointed at an account that exists, so bodies reach validation rather than a 404.
No answer may be a 5xx, every answer must match the document (status declared,
content type, headers, body schema), and every error must be an RFC 9457 problem
document. On SQLite and on PostgreSQL.

Two schemathesis checks are left out, for reasons of HTTP rather than of safety:
positive_data_acceptance (a schema cannot say "one Master per tenure" or "the parent
must exist", so some schema-valid bodies are rightly refused with 400/409) and
negative_data_rejection (unknown query parameters are ignored, as clients expect).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.checks
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.integration.test_api_support import tenure_request
from tests.security.conftest import PROBLEM_JSON

EXAMPLES = 30  # per operation and generation mode
EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    url = (
        f"sqlite:///{tmp_path / 'fuzz.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_database")
    )
    app = bootstrap(make_settings(url, tmp_path), run_migrations=True)
    try:
        yield app
    finally:
        app.close()


def assert_problem_document(response: Any, where: str) -> None:
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", "")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith(PROBLEM_JSON), f"{where}: {response.status_code} as {content_type!r}"
    problem = response.json()
    assert problem["status"] == response.status_code, where
    assert isinstance(problem["title"], str) and isinstance(problem["detail"], str), where
    assert "Traceback" not in response.text, where


def fuzz_operation(operation: Any, mode: schemathesis.GenerationMode, headers: dict[str, str], account_id: str) -> int:
    """Run the generated cases of one operation in one mode; the number of cases sent."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case, aim: bool) -> None:
        nonlocal sent
        if aim and mode is schemathesis.GenerationMode.POSITIVE and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = account_id  # reach the body's validation, not a 404
        response = case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)
        assert_problem_document(response, f"{case.method} {case.formatted_path}")
        sent += 1

    with contextlib.suppress(Unsatisfiable):  # an operation with no parameters has no invalid examples
        fuzz()
    return sent


def test_generated_requests_get_no_5xx_and_only_documented_answers(fuzzed: Application) -> None:
    app = fuzzed
    asgi = create_app(app)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", asgi)
    token = mint_token(app.settings, name="Fuzz", email="fuzz@hackney.gov.uk", groups=["housing-finance-write"])
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(asgi) as client:
        account = client.post("/api/v1/accounts", json=tenure_request(), headers=headers).json()
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            sent[f"{operation.label} {mode.value}"] = fuzz_operation(operation, mode, headers, account["id"])
    assert sum(1 for key, count in sent.items() if count and key.endswith("positive")) >= 9, sent
    assert sum(1 for key, count in sent.items() if count and key.endswith("negative")) >= 5, sent
