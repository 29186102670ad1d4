"""Who is calling: validate an Entra ID (OIDC) access token and turn it into a ``Principal``.

Rules that must never loosen: only RS256/ES256, a ``kid`` is required and must be in the issuer's
key set, the issuer must be one of the allowed tenants (Entra v1 or v2 format) and agree with the
``tid`` claim, the audience must be ours, and the identity is tenant + object id (never ``sub``,
which is per-application).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from broker.problems import Unauthenticated, Unavailable
from broker.settings import Settings

ALLOWED_ALGORITHMS = ("RS256", "ES256")
_KEY_TYPE_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. ``key`` identifies it across tokens and applications."""

    tenant_id: str
    object_id: str
    app_id: str = ""
    display_name: str = ""
    kind: str = "user"  # "app" for a service principal / managed identity, else "user"
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    token_id: str = ""
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.object_id}"

    def describe(self) -> dict[str, Any]:
        """The identity as the journal records it."""
        return {
            "tenant_id": self.tenant_id,
            "object_id": self.object_id,
            "app_id": self.app_id,
            "display_name": self.display_name,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "groups": sorted(self.groups),
        }


class JwksCache:
    """The issuer's signing keys, cached; refreshed on an unknown ``kid`` at most every N seconds.

    The rate bound matters: a caller sending tokens with random ``kid`` values must not turn the
    broker into a JWKS-fetching amplifier.
    """

    def __init__(
        self,
        uri: str,
        *,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri = uri
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._fetch = fetch or _fetch_json
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def get(self, kid: str) -> PyJWK | None:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if not stale and kid in self._keys:
            return self._keys[kid]
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self._max_age
            may_refresh = self._fetched_at is None or now - self._fetched_at >= self._min_refresh
            if stale or (kid not in self._keys and may_refresh):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch(self._uri)
        except (httpx.HTTPError, ValueError) as exc:
            if self._keys:  # keep serving known keys through an issuer outage
                self._fetched_at = now
                return
            raise Unavailable("The token issuer's signing keys cannot be fetched.",
                              code="issuer_unavailable") from exc
        keys: dict[str, PyJWK] = {}
        for raw in document.get("keys", []):
            kid = raw.get("kid")
            # only asymmetric signing keys: a symmetric ("oct") key in a key set is never usable
            if not kid or raw.get("use", "sig") != "sig" or raw.get("kty") not in ("RSA", "EC"):
                continue
            try:
                keys[kid] = PyJWK(raw)
            except jwt.PyJWTError:
                continue  # a key type we do not accept is simply not usable
        self._keys = keys
        self._fetched_at = now
        self.fetch_count += 1


def _fetch_json(uri: str) -> dict[str, Any]:
    response = httpx.get(uri, timeout=5.0)
    response.raise_for_status()
    return json.loads(response.content)


class TokenValidator:
    """Validates bearer tokens against the settings' issuers, audiences and key set."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self._issuers = settings.issuers()
        self._audiences = list(settings.audiences)
        self._leeway = settings.token_leeway_seconds
        self._jwks = jwks or JwksCache(
            settings.effective_jwks_uri,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            max_age_seconds=settings.jwks_max_age_seconds,
        )

    def principal_from_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("No bearer token: send 'Authorization: Bearer <token>'.",
                                  code="missing_token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("The Authorization header must be 'Bearer <token>'.", code="missing_token")
        return self.validate(token.strip())

    def validate(self, token: str) -> Principal:
        if not self._issuers or not self._audiences:
            raise Unavailable("The broker has no allowed tenants or audiences configured.",
                              code="identity_not_configured")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The token is not a well-formed JWT.") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"Token algorithm {alg!r} is not accepted; use RS256 or ES256.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("The token header has no 'kid'.")
        key = self._jwks.get(kid)
        if key is None:
            raise Unauthenticated("The token was signed by a key the issuer does not publish.")
        if key.key_type != _KEY_TYPE_FOR_ALG[alg]:
            raise Unauthenticated("The token's algorithm does not match its signing key.")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audiences,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The token has expired.", code="token_expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("The token is for another audience.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"The token is not valid: {exc}.") from exc
        tenant = self._issuers.get(claims["iss"])
        if tenant is None:
            raise Unauthenticated("The token's issuer is not an allowed tenant.")
        if claims["tid"] != tenant:
            raise Unauthenticated("The token's tenant does not match its issuer.")
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map v1/v2 Entra claims to a Principal (``azp``/``appid``, ``idtyp``, ``roles``, ``groups``)."""
    app_id = str(claims.get("azp") or claims.get("appid") or "")
    kind = "app" if claims.get("idtyp") == "app" or ("scp" not in claims and "upn" not in claims
                                                       and "preferred_username" not in claims) else "user"
    name = (claims.get("name") or claims.get("preferred_username") or claims.get("upn")
            or claims.get("app_displayname") or "")
    return Principal(
        tenant_id=str(claims["tid"]),
        object_id=str(claims["oid"]),
        app_id=app_id,
        display_name=str(name),
        kind=kind,
        roles=frozenset(str(r) for r in claims.get("roles", []) or []),
        groups=frozenset(str(g) for g in claims.get("groups", []) or []),
        token_id=str(claims.get("uti") or claims.get("jti") or ""),
        claims=claims,
    )
