"""tshark is the reference: connection counts, MSS values and per-frame retransmission flags must agree.

Runs on the public corpus (shared/corpus/semantic and format) and on the lab captures in sample_pcaps/.
Where pcapmtu differs by design, KNOWN_DIFFERENCES names the case and why; everything else must match.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pcapmtu
import tshark_oracle
from conftest import SAMPLES, corpus_files, require_tool

FLAGS = ["retrans", "fast_retrans", "spurious_retrans", "out_of_order", "lost_before", "dup_ack"]

# file name -> (checks that are allowed to differ, why)
KNOWN_DIFFERENCES = {
    "suricata__base64-decode-5885.pcap": (
        {"retrans", "out_of_order"},
        "a new SYN reuses the 5-tuple of a connection that never closed: tshark keeps that SYN in the old "
        "stream and calls it a retransmission; pcapmtu starts the new connection at the SYN (port reuse)",
    ),
}


def _captures() -> list:
    files = [p for p in corpus_files("semantic", "format") if not p.name.endswith(".md")]
    files += sorted(SAMPLES.glob("*/*.pcap*"))
    fresh = os.environ.get("PCAPMTU_LAB_DIR")  # freshly regenerated lab captures (CI)
    if fresh:
        files += sorted(Path(fresh).glob("*/*.pcap*"))
    return files


@pytest.mark.oracle
@pytest.mark.parametrize("path", _captures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_agrees_with_tshark(path):
    require_tool("tshark")
    allowed, _why = KNOWN_DIFFERENCES.get(path.name, (set(), ""))
    cap = pcapmtu.read(path)
    ref = tshark_oracle.tcp_frames(path)
    mine = cap.packets[cap.packets["conn"] >= 0].set_index("frame")

    if "streams" not in allowed:
        assert len(cap.flows) == ref["stream"].nunique(), "TCP connection count differs from tcp.stream"
    if "mss" not in allowed:
        assert set(mine["mss"][mine["mss"] > 0]) == set(ref["mss"][ref["mss"] > 0]), "MSS values differ"
    # By design: a packet that `tcpdump -i any` wrote once per interface is one packet. pcapmtu flags the
    # later copies `dup_copy` and leaves them out; tshark calls them retransmissions and duplicate ACKs.
    copies = set(cap.packets["frame"][cap.packets["dup_copy"]])
    for flag in FLAGS:
        if flag in allowed:
            continue
        theirs = set(ref["frame"][ref[flag]]) - copies
        ours = set(mine.index[mine[flag].to_numpy()])
        assert ours == theirs, (
            f"{flag}: only tshark {sorted(theirs - ours)[:10]}, only pcapmtu {sorted(ours - theirs)[:10]}"
        )


@pytest.mark.oracle
@pytest.mark.parametrize("path", _captures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_retransmissions_per_connection(path):
    """Per connection (matched by its frames), the retransmission count equals tshark's."""
    require_tool("tshark")
    allowed, _why = KNOWN_DIFFERENCES.get(path.name, (set(), ""))
    if "retrans" in allowed or "streams" in allowed:
        pytest.skip(KNOWN_DIFFERENCES[path.name][1])
    cap = pcapmtu.read(path)
    ref = tshark_oracle.tcp_frames(path)
    frames = cap.packets[(cap.packets["conn"] >= 0) & ~cap.packets["dup_copy"]][["frame", "conn"]]
    joined = ref.merge(frames, on="frame", how="inner")  # interface copies excluded, as above
    theirs = joined.groupby("conn")["retrans"].sum()
    ours = cap.flows.set_index("conn")["retransmissions"].reindex(theirs.index)
    assert (ours == theirs).all(), f"per-connection retransmissions differ:\n{theirs.compare(ours)}"


def test_known_differences_still_differ():
    """A documented difference that no longer differs should be removed from the list."""
    require_tool("tshark")
    files = {p.name: p for p in _captures()}
    for name, (allowed, _why) in KNOWN_DIFFERENCES.items():
        if name not in files:
            continue
        cap = pcapmtu.read(files[name])
        ref = tshark_oracle.tcp_frames(files[name])
        mine = cap.packets[cap.packets["conn"] >= 0].set_index("frame")
        differs = len(cap.flows) != ref["stream"].nunique() if "streams" in allowed else False
        for flag in allowed & set(FLAGS):
            differs |= set(ref["frame"][ref[flag]]) != set(mine.index[mine[flag].to_numpy()])
        assert differs, f"{name} now agrees with tshark: drop it from KNOWN_DIFFERENCES"
