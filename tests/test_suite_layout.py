"""The test suite's own layout: test modules share helpers through tests/support, never by importing one
another (a test module imported by another runs its module-level setup twice, under two tiers, and ties
the two together), and support imports neither test modules nor conftest.py."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"


def _imported_modules(source: str) -> set[str]:
    """Top-level names of every module an import statement anywhere in `source` imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _is_test_module(name: str) -> bool:
    """pytest's default python_files: test_*.py and *_test.py."""
    return name.startswith("test_") or name.endswith("_test")


def test_the_scan_sees_every_form_of_import():
    source = "import test_a\nimport os, test_b as b\nfrom test_c import x\ndef f():\n    from test_d.sub import y\n"
    assert {m for m in _imported_modules(source) if _is_test_module(m)} == {
        "test_a",
        "test_b",
        "test_c",
        "test_d",
    }


def test_no_test_module_imports_another():
    modules = sorted(TESTS.glob("*.py"))
    assert Path(__file__) in modules and len(modules) > 20
    offenders = {
        path.name: sorted(m for m in _imported_modules(path.read_text()) if _is_test_module(m))
        for path in modules
    }
    offenders = {name: found for name, found in offenders.items() if found}
    assert not offenders, f"move what they share into tests/support/: {offenders}"


def test_support_imports_no_test_module_and_not_conftest():
    modules = sorted(SUPPORT.glob("*.py"))
    assert len(modules) > 5
    offenders = {
        path.name: sorted(
            m for m in _imported_modules(path.read_text()) if _is_test_module(m) or m == "conftest"
        )
        for path in modules
    }
    offenders = {name: found for name, found in offenders.items() if found}
    assert not offenders, offenders


def test_support_holds_no_test_module():
    """pytest collects nothing from tests/support, so no test there is run or given a tier by its name."""
    assert not [p.name for p in SUPPORT.rglob("*.py") if _is_test_module(p.stem)]
