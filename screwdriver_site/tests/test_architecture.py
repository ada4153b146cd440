"""The structure drawn from the imports: layers that only look down, and no circle at all."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
from django.conf import settings

APPS = ("builds", "executors", "notifications", "pipelines", "scm", "screwdriver_site")


def _production_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph(*APPS)
    modules = {m for m in graph.modules if not {"tests", "migrations"} & set(m.split("."))}
    return {
        m: {d for d in graph.find_modules_directly_imported_by(m) if d in modules} for m in modules
    }


def _circles(imports: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's strongly connected components, without recursion.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports[child]))))
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
                if len(component) > 1 or node in imports[node]:
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_ours_takes_part_in_an_import_circle() -> None:
    assert _circles(_production_graph()) == []


def test_the_layers_contract_holds_with_no_exceptions() -> None:
    config = Path(settings.BASE_DIR) / ".importlinter"
    assert "ignore_imports" not in config.read_text()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(config)],
        cwd=settings.BASE_DIR,
        env={"PYTHONPATH": str(settings.BASE_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _is_our_module(base: Path, dotted: str) -> bool:
    path = base.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_names_taken(base: Path, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    taken = []
    modules: set[str] = set()  # local names bound to modules of ours
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in APPS:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    taken.append(f"{node.module}.{alias.name}")
                if _is_our_module(base, f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in APPS and alias.asname:
                    modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            taken.append(f"{node.value.id}.{node.attr}")
    return [f"{path.relative_to(base)}: {name}" for name in taken]


def test_no_module_takes_a_private_name_from_another() -> None:
    base = Path(settings.BASE_DIR)
    taken = []
    for app in APPS:
        for path in sorted((base / app).rglob("*.py")):
            if not {"migrations"} & set(path.relative_to(base).parts):
                taken += _private_names_taken(base, path)
    assert taken == []
