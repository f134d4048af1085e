"""Logs: text or one JSON object a line, each naming its correlation id and the event or account it is
about; never a token, a secret or a tenant's personal field, whatever a caller logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from accounts.runtime import configure_logging, redact, secrets_of
from accounts.service.log_context import about
from accounts.settings import Settings

SECRET = "jwt-secret-for-the-logging-tests-0123456789"
TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmaW5hbmNlIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, jwt_secret=SECRET, **values)  # type: ignore[call-arg]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The service's logging set-up writing to a buffer; the test run's own set-up put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("alembic").level)
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("alembic").setLevel(saved[2])


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def test_json_lines_hold_time_level_logger_message_and_the_correlation_id(logs: io.StringIO) -> None:
    configure_logging(settings(log_format="json", log_level="debug"), logs)
    log = logging.getLogger("accounts.test")
    log.info("no context")
    with about(correlation_id="0b6f1c1e-5d0e-4a43-9b0e-0123456789ab", event_id="e1", account_id="a1"):
        log.warning("event %s handled", "e1")
    log.debug("an account of its own", extra={"account_id": "a2"})
    try:
        raise ValueError("it broke")
    except ValueError:
        log.exception("with its trace")

    entries = [json.loads(line) for line in lines(logs)]
    assert len(entries) == 4, "one line a record, however long"
    for entry in entries:
        assert {"time", "level", "logger", "message", "correlation_id"} <= entry.keys()
        assert entry["logger"] == "accounts.test"
        when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        assert when.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - when) < timedelta(minutes=1)
    plain, handled, own, failed = entries
    assert plain["correlation_id"] is None and "event_id" not in plain and "account_id" not in plain
    assert handled == {
        **{key: handled[key] for key in ("time", "logger")},
        "level": "WARNING",
        "message": "event e1 handled",
        "correlation_id": "0b6f1c1e-5d0e-4a43-9b0e-0123456789ab",
        "event_id": "e1",
        "account_id": "a1",
    }
    assert own["level"] == "DEBUG" and own["account_id"] == "a2"
    assert failed["exc_info"].startswith("Traceback") and "ValueError: it broke" in failed["exc_info"]


def test_text_is_the_default_format(logs: io.StringIO) -> None:
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]
    configure_logging(settings(), logs)
    with about(correlation_id="c-1"):
        logging.getLogger("accounts.test").info("plain %d", 1)
    (line,) = lines(logs)
    assert line.endswith(" INFO accounts.test [c-1] plain 1")


@pytest.mark.parametrize(("given", "kept"), [("JSON", "json"), (" text ", "text")])
def test_the_format_is_read_in_any_case(given: str, kept: str) -> None:
    assert settings(log_format=given).log_format == kept
    assert settings(log_level="warning").log_level == "WARNING"


@pytest.mark.parametrize(("name", "value"), [("log_format", "xml"), ("log_level", "LOUD")])
def test_an_unknown_format_or_level_is_a_configuration_error(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        settings(**{name: value})


def test_alembic_tells_its_story_only_at_debug(logs: io.StringIO) -> None:
    configure_logging(settings(), logs)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
    assert lines(logs) == []
    configure_logging(settings(log_level="DEBUG"), logs)
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
    assert len(lines(logs)) == 1


def test_the_context_of_an_event_ends_with_it() -> None:
    from accounts.service.log_context import correlation_id_var, event_id_var

    with about(event_id="outer", correlation_id="c"):
        with about(event_id="inner"):
            assert (event_id_var.get(), correlation_id_var.get()) == ("inner", "c")
        assert event_id_var.get() == "outer"
    assert (event_id_var.get(), correlation_id_var.get()) == (None, "-")


PERSONAL = {
    "json": '{"fullName": "Jane Okafor", "dateOfBirth": "1961-04-09T00:00:00", "phoneNumber": "07700 900123"}',
    "repr": "{'fullName': 'Jane O\\'Brien', 'date_of_birth': datetime.date(1961, 4, 9)}",
    "interim row": "InterimRow(forename='Jane', surname='Okafor', date_of_birth=datetime.date(1961, 4, 9))",
    "key=value": "dateOfBirth=1961-04-09 firstName=Jane",
    "PostgreSQL": 'unsupported Unicode escape\nCONTEXT:  JSON data, line 1: {"householdMembers": [{"x": "Jane Okafor 1961',
}


@pytest.mark.parametrize("shape", PERSONAL)
def test_personal_fields_are_redacted_whatever_their_shape(shape: str) -> None:
    clean = redact(PERSONAL[shape])
    for value in ("Jane", "Okafor", "O\\'Brien", "1961", "07700"):
        assert value not in clean
    assert "[redacted]" in clean


def test_tokens_urls_passwords_and_configured_secrets_are_redacted() -> None:
    configured = settings(
        database_url="postgresql+psycopg://accounts:db-password-123@db/accounts",
        broker_url="amqp://finance:broker-password-456@mq:5672/%2F",
        tenure_api_token="tenure-api-token-789",
    )
    secrets = secrets_of(configured)
    assert set(secrets) == {SECRET, "db-password-123", "broker-password-456", "tenure-api-token-789"}
    text = (
        f"Authorization: Bearer abc123 | {TOKEN} | {SECRET} | tenure-api-token-789 | "
        "postgresql+psycopg://accounts:db-password-123@db/accounts | http://svc:other-password@tenure-api/v1"
    )
    clean = redact(text, secrets)
    for leaked in (
        "abc123",
        TOKEN,
        "c2lnbmF0dXJl",
        SECRET,
        "tenure-api-token-789",
        "db-password-123",
        "other-password",
    ):
        assert leaked not in clean
    assert "postgresql+psycopg://accounts:***@db/accounts" in clean
    assert (
        redact("an ordinary line: 3 events applied to account 42") == "an ordinary line: 3 events applied to account 42"
    )


def test_the_filter_cleans_messages_arguments_and_tracebacks(logs: io.StringIO) -> None:
    configure_logging(settings(log_format="json"), logs)
    log = logging.getLogger("accounts.test")
    log.warning("sent %s with %s", f"Bearer {TOKEN}", {"dateOfBirth": "1961-04-09"})
    try:
        raise RuntimeError(f"failed for {PERSONAL['json']} with secret {SECRET}")
    except RuntimeError:
        log.exception("unexpected")
    text = logs.getvalue()
    for leaked in (TOKEN, "1961-04-09", "Jane Okafor", SECRET):
        assert leaked not in text
    assert [json.loads(line)["level"] for line in lines(logs)] == ["WARNING", "ERROR"]
