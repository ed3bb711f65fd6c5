"""The folder layout is the architecture: the switch stands alone, the mock banks know the switch
only over HTTP, nothing below the lab imports the lab, and no import hides a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "switch", "banks", "register", "scenarios", "loadtests", "lab", "switchlab",
            "conformance", "sim")
# What each package may import from the project, besides itself.
ALLOWED = {
    "protocol": set(),
    "switch": {"protocol"},
    "banks": {"protocol"},
    "register": {"protocol"},  # the population register: its own service, beside the switch
    "sim": {"protocol", "switch"},  # the simulator drives the switch's core, nothing else
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
    assert {"banks", "register", "lab", "switchlab", "scenarios", "loadtests", "sim"}.isdisjoint(
        loaded), loaded
    assert {"switch", "protocol"} <= set(loaded)


def test_each_package_imports_only_what_lies_below_it() -> None:
    for module, imports in _graph().items():
        package = module.split(".")[0]
        if package not in ALLOWED:
            continue
        outside = {m for m in imports if m.split(".")[0] not in ALLOWED[package] | {package}}
        assert not outside, f"{module} imports {sorted(outside)}"


def test_nothing_below_the_command_imports_it() -> None:
    """switchlab/ is the command, on top of everything: the lab (lab/), scenarios, load tests and
    conformance stand beside or below it and never import it (issue #21's two floors)."""
    importers = {module for module, imports in _graph().items()
                 if not module.startswith("switchlab")
                 and any(m.split(".")[0] == "switchlab" for m in imports)}
    assert not importers, importers


def test_only_the_command_line_imports_the_conformance_suite() -> None:
    """conformance/ sits at the lab's level: the switch, the banks and the lab it starts
    (world, servers) know nothing of it."""
    importers = {module for module, imports in _graph().items()
                 if not module.startswith("conformance")
                 and any(m.split(".")[0] == "conformance" for m in imports)}
    assert importers == {"switchlab.cli"}, importers


def test_only_the_command_line_imports_the_simulator() -> None:
    """sim/ stands beside the lab: the switch never imports it (held above), nor does any
    other package but the command."""
    importers = {module for module, imports in _graph().items()
                 if not module.startswith("sim")
                 and any(m.split(".")[0] == "sim" for m in imports)}
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


# The switch's memory (switch/book.py): what only the book changes. Attribute names; a write is
# an assignment to one (or to an item of one), or a call of a method on one that is not a read.
BOOK_STATE = {"positions", "net_vnd", "reserved_vnd", "cycle_id", "known_ids", "in_flight",
              "taking", "returning", "breakers", "signed_off", "position_limit_vnd",
              "outcome", "admin_changing"}
READS = {"get", "items", "values", "keys", "copy", "done", "admits", "headroom_vnd"}
BOOK_ONLY_CALLS = {"advance"}  # Transfer.advance: the one change of a transfer's state
# Types whose own methods change their own fields (the book calls those methods).
OWN_FIELDS = {"switch.positions", "switch.participants", "switch.transfer"}
# Values that share the book's field names but are none of its memory: escrow slices
# (issue #24) are arithmetic on values of their own, played by the PostgreSQL journal in SQL
# and by the simulator; no switch process holds them.
NOT_THE_BOOK_S = {"switch.escrow"}


def _names_state(node: ast.expr) -> bool:
    """Whether `node` is, or is an item or attribute of, one of the book's attributes."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr in BOOK_STATE:
            return True
        node = node.value
    return False


def _own_field(node: ast.expr) -> bool:
    while isinstance(node, ast.Subscript | ast.Attribute) and not (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
        node = node.value
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
        node.value.id == "self")


def _writes_of_the_book_s_state(module: str, tree: ast.AST) -> list[str]:
    found = []
    constructors = {id(node) for function in ast.walk(tree)
                    if isinstance(function, ast.FunctionDef) and function.name == "__init__"
                    for node in ast.walk(function)}
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if not _names_state(target):
                continue
            if _own_field(target) and (module in OWN_FIELDS or id(node) in constructors):
                continue
            found.append(f"{module}:{node.lineno} assigns {ast.unparse(target)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func
            changes_state = method.attr not in READS and _names_state(method.value) and not (
                _own_field(method.value) and (module in OWN_FIELDS or id(node) in constructors))
            if changes_state or (method.attr in BOOK_ONLY_CALLS and module not in OWN_FIELDS):
                found.append(f"{module}:{node.lineno} calls {ast.unparse(method)}")
    return found


def test_only_the_book_writes_the_switch_s_memory() -> None:
    """Issue #21: one writer. Positions, reservations, the transfers in flight and being
    taken, the ids known and returning, the open cycle, breakers, limits, sign-offs and a
    transfer's state change in switch/book.py alone; every other module of the switch asks
    the book."""
    found = [write for module, path in _modules().items()
             if module.startswith("switch.") and module != "switch.book"
             and module not in NOT_THE_BOOK_S
             for write in _writes_of_the_book_s_state(module,
                                                      ast.parse(path.read_text("utf-8")))]
    assert not found, found


def test_the_check_of_the_book_s_writers_sees_a_write() -> None:
    """The check above fails on writes as they were before the book (issue #21)."""
    before = ast.parse(
        "def f(state, transfer, participant):\n"
        "    state.in_flight[transfer.end_to_end_id] = transfer\n"
        "    state.positions.release(transfer.debtor_bic, 5)\n"
        "    state.cycle_id += 1\n"
        "    transfer.advance('SETTLED')\n"
        "    participant.position_limit_vnd = 5\n"
        "    state.known_ids.discard('x')\n"
        "    transfer.outcome.set_result(None)\n")
    assert len(_writes_of_the_book_s_state("switch.intake", before)) == 7
    reads = ast.parse("def f(state):\n    return state.in_flight.get('x'), len(state.known_ids)\n")
    assert _writes_of_the_book_s_state("switch.intake", reads) == []
