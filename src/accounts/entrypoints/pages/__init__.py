"""Web pages for caseworkers and finance officers, on the GOV.UK Design System (served by the API's app).

Each page module has a `router`; `install_pages` adds them, the page error handlers, our own small
assets at /static and GOV.UK Frontend's compiled assets at /assets (its CSS asks for /assets/fonts/...).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from accounts.entrypoints.pages import account, arrears, interim, search, sign_in, suspense
from accounts.entrypoints.pages.common import HERE, frontend_assets, install_page_problems
from accounts.settings import Settings

log = logging.getLogger(__name__)

ROUTERS = [sign_in.router, arrears.router, account.router, interim.router, search.router, suspense.router]


def install_pages(app: FastAPI, settings: Settings) -> None:
    install_page_problems(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="pages-static")
    assets = frontend_assets(settings)
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="govuk-frontend")
    else:  # the pages still work, unstyled; `make` installs them
        log.warning("GOV.UK Frontend's assets are not in %s: run `make` (scripts/fetch_frontend.py)", assets)
