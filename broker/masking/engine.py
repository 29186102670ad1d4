"""First masking engine: column-name rules, then content patterns with validators."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_SCAN_CHARS = 1_000_000

_SENSITIVE_COLUMN = re.compile(
    r"(pass(word|wd)?|secret|token|api_?key|credential|private_?key|ssn|dsn|conn(ection)?_?str(ing)?"
    r"|card|pan|iban|email|e_?mail|phone|mobile)", re.IGNORECASE)
_COLUMN_TYPE = [
    (re.compile(r"e_?mail", re.I), "email"), (re.compile(r"phone|mobile", re.I), "phone"),
    (re.compile(r"card|pan", re.I), "card"), (re.compile(r"ssn", re.I), "ssn"),
    (re.compile(r"iban", re.I), "iban"),
]


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_PATTERNS: list[tuple[str, re.Pattern[str], Any]] = [
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"), None),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), None),
    ("connection_string", re.compile(
        r"(?i)\b(?:[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@[^\s]+"
        r"|(?:[A-Za-z][A-Za-z ]*=[^;\s]*;)*(?:password|pwd|accountkey|sharedaccesskey)=[^;\s]+"
        r"(?:;[A-Za-z][A-Za-z ]*=[^;\s]*)*)"), None),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), None),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), None),
    ("api_key", re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b|\bsk-[A-Za-z0-9_-]{20,}\b"), None),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), None),
    ("card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
     lambda m: _luhn(re.sub(r"\D", "", m)) and 13 <= len(re.sub(r"\D", "", m)) <= 19),
    ("phone", re.compile(r"(?<![\w.])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]?\d{3,4}\b"), None),
    ("secret_assignment", re.compile(
        r"(?i)\b(?:password|passwd|secret|api_?key|token)\s*[:=]\s*[\"']?[^\s\"',;]{4,}"), None),
]


@dataclass(frozen=True)
class MaskingRules:
    """Per-target additions: columns to mask whole, name patterns, and columns to keep."""

    columns: tuple[str, ...] = ()
    column_patterns: tuple[str, ...] = ()
    keep_columns: tuple[str, ...] = ()


@dataclass
class MaskedTable:
    rows: list[list[Any]]
    counts: dict[str, int] = field(default_factory=dict)


class Masker:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the masking key must be at least 16 bytes")
        self._key = key

    def placeholder(self, kind: str, value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        digest = hmac.new(self._key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:6]
        return f"[{kind}:{digest}]"

    def _column_kind(self, name: str, rules: MaskingRules) -> str | None:
        if name in rules.keep_columns:
            return None
        if name in rules.columns or any(re.search(p, name) for p in rules.column_patterns):
            return "column"
        if _SENSITIVE_COLUMN.search(name):
            for pattern, kind in _COLUMN_TYPE:
                if pattern.search(name):
                    return kind
            return "secret"
        return None

    def mask_text(self, text: str, counts: Counter[str] | None = None) -> str:
        counts = counts if counts is not None else Counter()
        if len(text) > MAX_SCAN_CHARS:
            counts["oversized"] += 1
            return self.placeholder("oversized", text)
        for kind, pattern, validator in _PATTERNS:
            def repl(m: re.Match[str], kind: str = kind, validator: Any = validator) -> str:
                if validator is not None and not validator(m.group(0)):
                    return m.group(0)
                counts[kind] += 1
                return self.placeholder(kind, m.group(0))
            text = pattern.sub(repl, text)
        return text

    def mask_document(self, value: Any, counts: Counter[str]) -> Any:
        if isinstance(value, str):
            return self.mask_text(value, counts)
        if isinstance(value, list):
            return [self.mask_document(v, counts) for v in value]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                kind = self._column_kind(str(k), MaskingRules())
                if kind and v is not None:
                    counts[kind] += 1
                    out[k] = self.placeholder(kind, v)
                else:
                    out[k] = self.mask_document(v, counts)
            return out
        return value

    def mask_table(self, columns: list[str], rows: list[list[Any]],
                   rules: MaskingRules | None = None) -> MaskedTable:
        rules = rules or MaskingRules()
        counts: Counter[str] = Counter()
        kinds = [self._column_kind(c, rules) for c in columns]
        out: list[list[Any]] = []
        for row in rows:
            masked = []
            for kind, value in zip(kinds, row, strict=False):
                if value is None:
                    masked.append(None)
                elif kind:
                    counts[kind] += 1
                    masked.append(self.placeholder(kind, value))
                else:
                    masked.append(self.mask_document(value, counts))
            out.append(masked)
        return MaskedTable(out, dict(counts))
