"""Structural masking for Kubernetes output, applied after the generic masker's scan.

* A ``Secret``'s ``data`` and ``stringData`` values become placeholders whatever their keys are
  called; neither the value nor its base64 leaves the broker.
* ``kubectl.kubernetes.io/last-applied-configuration`` annotations hold a whole object as JSON
  (a Secret's values included): they are parsed and masked the same way.
* Environment variables whose names say they hold a secret (``DATABASE_PASSWORD``, ``API_TOKEN``)
  are masked in pod specs (``{"name": ..., "value": ...}``) and in text (``NAME=value`` lines of
  ``env`` output or logs), which a pattern scan would miss.

Everything else (ConfigMap values, other env values, logs, exec output) is left to the generic
masker's scan, which runs first: running the structural rules last means their placeholders are
final (a generic pattern never re-masks them) and a value the scan missed is still replaced.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Protocol

from broker.masking.placeholder import is_placeholder

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SENSITIVE_NAME = re.compile(r"pass(word|wd)?|secret|token|api_?key|credential|private_?key|conn(ection)?_?str|dsn",
                             re.IGNORECASE)
_ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\n]+)$", re.MULTILINE)


class Placeholders(Protocol):
    def placeholder(self, kind: str, value: Any) -> str: ...


def mask_structure(value: Any, masker: Placeholders, counts: Counter[str]) -> Any:
    """A copy of ``value`` with Secret values and secret-named env values replaced."""
    if isinstance(value, str):
        return _mask_env_lines(value, masker, counts)
    if isinstance(value, list):
        return [mask_structure(v, masker, counts) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    secret = value.get("kind") == "Secret" and value.get("apiVersion", "v1") == "v1"
    for key, item in value.items():
        if secret and key in ("data", "stringData") and isinstance(item, dict):
            out[key] = {k: _hide(masker, counts, v) for k, v in item.items()}
        elif key == "metadata" and isinstance(item, dict):
            out[key] = _metadata(item, masker, counts)
        else:
            out[key] = mask_structure(item, masker, counts)
    if _is_env_var(value):
        out["value"] = _hide(masker, counts, value["value"])
    return out


def _hide(masker: Placeholders, counts: Counter[str], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("[secret:") and is_placeholder(value):
        return value  # known plaintext already gave it the value's own placeholder (and counted it)
    counts["secret"] += 1
    return masker.placeholder("secret", value)


def _is_env_var(value: dict[str, Any]) -> bool:
    return (isinstance(value.get("name"), str) and isinstance(value.get("value"), str) and len(value) <= 3
            and bool(_SENSITIVE_NAME.search(value["name"])))


def _metadata(meta: dict[str, Any], masker: Placeholders, counts: Counter[str]) -> dict[str, Any]:
    out = mask_structure({k: v for k, v in meta.items() if k != "annotations"}, masker, counts)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        masked = {}
        for key, text in annotations.items():
            if key == LAST_APPLIED and isinstance(text, str):
                try:
                    masked[key] = json.dumps(mask_structure(json.loads(text), masker, counts),
                                             separators=(",", ":"))
                except ValueError:
                    masked[key] = _hide(masker, counts, text)
            else:
                masked[key] = mask_structure(text, masker, counts)
        out["annotations"] = masked
    elif "annotations" in meta:
        out["annotations"] = annotations
    return out


def _mask_env_lines(text: str, masker: Placeholders, counts: Counter[str]) -> str:
    if "=" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        if not _SENSITIVE_NAME.search(m["key"]):
            return m[0]
        return f"{m['key']}={_hide(masker, counts, m['value'])}"

    return _ENV_LINE.sub(repl, text)
