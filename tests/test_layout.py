"""The house rules of the layout: imports run one way, no circles, small top levels.

Read from the source with ``ast`` (every import, including those inside functions), so a new
module that breaks a rule fails here before a reader trips over it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).parents[1]
PACKAGES = ("backbones", "configs", "datamodules", "lightning_modules")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for file in (REPO / package).rglob("*.py"):
            parts = file.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return modules


def _imports() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from a.b import c`` counts a.b.c when it is one)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = defaultdict(set)
    for name, file in modules.items():
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def _unit(module: str) -> str:
    """The sub-package a module belongs to (``lightning_modules.pretrain``), or the module itself at a top level."""
    parts = module.split(".")
    if len(parts) >= 2 and (REPO / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_nothing_imports_up_into_lightning_modules() -> None:
    upward = sorted((a, b) for a, targets in _imports().items() for b in targets
                    if a.split(".")[0] in ("datamodules", "backbones", "configs") and b.startswith("lightning_modules"))
    assert upward == []


def test_backbones_import_no_other_project_package() -> None:
    outward = sorted((a, b) for a, targets in _imports().items() for b in targets
                     if a.startswith("backbones") and not b.startswith("backbones"))
    assert outward == []


def test_no_import_circle_between_modules_or_sub_packages() -> None:
    graph = _imports()
    assert _cycles(graph) == []
    units: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph.items():
        units[_unit(a)].update(_unit(b) for b in targets if _unit(b) != _unit(a))
    assert _cycles(units) == []


def test_the_method_is_imported_by_the_tools_never_the_reverse() -> None:
    order = ["pretrain", "evaluation", "downstream", "pictures", "commands"]  # each may import those before it
    wrong = []
    for a, targets in _imports().items():
        for b in targets:
            sa, sb = _unit(a).split("."), _unit(b).split(".")
            if sa[0] == sb[0] == "lightning_modules" and len(sa) == len(sb) == 2 and sa[1] in order and sb[1] in order:
                if order.index(sb[1]) > order.index(sa[1]):
                    wrong.append((a, b))
    assert wrong == []


def test_top_levels_stay_small() -> None:
    assert len(list((REPO / "lightning_modules").glob("*.py"))) <= 12
    assert len(list((REPO / "datamodules").glob("*.py"))) <= 14
    for package in (REPO / "lightning_modules").iterdir(), (REPO / "datamodules").iterdir():
        for folder in package:
            if folder.is_dir() and folder.name != "__pycache__":
                doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
                assert len(doc.split()) >= 15, f"{folder}: its __init__.py should say what lives there"
