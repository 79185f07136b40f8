"""The package's folders are its pipeline, read (ingest/) -> diagnose/ -> render/, with scan/ (many groups of
captures at once) running all three; imports only go forward: ingest imports neither diagnose nor render,
diagnose does not import render, no stage imports scan, and the shared modules at the top (errors, config,
results, schema, textsafe, evidence) import no stage. capture/ takes the captures before any of it and imports
no stage either: the command line hands what it took to the analysis. Every import counts, also one inside a
function, except the few conveniences of the public `Analysis` object listed in ALLOWED."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "analyzer" / "pcapmtu"
SHARED = {"errors", "config", "results", "schema", "textsafe", "evidence", "_version"}
STAGES = ("capture", "ingest", "diagnose", "render", "scan")
FORBIDDEN = {  # a module of this layer must not import these
    "capture": ("pcapmtu.ingest", "pcapmtu.diagnose", "pcapmtu.render", "pcapmtu.scan", "pcapmtu.cli"),
    "ingest": ("pcapmtu.diagnose", "pcapmtu.render", "pcapmtu.scan", "pcapmtu.cli"),
    "diagnose": ("pcapmtu.render", "pcapmtu.scan", "pcapmtu.cli"),
    "render": ("pcapmtu.scan", "pcapmtu.cli"),
    "scan": ("pcapmtu.cli",),
    "shared": ("pcapmtu.ingest", "pcapmtu.diagnose", "pcapmtu.render", "pcapmtu.scan", "pcapmtu.cli"),
}
# (module, function): render loaded on call by the Analysis object a notebook holds (result.save(), .plot_*)
ALLOWED = {
    ("pcapmtu.diagnose.analysis", f"Analysis.{name}")
    for name in ("to_json", "save", "plot_time_sequence", "plot_timeline", "plot_sizes", "plot_mss")
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    if len(parts) == 2 and parts[1] in SHARED:
        return "shared"
    return None


def imports(source: str, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(imported module, the function or class it is imported in, '' at module level) of every import."""
    found = []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*where, child.name])
                continue
            scope = ".".join(where)
            if isinstance(child, ast.Import):
                found.extend((alias.name, scope) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, scope))
                found.extend((f"{target}.{alias.name}", scope) for alias in child.names)  # `from . import x`
            visit(child, where)

    visit(ast.parse(source), [])
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own = layer(module)
    out = []
    for target, scope in imports(source, module, is_package):
        if own is None or (module, scope) in ALLOWED:
            continue
        if any(target == bad or target.startswith(bad + ".") for bad in FORBIDDEN[own]):
            out.append(f"{module} ({scope or 'module level'}) imports {target}")
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer_or_is_the_command_line():
    loose = {module_name(p) for p in MODULES if layer(module_name(p)) is None}
    assert loose == {"pcapmtu", "pcapmtu.__main__", "pcapmtu.cli", "pcapmtu.clidoc", "pcapmtu.completion"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_only_go_forward(path):
    assert violations(path.read_text(), module_name(path), path.name == "__init__.py") == []


def test_the_check_sees_a_backward_import_wherever_it_is():
    """The checker itself: relative and absolute, at module level and inside a function."""
    src = "from ..render import plots\n"
    assert violations(src, "pcapmtu.ingest.tcp") == [
        "pcapmtu.ingest.tcp (module level) imports pcapmtu.render"
    ] + ["pcapmtu.ingest.tcp (module level) imports pcapmtu.render.plots"]
    src = "def f():\n    import pcapmtu.diagnose.context\n"
    assert violations(src, "pcapmtu.evidence") == ["pcapmtu.evidence (f) imports pcapmtu.diagnose.context"]
    src = "class Analysis:\n    def save(self):\n        from ..render.report import write_report\n"
    assert violations(src, "pcapmtu.diagnose.analysis") == []  # listed in ALLOWED
    assert violations(src, "pcapmtu.diagnose.context") != []  # the same import anywhere else is not
    assert violations("from . import decode\n", "pcapmtu.ingest", is_package=True) == []
