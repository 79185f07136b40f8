"""The public Python surface is a contract: `__all__` changes only with a version bump."""

from __future__ import annotations

import pcapmtu

PUBLIC = [
    "Analysis",
    "Capture",
    "CaptureError",
    "KnownFacts",
    "PcapmtuError",
    "Thresholds",
    "UsageError",
    "__version__",
    "analyze",
    "export",
    "read",
]


def test_public_surface_is_exactly_documented():
    assert sorted(pcapmtu.__all__) == sorted(PUBLIC), "update PUBLIC, docs and the version together"
    for name in PUBLIC:
        assert hasattr(pcapmtu, name), name
