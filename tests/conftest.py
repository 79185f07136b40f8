"""Shared fixtures: where the public corpus and the lab captures live, and tshark availability."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _find_corpus() -> Path:
    """The public corpus sits in ../shared/corpus beside the project. A clone made elsewhere (CI clones main
    into a temporary directory) finds it beside the repository it was cloned from; PCAPMTU_CORPUS wins."""
    if os.environ.get("PCAPMTU_CORPUS"):
        return Path(os.environ["PCAPMTU_CORPUS"])
    candidates = [ROOT.parent / "shared" / "corpus"]
    try:
        origin = subprocess.run(
            ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        origin = ""
    if origin and "://" not in origin and Path(origin).is_dir():  # a local clone: look beside its source
        candidates.append(Path(origin).resolve().parent / "shared" / "corpus")
    return next((c for c in candidates if c.is_dir()), candidates[0])


CORPUS = _find_corpus()
SAMPLES = ROOT / "sample_pcaps"
IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str) -> None:
    """Skip locally when a tool is missing; in CI a missing tool is a failure, never a skip."""
    import shutil

    if shutil.which(name):
        return
    if IN_CI:
        pytest.fail(f"{name} is not installed but CI must run this test (.ci/run installs it)")
    pytest.skip(f"{name} not installed")


def lab_scenarios() -> list[Path]:
    """Every lab scenario directory: the committed ones, and the freshly built ones when PCAPMTU_LAB_DIR
    points at a directory `sample_pcaps/lab.py --all --outdir DIR` wrote (CI does this)."""
    dirs = sorted(p.parent for p in SAMPLES.glob("*/truth.json"))
    fresh = os.environ.get("PCAPMTU_LAB_DIR")
    if fresh:
        dirs += sorted(p.parent for p in Path(fresh).glob("*/truth.json"))
    return dirs


def corpus_files(*categories: str) -> list[Path]:
    if not CORPUS.is_dir():
        if IN_CI:
            raise RuntimeError(f"shared corpus not found at {CORPUS}")
        return []
    out: list[Path] = []
    for cat in categories:
        out += sorted(p for p in (CORPUS / cat).iterdir() if p.is_file())
    return out


@pytest.fixture
def tmp_capture(tmp_path):
    """A path for a capture the test writes."""
    return tmp_path / "test.pcap"


# ------------------------------------------------------------------------------------- test tiers
# `make check` runs what is left after deselecting these; `make test` (CI) runs everything. Marked here, by what a
# test needs, so that a new test lands in the right tier without remembering a decorator.
TIER_MARKERS = ("corpus", "oracle", "lab", "fuzz", "browser")


def _uses_corpus(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    root = str(CORPUS) if CORPUS else None
    return bool(root) and any(str(value).startswith(root) for value in params.values())


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if _uses_corpus(item):
            item.add_marker(pytest.mark.corpus)
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        module = item.module.__name__
        if any(word in module for word in ("tshark", "oracle", "wireshark", "streams")):
            item.add_marker(pytest.mark.oracle)
        if module.startswith("test_lab_"):
            item.add_marker(pytest.mark.lab)
