"""Security item 7: no token, a bad token or the wrong groups get 401/403 on every route, and change nothing.

Every protected route is taken from the OpenAPI document itself (so a new route is
covered the day it is added) and sent a request that a proper token would make
succeed: a lookup, a creation, a change, an event. Each forged or unfit credential
must get a 401 (with a Bearer challenge) or a 403, as a problem document, and leave
every table as it was. Checked with the HS256 secret and with an RS256 public key
configured, including the algorithm-confusion attacks on each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from accounts.bootstrap import Application
from accounts.settings import DEV_JWT_SECRET
from tests.integration.test_api_support import tenure_request
from tests.security.conftest import PROBLEM_JSON, b64, claims, raw_token, snapshot, tenure_event

Request = tuple[str, str, dict[str, Any]]  # method, url, httpx keyword arguments


COLLEAGUE = {"sub": "colleague@hackney.gov.uk", "name": "Colleague", "email": "colleague@hackney.gov.uk"}


def protected_requests(
    client: TestClient, account: dict[str, Any], authorization: str, colleague: str
) -> list[Request]:
    """For every protected operation in the document: a request a proper token would make succeed."""
    document = client.get("/api/v1/openapi.json").json()
    charge = {"id": str(uuid.uuid4()), "transactionType": "Charge", "amount": 10, "transactionDate": "2026-04-06"}
    posted = client.post(
        f"/api/v1/accounts/{account['id']}/transactions", json=charge, headers={"Authorization": authorization}
    )
    assert posted.status_code == 201, posted.text
    # Two payments no account holds, set aside in suspense: one to propose, one proposed by somebody else
    # (so that approving it is this token's user's to do: it takes two people).
    unknown = [str(9_000_000_000 + n) for n in range(2)]
    payments = "paymentReference,amount,paymentDate,method,reference\r\n" + "".join(
        f"{prn},10.00,2026-04-06,BACS,{uuid.uuid4()}\r\n" for prn in unknown
    )
    imported = client.post(
        "/api/v1/payment-files",
        content=payments,
        headers={"Authorization": authorization, "Content-Type": "text/csv"},
    )
    assert imported.status_code < 300, imported.text
    items = client.get("/api/v1/suspense", headers={"Authorization": authorization}).json()["items"]
    to_propose, to_approve = items[-2]["id"], items[-1]["id"]
    proposed = client.post(
        f"/api/v1/suspense/{to_approve}/proposal",
        json={"accountId": account["id"]},
        headers={"Authorization": colleague},
    )
    assert proposed.status_code < 300, proposed.text
    # A finished charge run to read (finished first: a run changes accounts, and the refusals must change nothing).
    week = {"weekStarting": "2026-04-06"}
    started = client.post("/api/v1/charge-runs", json=week, headers={"Authorization": authorization})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/charge-runs/{run_id}", headers={"Authorization": authorization}).json()["status"] != (
        "Finished"
    ):
        assert time.monotonic() < deadline, "the charge run did not finish"
        time.sleep(0.05)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/accounts"): {"json": tenure_request()},
        ("PATCH", "/api/v1/accounts/{id}"): {
            "content": json.dumps({"agreementType": "Changed by an intruder"}),
            "headers": {"Content-Type": "application/merge-patch+json"},
        },
        ("POST", "/api/v1/events"): {"json": tenure_event()},
        ("POST", "/api/v1/accounts/{id}/transactions"): {"json": charge},  # again: answered with the original
        ("POST", "/api/v1/accounts/{id}/transactions/{transactionId}/reversal"): {"json": {"reason": "a mistake"}},
        ("POST", "/api/v1/payment-files"): {"content": payments, "headers": {"Content-Type": "text/csv"}},
        ("POST", "/api/v1/suspense/{id}/proposal"): {"json": {"accountId": account["id"]}},
        ("POST", "/api/v1/charge-runs"): {"json": week},
    }
    ids = {"/api/v1/suspense/{id}/approval": to_approve, "/api/v1/suspense/{id}": to_propose}
    ids["/api/v1/suspense/{id}/proposal"] = to_propose
    ids["/api/v1/charge-runs/{id}"] = run_id
    queries = {"/api/v1/accounts": f"?targetId={account['targetId']}"}
    requests: list[Request] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security", document.get("security")) == []:
                continue  # the health checks are public by design
            url = path.replace("{id}", ids.get(path, account["id"])).replace("{transactionId}", charge["id"])
            url += queries.get(path, "")
            requests.append((method.upper(), url, bodies.get((method.upper(), path), {})))
    assert len(requests) >= 7, [f"{m} {u}" for m, u, _ in requests]
    return requests


def send(client: TestClient, request: Request, authorization: str | None) -> Any:
    method, url, kwargs = request
    headers = dict(kwargs.get("headers", {}))
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.request(method, url, **{**kwargs, "headers": headers})


def assert_refused(
    app: Application, client: TestClient, requests: list[Request], authorization: str | None, status: int, label: str
) -> None:
    before = snapshot(app)
    for request in requests:
        response = send(client, request, authorization)
        where = f"{label}: {request[0]} {request[1]}"
        assert response.status_code == status, f"{where} answered {response.status_code}: {response.text[:300]}"
        assert response.headers["content-type"].startswith(PROBLEM_JSON), where
        assert response.json()["status"] == status, where
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), where
    assert snapshot(app) == before, f"{label}: something changed"


def hs256(secret: str, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def forged_hs256_tokens(secret: str, attacker_rsa: str) -> list[tuple[str, str | None, int]]:
    """(label, Authorization header, status) for a service that signs with `secret` (HS256)."""
    good = hs256(secret)
    header, payload, signature = good.split(".")
    elevated = b64(json.dumps(claims(groups=["housing-finance-write", "admin"], name="Someone Else")).encode())
    now = int(time.time())
    return [
        ("no token", None, 401),
        ("an empty header", "", 401),
        ("not a bearer token", "Basic ZmluYW5jZTpmaW5hbmNl", 401),
        ("a bearer with nothing", "Bearer ", 401),
        ("not a JWT", "Bearer not-a-jwt", 401),
        ("expired", f"Bearer {hs256(secret, iat=now - 7200, exp=now - 3600)}", 401),
        (
            "without an expiry",
            f"Bearer {jwt.encode({k: v for k, v in claims().items() if k != 'exp'}, secret, algorithm='HS256')}",
            401,
        ),
        ("another secret", f"Bearer {hs256('someone-elses-secret-of-at-least-32-characters')}", 401),
        ("claims altered after signing", f"Bearer {header}.{elevated}.{signature}", 401),
        ("signature cut off", f"Bearer {header}.{payload}.", 401),
        ("alg none", f"Bearer {raw_token({'alg': 'none', 'typ': 'JWT'}, claims())}", 401),
        ("alg None", f"Bearer {raw_token({'alg': 'None', 'typ': 'JWT'}, claims())}", 401),
        (
            "alg NONE with the real signature",
            f"Bearer {raw_token({'alg': 'NONE'}, claims())}{signature}",
            401,
        ),
        ("HS512 with the right secret", f"Bearer {jwt.encode(claims(), secret, algorithm='HS512')}", 401),
        ("RS256 signed by the attacker", f"Bearer {jwt.encode(claims(), attacker_rsa, algorithm='RS256')}", 401),
        ("outside the finance groups", f"Bearer {hs256(secret, groups=['parking-permits'])}", 403),
        ("no groups at all", f"Bearer {hs256(secret, groups=[])}", 403),
    ]


def test_every_protected_route_refuses_every_bad_credential_and_changes_nothing(
    make_client: Callable[..., tuple[Application, TestClient]],
) -> None:
    app, client = make_client()
    secret = app.settings.jwt_secret
    good = f"Bearer {hs256(secret)}"
    account = client.post("/api/v1/accounts", json=tenure_request(), headers={"Authorization": good}).json()
    requests = protected_requests(client, account, good, f"Bearer {hs256(secret, **COLLEAGUE)}")
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for label, authorization, status in forged_hs256_tokens(secret, attacker.decode()):
        assert_refused(app, client, requests, authorization, status, label)

    # A reader may read but not write.
    reader = f"Bearer {hs256(secret, groups=['housing-finance-read'])}"
    writes = [request for request in requests if request[0] != "GET"]
    assert_refused(app, client, writes, reader, 403, "a reader writing")
    for request in requests:
        if request[0] == "GET":
            assert send(client, request, reader).status_code == 200, request

    # And a proper token does get through on each (the refusals above were the credentials' doing).
    for request in requests:
        response = send(client, request, good)
        assert response.status_code < 300, f"{request[0]} {request[1]}: {response.status_code} {response.text[:300]}"


def test_with_rs256_the_public_key_is_no_secret_and_hs256_tokens_are_refused(
    make_client: Callable[..., tuple[Application, TestClient]], rsa_keys: tuple[str, str], tmp_path: Path
) -> None:
    private, public = rsa_keys
    (tmp_path / "public.pem").write_text(public)
    app, client = make_client(jwt_algorithm="RS256", jwt_public_key_path=tmp_path / "public.pem")
    good = f"Bearer {jwt.encode(claims(), private, algorithm='RS256')}"
    account = client.post("/api/v1/accounts", json=tenure_request(), headers={"Authorization": good}).json()
    colleague = f"Bearer {jwt.encode(claims(**COLLEAGUE), private, algorithm='RS256')}"
    requests = protected_requests(client, account, good, colleague)

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    for key in (public, public.strip(), public.replace("\n", "")):
        mac = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert_refused(
            app, client, requests, f"Bearer {header}.{payload}.{b64(mac)}", 401, "HS256 keyed with the public key"
        )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for label, authorization in [
        ("the development HS256 secret", f"Bearer {hs256(DEV_JWT_SECRET)}"),
        ("another RSA key", f"Bearer {jwt.encode(claims(), other, algorithm='RS256')}"),
        ("alg none", f"Bearer {raw_token({'alg': 'none'}, claims())}"),
        ("expired", f"Bearer {jwt.encode(claims(exp=int(time.time()) - 60), private, algorithm='RS256')}"),
    ]:
        assert_refused(app, client, requests, authorization, 401, label)
    wrong_groups = f"Bearer {jwt.encode(claims(groups=['parking-permits']), private, algorithm='RS256')}"
    assert_refused(app, client, requests, wrong_groups, 403, "RS256 outside the finance groups")
    for request in requests:
        assert send(client, request, good).status_code < 300, request


@pytest.mark.parametrize("path", ["/api/v1/healthcheck/ping", "/api/v1/health/live", "/api/v1/health/ready"])
def test_the_public_health_checks_say_nothing_but_their_health(
    make_client: Callable[..., tuple[Application, TestClient]], path: str
) -> None:
    app, client = make_client()
    response = client.get(path)
    assert response.status_code == 200
    assert set(response.json()) <= {"status", "checks"}
    assert app.settings.jwt_secret not in response.text


def protected_pages(account: dict[str, Any]) -> list[str]:
    """Every page that shows accounts (not in the OpenAPI document): a path a reader's cookie opens."""
    return [
        "/arrears",
        f"/accounts/{account['id']}",
        f"/accounts/{account['id']}/statement.csv",
        "/interim",
        "/search?q=Smith",
        f"/search?q={account['paymentReference']}",
        "/suspense",
    ]


