"""A capture stopped too early, started too late or cut short per packet is never judged confidently wrong.

Users stop tcpdump whenever they like: before the failing request, right after its SYN, after its request,
in the middle of the hang; and they start it late: after the handshake, in the middle of the hang, at its
end. Every prefix and every suffix of each lab black hole's captures is analysed alone. While it holds part
of the failing connection (as the whole capture's analysis finds it), the verdict is never `healthy` above
50 %, and no cut is ever called `not_mtu` (a SYN whose answer may still have been on the way is not a
filter; loss seen without the handshake, where the full size is unknown, is not a lossy link). Both captures
cut to short snap lengths (the MSS option gone at 54 bytes) are never given another verdict with confidence;
and no cut of a negative control's capture is ever given an MTU verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pcapmtu
from support.cuts import frames_of
from support.environment import lab_scenarios

MTU_VERDICTS = {"mtu_blackhole", "mtu_blackhole_recovered"}
ROLE_OF = {"container.pcap": "container", "host.pcap": "host"}
DENSE = 40  # every prefix up to this many frames past the failing connection's start, then every tenth


def _cases(verdicts=MTU_VERDICTS) -> list[tuple[Path, str]]:
    cases = []
    for d in lab_scenarios():
        if json.loads((d / "truth.json").read_text())["expected_verdict"] in verdicts:
            cases += [(d, name) for name in ROLE_OF if (d / name).exists()]
    return cases


def _failing(scenario: Path, name: str) -> tuple[str, object]:
    """The capture's role and its failing connections' flows, from the whole capture's analysis."""
    role = ROLE_OF[name]
    whole = pcapmtu.analyze(**{role: scenario / name})
    failing = whole.verdicts[whole.verdicts["verdict"].isin(MTU_VERDICTS)]
    if not len(failing):
        pytest.skip(
            f"{name} alone does not show the black hole ({whole.verdict}): no failing connection to cut"
        )
    return role, whole.context.flows(role).set_index("conn").loc[failing["conn"].astype(int)]


def _judge_cuts(tmp_path, scenario: Path, name: str, role: str, cuts, holds_failing) -> None:
    whole = frames_of(scenario / name)
    wrong = []
    for label, (start, stop) in cuts(len(whole.frames)):
        cut = whole.write(tmp_path / "cut.pcap", start, stop)
        result = pcapmtu.analyze(**{role: cut})
        confident_healthy = result.verdict == "healthy" and result.confidence > 0.5 and holds_failing(label)
        if result.verdict == "not_mtu" or confident_healthy:
            wrong.append((label, result.verdict, result.confidence, result.explanation[:160]))
    assert not wrong, wrong


@pytest.mark.lab
@pytest.mark.parametrize(("scenario", "name"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_every_prefix_of_a_blackhole_capture(tmp_path, scenario, name):
    """Prefix k: the first k frames. It holds the failing connection from k = its first frame on."""
    role, failing = _failing(scenario, name)
    start = int(failing["first_frame"].min())

    def prefixes(n):
        keep = [k for k in range(1, n + 1) if k <= start + DENSE or k % 10 == 0 or k == n]
        return ((k, (0, k)) for k in keep)

    _judge_cuts(tmp_path, scenario, name, role, prefixes, lambda k: k >= start)


@pytest.mark.lab
@pytest.mark.parametrize(("scenario", "name"), _cases({"mtu_blackhole"}), ids=lambda v: getattr(v, "name", v))
def test_every_suffix_of_a_blackhole_capture(tmp_path, scenario, name):
    """Suffix k: all but the first k frames. It holds part of the failing connection while k is below its last
    frame. (A recovered black hole's tail is a connection that works again: it may rightly look healthy.)"""
    role, failing = _failing(scenario, name)
    first, last = int(failing["first_frame"].min()), int(failing["last_frame"].max())

    def suffixes(n):
        keep = [k for k in range(n) if first - DENSE <= k < last or k % 10 == 0]
        return ((k, (k, None)) for k in keep)

    _judge_cuts(tmp_path, scenario, name, role, suffixes, lambda k: k < last)


@pytest.mark.lab
@pytest.mark.parametrize("scenario", lab_scenarios(), ids=lambda p: p.name)
@pytest.mark.parametrize("snap", [54, 60, 68, 96])
def test_short_snap_lengths(tmp_path, scenario, snap):
    """Both captures cut to `snap` bytes a packet: at 54 (Ethernet, IPv4, a TCP header without options) the
    SYNs' MSS is gone. The verdict is the truth's, or inconclusive, or healthy at 50 % at most: never
    another verdict with confidence."""
    expected = json.loads((scenario / "truth.json").read_text())["expected_verdict"]
    if not ((scenario / "host.pcap").exists() and (scenario / "container.pcap").exists()):
        pytest.skip("not a host and container pair")
    cut = {}
    for role in ("host", "container"):
        cut[role] = frames_of(scenario / f"{role}.pcap").write(tmp_path / f"{role}.pcap", snap=snap)
    result = pcapmtu.analyze(**cut)
    weak_healthy = result.verdict == "healthy" and result.confidence <= 0.5
    assert result.verdict in (expected, "inconclusive") or weak_healthy, (
        result.verdict,
        result.confidence,
        result.explanation,
    )


NEGATIVE = {"healthy", "not_mtu"}


@pytest.mark.lab
@pytest.mark.parametrize(("scenario", "name"), _cases(NEGATIVE), ids=lambda v: getattr(v, "name", v))
def test_cuts_of_a_capture_without_a_blackhole_never_find_one(tmp_path, scenario, name):
    """The negative controls (the fixes in place, PMTUD working, loss, a slow server, a filter), cut at a
    dozen points from either end: no cut of a capture without an MTU problem is given an MTU verdict."""
    whole = frames_of(scenario / name)
    n = len(whole.frames)
    wrong = []
    for k in range(1, n, max(1, n // 12)):
        for start, stop in ((0, k), (k, None)):
            result = pcapmtu.analyze(**{ROLE_OF[name]: whole.write(tmp_path / "cut.pcap", start, stop)})
            if result.verdict in MTU_VERDICTS:
                wrong.append((start, stop, result.verdict, result.confidence, result.explanation[:160]))
    assert not wrong, wrong
