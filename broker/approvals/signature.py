"""HMAC signatures for automations (a Logic App) posting decisions without an Entra token.

Header ``X-Broker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` with the
shared key from Key Vault. The timestamp must be within the replay window, and each signature
is accepted once (the caller stores it; see ``RequestStore.use_token``), so a captured request
cannot be replayed later or twice.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from broker.problems import Unauthenticated

HEADER = "x-broker-signature"


def sign(key: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` (what a Logic App computes; also used by tests and the CLI)."""
    t = int(time.time() if timestamp is None else timestamp)
    mac = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(key: bytes, header: str, body: bytes, *, window_seconds: int = 300,
           clock: Callable[[], float] = time.time) -> str:
    """Return the signature (its single-use id) or raise ``Unauthenticated``."""
    fields: dict[str, str] = {}
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, value)
    t, mac = fields.get("t", ""), fields.get("v1", "")
    if not t.isdigit() or len(mac) != 64:
        raise Unauthenticated("Send 'X-Broker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>'.",
                              code="invalid_signature")
    if abs(clock() - int(t)) > window_seconds:
        raise Unauthenticated(f"The signature's timestamp is outside the {window_seconds} s replay window.",
                              code="signature_expired")
    expected = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac.lower()):
        raise Unauthenticated("The body's signature does not match.", code="invalid_signature")
    return mac.lower()
