"""The package's layering: the results store knows nothing of the harness, and the harness's modules form no import
cycle (data flows one way: suite files -> runner -> session -> plugin)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ups"


def imports_of(path: Path) -> set[str]:
    """Every ``ups.*`` module ``path`` imports, at module level or inside functions (a lazy import is still a
    dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ups.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ups."):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_store_imports_nothing_of_the_harness():
    code = (
        "import sys, ups.store.results, ups.store.cli; print([m for m in sys.modules if m.startswith('ups.harness')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_import_cycle_in_the_harness():
    modules = {f"ups.harness.{p.stem}": p for p in (PACKAGE / "harness").glob("*.py") if p.stem != "__init__"}
    graph = {name: sorted(imports_of(path) & set(modules) - {name}) for name, path in modules.items()}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node) :] + [node])
            return
        for dep in graph[node]:
            visit(dep, [*stack, node])

    for name in graph:
        visit(name, [])
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_checking_a_suite_s_files_needs_no_torch():
    """What the session loads before any worker starts (suite, gates, champions) stays free of torch, so a bad file is
    one line within seconds."""
    code = (
        "import sys, ups.harness.plugin, ups.harness.suite_files; "
        "print([m for m in ('torch', 'ups.harness.runner') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
