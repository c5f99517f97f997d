"""The package's shape: one folder per stage, imports only down the stack, units of readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "digest"
# each stage may import the ones before it
STAGES = ["newsletter", "feeds", "mail", "subscribers", "send", "bounces", "release", "web"]
BASE = {"config", "errors", "fsutil", "i18n", "templating"}  # used by every stage, import no stage
TOP = ["pipeline", "cli", "entry", "__main__"]  # above every stage, in this order
MODULES = sorted(PACKAGE.rglob("*.py"))


def level(module: str) -> int:
    """Where a dotted module name sits in the stack: base modules lowest, the console script highest."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE or parts[1] == "__init__":
        return -1
    if parts[1] in STAGES:
        return STAGES.index(parts[1])
    return len(STAGES) + TOP.index(parts[1])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "digest":
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "digest")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "digest")
    return {name for name in names if name != "digest.__version__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_stack(path):
    me = module_name(path)
    upward = [name for name in imported(path) if level(name) > level(me)]
    assert upward == [], f"{me} imports from above its stage"


def test_every_stage_is_a_folder_with_a_docstring_and_no_imports():
    for stage in STAGES:
        init = PACKAGE / stage / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{stage}/__init__.py says what the stage does"
        assert not any(isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body), (
            f"{stage}/__init__.py imports nothing (the idle cron path stays cheap)"
        )
        assert not (PACKAGE / stage / f"{stage}.py").exists(), f"{stage}/{stage}.py repeats its folder"


def test_stray_modules_belong_to_a_stage():
    top_level = {p.stem for p in PACKAGE.glob("*.py")}
    assert top_level <= BASE | set(TOP) | {"__init__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_class_over_250_lines_and_no_function_over_80(path):
    too_long = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > (250 if isinstance(node, ast.ClassDef) else 80):
                too_long.append(f"{node.name} ({size} lines)")
    assert too_long == []


def test_no_two_modules_import_each_other_even_inside_a_function():
    """A cycle means two modules are one concern split in the wrong place (a lazy import only hides it)."""
    graph = {module_name(path): imported(path) for path in MODULES}
    known = set(graph)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in graph.get(start, ()):
            name = name if name in known else name.rsplit(".", 1)[0]
            if name == goal or (name not in seen and not seen.add(name) and reaches(name, goal, seen)):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert cycles == []
