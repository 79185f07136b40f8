"""Shared fixtures and the test tiers. Where the corpus and the lab captures live, and which tools are here:
support/environment.py (its names are importable from here too, for tests written before it existed)."""

from __future__ import annotations

import pytest

from support.environment import (  # noqa: F401  (CORPUS is used here; the rest are re-exported)
    CORPUS,
    IN_CI,
    ROOT,
    SAMPLES,
    corpus_files,
    lab_scenarios,
    require_tool,
)

pytest_plugins = ["support.scene_fixtures"]  # the analysed scenes the rule modules share (session fixtures)


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
