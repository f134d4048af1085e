"""The API docs page works with no internet: Swagger UI is served by the application itself.

A real `accounts serve` and a real Chromium whose every request off this machine is refused, as
on a network without internet access; the page must still draw every operation of the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.e2e.test_api_server import Server


def test_the_docs_page_draws_every_operation_with_the_network_off(server: Server, browser: Any) -> None:
    page = browser.new_page()
    refused: list[str] = []

    def offline(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.goto(f"{server.url}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=15_000)

    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/accounts/{id}/transactions" in [text.replace("\u200b", "") for text in summaries]
    document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert page.locator(".opblock").count() == sum(len(path) for path in document["paths"].values())
    assert page.locator(".errors-wrapper").count() == 0  # the document was read without errors
    assert refused == []  # nothing was fetched from anywhere else
    page.close()