def test_every_page_refuses_every_bad_cookie_with_a_page_saying_why(
    make_client: Callable[..., tuple[Application, TestClient]],
) -> None:
    app, client = make_client()
    secret = app.settings.jwt_secret
    good = f"Bearer {hs256(secret)}"
    account = client.post("/api/v1/accounts", json=tenure_request(), headers={"Authorization": good}).json()
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    reader = hs256(secret, groups=["housing-finance-read"])
    for path in protected_pages(account):
        for label, authorization, status in forged_hs256_tokens(secret, attacker.decode()):
            token = (authorization or "").removeprefix("Bearer ")
            cookies = {app.settings.auth_cookie: token} if token else {}
            # As a browser sends it: the cookie, whatever the Authorization header says.
            browser = TestClient(client.app, cookies=cookies, raise_server_exceptions=False)
            response = browser.get(path, headers={"Authorization": good})
            where = f"{label}: {path}"
            assert response.status_code == status, f"{where} answered {response.status_code}"
            assert response.headers["content-type"].startswith("text/html"), where
            assert ("Sign in" if status == 401 else "housing-finance-read") in response.text, where
        browser = TestClient(client.app, cookies={app.settings.auth_cookie: reader}, raise_server_exceptions=False)
        assert browser.get(path).status_code == 200, path


