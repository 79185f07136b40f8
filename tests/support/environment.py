"""Where the project, the lab captures and the public corpus are, whether this is CI, and which tools are here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    if shutil.which(name):
        return
    if IN_CI:
        pytest.fail(f"{name} is not installed but CI must run this test (.ci/run installs it)")
    pytest.skip(f"{name} not installed")


def require_root_and(tools: tuple[str, ...]) -> None:
    """Skip locally without root or one of `tools` (namespaces, tcpdump ...); in CI that is a failure."""
    missing = [t for t in tools if not shutil.which(t)]
    why = f"needs root and {', '.join(tools)}" + (f" (missing: {', '.join(missing)})" if missing else "")
    if os.geteuid() != 0 or missing:
        if IN_CI:
            pytest.fail(f"CI must run this test: {why}")
        pytest.skip(why)


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
