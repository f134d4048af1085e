"""Settings: every knob an ACCOUNTS_* variable, lists written the way operators write them, unsafe setups refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from accounts.bootstrap import build_sinks
from accounts.settings import DEV_JWT_SECRET, ConfigurationError, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: nothing from the machine running the suite."""
    import os

    for name in list(os.environ):
        if name.startswith("ACCOUNTS_"):
            monkeypatch.delenv(name)


def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_out_of_the_box_the_service_runs_locally_on_sqlite_with_the_dev_secret() -> None:
    defaults = settings()
    assert defaults.environment == "development"
    assert defaults.database_url.startswith("sqlite:///")
    assert defaults.jwt_algorithm == "HS256" and defaults.jwt_secret == DEV_JWT_SECRET
    assert defaults.jwt_issuer is None and defaults.jwt_audience is None
    assert defaults.read_groups == ["housing-finance-read", "housing-finance-write"]
    assert defaults.write_groups == ["housing-finance-write"]
    assert (defaults.arrears_default_count, defaults.arrears_max_count) == (100, 10_000)


@pytest.mark.parametrize(
    ("raw", "groups"),
    [
        ("finance-read,finance-admin", ["finance-read", "finance-admin"]),
        (" finance-read , finance-admin ,", ["finance-read", "finance-admin"]),
        ('["finance-read", "finance-admin"]', ["finance-read", "finance-admin"]),
        ("finance-read", ["finance-read"]),
    ],
)
def test_groups_are_read_as_a_comma_list_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, raw: str, groups: list[str]
) -> None:
    monkeypatch.setenv("ACCOUNTS_READ_GROUPS", raw)
    monkeypatch.setenv("ACCOUNTS_WRITE_GROUPS", raw)
    assert settings().read_groups == groups
    assert settings().write_groups == groups


def test_every_knob_is_an_accounts_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_DATABASE_URL", "postgresql+psycopg://accounts@db/accounts")
    monkeypatch.setenv("ACCOUNTS_PORT", "8443")
    monkeypatch.setenv("ACCOUNTS_MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("ACCOUNTS_JWT_ISSUER", "https://login.hackney.gov.uk")
    monkeypatch.setenv("ACCOUNTS_JWT_AUDIENCE", "accounts-api")
    monkeypatch.setenv("ACCOUNTS_ARREARS_MAX_COUNT", "500")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///not-ours.db")  # no prefix: not ours
    configured = settings()
    assert configured.database_url == "postgresql+psycopg://accounts@db/accounts"
    assert configured.port == 8443 and configured.max_body_bytes == 1024
    assert configured.jwt_issuer == "https://login.hackney.gov.uk" and configured.jwt_audience == "accounts-api"
    assert configured.arrears_max_count == 500


def test_a_number_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        settings()


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="ACCOUNTS_JWT_SECRET"):
        settings()


def test_production_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_ENVIRONMENT", "production")
    monkeypatch.setenv("ACCOUNTS_JWT_SECRET", "short-secret")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        settings()
    monkeypatch.setenv("ACCOUNTS_JWT_SECRET", "a-real-secret-of-well-over-thirty-two-characters")
    assert settings().environment == "production"


def test_rs256_needs_a_public_key_or_a_jwks_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_JWT_ALGORITHM", "RS256")
    with pytest.raises(ValidationError, match="PUBLIC_KEY_PATH or ACCOUNTS_JWT_JWKS_PATH"):
        settings()
    monkeypatch.setenv("ACCOUNTS_JWT_JWKS_PATH", "/etc/accounts/jwks.json")
    assert settings().jwt_jwks_path == Path("/etc/accounts/jwks.json")


@pytest.mark.parametrize("algorithm", ["none", "HS512", "ES256", "rs256"])
def test_only_the_two_supported_algorithms_can_be_configured(monkeypatch: pytest.MonkeyPatch, algorithm: str) -> None:
    monkeypatch.setenv("ACCOUNTS_JWT_ALGORITHM", algorithm)
    with pytest.raises(ValidationError, match="jwt_algorithm"):
        settings()


def test_interim_sinks_are_a_list_and_the_database_sink_needs_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings hold the names; wiring the application checks them against the adapters (`build_sinks`)."""
    monkeypatch.setenv("ACCOUNTS_INTERIM_SINKS", "spreadsheet,database")
    with pytest.raises(ConfigurationError, match="ACCOUNTS_INTERIM_DATABASE_URL"):
        build_sinks(settings())
    monkeypatch.setenv("ACCOUNTS_INTERIM_DATABASE_URL", "mssql+pyodbc://interim")
    assert settings().interim_sinks == ["spreadsheet", "database"]
    monkeypatch.setenv("ACCOUNTS_INTERIM_SINKS", "spreadsheet,printer")
    with pytest.raises(ConfigurationError, match="ACCOUNTS_INTERIM_SINKS: unknown interim sink 'printer'"):
        build_sinks(settings())


def test_an_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOUNTS_ENVIRONMENT", "staging")
    with pytest.raises(ValidationError, match="environment"):
        settings()
