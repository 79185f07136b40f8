"""diagnose/turns.py reads the packets once for both of its cuts (the longest silence and the end); the
columns are those of the code it replaced, kept here as the reference: on every sample and corpus capture,
and on random packet tables with ties, copies, silences at any time and none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapmtu
from pcapmtu.diagnose.turns import ACK_FLAG, ALERT_BYTES, turns
from pcapmtu.ingest import native
from support.damage import FUZZ_EXAMPLES
from support.environment import SAMPLES, corpus_files


# ------------------------------------------------------------------------------ the reference
def _turns_before(packets: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """turns() as it was written before it shared its work between the two cuts."""
    out = _old_turn_at(packets, flows, flows["idle_start_ts"].to_numpy())
    out["idle_turn"] = np.where(flows["max_idle"].to_numpy() <= 0, "", out.pop("turn"))
    out["end_turn"] = _old_turn_at(packets, flows, np.full(len(flows), np.inf))["turn"]
    return pd.DataFrame(out)


def _old_turn_at(packets: pd.DataFrame, flows: pd.DataFrame, cut: np.ndarray) -> dict[str, np.ndarray]:
    """At time `cut` of each connection: the bytes outstanding each way, and whose turn it was."""
    n = len(flows)
    conn = packets["conn"].to_numpy()
    keep = (conn >= 0) & ~packets["dup_copy"].to_numpy()
    rows = np.flatnonzero(keep)
    c = conn[rows].astype(np.int64)
    before = packets["ts"].to_numpy()[rows] <= cut[c] + 1e-9
    rows, c = rows[before], c[before]
    dirn = packets["dir"].to_numpy()[rows]
    plen = packets["payload_len"].to_numpy()[rows]
    end = packets["rel_seq"].to_numpy()[rows] + plen
    acked = packets["rel_ack"].to_numpy()[rows]
    is_ack = (packets["tcp_flags"].to_numpy()[rows] & ACK_FLAG) != 0
    data = plen > 0
    low = np.iinfo(np.int64).min
    out = {}
    for d, tag in ((0, "c2s"), (1, "s2c")):
        sent = np.full(n, low, dtype=np.int64)
        np.maximum.at(sent, c[data & (dirn == d)], end[data & (dirn == d)])
        got = np.full(n, low, dtype=np.int64)
        reverse = is_ack & (dirn == 1 - d)
        np.maximum.at(got, c[reverse], acked[reverse])
        missing = np.where(got > low, np.maximum(sent - got, 0), sent)
        out[f"idle_outstanding_{tag}"] = np.where(sent > low, missing, 0)
    last_dir = _old_edge_data(packets, rows[data], c[data], n, last=True)[0]
    # after the cut: who spoke first, and with how much
    after = np.flatnonzero(keep)
    after = after[packets["ts"].to_numpy()[after] > cut[conn[after]] + 1e-9]
    after = after[packets["payload_len"].to_numpy()[after] > 0]
    next_dir, next_len = _old_edge_data(packets, after, conn[after].astype(np.int64), n, last=False)
    outstanding = (out["idle_outstanding_c2s"] > 0) | (out["idle_outstanding_s2c"] > 0)
    # the server spoke first after the silence with more than a TLS alert: it had owed that answer (after
    # TLS 1.3 its session tickets may follow the request, so the last data before the silence cannot say)
    answered = (next_dir == 1) & (next_len > ALERT_BYTES)
    out["turn"] = np.select(
        [outstanding, answered, next_dir == 0, last_dir == 0],
        ["network", "server", "client", "server"],
        "client",
    )
    return out


def _old_edge_data(packets: pd.DataFrame, rows: np.ndarray, c: np.ndarray, n: int, last: bool):
    """Per connection: direction and payload length of its first (or last) data segment among `rows`."""
    dirs = np.full(n, -1, dtype=np.int64)
    lens = np.zeros(n, dtype=np.int64)
    if len(rows):
        order = np.lexsort((packets["ts_ns"].to_numpy()[rows], c))
        cs, rs = c[order], rows[order]
        edge = np.r_[cs[1:] != cs[:-1], True] if last else np.r_[True, cs[1:] != cs[:-1]]
        dirs[cs[edge]] = packets["dir"].to_numpy()[rs[edge]]
        lens[cs[edge]] = packets["payload_len"].to_numpy()[rs[edge]]
    return dirs, lens


# ------------------------------------------------------------------------------ the comparisons
CAPTURES = sorted(SAMPLES.glob("*/*.pcap*")) + corpus_files("semantic")


IMPLEMENTATIONS = [
    pytest.param(
        True, id="C", marks=pytest.mark.skipif(native.core is None, reason="the C core is not built")
    ),
    pytest.param(False, id="numpy"),
]


def _turns(packets: pd.DataFrame, flows: pd.DataFrame, in_c: bool) -> pd.DataFrame:
    """turns() with the C core's turn_state, or with its numpy twin."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", in_c)
        return turns(packets, flows)


@pytest.mark.parametrize("in_c", IMPLEMENTATIONS)
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_same_turns_on_every_capture(path, in_c):
    try:
        cap = pcapmtu.read(path)
    except pcapmtu.CaptureError:
        pytest.skip("not a readable capture")
    pd.testing.assert_frame_equal(_turns(cap.packets, cap.flows, in_c), _turns_before(cap.packets, cap.flows))


PACKET = st.tuples(
    st.sampled_from([-1, 0, 0, 1, 2]),  # connection (-1: not TCP)
    st.integers(0, 1),  # direction
    st.sampled_from([ACK_FLAG, ACK_FLAG | 0x08, 0x02, 0x00, ACK_FLAG | 0x01]),  # flags
    st.integers(0, 40),  # rel_seq
    st.sampled_from([0, 0, 1, 10, ALERT_BYTES, ALERT_BYTES + 1, 500]),  # payload bytes
    st.integers(0, 600),  # rel_ack
    st.integers(0, 3),  # ms after the previous packet (ties included)
    st.sampled_from([False, False, False, True]),  # an interface copy
)
CUT = st.one_of(st.floats(-1, 0.2), st.just(float("nan")), st.just(float("inf")))


@pytest.mark.parametrize("in_c", IMPLEMENTATIONS)
@settings(max_examples=FUZZ_EXAMPLES, deadline=5000, derandomize=True, database=None)
@given(
    rows=st.lists(PACKET, max_size=50),
    cuts=st.lists(CUT, min_size=3, max_size=3),
    idle=st.lists(st.floats(-1, 1), min_size=3, max_size=3),
)
def test_the_same_turns_for_any_packets(in_c, rows, cuts, idle):  # fmt: skip
    ms = np.cumsum([r[6] for r in rows], dtype=np.int64)
    frame = pd.DataFrame(
        {
            "conn": np.array([r[0] for r in rows], dtype=np.int32),
            "dir": np.array([r[1] for r in rows], dtype=np.int8),
            "tcp_flags": np.array([r[2] for r in rows], dtype=np.uint16),
            "rel_seq": np.array([r[3] for r in rows], dtype=np.int64),
            "payload_len": np.array([r[4] for r in rows], dtype=np.int32),
            "rel_ack": np.array([r[5] for r in rows], dtype=np.int64),
            "ts_ns": ms * 1_000_000,
            "ts": ms / 1000.0,
            "dup_copy": np.array([r[7] for r in rows], dtype=bool),
        }
    )
    flows = pd.DataFrame({"idle_start_ts": cuts, "max_idle": idle})
    pd.testing.assert_frame_equal(_turns(frame, flows, in_c), _turns_before(frame, flows))
