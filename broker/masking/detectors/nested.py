"""Detectors that look inside: base64 that decodes to text, and hints that a string is JSON worth
parsing. Nesting goes one level deep, no further (the engine enforces it)."""

from __future__ import annotations

import base64
import binascii
import re

from broker.masking.detectors.base import Detector


class Base64Text(Detector):
    """Base64 that decodes to readable text is scanned as text; a finding masks the whole token.

    Caught: ``cG9zdGdyZXM6Ly9hcHA6V3E5eFoycExAZGIuaW50ZXJuYWwvb3JkZXJz`` (a URL with a password)
    Passed: ``aGVsbG8gd29ybGQsIGhvdyBhcmUgeW91Pw==`` ("hello world, how are you?")
    """

    type = "base64"
    priority = 10
    nested = True
    # Base64 of UTF-8 never starts with + or / (bytes 0xF8-0xFF never start a character), so
    # paths (/api/orders/123) don't qualify; hex (hashes, ids) is skipped before any decoding.
    patterns = (r"(?<![A-Za-z0-9+/=_-])(?![0-9A-Fa-f]+(?![A-Za-z0-9+/=_-]))[A-Za-z0-9][A-Za-z0-9+/]{15,}={0,2}"
                r"(?![A-Za-z0-9+/=_-])",)
    triggers = (r"[^A-Za-z0-9+/=_-][A-Za-z0-9][A-Za-z0-9+/]{15,}={0,2}[^A-Za-z0-9+/=_-]",)

    def decode(self, value: str) -> str | None:
        if len(value) % 4:
            return None
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
        return text if printable == len(text) else None


_USER_PASSWORD = re.compile(r"[^\s:]{1,128}:[^\s]{4,512}")


def is_user_password(decoded: str) -> bool:
    """Decoded base64 that is ``user:password`` (HTTP basic auth, a Docker ``auth`` entry): the
    token is a credential even though no detector fires on the decoded text."""
    return _USER_PASSWORD.fullmatch(decoded) is not None and not decoded.startswith(("http:", "https:"))


JSON_KEY_STEMS = (r"pass|pwd|pw|secret|token|cred|auth|cookie|sig|otp|pin|key|dsn|conn|mail|phone|tel|mobile|fax"
                  r"|msisdn|ssn|social|card|pan|cc|cvv|cvc|iban")
"""Substrings of every name the name rules know (tested): a JSON text without any of them in a
key, a ``name``/``key`` value or a ``--flag`` has nothing for a name rule."""
_STEM_LITERALS = tuple(JSON_KEY_STEMS.split("|"))


class JsonKeyHint(Detector):
    """A JSON key (or ``{"name": ...}`` pair, or ``"--flag"``) that a name rule may mask: the
    engine parses the string, or walks the document, and applies the rules.

    Caught: ``{"customer": {"ssn": "536221234"}}`` (the key, not the nine digits, says SSN)
    Passed: ``{"count": 3}``
    """

    type = "json_key"
    hint = True
    ignore_case = True
    literals = (_STEM_LITERALS, _STEM_LITERALS, _STEM_LITERALS)
    triggers = (r"(?:" + JSON_KEY_STEMS + r")[^\"\n]*\"[ \t\r\n]*:",)
    patterns = (
        r"\"[^\"\n]*(?:" + JSON_KEY_STEMS + r")[^\"\n]*\"[ \t\r\n]*:",
        r"\"(?:name|key)\"[ \t\r\n]*:[ \t\r\n]*\"[^\"\n]*(?:" + JSON_KEY_STEMS + r")",
        r"\"-[^\"\n]*(?:" + JSON_KEY_STEMS + r")",
    )


class JsonEscapeHint(Detector):
    """JSON escapes (``\\u0040``, ``\\/``) can hide a value from a text scan: parse it instead.

    Caught: ``{"url": "https:\\/\\/app:Wq9xZ2pL@db.internal\\/orders"}``
    Passed: ``{"url": "https://db.internal/orders"}``
    """

    type = "json_escape"
    hint = True
    literals = (("\\u", "\\/"),)
    patterns = (r"\\u[0-9A-Fa-f]{4}|\\/",)


JSON_START = re.compile(r"\s*[\[{]")
