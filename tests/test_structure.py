"""The structure ARCHITECTURE.md describes, kept true: floors import only floors below (or their own),
no project import hides inside a function, no import cycles, files and functions stay short.

Parses the sources (nothing is imported), so a violation is named by file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rltk", "rewards", "evals", "benchmarks")
PROJECT = ("rltk", "rewards", "evals", "benchmarks")
FLOORS = ["base", "policy", "rewards", "evals", "trainer", "benchmarks"]
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60


def floor_of(module: str) -> int:
    """The floor of a module by its dotted name (see ARCHITECTURE.md)."""
    if module == "rltk" or module.startswith("rltk.core"):
        return 0
    if module.startswith("rltk.policy") or module == "rltk.models":
        return 1
    top = module.split(".")[0]
    return {"rewards": 2, "evals": 3, "rltk": 4, "benchmarks": 5}[top]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) for every import of a project module in ``path``.
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module of the tree."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    known = {module_name(p) for p in sources()}
    out: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] in PROJECT:
                        out.append((child.lineno, alias.name, in_function))
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, module, path.name == "__init__.py")
                if target.split(".")[0] in PROJECT:
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        out.append((child.lineno, sub if sub in known else target, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def test_the_tree_is_found():
    names = {module_name(p) for p in sources()}
    assert {"rltk.core.errors", "rltk.policy", "rewards.math", "evals.tasks", "rltk.grpo.loop"} <= names


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_and_sit_at_module_level(path):
    me = module_name(path)
    bad = []
    for line, target, in_function in project_imports(path):
        where = f"{path.relative_to(ROOT)}:{line}"
        if in_function:
            bad.append(f"{where}: imports {target} inside a function (imports go at the top of the module)")
        elif floor_of(target) > floor_of(me):
            bad.append(f"{where}: {me} ({FLOORS[floor_of(me)]}) imports {target} ({FLOORS[floor_of(target)]}), a floor above")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {module_name(p): {t for _, t, f in project_imports(p) if not f} for p in sources()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n == m or n not in graph:
                continue
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := dfs(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := dfs(m)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_are_short(path):
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_FILE_LINES}: split it by concern)"
    long = [f"{path.relative_to(ROOT)}:{n.lineno} {n.name}: {n.end_lineno - n.lineno + 1} lines"
            for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_checker_catches_violations(tmp_path, monkeypatch):
    """The checks can fail: an upward import and a function-level import are both reported."""
    fake = ROOT / "rewards" / "_structure_probe.py"
    fake.write_text("import evals\n\ndef f():\n    from rltk.core import errors\n")
    try:
        found = project_imports(fake)
        assert (1, "evals", False) in found and (4, "rltk.core.errors", True) in found
        assert floor_of("evals") > floor_of("rewards._structure_probe")
    finally:
        fake.unlink()
