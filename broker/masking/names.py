"""Name rules: which column, JSON key or config key names hold a value to mask whole.

A name is split into words (``dbPassword`` -> db, password; ``X-Api-Key`` -> x, api, key) and
is sensitive when a word (or an adjacent pair such as api+key) says so — unless another word says
the value is only *about* the secret: ``password_updated_at``, ``token_ttl``, ``secretName``
(a Kubernetes reference), ``card_type``, ``prompt_tokens``.

    >>> classify_name("customer_email"), classify_name("tokenExpirationSeconds")
    ('email', None)
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

WORDS: dict[str, str] = {
    **dict.fromkeys(("password", "passwords", "passwd", "pwd", "pass", "pw", "passphrase", "passcode", "pin",
                     "requirepass"), "password"),
    **dict.fromkeys(("secret", "token", "credential", "credentials", "apikey", "auth", "authorization",
                     "cookie", "signature", "sig", "otp", "totp", "privatekey", "masterauth"), "secret"),
    **dict.fromkeys(("email", "emails", "mail", "emailaddress"), "email"),
    **dict.fromkeys(("phone", "telephone", "tel", "mobile", "msisdn", "fax", "phonenumber"), "phone"),
    **dict.fromkeys(("card", "pan", "creditcard", "cardnumber", "ccnumber", "cvv", "cvc", "cvv2"), "card"),
    "ssn": "ssn",
    "iban": "iban",
    **dict.fromkeys(("dsn", "conn", "connstr", "connstring", "connectionstring"), "connection_string"),
}
"""Single words that make a name sensitive, with the placeholder type of its values."""

PAIRS: dict[tuple[str, str], str] = {
    **{(w, "key"): "secret" for w in ("api", "access", "secret", "private", "signing", "encryption",
                                       "account", "master", "shared", "storage", "license", "subscription",
                                       "client", "session", "auth")},
    ("e", "mail"): "email",
    ("connection", "string"): "connection_string",
    ("social", "security"): "ssn",
    **{("cc", w): "card" for w in ("number", "num", "no")},
}
"""Adjacent word pairs that make a name sensitive."""

COMPOUNDS: dict[str, str] = {
    "password": "password", "passwd": "password", "passphrase": "password",
    "apikey": "secret", "secretkey": "secret", "privatekey": "secret", "accesskey": "secret",
    "clientsecret": "secret", "authtoken": "secret", "accesstoken": "secret", "refreshtoken": "secret",
    "sessiontoken": "secret", "bearertoken": "secret",
    "creditcard": "card", "cardnumber": "card", "phonenumber": "phone", "mobilenumber": "phone",
    "emailaddress": "email", "connectionstring": "connection_string", "connstring": "connection_string",
}
"""Substrings that make a run-together name (``userpassword``, ``creditcardno``) sensitive."""

QUALIFIERS = frozenset({
    "id", "ids", "uuid", "guid", "name", "names", "type", "types", "kind", "ref", "refs", "reference", "hint",
    "policy", "policies", "length", "len", "size", "count", "expires", "expiry", "expiration", "exp", "ttl",
    "timeout", "seconds", "secs", "sec", "ms", "minutes", "mins", "hours", "days", "at", "on", "ts", "time",
    "date", "timestamp", "updated", "created", "changed", "modified", "rotated", "rotation", "reset",
    "required", "enabled", "disabled", "enable", "verified", "confirmed", "valid", "validated", "status",
    "state", "format", "version", "provider", "url", "uri", "endpoint", "host", "hostname", "server", "port",
    "path", "file", "filename", "dir", "mount", "field", "column", "header", "label", "description", "desc",
    "comment", "template", "algorithm", "alg", "method", "scheme", "scope", "scopes", "audience", "issuer",
    "prefix", "suffix", "last", "mask", "masked", "brand", "network", "country", "domain", "strength", "min",
    "max", "is", "has", "use", "uses", "allow", "allowed", "flag", "mode", "level", "limit", "quota", "usage",
    "used", "remaining", "rate", "ratio", "percent", "attempts", "retries", "failures", "source", "store", "vault",
    "manager"
})
"""Words that make a name describe a secret rather than hold it."""


def words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


@lru_cache(maxsize=4096)
def classify_name(name: str) -> str | None:
    """The placeholder type for values under this name, or None if the name is not sensitive."""
    parts = words(name)
    if not parts or any(w in QUALIFIERS for w in parts):
        return None
    for pair in pairwise(parts):
        if pair in PAIRS:
            return PAIRS[pair]
    for w in parts:
        if w in WORDS:
            return WORDS[w]
    for w in parts:
        if len(w) > 6:
            for stem, kind in COMPOUNDS.items():
                if stem in w:
                    return kind
    return None
