"""tshark is the reference: connection counts, MSS values and per-frame retransmission flags must agree.

Runs on the public corpus (shared/corpus/semantic and format) and on the lab captures in sample_pcaps/.
Where pcapmtu differs by design, KNOWN_DIFFERENCES names the case and why; everything else must match.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pcapmtu
from support import packets as pb
from support import tshark
from support.environment import SAMPLES, corpus_files, require_tool
from support.pcapwriter import Record, write_pcap

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
    ref = tshark.tcp_frames(path)
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
    ref = tshark.tcp_frames(path)
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
        ref = tshark.tcp_frames(files[name])
        mine = cap.packets[cap.packets["conn"] >= 0].set_index("frame")
        differs = len(cap.flows) != ref["stream"].nunique() if "streams" in allowed else False
        for flag in allowed & set(FLAGS):
            differs |= set(ref["frame"][ref[flag]]) != set(mine.index[mine[flag].to_numpy()])
        assert differs, f"{name} now agrees with tshark: drop it from KNOWN_DIFFERENCES"


# ---------------------------------------------------------------------------- handshake RTT (iRTT)
def _handshake_variant(kind: str) -> list:
    """A connection whose server flight loses one segment, refilled 6 ms after the segment behind it.

    Whether tshark calls the refill out-of-order or a retransmission depends on its iRTT, from the
    latest SYN to the first segment with ACK and without SYN: `retried_syn` sends the SYN again a second
    later (the iRTT then starts at the second SYN), `same_time_ack` gives the first ACK the SYN's own
    timestamp (a zero iRTT, which tshark ignores until the next such segment), `no_synack` has no SYN-ACK
    in the capture at all, `slow_handshake` has a 20 ms iRTT (the refill is then out-of-order), and
    `refill_at_irtt` refills exactly one iRTT later (not below the threshold: a retransmission; exact
    nanoseconds matter there).
    """
    c, s, cp, sp, ci, si = "10.66.0.2", "10.66.0.3", 40000, 443, 1000, 5000
    syn_ack_gap = {"slow_handshake": 0.02, "refill_at_irtt": 0.000122}.get(kind, 0.0001)
    t0 = 1.0 if kind == "retried_syn" else 0.0
    records = [(0.0, pb.tcp(c, s, cp, sp, seq=ci, flags=pb.SYN))]
    if kind == "retried_syn":
        records.append((t0, pb.tcp(c, s, cp, sp, seq=ci, flags=pb.SYN)))
    if kind != "no_synack":
        records.append(
            (t0 + syn_ack_gap / 2, pb.tcp(s, c, sp, cp, seq=si, ack=ci + 1, flags=pb.SYN | pb.ACK))
        )
    ack_at = t0 if kind == "same_time_ack" else t0 + syn_ack_gap
    records.append((ack_at, pb.tcp(c, s, cp, sp, seq=ci + 1, ack=si + 1)))
    records.append(
        (t0 + syn_ack_gap + 0.0001, pb.tcp(c, s, cp, sp, seq=ci + 1, ack=si + 1, payload=b"q" * 100))
    )
    base = t0 + syn_ack_gap + 0.01
    late = syn_ack_gap if kind == "refill_at_irtt" else 0.006  # exactly the iRTT: not out-of-order
    for k, (dt, n) in enumerate([(0, 0), (0.0001, 2), (0.0001 + late, 1)]):  # segment 1 comes late
        records.append((base + dt, pb.tcp(s, c, sp, cp, seq=si + 1 + 1448 * n, ack=ci + 101, payload=b"r" * 1448,
                                          ip_id=10 + k)))  # fmt: skip
    epoch = 1_700_000_000.0  # tshark takes a time of 0 for "no SYN seen"
    return [Record(epoch + t, pb.ether(p)) for t, p in sorted(records, key=lambda r: r[0])]


@pytest.mark.oracle
@pytest.mark.parametrize(
    "kind", ["retried_syn", "same_time_ack", "no_synack", "slow_handshake", "refill_at_irtt"]
)
def test_handshake_rtt_and_refills_agree_with_tshark(kind, tmp_path):
    require_tool("tshark")
    path = tmp_path / f"{kind}.pcap"
    write_pcap(path, _handshake_variant(kind), nano=True)
    cap = pcapmtu.read(path)
    ref = tshark.tcp_frames(path)
    mine = cap.packets.set_index("frame")
    for flag in ("retrans", "out_of_order"):
        assert set(mine.index[mine[flag].to_numpy()]) == set(ref["frame"][ref[flag]]), flag
    out = tshark.run(path, "-T", "fields", "-e", "tcp.analysis.initial_rtt", check=True).stdout.split()
    theirs = float(out[-1]) if out else float("nan")
    ours = float(cap.flows["handshake_rtt"].iloc[0])
    assert ours == pytest.approx(theirs, abs=1e-6) or (ours != ours and theirs != theirs), (ours, theirs)
