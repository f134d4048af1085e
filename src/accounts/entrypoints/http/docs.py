"""The API docs page (Swagger UI), with every asset served by the application itself.

FastAPI's own page loads Swagger UI from a CDN, so it is blank without internet access (a
council network, a laptop on a train). The assets come from the `fastapi-offline` package,
which ships Swagger UI's compiled bundle; nothing of it is copied into this tree.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_PATH = "/api/v1/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """`GET /api/v1/docs` and its assets under `/api/v1/docs/assets/`."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    async def docs(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    app.add_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
