"""Signing in to the pages: what a person without a valid cookie sees, the development sign-in, and the
protections every page has (form tokens, the Content-Security-Policy, escaped data)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.browser.site import Site, assert_accessible, signed_in


def test_without_a_cookie_a_page_says_how_to_sign_in_and_a_pasted_token_signs_in(site: Site, browser: Any) -> None:
    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    response = page.goto("/arrears?minWeeks=2")
    assert response.status == 401
    assert page.locator("h1").inner_text() == "Sign in"
    text = page.locator("main").inner_text()
    assert "hackneyToken" in text and "housing-finance-read" in text and "housing-finance-write" in text
    assert_accessible(page)

    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    assert page.locator(".govuk-error-summary").inner_text().startswith("There is a problem")
    assert_accessible(page)

    page.get_by_label("Token").fill(site.tokens["caseworker"])
    page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{site.url}/arrears?minWeeks=2"  # back where they were going
    cookie = next(c for c in context.cookies() if c["name"] == "hackneyToken")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "Signed in as Casey Worker" in page.locator(".app-sign-out").inner_text()

    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{site.url}/sign-in"
    assert not [c for c in context.cookies() if c["name"] == "hackneyToken"]
    context.close()


def test_a_form_sent_from_elsewhere_is_refused(site: Site) -> None:
    with httpx.Client(base_url=site.url, cookies={"hackneyToken": site.tokens["officer"]}) as client:
        refused = client.post("/sign-out", data={"csrfToken": "guessed"})
        assert refused.status_code == 403 and "This form has expired" in refused.text
        page = client.get("/sign-in")
        token = client.cookies["accounts_csrf"]
        elsewhere = client.post("/sign-out", data={"csrfToken": token}, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403
        assert client.post("/sign-out", data={"csrfToken": token}).status_code == 303
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self';" in page.headers["content-security-policy"]  # no 'unsafe-inline'
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"


def test_a_signed_in_page_without_the_reading_group_says_which_group_is_needed(site: Site, browser: Any) -> None:
    from accounts.entrypoints.http.auth import mint_token
    from tests.conftest import make_settings
    from tests.e2e.test_api_server import SECRET

    settings = make_settings(site.database_url, site.tmp, jwt_secret=SECRET)
    site.tokens["stranger"] = mint_token(settings, name="Sam Stranger", email="sam@example.org", groups=["other"])
    page = signed_in(browser, site, "stranger", "/arrears")
    assert page.locator("h1").inner_text() == "You cannot see this"
    assert "housing-finance-read" in page.locator("main").inner_text()
    page.context.close()


def test_the_assets_come_from_the_application(site: Site) -> None:
    for path in ("/assets/govuk-frontend.min.css", "/assets/govuk-frontend.min.js", "/static/pages.js"):
        assert httpx.get(f"{site.url}{path}").status_code == 200, path
    css = httpx.get(f"{site.url}/assets/govuk-frontend.min.css").text
    for font in set(re.findall(r"url\((/assets/fonts/[^)]+)\)", css)):
        assert httpx.get(f"{site.url}{font}").status_code == 200, font
