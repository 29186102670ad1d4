"""Request bodies as JSON, refused precisely (400) before parsing can cost anything.

``json.loads`` on hostile input fails in ways that are not "invalid JSON": 100,000 nested ``[``
exhausts the recursion limit, a 5,000-digit integer exceeds Python's integer-string limit, ``1e999``
silently becomes infinity, ``NaN`` is accepted, a repeated key silently wins. Each would surface as
a 500 or as a value the caller did not mean. So a body is first checked in one linear pass over
its text (C-speed regular expressions, no recursion), then parsed strictly:

- strict UTF-8 (RFC 8259 §8.1), no BOM: otherwise ``invalid_json``;
- nesting at most ``MAX_DEPTH`` arrays/objects deep: otherwise ``body_too_deep``;
- a number at most ``MAX_NUMBER_CHARS`` long and finite as a double: otherwise ``number_too_long``;
- no ``NaN``/``Infinity`` literals, no repeated key in an object: otherwise ``invalid_json``;
- no NUL character and no lone surrogate (``"\\ud800"``) in any string or key: otherwise
  ``invalid_text`` (neither is text a database, a cluster or an auditor can take).

The journal records anything up to ``broker.journal._canonical.MAX_DEPTH`` levels in full; a body
this module accepts always fits (tests hold the two limits together).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from broker.problems import BadRequest

MAX_DEPTH = 64  # a Kubernetes manifest nests ~10 levels, a CRD's schema ~30
MAX_NUMBER_CHARS = 64  # a double needs 24 characters, a 128-bit integer 40

# A string token, possessive so it never backtracks; an unterminated one runs to the end of the
# text instead of failing (a failed match retried at every later quote would be quadratic).
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\Z)', re.DOTALL)
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER_CHARS + 1},}}")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")  # a decoded str never holds a surrogate *pair*


def parse_json(raw: bytes) -> Any:
    """``raw`` as a JSON value, or ``BadRequest`` saying exactly what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The body is not UTF-8 (byte {exc.start} cannot start or continue a character); send "
                         "JSON as UTF-8.", code="invalid_json") from exc
    if text.startswith("\ufeff"):
        raise BadRequest("The body starts with a byte order mark; send JSON without one.", code="invalid_json")
    _check_shape(text)
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    except RecursionError as exc:  # unreachable after _check_shape; fail closed all the same
        raise _too_deep() from exc
    _check_text(value)
    return value


def _check_shape(text: str) -> None:
    skeleton = _STRING.sub('""', text)
    long_number = _LONG_NUMBER.search(skeleton)
    if long_number:
        raise BadRequest(f"A number in the body is {len(long_number[0])} characters long; at most "
                         f"{MAX_NUMBER_CHARS} are accepted (send longer values as strings).", code="number_too_long")
    brackets = _NOT_BRACKET.sub("", skeleton)
    if len(brackets) > MAX_DEPTH and max(accumulate(map(_STEP.__getitem__, brackets))) > MAX_DEPTH:
        raise _too_deep()


def _too_deep() -> BadRequest:
    return BadRequest(f"The body nests arrays and objects more than {MAX_DEPTH} levels deep.", code="body_too_deep")


def _no_constant(name: str) -> Any:
    raise BadRequest(f"The body contains {name}, which is not JSON (RFC 8259 has no such number).",
                     code="invalid_json")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadRequest(f"The number {literal[:20]} is too large for a double.", code="number_too_long")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BadRequest(f"The key {json.dumps(repeated[:40])} appears twice in one object; send it once.",
                         code="invalid_json")
    return value


def _check_text(value: Any) -> None:
    """No NUL and no lone surrogate in any string or key (iterative: depth is bounded, still no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = (item,)
        elif isinstance(item, dict):
            strings = tuple(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            bad = _BAD_TEXT.search(text)
            if bad:
                what = "a NUL character" if bad[0] == "\x00" else f"a lone surrogate (U+{ord(bad[0]):04X})"
                raise BadRequest(f"A string in the body contains {what}, which is not text; remove it.",
                                 code="invalid_text")
