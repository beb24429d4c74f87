"""The package's shape, as docs/architecture.md describes it: few flat modules, short modules
and functions, so the next change has one small place to go."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "maskcls"
MAX_FLAT, MAX_MODULE_LINES, MAX_FUNCTION_LINES = 10, 350, 60


def test_at_most_ten_modules_sit_directly_in_the_package():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(flat) <= MAX_FLAT, flat


def test_no_module_and_no_function_is_too_long_to_read_at_once():
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name}(): {lines} lines")
    assert not long, long
