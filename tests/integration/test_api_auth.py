"""Who may read and change accounts: bearer JWTs, pinned algorithms, groups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from accounts.bootstrap import Application, bootstrap
from accounts.entrypoints.http.auth import mint_token
from tests.conftest import make_settings
from tests.integration.test_api_support import Api, assert_problem, shared_api, tenure_request

WRITE = ["housing-finance-write"]


@pytest.fixture(scope="module", params=["sqlite"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from shared_api(request, tmp_path_factory)


@pytest.fixture(scope="module")
def account(api: Api) -> dict:
    return api.create()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": "f.officer", "name": "Finance Officer", "email": "f@hackney.gov.uk"}
    values.update(groups=WRITE, iat=now, exp=now + 600)
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def signed(api: Api, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), api.application.settings.jwt_secret, algorithm="HS256")


def unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def every_request(api: Api, account: dict, token: str) -> list[Any]:
    """One request to each protected route with the token."""
    headers = {"Authorization": f"Bearer {token}"}
    client = api.client
    return [
        client.get(f"/api/v1/accounts?targetId={account['targetId']}", headers=headers),
        client.get(f"/api/v1/accounts/{account['id']}", headers=headers),
        client.get("/api/v1/accounts/arrears", headers=headers),
        client.get("/api/v1/target-types", headers=headers),
        client.post("/api/v1/accounts", json=tenure_request(), headers=headers),
        client.patch(f"/api/v1/accounts/{account['id']}", json={"accountBalance": 1}, headers=headers),
    ]


def assert_refused_everywhere(api: Api, account: dict, token: str | None, status: int, *words: str) -> None:
    before = api.snapshot()
    for response in every_request(api, account, token or ""):
        assert_problem(response, status, *words)
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.snapshot() == before


def test_without_a_token_nothing_is_read_or_changed(api: Api, account: dict) -> None:
    before = api.snapshot()
    client = api.client
    for response in (
        client.get(f"/api/v1/accounts/{account['id']}"),
        client.post("/api/v1/accounts", json=tenure_request()),
        client.patch(f"/api/v1/accounts/{account['id']}", json={"accountBalance": 1}),
    ):
        problem = assert_problem(response, 401, "bearer token is required")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="accounts"'
        assert problem["instance"].startswith("/api/v1/accounts")
    assert api.snapshot() == before


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "bearer"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(api: Api, account: dict, header: str) -> None:
    response = api.client.get(f"/api/v1/accounts/{account['id']}", headers={"Authorization": header})
    assert_problem(response, 401, "Bearer")


def test_an_expired_token_is_refused(api: Api, account: dict) -> None:
    token = signed(api, exp=int(time.time()) - 5)
    assert_refused_everywhere(api, account, token, 401, "expired")


def test_a_token_without_an_expiry_is_refused(api: Api, account: dict) -> None:
    assert_refused_everywhere(api, account, signed(api, exp=None), 401, "exp")


def test_a_token_signed_with_another_secret_is_refused(api: Api, account: dict) -> None:
    forged = jwt.encode(claims(), "an-attackers-secret-of-forty-characters!", algorithm="HS256")
    assert_refused_everywhere(api, account, forged, 401, "signature")


def test_a_token_whose_claims_were_altered_after_signing_is_refused(api: Api, account: dict) -> None:
    header, _, signature = signed(api, groups=["parking"]).split(".")
    promoted = unsigned(claims(), {}).split(".")[1]
    assert_refused_everywhere(api, account, f"{header}.{promoted}.{signature}", 401, "signature")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_alg_none_token_is_refused(api: Api, account: dict, alg: str) -> None:
    assert_refused_everywhere(api, account, unsigned(claims(), {"alg": alg, "typ": "JWT"}), 401, "not valid")


def test_a_token_in_another_hmac_algorithm_is_refused(api: Api, account: dict) -> None:
    other = jwt.encode(claims(), api.application.settings.jwt_secret, algorithm="HS512")
    assert_refused_everywhere(api, account, other, 401, "alg")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "x" * 5000])
def test_a_token_that_is_not_a_jwt_is_refused(api: Api, account: dict, token: str) -> None:
    response = api.client.get(f"/api/v1/accounts/{account['id']}", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "not valid")


def test_a_token_naming_no_user_is_refused(api: Api, account: dict) -> None:
    assert_refused_everywhere(api, account, signed(api, sub=None, name=None, email=None), 401, "names no user")


@pytest.mark.parametrize("email", ["x" * 321 + "@hackney.gov.uk", "officer\x00@hackney.gov.uk", "a\nb@x"])
def test_a_token_whose_user_could_not_be_recorded_is_refused(api: Api, account: dict, email: str) -> None:
    assert_refused_everywhere(api, account, signed(api, email=email), 401, "email")


@pytest.mark.parametrize("groups", [{"housing-finance-write": True}, 7])
def test_a_token_whose_groups_are_not_a_list_is_refused(api: Api, account: dict, groups: object) -> None:
    assert_refused_everywhere(api, account, signed(api, groups=groups), 401, "groups")


def test_a_reader_can_read_but_not_change(api: Api, account: dict) -> None:
    before = api.snapshot()
    reads, changes = (
        every_request(api, account, api.reader_token)[:4],
        every_request(api, account, api.reader_token)[4:],
    )
    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    for response in changes:
        assert_problem(response, 403, "change accounts", "housing-finance-write")
    assert api.snapshot() == before


def test_someone_outside_the_finance_groups_can_do_nothing(api: Api, account: dict) -> None:
    assert_refused_everywhere(api, account, api.stranger_token, 403, "housing-finance")
    assert_refused_everywhere(api, account, signed(api, groups=[]), 403, "housing-finance")
    assert_refused_everywhere(api, account, signed(api, groups=None), 403, "housing-finance")


def test_a_writer_can_read_and_change(api: Api, account: dict) -> None:
    statuses = [r.status_code for r in every_request(api, account, api.writer_token)]
    assert statuses == [200, 200, 200, 200, 201, 200]


def test_a_single_group_given_as_a_string_counts(api: Api, account: dict) -> None:
    response = api.client.get(
        f"/api/v1/accounts/{account['id']}",
        headers={"Authorization": f"Bearer {signed(api, groups='housing-finance-read')}"},
    )
    assert response.status_code == 200


def test_issuer_and_audience_are_not_checked_unless_configured(api: Api, account: dict) -> None:
    token = signed(api, iss="https://anyone.example", aud="anything")
    assert (
        api.client.get(f"/api/v1/accounts/{account['id']}", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


# Other configurations, each on a database of its own -----------------------------------


def configured_api(tmp_path: Path, **overrides: object) -> Iterator[Api]:
    application: Application = bootstrap(
        make_settings(f"sqlite:///{tmp_path / 'accounts.db'}", tmp_path, **overrides), run_migrations=True
    )
    try:
        yield Api(application)
    finally:
        application.close()


@pytest.fixture
def checked_api(tmp_path: Path) -> Iterator[Api]:
    yield from configured_api(tmp_path, jwt_issuer="https://login.hackney.gov.uk", jwt_audience="accounts-api")


def test_when_configured_the_issuer_and_audience_must_match(checked_api: Api) -> None:
    api = checked_api
    good = claims(iss="https://login.hackney.gov.uk", aud="accounts-api")
    secret = api.application.settings.jwt_secret

    def status(payload: dict[str, Any]) -> int:
        token = jwt.encode(payload, secret, algorithm="HS256")
        return api.client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status(good) == 200
    assert status({**good, "iss": "https://evil.example"}) == 401
    assert status({**good, "aud": "another-api"}) == 401
    assert status({k: v for k, v in good.items() if k != "iss"}) == 401
    assert status({k: v for k, v in good.items() if k != "aud"}) == 401
    minted = mint_token(api.application.settings, name="N", email="n@x", groups=WRITE)
    assert api.client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {minted}"}).status_code == 200


@pytest.fixture
def rs256_api(tmp_path: Path, rsa_keys: tuple[str, str]) -> Iterator[Api]:
    (tmp_path / "public.pem").write_text(rsa_keys[1])
    yield from configured_api(tmp_path, jwt_algorithm="RS256", jwt_public_key_path=tmp_path / "public.pem")


def test_with_rs256_a_token_signed_by_the_private_key_is_accepted(rs256_api: Api, rsa_keys: tuple[str, str]) -> None:
    api = rs256_api
    token = mint_token(api.application.settings, name="N", email="n@x", groups=WRITE, private_key=rsa_keys[0])
    response = api.post(tenure_request(), token=token)
    assert response.status_code == 201, response.text
    assert response.json()["createdBy"] == "n@x"


def test_with_rs256_an_hmac_token_keyed_with_the_public_key_is_refused(
    rs256_api: Api, rsa_keys: tuple[str, str]
) -> None:
    """The classic algorithm confusion: the public key is public, so it must never work as an HMAC secret."""
    api = rs256_api
    before = api.snapshot()
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    payload = unsigned(claims(), {}).split(".")[1]
    signature = hmac.new(rsa_keys[1].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    assert_problem(api.post(tenure_request(), token=confused), 401, "alg")
    assert_problem(api.post(tenure_request(), token=signed(api)), 401)  # the HS256 dev secret is no use either
    assert api.snapshot() == before


@pytest.fixture
def jwks_api(tmp_path: Path, rsa_keys: tuple[str, str]) -> Iterator[Api]:
    public = serialization.load_pem_public_key(rsa_keys[1].encode())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))  # type: ignore[arg-type]
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "council-2026", "use": "sig"}]}))
    yield from configured_api(tmp_path, jwt_algorithm="RS256", jwt_jwks_path=tmp_path / "jwks.json")


def test_with_a_jwks_file_the_key_is_chosen_by_kid(jwks_api: Api, rsa_keys: tuple[str, str]) -> None:
    api = jwks_api

    def status(kid: str) -> int:
        token = jwt.encode(claims(), rsa_keys[0], algorithm="RS256", headers={"kid": kid})
        return api.client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status("council-2026") == 200
    assert status("someone-elses-key") == 401


def test_a_token_lives_only_as_long_as_it_says(api: Api) -> None:
    # Three seconds (expiry is stamped in whole seconds): a busy machine's first request still lands inside it.
    token = mint_token(api.application.settings, name="N", email="n@x", groups=WRITE, lifetime=timedelta(seconds=3))
    assert api.client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    time.sleep(4.1)  # also past the verifier's cache of good tokens
    response = api.client.get("/api/v1/target-types", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "expired")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/accounts",
        "/api/v1/accounts?targetId=nope&accountType=Rent",
        "/api/v1/accounts/arrears?type=Rent&resultsCount=-1",
        "/api/v1/accounts/nope",
    ],
)
def test_without_a_token_even_a_malformed_request_learns_only_that_it_needs_one(api: Api, url: str) -> None:
    assert_problem(api.client.get(url), 401, "bearer token is required")
    assert_problem(api.client.get(url, headers={"Authorization": f"Bearer {api.stranger_token}"}), 403)
