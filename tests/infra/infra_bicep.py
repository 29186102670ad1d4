"""Reads the Bicep in ``infra/`` through pycep-parser, the parser checkov uses.

No Bicep compiler runs here, so the tests read the templates' structure: resources with their
bodies (conditions and loops unwrapped), module calls, and the objects that become app settings,
resolved through variables, ``union()`` and the parameters a module is called with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"


@cache
def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@dataclass(frozen=True)
class Resource:
    file: Path
    symbol: str
    type: str
    body: dict[str, Any]
    condition: Any
    loop: Any
    existing: bool

    def get(self, dotted: str) -> Any:
        """``body`` value at a dotted path such as ``properties.siteConfig.minTlsVersion``."""
        value: Any = self.body
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"{self.symbol} ({self.file.name}) has no {dotted}")
            value = value[part]
        return value


def _unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """pycep nests conditional and looped bodies: ``{condition, config}`` / ``{loop_type, config}``."""
    condition = loop = None
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        condition = config.get("condition", condition)
        loop = config.get("loop_type", loop)
        config = config["config"]
    return config, condition, loop


def resources(type_: str | None = None, *, include_existing: bool = False) -> list[Resource]:
    found = []
    for path in bicep_files():
        for symbol, spec in parse(path).get("resources", {}).items():
            if type_ is not None and spec["type"].lower() != type_.lower():
                continue
            if spec.get("existing") and not include_existing:
                continue
            body, condition, loop = _unwrap(spec["config"])
            found.append(Resource(path, symbol, spec["type"], body, condition, loop, bool(spec.get("existing"))))
    return found


def resource(type_: str, symbol: str | None = None) -> Resource:
    matches = [r for r in resources(type_) if symbol is None or r.symbol == symbol]
    assert len(matches) == 1, f"expected one {type_} {symbol or ''}, found {[m.symbol for m in matches]}"
    return matches[0]


def modules(path: Path = MAIN) -> dict[str, dict[str, Any]]:
    """Module calls in ``path``: symbol -> {"path", "condition", "params"}."""
    calls = {}
    for symbol, spec in parse(path).get("modules", {}).items():
        body, condition, _ = _unwrap(spec["config"])
        calls[symbol] = {"path": spec["detail"]["path"], "condition": condition, "params": body.get("params", {})}
    return calls


def module_call_for(path: Path) -> dict[str, Any]:
    """The one call of module ``path`` from main.bicep."""
    relative = path.relative_to(INFRA).as_posix()
    calls = [call for call in modules().values() if call["path"] == relative]
    assert len(calls) == 1, f"{relative} is called {len(calls)} times from main.bicep"
    return calls[0]


def render(expr: Any) -> Any:
    """A pycep expression back in compact Bicep-like text, for comparisons and messages.

    pycep names functions in snake case (``subscription_resource_id``, ``resource_group``)."""
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        operands = op["operands"]
        if op["type"] == "property_accessor":
            return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
        if op["type"] == "index_accessor":
            return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
        if op["type"] == "conditional":
            return (f"{render(operands['condition'])} ? {render(operands['true_value'])} : "
                    f"{render(operands['false_value'])}")
        return f"{op['type']}({', '.join(str(render(v)) for v in operands.values())})"
    if isinstance(expr, dict) and "function" in expr:
        fn = expr["function"]
        params = [value for value in (fn.get("parameters") or {}).values() if value is not None]
        return f"{fn['type']}({', '.join(str(render(v)) for v in params)})"
    if isinstance(expr, dict):
        return {key.strip("'"): render(value) for key, value in expr.items()}
    if isinstance(expr, list):
        return [render(value) for value in expr]
    return expr


def resolve_object(expr: Any, path: Path, call_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object ``expr`` evaluates to in ``path``: literal objects, variables, ``union()`` of them,
    and module parameters (looked up in ``call_params``, the caller's arguments, resolved in main)."""
    if isinstance(expr, dict) and "function" in expr:
        fn = expr["function"]
        assert fn["type"] == "union", f"cannot resolve {fn['type']}() in {path.name}"
        merged: dict[str, Any] = {}
        for arg in fn["parameters"].values():
            merged.update(resolve_object(arg, path, call_params))
        return merged
    if isinstance(expr, dict) and "operator" not in expr:
        return expr
    if isinstance(expr, str):
        parsed = parse(path)
        if expr in parsed.get("variables", {}):
            return resolve_object(parsed["variables"][expr]["value"], path, call_params)
        if expr in parsed.get("parameters", {}) and call_params is not None and expr in call_params:
            return resolve_object(call_params[expr], MAIN)
    raise AssertionError(f"cannot resolve {render(expr)!r} to an object in {path.name}")
