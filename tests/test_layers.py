"""One direction of imports: no module of actorsim imports, however indirectly, a module that imports it.

Every `import` counts, as a reader meets it: at module level, inside
functions and under `TYPE_CHECKING`. The layers themselves (which layer may
import which) are import-linter's contract in pyproject.toml, checked here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import actorsim

PACKAGE = Path(actorsim.__file__).parent
PROJECT = PACKAGE.parent

OPTIONAL_PACKAGES = ("gradio", "ray", "thespian", "opentelemetry")
"""What actorsim may import inside a function: an optional package, loaded only when it is asked for."""
NEEDS_OPTIONAL = ("actorsim.ui._gradio", "actorsim._telemetry.live", "actorsim._telemetry.sdk")
"""actorsim's modules that import an optional package at their top: imported inside a function too."""


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name, not `__init__`)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path, tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Each import statement with each dotted name it imports (`from a import b` gives `a.b`)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                yield node, f"{base}.{alias.name}"


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Which modules each module imports: a name is the longest module it names (`a.b.C` is module `a.b`)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for _, name in imported_names(module, path, tree):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the modules along it, the first again at the end; None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


class TestImportGraph:
    def test_actorsim_imports_form_no_cycle(self) -> None:
        """No module reaches itself through the modules it imports, counting every import in its text."""
        cycle = find_cycle(import_graph(module_files()))
        assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

    def test_the_checker_finds_a_cycle_and_names_its_modules(self, tmp_path: Path) -> None:
        """A cycle hidden in a function and under TYPE_CHECKING is found, and printed in order."""
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "low.py").write_text("def f():\n    from pkg import high\n")
        (package / "high.py").write_text(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.middle import Thing\n"
        )
        (package / "middle.py").write_text("from .low import f\n")
        graph = import_graph(module_files(package))
        assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.middle"] == {"pkg.low"}
        assert find_cycle(graph) == ["pkg.high", "pkg.middle", "pkg.low", "pkg.high"]
        (package / "low.py").write_text("")
        assert find_cycle(import_graph(module_files(package))) is None

    def test_imports_inside_functions_are_only_of_optional_packages(self) -> None:
        """An import below module level loads an optional package (or actorsim's module that needs one), and a
        comment beside it says so."""
        misplaced = []
        for module, path in module_files().items():
            source = path.read_text()
            tree = ast.parse(source)
            module_level = {id(node) for node in _module_level_imports(tree.body)}
            lines = source.splitlines()
            for node, name in imported_names(module, path, tree):
                if id(node) in module_level:
                    continue
                needs_optional = {name, name.rsplit(".", 1)[0]} & set(NEEDS_OPTIONAL)  # a module, or a name from one
                optional = name.split(".")[0] in OPTIONAL_PACKAGES or needs_optional
                commented = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith("#")
                if not (optional and commented):
                    misplaced.append(f"{path.relative_to(PROJECT)}:{node.lineno}: {name}")
        assert misplaced == []


def _module_level_imports(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Imports run when the module is imported: at the top, or in a top-level `if`/`try` (TYPE_CHECKING, a fallback)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try):
            yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
            for handler in getattr(node, "handlers", ()):
                yield from _module_level_imports(handler.body)


def test_every_module_imports_only_its_own_layer_or_lower() -> None:
    """import-linter's layers contract (pyproject.toml) holds, and declares every top-level module."""
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