def test_every_page_form_refuses_every_bad_cookie_and_changes_nothing(
    make_client: Callable[..., tuple[Application, TestClient]],
) -> None:
    """The suspense forms (propose, approve) sent with the right form token but a forged or unfit cookie."""
    app, client = make_client()
    secret = app.settings.jwt_secret
    good = f"Bearer {hs256(secret)}"
    account = client.post("/api/v1/accounts", json=tenure_request(), headers={"Authorization": good}).json()
    payments = (
        f"paymentReference,amount,paymentDate,method,reference\r\n9000000001,10.00,2026-04-06,BACS,{uuid.uuid4()}\r\n"
    )
    client.post("/api/v1/payment-files", content=payments, headers={"Authorization": good, "Content-Type": "text/csv"})
    (item,) = client.get("/api/v1/suspense", headers={"Authorization": good}).json()["items"]
    colleague = f"Bearer {hs256(secret, **COLLEAGUE)}"
    to_approve = client.post(
        f"/api/v1/suspense/{item['id']}/proposal",
        json={"accountId": account["id"]},
        headers={"Authorization": colleague},
    )
    assert to_approve.status_code == 200, to_approve.text
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forms = [
        (f"/suspense/{item['id']}/proposal", {"accountId": account["id"]}),
        (f"/suspense/{item['id']}/approval", {}),
    ]
    reader = f"Bearer {hs256(secret, groups=['housing-finance-read'])}"
    before = snapshot(app)
    for label, authorization, status in [*forged_hs256_tokens(secret, attacker.decode()), ("a reader", reader, 403)]:
        token = (authorization or "").removeprefix("Bearer ")
        browser = TestClient(client.app, cookies={app.settings.auth_cookie: token} if token else {})
        browser.get("/sign-in")  # the form token's cookie, as a page gives it
        for path, data in forms:
            response = browser.post(path, data={"csrfToken": browser.cookies["accounts_csrf"], **data})
            where = f"{label}: POST {path}"
            assert response.status_code == status, f"{where} answered {response.status_code}"
            assert response.headers["content-type"].startswith("text/html"), where
    assert snapshot(app) == before
    after = client.get(f"/api/v1/suspense/{item['id']}", headers={"Authorization": good}).json()
    assert (after["status"], after["proposedBy"]) == ("Proposed", COLLEAGUE["email"])
