"""JSON payload conventions of the Durable extension (what is a JSON text, what is a value).

The extension keeps inputs, outputs and results as JSON *texts* and hands them on as JSON
*values* (Newtonsoft ``JToken``) where its API does. Mirroring that exactly matters, because the
Python SDK and client decode one level and no more: e.g. ``client.raise_event(id, "x", {"a": 1})``
reaches the orchestrator as the string ``'{"a": 1}'``, in Azure as here.
"""

from __future__ import annotations

import json
from typing import Any


def token(text: str | None) -> Any:
    """``ParseToJToken``: a JSON text as a value; non-JSON text stays a string; None stays None."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except ValueError:
        return text


def text(value: Any) -> str:
    """A JSON value serialised back to the JSON text the extension would store."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def same_json(a: str | None, b: str | None) -> bool:
    """Two JSON texts that encode the same value (serialisers may differ in spacing)."""
    if a == b:
        return True
    try:
        return json.loads(a or "null") == json.loads(b or "null")
    except ValueError:
        return False
