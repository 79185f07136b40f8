"""Shared fixtures and the test tiers. Where the corpus and the lab captures live, and which tools are here:
support/environment.py (its names are importable from here too, for tests written before it existed)."""

from __future__ import annotations

from pathlib import Path

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

pytest_plugins = [
    "support.scene_fixtures",  # the analysed scenes the rule modules share (session fixtures)
    "support.dockerd",  # a real dockerd in a namespace of its own, and a local image (the service tier)
]


@pytest.fixture
def tmp_capture(tmp_path):
    """A path for a capture the test writes."""
    return tmp_path / "test.pcap"


# ------------------------------------------------------------------------------------- test tiers
# `make check` runs what is left after deselecting these; `make test` (CI) runs everything. Marked here, by what a
# test needs, so that a new test lands in the right tier without remembering a decorator.
TIER_MARKERS = ("corpus", "oracle", "lab", "fuzz", "browser", "service")


# A test that uses one of these fixtures starts a real service as processes of its own (seconds to start, root).
SERVICE_FIXTURES = frozenset({"dockerd", "dask_cluster"})


# A test run once per lab scenario (or per lab capture) sweeps the lab: the full suite runs every one, the
# fast tier the demo incident's only, so that each sweep is still exercised there.
FAST_TIER_SCENARIO = "blackhole_tls12"
LAB_SCENARIOS = {p.name for p in SAMPLES.iterdir() if p.is_dir() and (p / "truth.json").exists()}


def _sweeps_the_lab(item) -> bool:
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        if isinstance(value, str) and value in LAB_SCENARIOS:
            scenario = value
        elif isinstance(value, Path) and value.is_relative_to(SAMPLES) and value != SAMPLES:
            scenario = value.relative_to(SAMPLES).parts[0]
        else:
            continue
        if scenario != FAST_TIER_SCENARIO:
            return True
    return False


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
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.service)
        module = item.module.__name__
        if any(word in module for word in ("tshark", "oracle", "wireshark", "streams")):
            item.add_marker(pytest.mark.oracle)
        if module.startswith("test_lab_") or _sweeps_the_lab(item):
            item.add_marker(pytest.mark.lab)
