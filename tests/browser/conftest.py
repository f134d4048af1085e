"""Browser tests: Playwright driving Debian's Chromium (Playwright's own browser download is not used)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.e2e.test_api_server import server  # noqa: F401  (the fixture: a real `accounts serve`)

CHROMIUM = os.environ.get("ACCOUNTS_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for a module's tests. Not for the session: Playwright's synchronous API keeps an event
    loop running in the main thread while it is open, and later tests call `asyncio.run` there."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ACCOUNTS_TEST_CHROMIUM)"
        if IN_CI:  # as for the servers: under CI a missing browser is a failure, elsewhere a skip
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running site with demonstration data, once a module and database (both databases, as production
    runs PostgreSQL and a newcomer SQLite)."""
    from tests.browser.site import serve
    from tests.conftest import _create_database, _drop_database

    tmp = tmp_path_factory.mktemp(f"site-{request.param}")
    if request.param == "sqlite":
        yield from serve(f"sqlite:///{tmp / 'accounts.db'}", tmp)
        return
    server_url = request.getfixturevalue("postgres_server_url")
    name, url = _create_database(server_url)
    try:
        yield from serve(url, tmp)
    finally:
        _drop_database(server_url, name)
