"""The `accounts` command prints its result, not the migrations' story: on a fresh database, stdout and
stderr hold what the command did and nothing else (Alembic's lines only at ACCOUNTS_LOG_LEVEL=DEBUG)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from accounts.adapters.database.migrate import alembic_config

CLI = [sys.executable, "-m", "accounts.entrypoints.cli"]
HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def accounts(tmp_path: Path, *args: str, **values: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ACCOUNTS_")}
    environment.update(
        ACCOUNTS_DATABASE_URL=f"sqlite:///{tmp_path / 'accounts.db'}",
        ACCOUNTS_SPREADSHEET_PATH=str(tmp_path / "interim.xlsx"),
        **values,
    )
    return subprocess.run([*CLI, *args], env=environment, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_commands_on_a_fresh_database_print_only_their_result(tmp_path: Path, log_format: str) -> None:
    where = f"sqlite:///{tmp_path / 'accounts.db'}"

    migrated = accounts(tmp_path, "migrate", ACCOUNTS_LOG_FORMAT=log_format)
    assert (migrated.returncode, migrated.stderr) == (0, "")
    assert migrated.stdout == f"database schema brought up to date (revision none -> {HEAD}): {where}\n"

    again = accounts(tmp_path, "migrate", ACCOUNTS_LOG_FORMAT=log_format)
    assert (again.returncode, again.stdout, again.stderr) == (
        0,
        f"database schema is up to date (revision {HEAD}): {where}\n",
        "",
    )

    listed = accounts(tmp_path, "events", "dead-letters", ACCOUNTS_LOG_FORMAT=log_format)
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", "0 dead letter(s)\n")


def test_a_command_that_migrates_on_its_own_is_as_quiet(tmp_path: Path) -> None:
    rebuilt = accounts(tmp_path, "interim", "rebuild")  # brings the schema up to date first
    assert (rebuilt.returncode, rebuilt.stderr) == (0, "")
    assert rebuilt.stdout == (
        "rebuilt spreadsheet from the sync table: 0 row(s) queued, 0 sync row(s) corrected from the accounts\n"
    )
    checked = accounts(tmp_path, "interim", "reconcile")
    assert (checked.returncode, checked.stdout, checked.stderr) == (
        0,
        "the accounts agree with: sync-table, spreadsheet\n",
        "",
    )


def test_at_debug_the_migrations_tell_their_story(tmp_path: Path) -> None:
    migrated = accounts(tmp_path, "migrate", ACCOUNTS_LOG_LEVEL="DEBUG")
    assert migrated.returncode == 0
    assert "Running upgrade  -> 0001" in migrated.stderr
    assert f"database schema at revision {HEAD} (was None)" in migrated.stderr
