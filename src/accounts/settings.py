"""The one settings object: every knob is an ACCOUNTS_* environment variable."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigurationError(ValueError):
    """Settings that parse but cannot be put together (an unknown sink, a sink without its location).

    Raised when the application is wired (`bootstrap`), which knows the adapters; this
    module does not. The CLI prints it as a configuration error (exit code 2).
    """


def _spreadsheet_only() -> list[str]:
    return ["spreadsheet"]


# Signs the tokens `make run` prints. Refused when ACCOUNTS_ENVIRONMENT=production.
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    # hide_input_in_errors: a configuration error must not print the settings it was given (secrets).
    model_config = SettingsConfigDict(env_prefix="ACCOUNTS_", extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"

    # Storage: any SQLAlchemy URL; SQLite (embedded) by default, PostgreSQL in production.
    database_url: str = "sqlite:///./var/accounts.db"

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 256 * 1024
    arrears_default_count: int = 100
    arrears_max_count: int = 10_000
    # POST /payment-files: a body limit of its own (a day's bank file is a few MB); 413 above it.
    max_payment_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    # POST /api/v1/events: a backfill's batch of envelopes (7,800 of the tests' 1.3 KB creates in 10 MB), not an account.
    max_events_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Payment lines a unit of work: their accounts read at once, their postings committed together.
    payment_file_batch_lines: int = Field(default=1000, ge=1)
    # SQLite: the page cache of the API's read connection (one, the event loop's), in MB. Reads of
    # accounts spread over the whole file: SQLite's default 2 MB made a read about 22 us, 64 MB about 13.
    read_cache_mb: int = Field(default=64, ge=0)
    # PostgreSQL: the most connections the API's reads hold (an asynchronous pool on the event loop,
    # grown while reads wait). A read holds one for a query's round trip, so a few serve many clients.
    read_pool_size: int = Field(default=10, ge=1)

    # Auth: HS256 with the secret, or RS256 with a PEM public key / JWKS file.
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_public_key_path: Path | None = None
    jwt_jwks_path: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    read_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["housing-finance-read", "housing-finance-write"]
    )
    write_groups: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["housing-finance-write"])
    # The pages read the same JWT from this cookie, as the council's front ends do.
    auth_cookie: str = Field(default="hackneyToken", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Where GOV.UK Frontend's compiled assets were unpacked (`scripts/fetch_frontend.py`, run by make);
    # unset: the virtualenv's share/govuk-frontend.
    frontend_assets_dir: Path | None = None

    # Events: "embedded" (a queue in the database), amqp://..., or sqs://...
    broker_url: str = "embedded"
    tenure_exchange: str = "tenure"
    tenure_queue: str = "accounts-tenure-events"
    accounts_exchange: str = "accounts"
    sqs_endpoint_url: str | None = None
    sqs_topic_name: str | None = None  # set: tenure events go SNS FIFO -> SQS FIFO, as in production
    sqs_accounts_topic_name: str = "accounts-events.fifo"
    sqs_visibility_timeout: int = 30
    sqs_max_receive_count: int = 10  # a backstop above max_attempts; the worker dead-letters first
    aws_region: str = "eu-west-2"
    embedded_lease_seconds: float = 30.0  # a received embedded message reappears if not acked by then
    worker_batch_size: int = 1000
    worker_poll_seconds: float = 0.2
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    run_worker_in_serve: bool = True
    # The worker (`accounts worker`, or within `accounts serve`): the outbox relay and the interim sinks in a
    # process of their own beside the listener, so that they do not share its interpreter.
    worker_sync_process: bool = True
    # `accounts worker` serves its metrics (Prometheus) on this port of ACCOUNTS_HOST; 0: not served.
    # (`accounts serve` serves them at /metrics on its own port, its in-process worker's included.)
    metrics_port: int = Field(default=0, ge=0, le=65535)

    # Tenure API, for updates about tenures the listener has never seen.
    tenure_api_url: str | None = None
    tenure_api_token: str | None = None
    rent_group_map_path: Path | None = None

    # Interim finance sync: the names of the sinks (`adapters/registry.py`), checked when the application is wired.
    interim_sinks: Annotated[list[str], NoDecode] = Field(default_factory=_spreadsheet_only)
    spreadsheet_path: Path = Path("./var/interim-tenancy-agreements.xlsx")
    interim_database_url: str | None = None
    interim_flush_seconds: float = 0.5
    interim_batch_size: int = 1000

    # Logs (standard error): at this level and above, as text lines or one JSON object a line.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Charge runs: the accounts a unit of work charges (their charges and the run's progress committed together).
    charge_run_batch_size: int = Field(default=500, ge=1, le=10_000)

    @field_validator("read_groups", "write_groups", "interim_sinks", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        """Accept `a,b` as well as a JSON list in the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if (
            self.environment == "production"
            and self.jwt_algorithm == "HS256"
            and (self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32)
        ):
            raise ValueError("ACCOUNTS_JWT_SECRET must be set to a secret of at least 32 characters in production")
        if self.jwt_algorithm == "RS256" and not (self.jwt_public_key_path or self.jwt_jwks_path):
            raise ValueError("RS256 needs ACCOUNTS_JWT_PUBLIC_KEY_PATH or ACCOUNTS_JWT_JWKS_PATH")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
