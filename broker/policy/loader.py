"""Read a policy file: YAML (duplicate keys refused), then the JSON Schema, then the typed model.

Every problem is reported at once, each with its place in the file (``rules[2].when.risk[0]``),
so an operator fixes a policy in one pass and the broker never starts with a half-valid one.
The version is the SHA-256 of the exact bytes: the journal can always say which file decided.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import ValidationError

from broker.policy.model import PolicyDocument

SCHEMA_PATH = Path(__file__).with_name("policy.schema.json")


class PolicyError(ValueError):
    """The policy file is invalid; the broker does not start with it."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would silently keep the last one)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def parse_policy(data: bytes, source: str) -> tuple[PolicyDocument, str]:
    """The validated document and its version (``sha256:`` + 16 hex digits of the bytes)."""
    try:
        raw = yaml.load(data, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raise PolicyError(f"{source}: the policy is empty (it needs at least 'version: 1' and 'rules')")
    problems = schema_problems(raw)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PolicyError(f"{source}: invalid policy ({len(problems)} problem(s)):\n{listing}")
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        listing = "\n".join(f"  - {_pydantic_place(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                            for e in exc.errors())
        raise PolicyError(f"{source}: invalid policy:\n{listing}") from exc
    return document, "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def schema_problems(raw: Any) -> list[str]:
    """Every JSON Schema violation, each as ``place: what is wrong``, in file order."""
    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_place(e.absolute_path)}: {_message(e)}" for e in errors]


def _place(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _pydantic_place(loc: tuple[Any, ...]) -> str:
    return _place([p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))])


def _message(error: SchemaError) -> str:
    if error.validator == "not" and isinstance(error.validator_value, dict):
        required = error.validator_value.get("required")
        if required == ["approval"]:
            return "'approval' only goes with effect 'approve'"
        if required:
            return f"give only one of {', '.join(repr(r) for r in required)}"
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key(s)")
    if error.validator == "oneOf" and any("pattern" in option for option in error.validator_value):
        return f"{error.instance!r} is not a duration (seconds, or a number with s, m, h or d: 15m, 4h)"
    if error.validator == "oneOf" and "labels" in error.absolute_path:
        return f"{error.instance!r} is not text: quote label values such as yes, no, on, off or numbers"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    return error.message
