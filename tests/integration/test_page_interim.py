"""/interim's server side, in process on SQLite: who may see it and who may act, forms only from our own
pages, unknown letters, and data text (a dead letter's reason) always escaped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accounts.adapters.database import tables as t
from accounts.bootstrap import Application
from accounts.entrypoints.http.app import create_app
from accounts.entrypoints.http.auth import mint_token

OFFICER = {"name": "Fran Officer", "email": "fran.officer@hackney.gov.uk", "groups": ["housing-finance-write"]}
CASEWORKER = {"name": "Casey Worker", "email": "casey.worker@hackney.gov.uk", "groups": ["housing-finance-read"]}


@pytest.fixture
def pages(sqlite_application: Application) -> Iterator[tuple[Application, TestClient]]:
    with TestClient(create_app(sqlite_application), follow_redirects=False) as client:
        yield sqlite_application, client


def sign_in(application: Application, client: TestClient, who: dict[str, Any]) -> str:
    """The auth cookie set as the council's sign-in sets it; the form token the page hands out, returned."""
    client.cookies.set("hackneyToken", mint_token(application.settings, **who))
    page = client.get("/interim")
    assert page.status_code == 200, page.text
    return str(client.cookies["accounts_csrf"])


def dead_letter(application: Application, reason: str, event_type: str = "TenureCreatedEvent") -> int:
    with application.uow() as uow:
        uow.dead_letters.add("tenure-events", b'{"id": "x"}', reason, 1, datetime.now(UTC), "x-event", event_type)
        uow.commit()
    with application.uow(read_only=True) as uow:
        return uow.dead_letters.list()[-1].id


def test_without_a_cookie_the_page_and_its_forms_ask_to_sign_in(pages: tuple[Application, TestClient]) -> None:
    _, client = pages
    page = client.get("/interim")
    assert page.status_code == 401 and "Sign in" in page.text and "hackneyToken" in page.text
    assert client.post("/interim/reconciliations", data={"csrfToken": "x"}).status_code == 401
    assert client.post("/interim/dead-letters/1/replay", data={"csrfToken": "x"}).status_code == 401


def test_a_caseworker_sees_the_page_without_buttons_and_may_not_act(pages: tuple[Application, TestClient]) -> None:
    application, client = pages
    number = dead_letter(application, "AccountConflict: paymentReference 1000000017 is already used")
    token = sign_in(application, client, CASEWORKER)
    page = client.get("/interim")
    assert "AccountConflict: paymentReference 1000000017 is already used" in page.text
    assert "Run a reconciliation" not in page.text and "/replay" not in page.text

    refused = client.post("/interim/reconciliations", data={"csrfToken": token})
    assert refused.status_code == 403 and "You cannot do this" in refused.text
    assert "housing-finance-write" in refused.text
    refused = client.post(f"/interim/dead-letters/{number}/replay", data={"csrfToken": token})
    assert refused.status_code == 403
    assert application.reconciliations.latest() is None
    assert [letter.id for letter in application.dead_letters.list()] == [number]  # not replayed


def test_an_officer_acts_only_through_a_form_of_this_service(pages: tuple[Application, TestClient]) -> None:
    application, client = pages
    number = dead_letter(application, "MalformedEvent: not JSON")
    token = sign_in(application, client, OFFICER)
    assert "Run a reconciliation" in client.get("/interim").text

    for data, headers in (
        ({}, {}),  # no form token
        ({"csrfToken": "guessed"}, {}),
        ({"csrfToken": token}, {"Origin": "https://evil.example"}),
    ):
        refused = client.post("/interim/reconciliations", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        refused = client.post(f"/interim/dead-letters/{number}/replay", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
    assert application.reconciliations.latest() is None
    assert len(application.dead_letters.list()) == 1

    done = client.post("/interim/reconciliations", data={"csrfToken": token})
    assert done.status_code == 303
    latest = application.reconciliations.latest()
    assert latest is not None and latest.run_by == OFFICER["email"]
    assert done.headers["location"] == f"/interim?reconciled={latest.id}#reconciliation"
    shown = client.get(done.headers["location"])
    assert "Reconciliation finished: the accounts agree with every copy" in shown.text

    replayed = client.post(f"/interim/dead-letters/{number}/replay", data={"csrfToken": token})
    assert replayed.status_code == 303 and replayed.headers["location"] == f"/interim?replayed={number}#replayed"
    assert application.dead_letters.list() == []
    with application.engine.connect() as connection:  # published again, on the embedded broker
        assert connection.execute(sa.select(sa.func.count()).select_from(t.embedded_messages)).scalar_one() == 1
    assert f"Dead letter {number} was published again" in client.get(replayed.headers["location"]).text

    again = client.post(f"/interim/dead-letters/{number}/replay", data={"csrfToken": token})
    assert again.status_code == 404 and "Dead letter not found" in again.text
    assert client.post("/interim/dead-letters/999/replay", data={"csrfToken": token}).status_code == 404
    assert client.post("/interim/dead-letters/abc/replay", data={"csrfToken": token}).status_code == 404
    assert client.get("/interim?after=-1").status_code == 404


def test_a_reason_from_a_message_is_shown_as_text_never_as_markup(pages: tuple[Application, TestClient]) -> None:
    application, client = pages
    dead_letter(application, "MalformedEvent: <script>alert('reason')</script>", event_type="<b>Tenure</b>")
    sign_in(application, client, CASEWORKER)
    page = client.get("/interim")
    assert "<script>alert(" not in page.text and "<b>Tenure" not in page.text
    assert "&lt;script&gt;alert(" in page.text and "&lt;b&gt;Tenure&lt;/b&gt;" in page.text


def test_dead_letters_come_a_page_at_a_time_with_their_count(pages: tuple[Application, TestClient]) -> None:
    application, client = pages
    numbers = [dead_letter(application, f"MalformedEvent: number {n}") for n in range(30)]
    sign_in(application, client, CASEWORKER)
    first = client.get("/interim").text
    assert "30 tenure events could not be applied" in first and "25 are shown on this page" in first
    assert f'id="dead-letter-{numbers[24]}"' in first and f'id="dead-letter-{numbers[25]}"' not in first
    assert f'href="/interim?after={numbers[24]}#dead-letters"' in first
    second = client.get(f"/interim?after={numbers[24]}").text
    assert f'id="dead-letter-{numbers[25]}"' in second and f'id="dead-letter-{numbers[24]}"' not in second
    assert "5 are shown on this page" in second and "First page" in second
