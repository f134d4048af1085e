"""How every process of the service sets itself up: its logs and its garbage collector.

Neutral ground: the CLI, the worker, the relay-and-sinks process and the HTTP layer all
take these from here, and this module imports nothing of theirs (so no import circle, and
the relay-and-sinks process configures its logs without importing FastAPI).

Logs go to standard error, one line a record: text (`ACCOUNTS_LOG_FORMAT=text`, the default)
or one JSON object a line (`json`), each naming its correlation id and, where there is one,
the event or account it is about (`service.log_context`). A redacting filter on the one
handler keeps tokens, secrets and tenants' personal fields out of every line, whatever
logged it: the code logs no such thing, and this is the net under it.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from accounts.service.log_context import account_id_var, event_id_var
from accounts.service.log_context import correlation_id_var as correlation_id_var  # set per request and event
from accounts.settings import Settings

# The listener allocates quickly (a batch of 500 events made some 100,000 short-lived objects): at
# Python's default threshold (700) the cyclic collector ran about 2,000 times for 20,000 events, about
# a tenth of the worker's CPU. Collected less often, and without rescanning what startup made:
GC_THRESHOLDS = (10_000, 20, 20)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"
REDACTED = "[redacted]"

# Libraries that tell a story at INFO nobody running the service needs: shown only at DEBUG.
# (Alembic announces each migration and plugin it loads, on every command that brings the schema up to date.)
CHATTY_LOGGERS = ("alembic",)


class CorrelationFilter(logging.Filter):
    """Puts the correlation id, and the event and account being handled, on every log record.

    A value given with the call (`extra={"account_id": ...}`) wins over the context's.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id_var.get()
        if getattr(record, "event_id", None) is None:
            record.event_id = event_id_var.get()
        if getattr(record, "account_id", None) is None:
            record.account_id = account_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO-8601), level, logger, message, correlation_id; event_id,
    account_id and exc_info when there are."""

    def format(self, record: logging.LogRecord) -> str:
        correlation = getattr(record, "correlation_id", None)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": None if correlation in (None, "-") else str(correlation),
        }
        for name in ("event_id", "account_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# The personal fields of a tenant's household (the Tenure API's, the interim row's and ours), by name:
# a value after one of these keys (JSON, a Python repr, key=value) is never written out.
PERSONAL_KEYS = (
    "dateOfBirth",
    "date_of_birth",
    "Date Of Birth",
    "fullName",
    "full_name",
    "firstName",
    "first_name",
    "middleName",
    "lastName",
    "last_name",
    "preferredFirstName",
    "preferredMiddleName",
    "preferredSurname",
    "forename",
    "surname",
    "person_name",
    "email",
    "emailAddress",
    "phoneNumber",
    "phone_number",
)
_KEYS = "|".join(re.escape(key) for key in PERSONAL_KEYS)
_PERSONAL = re.compile(
    r"""(?P<key>["']?\b(?:""" + _KEYS + r""")\b["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[\w.]+\([^)\n]*\)|[^\s,;)}\]]+)""",
    re.IGNORECASE,
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A bearer token, however it was sent.
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), r"\1 " + REDACTED),
    # Anything shaped like a JWT (header.payload.signature, base64url, the header starting '{"').
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?"), REDACTED),
    # The password of a URL (scheme://user:password@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@"), r"\1***@"),
    # PostgreSQL quotes the JSON it could not read in its error's CONTEXT: the tenure's own fields.
    (re.compile(r"(JSON data, line \d+: ).*"), r"\1" + REDACTED),
)


def _personal(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text without the secrets given, bearer tokens, JWTs, URL passwords and personal fields."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _PERSONAL.sub(_personal, text)


def secrets_of(settings: Settings) -> list[str]:
    """The configured secrets a log line must never hold: the JWT secret, the Tenure API token, URL passwords.

    Longest first (one may contain another); very short ones ("guest") are left to the URL pattern, since
    replacing them everywhere would garble ordinary words.
    """
    from sqlalchemy.engine import make_url  # here: `accounts token` need not import SQLAlchemy

    found = {settings.jwt_secret, settings.tenure_api_token or ""}
    for url in (settings.database_url, settings.interim_database_url, settings.broker_url):
        if url and "://" in url:
            try:
                found.add(make_url(url).password or "")
            except Exception:  # not an SQLAlchemy URL (amqp://, sqs://): take the userinfo's password
                userinfo = url.split("://", 1)[1].rsplit("@", 1)[0] if "@" in url else ""
                found.add(userinfo.partition(":")[2])
    return sorted((secret for secret in found if len(secret) >= 6), key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback without secrets or personal fields (see `redact`)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when it formats the record
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def log_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """The one handler every process logs through: its format, its correlation ids, its redaction."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CorrelationFilter())
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    formatter: logging.Formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """One handler on the root logger, at the configured level, every line with its correlation id.

    Every logger reaches it, uvicorn's too (`accounts serve` runs uvicorn without a logging
    configuration of its own), so every line of every process has the chosen format.
    """
    level = logging.getLevelName(settings.log_level)
    logging.basicConfig(level=level, handlers=[log_handler(settings, stream)], force=True)
    quiet = logging.DEBUG if level == logging.DEBUG else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def tune_garbage_collector() -> None:
    """Freeze what exists now (modules, settings, engines: never garbage) and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
