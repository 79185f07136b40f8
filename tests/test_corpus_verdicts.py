"""Public captures of ordinary traffic: no detector may crash on them and none may be called a black hole.

None of the corpus captures holds an MTU black hole (MANIFEST.tsv describes each), so an MTU verdict on one
of them is a false positive - the kind of mistake that sends an on-call engineer down the wrong path.
"""

from __future__ import annotations

import pytest

import pcapmtu
from support.environment import corpus_files

MTU_VERDICTS = {"mtu_blackhole", "mtu_blackhole_recovered"}


@pytest.mark.parametrize(
    "path", corpus_files("semantic", "format"), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_no_false_black_hole_and_no_detector_crash(path):
    if path.suffix in (".md", ".tsv"):
        pytest.skip("not a capture")
    result = pcapmtu.analyze(container=path)
    assert not [f for f in result.findings_list if f.code == "E900"], "a detector crashed"
    assert result.verdict not in MTU_VERDICTS, result.explanation
