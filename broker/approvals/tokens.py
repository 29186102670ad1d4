"""Approval links: HMAC-signed (HS256) tokens that bind one approver to one request's exact
command until the request's deadline, plus the CSRF nonce of the page that a link opens.

A token proves "the broker sent this link to this approver for this command"; it is a bearer
capability, so it is single-use (``RequestStore.use_token``), short-lived (the request's deadline)
and never decides anything on its own: only a POST of the page's form does. The key lives in
Key Vault; rotating it invalidates every open link (fail closed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from broker.problems import BrokerError, Forbidden, Gone
from broker.secrets import SecretValue

ISSUER = "agent-access-broker"
AUDIENCE = "approval-link"


@dataclass(frozen=True)
class LinkClaims:
    """What a verified approval link says."""

    request_id: str
    approver: str  # tenant/object id
    approver_name: str
    command_digest: str
    expires_at: datetime
    token_id: str


class ApprovalTokens:
    """Issues and verifies approval links and form nonces with the Key Vault signing key."""

    def __init__(self, key: Callable[[], SecretValue], *, clock: Callable[[], float] = time.time,
                 form_seconds: int = 1800) -> None:
        self._key = key
        self._clock = clock
        self._form_seconds = form_seconds

    def _secret(self) -> SecretValue:
        secret = self._key()
        if len(secret.value) < 32:
            raise BrokerError("The approval signing key is shorter than 32 characters.", code="weak_signing_key")
        return secret

    def issue(self, request_id: str, approver: str, approver_name: str, command_digest: str,
              expires_at: datetime) -> str:
        secret = self._secret()
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": approver, "name": approver_name, "rid": request_id,
                  "dig": command_digest, "iat": int(self._clock()), "exp": int(expires_at.timestamp()),
                  "jti": secrets.token_urlsafe(16)}
        return jwt.encode(claims, secret.value.encode(), algorithm="HS256", headers={"kid": secret.version})

    def verify(self, token: str, request_id: str) -> LinkClaims:
        """The link's claims, or a refusal: forged/altered (403), expired (410), another request (403)."""
        secret = self._secret()
        try:
            claims = jwt.decode(token, secret.value.encode(), algorithms=["HS256"], audience=AUDIENCE,
                                issuer=ISSUER, leeway=0,
                                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"],
                                         "verify_iat": False},
                                )
        except jwt.ExpiredSignatureError as exc:
            raise Gone("This approval link has expired.", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Forbidden("This approval link is not valid (forged, altered or signed with a retired key).",
                            code="token_invalid") from exc
        if claims["exp"] <= self._clock():
            raise Gone("This approval link has expired.", code="token_expired")
        for name in ("rid", "dig", "name"):
            if not isinstance(claims.get(name), str):
                raise Forbidden("This approval link is not valid (incomplete).", code="token_invalid")
        if not hmac.compare_digest(claims["rid"], request_id):
            raise Forbidden("This approval link belongs to another request.", code="token_wrong_request")
        return LinkClaims(claims["rid"], claims["sub"], claims["name"], claims["dig"],
                          datetime.fromtimestamp(claims["exp"], UTC), claims["jti"])

    # --- the page's CSRF nonce: bound to the link (request + token id), short-lived ---
    def form_nonce(self, claims: LinkClaims) -> str:
        issued = str(int(self._clock()))
        salt = secrets.token_urlsafe(12)
        return f"{issued}.{salt}.{self._nonce_mac(claims, issued, salt)}"

    def check_nonce(self, claims: LinkClaims, nonce: str, cookie: str) -> None:
        """The form's nonce must equal the page's cookie, carry our MAC for this link, and be fresh."""
        refusal = Forbidden("The approval form is stale or did not come from the approval page; "
                            "open the link again.", code="csrf_failed")
        if not nonce or not cookie or not hmac.compare_digest(nonce.encode(), cookie.encode()):
            raise refusal
        parts = nonce.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise refusal
        issued, salt, mac = parts
        if not hmac.compare_digest(mac, self._nonce_mac(claims, issued, salt)):
            raise refusal
        age = self._clock() - int(issued)
        if age < -60 or age > self._form_seconds:
            raise refusal

    def _nonce_mac(self, claims: LinkClaims, issued: str, salt: str) -> str:
        message = "\x00".join(("form-nonce", claims.request_id, claims.token_id, issued, salt)).encode()
        digest = hmac.new(self._secret().value.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
