"""The API docs page (Swagger UI), with every asset served by the application itself.

FastAPI's own page loads Swagger UI from a CDN, so it is blank without internet access (a
council network, a laptop on a train), and starts it with an inline script, which the
Content-Security-Policy refuses. The assets come from the `fastapi-offline` package, which ships
Swagger UI's compiled bundle (nothing of it is copied into this tree); the page starts it from a
script file of our own, `/static/docs.js`.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_PATH = "/api/v1/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """`GET /api/v1/docs` and its assets under `/api/v1/docs/assets/`."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(app.title)}: docs</title>
<link rel="icon" href="{ASSETS_PATH}/favicon.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></main>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""

    async def docs(_request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    app.add_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
