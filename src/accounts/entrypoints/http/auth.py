"""Bearer JWT authentication and group authorisation.

The algorithm is pinned by configuration (never taken from the token), so `alg: none`
and HS/RS confusion are refused. `exp` is required; issuer and audience are checked
when configured. Who made a change comes from the token's name/email, never the body.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Lock
from typing import Any

import jwt

from accounts.domain.account import Actor
from accounts.entrypoints.http.problems import ApiProblem
from accounts.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="accounts"'}
MAX_USER_LENGTH = 320


@dataclass(frozen=True)
class Principal:
    actor: Actor
    groups: frozenset[str]
    expires_at: float


class TokenVerifier:
    """Verifies tokens, caching good ones until they expire (a hot path under load)."""

    def __init__(self, settings: Settings, cache_size: int = 4096) -> None:
        self.settings = settings
        self.algorithm = settings.jwt_algorithm
        self.key: Any = settings.jwt_secret
        self.jwks: jwt.PyJWKSet | None = None
        if self.algorithm == "RS256":
            if settings.jwt_jwks_path:
                self.jwks = jwt.PyJWKSet.from_json(settings.jwt_jwks_path.read_text(encoding="utf-8"))
            elif settings.jwt_public_key_path:
                self.key = settings.jwt_public_key_path.read_text(encoding="utf-8")
        self.cache: OrderedDict[str, Principal] = OrderedDict()
        self.cache_size = cache_size
        self.lock = Lock()

    def _key_for(self, token: str) -> Any:
        if self.jwks is None:
            return self.key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self.jwks.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidTokenError("no key in the JWKS matches the token's kid")

    def verify(self, token: str) -> Principal:
        now = time.time()
        with self.lock:
            cached = self.cache.get(token)
            if cached is not None and cached.expires_at > now:
                self.cache.move_to_end(token)
                return cached
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[self.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={
                    "require": ["exp"],
                    "verify_aud": self.settings.jwt_audience is not None,
                    "verify_iss": self.settings.jwt_issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise ApiProblem(401, "the bearer token has expired", headers=CHALLENGE) from None
        except jwt.InvalidTokenError as error:
            raise ApiProblem(401, f"the bearer token is not valid: {error}", headers=CHALLENGE) from None
        groups = claims.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            raise ApiProblem(401, "the bearer token's groups claim must be a list", headers=CHALLENGE)
        name = str(claims.get("name") or claims.get("sub") or "")
        email = str(claims.get("email") or "")
        if not (name or email):
            raise ApiProblem(401, "the bearer token names no user (name, email or sub)", headers=CHALLENGE)
        for claim, value in (("name", name), ("email", email)):
            # The user is recorded as createdBy/lastUpdatedBy: it must fit and be storable text.
            if len(value) > MAX_USER_LENGTH or not value.isprintable():
                raise ApiProblem(
                    401,
                    f"the bearer token's {claim} must be printable text of at most {MAX_USER_LENGTH} characters",
                    headers=CHALLENGE,
                )
        principal = Principal(Actor(name, email), frozenset(str(g) for g in groups), float(claims["exp"]))
        with self.lock:
            self.cache[token] = principal
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return principal

    def authorise(self, authorization: str | None, allowed_groups: list[str], action: str) -> Actor:
        return self.principal(authorization, allowed_groups, action).actor

    def principal(self, authorization: str | None, allowed_groups: list[str], action: str) -> Principal:
        """Who the Authorization header speaks for, if they may do `action` (else a 401 or 403 problem)."""
        if not authorization:
            raise ApiProblem(401, "a bearer token is required (Authorization: Bearer <token>)", headers=CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiProblem(401, "the Authorization header must be 'Bearer <token>'", headers=CHALLENGE)
        principal = self.verify(token.strip())
        if not principal.groups.intersection(allowed_groups):
            raise ApiProblem(403, f"to {action} you need to be in one of the groups: {', '.join(allowed_groups)}")
        return principal


def mint_token(
    settings: Settings,
    *,
    name: str,
    email: str,
    groups: list[str],
    lifetime: timedelta = timedelta(hours=12),
    private_key: str | None = None,
) -> str:
    """A token for `accounts token`: HS256 with the configured secret (or RS256 with a private key)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": email or name,
        "name": name,
        "email": email,
        "groups": groups,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if private_key is not None:
        return jwt.encode(claims, private_key, algorithm="RS256")
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
