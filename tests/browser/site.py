"""A real `accounts serve` (API, pages and worker) on SQLite or PostgreSQL, with demonstration data, and
Chromium pages signed in as the council's sign-in would sign them in: the JWT in the auth cookie."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from accounts.entrypoints.http.auth import mint_token
from tests.conftest import free_port, make_settings
from tests.e2e.test_api_server import ACCOUNTS, SECRET, running

# Who uses the pages in the tests: a caseworker who only reads, and two finance officers (suspense
# needs two: one proposes, a different one approves).
PEOPLE = {
    "caseworker": ("Casey Worker", "casey.worker@hackney.gov.uk", ["housing-finance-read"]),
    "officer": ("Fran Officer", "fran.officer@hackney.gov.uk", ["housing-finance-write"]),
    "approver": ("Abi Approver", "abi.approver@hackney.gov.uk", ["housing-finance-write"]),
}
# The accessibility rules the pages are held to: WCAG 2.2 AA and everything below it.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@dataclass
class Site:
    url: str
    database_url: str
    tmp: Path
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        environment = {name: value for name, value in os.environ.items() if not name.startswith("ACCOUNTS_")}
        environment.update(
            ACCOUNTS_ENVIRONMENT="development",  # the sign-in page takes a pasted token
            ACCOUNTS_DATABASE_URL=self.database_url,
            ACCOUNTS_JWT_SECRET=SECRET,
            ACCOUNTS_SPREADSHEET_PATH=str(self.tmp / "interim.xlsx"),
            ACCOUNTS_LOG_LEVEL="WARNING",
            ACCOUNTS_WORKER_POLL_SECONDS="0.05",
            ACCOUNTS_INTERIM_FLUSH_SECONDS="0.05",
        )
        return environment

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An `accounts` command against the site's database (as an operator would run it)."""
        return subprocess.run(
            [str(ACCOUNTS), *args], env=self.environment(), capture_output=True, text=True, timeout=600, check=True
        )

    def api(self, who: str = "officer") -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30
        )


def serve(database_url: str, tmp: Path) -> Iterator[Site]:
    """The site on that (empty) database, with demonstration data loaded first."""
    site = Site("", database_url, tmp, tmp / "server.log")
    settings = make_settings(database_url, tmp, jwt_secret=SECRET)
    site.tokens = {who: mint_token(settings, name=n, email=e, groups=g) for who, (n, e, g) in PEOPLE.items()}
    site.cli("migrate")
    site.cli("demo", "load", "--tenures", "40", "--weeks", "12", "--seed", "14")
    port = free_port()
    site.url = f"http://127.0.0.1:{port}"
    environment = {**site.environment(), "ACCOUNTS_HOST": "127.0.0.1", "ACCOUNTS_PORT": str(port)}
    with site.log.open("wb") as output:
        process = subprocess.Popen([str(ACCOUNTS), "serve"], env=environment, stdout=output, stderr=subprocess.STDOUT)
    with running(process, site.url, site.log, 60):
        yield site


def signed_in(browser: Any, site: Site, who: str = "officer", path: str = "/arrears") -> Any:
    """A page of a fresh browser context whose auth cookie holds `who`'s token, opened at `path`."""
    context = browser.new_context(base_url=site.url, accept_downloads=True)
    context.add_cookies([{"name": "hackneyToken", "value": site.tokens[who], "url": site.url, "httpOnly": True}])
    page = context.new_page()
    page.goto(path)
    return page


def assert_accessible(page: Any) -> None:
    """axe-core finds no WCAG 2.2 AA violation on the page as it stands."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    violations = results.response["violations"]
    assert not violations, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in violations
    )
