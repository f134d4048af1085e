"""HTTP client for the Tenure API: the listener's source for tenures it has never seen."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from accounts.service.ports import TransientError


class TenureApiClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 10.0) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def fetch(self, tenure_id: UUID) -> dict[str, Any] | None:
        try:
            response = self.client.get(f"/api/v1/tenures/{tenure_id}")
        except httpx.HTTPError as error:
            raise TransientError(f"Tenure API unreachable: {error}") from error
        if response.status_code == 404:
            return None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"Tenure API answered {response.status_code}")
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise TransientError("Tenure API answered something other than a JSON object")
        return body

    def close(self) -> None:
        self.client.close()
