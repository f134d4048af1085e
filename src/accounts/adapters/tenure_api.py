"""HTTP client for the Tenure API: the listener's source for tenures it has never seen.

`GET {base}/api/v1/tenures/{id}` with the configured bearer token. The listener calls it
outside any database transaction. Every failure that a later attempt might not meet
(unreachable, timeout, 5xx, 429, a refused token that someone may fix, an answer that
is not a tenure) is a TransientError: the event is retried with backoff and, after the
configured attempts, kept in the dead-letter store with this reason. 404 means the
tenure does not exist (yet), so the event waits for its TenureCreatedEvent.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import httpx

from accounts.domain.events import strict_json
from accounts.service.ports import TransientError

log = logging.getLogger(__name__)


class TenureApiClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 10.0) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        # How the API is named in errors (logged, and a dead letter's reason): without any password in the URL.
        self.shown_url = str(httpx.URL(self.base_url).copy_with(userinfo=b""))
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def fetch(self, tenure_id: UUID) -> dict[str, Any] | None:
        path = f"/api/v1/tenures/{tenure_id}"
        try:
            response = self.client.get(path)
        except httpx.HTTPError as error:
            raise TransientError(f"Tenure API unreachable at {self.shown_url}: {error!r}") from error
        status = response.status_code
        if status == 404:
            return None
        if status in (401, 403):
            raise TransientError(f"Tenure API refused the token (HTTP {status}): check ACCOUNTS_TENURE_API_TOKEN")
        if status != 200:
            raise TransientError(f"Tenure API answered HTTP {status} for {path}")
        try:
            body = strict_json(response.content)
        except ValueError:
            raise TransientError(f"Tenure API answered something other than JSON for {path}") from None
        if not isinstance(body, dict):
            raise TransientError(f"Tenure API answered something other than a JSON object for {path}")
        log.info("fetched tenure %s from the Tenure API", tenure_id)
        return body

    def close(self) -> None:
        self.client.close()
