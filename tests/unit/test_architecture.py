"""The folder layout is the architecture: the switch stands alone, the mock banks know the switch
only over HTTP, nothing below the lab imports the lab, and no import hides a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "switch", "banks", "register", "scenarios", "loadtests", "switchlab",
            "conformance")
# What each package may import from the project, besides itself.
ALLOWED = {
    "protocol": set(),
    "switch": {"protocol"},
    "banks": {"protocol"},
    "register": {"protocol"},  # the population register: its own service, beside the switch
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Module names an import statement may load (for `from a import b`, both a and a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = "." * node.level + (node.module or "")
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports when it is imported (module-level imports)."""
    modules = _modules()
    return {name: {imported for node in ast.parse(path.read_text(encoding="utf-8")).body
                   if isinstance(node, ast.Import | ast.ImportFrom)
                   for imported in _imported(node) if imported in modules and imported != name}
            for name, path in modules.items()}


def test_importing_the_switch_loads_nothing_of_the_lab() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, switch.app, switch.__main__; print(' '.join("
         "sorted({m.split('.')[0] for m in sys.modules})))"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert {"banks", "register", "switchlab", "scenarios", "loadtests"}.isdisjoint(loaded), loaded
    assert {"switch", "protocol"} <= set(loaded)


def test_each_package_imports_only_what_lies_below_it() -> None:
    for module, imports in _graph().items():
        package = module.split(".")[0]
        if package not in ALLOWED:
            continue
        outside = {m for m in imports if m.split(".")[0] not in ALLOWED[package] | {package}}
        assert not outside, f"{module} imports {sorted(outside)}"


def test_only_the_command_line_imports_the_conformance_suite() -> None:
    """conformance/ sits at the lab's level: the switch, the banks and the lab it starts
    (world, servers) know nothing of it."""
    importers = {module for module, imports in _graph().items()
                 if not module.startswith("conformance")
                 and any(m.split(".")[0] == "conformance" for m in imports)}
    assert importers == {"switchlab.cli"}, importers


def test_no_import_hides_inside_a_function() -> None:
    """A project import inside a function is how a cycle hides: there are none."""
    hidden = []
    for name, path in _modules().items():
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{name}:{node.lineno} imports {_imported(node)[0]}"
                           for node in ast.walk(function)
                           if isinstance(node, ast.Import | ast.ImportFrom)
                           and _imported(node)[0].lstrip(".").split(".")[0] in (*PACKAGES, "")]
    assert not hidden, hidden


def test_modules_import_each_other_without_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                cycle = [*path[path.index(imported):], imported] if imported in path else [
                    module, imported]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
