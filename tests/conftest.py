"""Shared fixtures: where the public corpus and the lab captures live, and tshark availability."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
SAMPLES = ROOT / "sample_pcaps"
IN_CI = os.environ.get("CI") == "true"

sys.path.insert(0, str(Path(__file__).parent))


def require_tool(name: str) -> None:
    """Skip locally when a tool is missing; in CI a missing tool is a failure, never a skip."""
    import shutil

    if shutil.which(name):
        return
    if IN_CI:
        pytest.fail(f"{name} is not installed but CI must run this test (.ci/run installs it)")
    pytest.skip(f"{name} not installed")


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
