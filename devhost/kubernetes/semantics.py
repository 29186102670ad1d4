"""API semantics the stand-in needs beyond storage: label and field selectors, and the PATCH
content types (RFC 7386 merge, strategic merge by list-item name, and the apply body)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re
import time
from typing import Any

import kmock
import yaml
from kmock import KubernetesError


class BadRequestError(KubernetesError):
    def __init__(self, message: str) -> None:
        super().__init__(status=400, reason="BadRequest", message=message, details={})


# --- selectors ---
_REQUIREMENT = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*"
                          r"(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def parse_label_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """``a=b,c!=d,e in (x,y),!f,g`` -> [(key, op, values)]; raises 400 on anything else."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    out = []
    for part in parts:
        m = _REQUIREMENT.match(part)
        if not m:
            raise BadRequestError(f"unable to parse requirement: {part!r}")
        neg, key, op, value, set_op, values = m.groups()
        if neg and (op or set_op):
            raise BadRequestError(f"unable to parse requirement: {part!r}")
        if neg:
            out.append((key, "!exists", set()))
        elif op:
            out.append((key, "!=" if op == "!=" else "=", {value}))
        elif set_op:
            out.append((key, set_op, {v.strip() for v in values.split(",") if v.strip()}))
        else:
            out.append((key, "exists", set()))
    return out


def matches_labels(labels: dict[str, str], requirements: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        if (op == "exists" and not present) or (op == "!exists" and present):
            return False
        if op in ("=", "in") and labels.get(key) not in values:
            return False
        if op in ("!=", "notin") and present and labels[key] in values:
            return False
    return True


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    out = []
    for part in text.split(","):
        m = re.match(r"^([A-Za-z0-9_.]+)(==|=|!=)(.*)$", part.strip())
        if not m:
            raise BadRequestError(f"invalid field selector: {part!r}")
        out.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return out


def field_matches(obj: dict[str, Any], path: str, equal: bool, value: str) -> bool:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    actual = "" if current is None else str(current).lower() if isinstance(current, bool) else str(current)
    return (actual == value) == equal


# --- patches ---
def patch_body(request: kmock.Request, content_type: str) -> Any:
    try:
        if content_type == "application/apply-patch+yaml":
            return yaml.safe_load(request.text)
        return json.loads(request.text)
    except (ValueError, yaml.YAMLError):
        raise BadRequestError("the patch body is not valid") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Merge patch, except that lists of named objects (containers, env, ports) merge by name."""
    if isinstance(patch, dict):
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        return result
    if isinstance(patch, list) and isinstance(target, list) and patch and \
            all(isinstance(i, dict) and "name" in i for i in patch + target):
        merged = {i["name"]: copy.deepcopy(i) for i in target}
        for item in patch:
            merged[item["name"]] = strategic_merge(merged.get(item["name"]), item)
        return list(merged.values())
    return copy.deepcopy(patch)


def now_iso(offset: float = 0.0) -> str:
    """Kubernetes' timestamp format, seconds resolution, UTC."""
    return dt.datetime.fromtimestamp(time.time() + offset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: dict[str, Any]) -> str:
    """The pod-template-hash the ReplicaSet controller derives (stable per template)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digest[i:i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))
