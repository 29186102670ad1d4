"""The module graph keeps its shape: no import cycles (counting imports inside functions, which
run later but still tie two modules together), and only the adapters import the Functions SDKs.

The graph is read from the source with ``ast`` so that a deferred ``import`` inside a function
counts; imports under ``if TYPE_CHECKING:`` do not run and are left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("broker", "devhost")
ADAPTERS = ("broker.api", "broker.workflows")  # the only broker packages that may import the Functions SDKs
FUNCTIONS_SDKS = ("azure.functions", "azure.durable_functions")


@cache
def _tree(text: str) -> ast.Module:
    """Parsed once per source text: every test here walks every module (trees are only read)."""
    return ast.parse(text)


def parse(path: Path) -> ast.Module:
    return _tree(path.read_text())


@cache
def _names(text: str) -> tuple[str, ...]:
    return tuple(_imported_names(_tree(text)))


def names_in(path: Path) -> tuple[str, ...]:
    """``_imported_names`` of the file, worked out once per source text."""
    return _names(path.read_text())


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(tree: ast.Module) -> list[str]:
    """Every absolute name an import statement names: ``from a import b`` gives ``a.b``, which is the
    module ``a.b`` when there is one and otherwise a name in ``a``. The edge goes to that module, not
    to the packages above it, whose ``__init__`` files here only re-export."""
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for node in ast.walk(block)}
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    def owner(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in names_in(path):
            target = owner(name)
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)  # a submodule importing its own package is not a cycle
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in list(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    assert cycles(import_graph(_modules(ROOT))) == []


def test_only_the_adapters_import_the_functions_sdks():
    offenders = sorted(
        module for module, path in _modules(ROOT).items()
        if module.startswith("broker") and not module.startswith(ADAPTERS)
        and any(name == sdk or name.startswith(sdk + ".")
                for name in names_in(path) for sdk in FUNCTIONS_SDKS))
    assert offenders == []


@pytest.mark.parametrize("deferred", [False, True])
def test_the_check_finds_a_cycle(tmp_path: Path, deferred: bool):
    """The checker itself: two modules that import each other, once at the top and once inside a
    function; a TYPE_CHECKING import and a submodule importing its package are not cycles."""
    (tmp_path / "broker").mkdir()
    (tmp_path / "broker/__init__.py").write_text("from broker import a\n")
    (tmp_path / "broker/a.py").write_text("import broker\nfrom broker.b import thing\n")
    body = "def f():\n    from broker.a import x\n" if deferred else "from broker import a\n"
    (tmp_path / "broker/b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broker import c\n" + body)
    (tmp_path / "broker/c.py").write_text("from broker.b import thing\n")
    (tmp_path / "devhost").mkdir()
    assert cycles(import_graph(_modules(tmp_path))) == [["broker.a", "broker.b"]]


def test_journal_records_are_built_only_by_the_journal_builders():
    """``JournalRecord(...)`` outside ``broker/journal`` means a record assembled by hand again."""
    offenders = []
    for name, path in _modules(ROOT).items():
        if not name.startswith("broker.") or name.startswith("broker.journal"):
            continue
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if called == "JournalRecord":
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def private_imports(modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(importer, private module) pairs where the importer sits outside the private module's package:
    a module named ``_x`` is an implementation detail of its package, so other packages go through
    the package's public surface."""
    found = []
    for module, targets in import_graph(modules).items():
        for target in targets:
            package, _, leaf = target.rpartition(".")
            if leaf.startswith("_") and not (module == package or module.startswith(package + ".")):
                found.append((module, target))
    return sorted(found)


def test_no_private_module_is_imported_from_another_package():
    assert private_imports(_modules(ROOT)) == []


def test_the_check_finds_a_private_import(tmp_path: Path):
    for package in ("broker", "broker/a", "broker/b", "devhost"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "broker/a/_inner.py").write_text("X = 1\n")
    (tmp_path / "broker/a/user.py").write_text("from broker.a._inner import X\n")  # its own package: fine
    (tmp_path / "broker/b/outsider.py").write_text("from broker.a._inner import X\n")
    assert private_imports(_modules(tmp_path)) == [("broker.b.outsider", "broker.a._inner")]


GRANTS_MAY_USE = {"broker.approvals.requests.ApprovalRequest", "broker.approvals.directory.ApproverDirectory",
                  "broker.approvals.ports.JournalSink", "broker.approvals.ports.Standing",
                  "broker.approvals.service.subject_of"}
"""What ``broker/grants`` takes from the approvals: the request's type, the approver directory, the
journal port, the view's answer and the journal subject of a request; never the request store."""


def test_approvals_and_grants_meet_only_at_declared_ports():
    """One owner per state machine: the approvals never import the grants (not even under
    TYPE_CHECKING), and the grants take only the declared names from the approvals (the approval
    service itself comes in through ``grants.ports.ApprovalRequests``)."""
    modules = _modules(ROOT)
    approvals_to_grants = sorted(
        (name, node.module or "") for name, path in modules.items() if name.startswith("broker.approvals")
        for node in ast.walk(parse(path))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for target in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        if target == "broker.grants" or target.startswith("broker.grants."))
    assert approvals_to_grants == []
    taken = {imported for name, path in modules.items() if name.startswith("broker.grants")
             for imported in names_in(path) if imported.startswith("broker.approvals")}
    assert taken <= GRANTS_MAY_USE, taken - GRANTS_MAY_USE
