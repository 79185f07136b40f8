"""Per-segment analysis: each connection oriented, its sequence numbers made relative, and every segment
flagged as Wireshark's `tcp_analyze_sequence_number` would flag it.

Each direction's sequence numbers are unwrapped across 32-bit wraparound and made relative to the initial
sequence number; the flags (retransmission / fast retransmission / spurious retransmission / out-of-order,
previous segment not captured, duplicate ACK, zero window, keep-alive) follow tshark 4.0 closely enough to
be checked against `tcp.analysis.*` (tests/test_oracle.py; docs/tables.md lists the differences). The numpy
path is the reference; the C core computes the same, one connection at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...schema import PER_SEGMENT_FLAGS
from .. import native
from ..native import as_i64

if TYPE_CHECKING:
    from . import TcpConfig

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SEQ_MOD = 1 << 32
NONE = np.iinfo(np.int64).max  # the position of an event a connection never had


@dataclass(frozen=True, slots=True, eq=False)
class Slice:
    """A run of whole connections, its segments in S order (by 5-tuple, file order inside): what the analysis
    reads. Positions (`first`, and those the analysis returns) count from the slice's first segment."""

    # per segment
    rows: np.ndarray  # int64: row in the packets table
    a_is_src: np.ndarray  # bool: sent by endpoint A, the lower (address code, port) of the 5-tuple
    flags: np.ndarray  # int64: TCP flags
    seq: np.ndarray  # int64: raw sequence number
    ack: np.ndarray  # int64: raw acknowledgment number
    plen: np.ndarray  # int32: payload bytes
    ts: np.ndarray  # int64: nanoseconds since the epoch
    win: np.ndarray  # int32: raw window
    conn: np.ndarray  # int64: the segment's connection, 0 for the slice's first
    # per connection
    first: np.ndarray  # int64: position of its first segment
    key_lo: np.ndarray  # int64: endpoint A as address code << 16 | port
    key_hi: np.ndarray  # int64: endpoint B


@dataclass(frozen=True, slots=True, eq=False)
class Analysis:
    """What the per-segment analysis finds in a `Slice`."""

    # per segment
    dirn: np.ndarray  # int64: 0 client to server, 1 server to client
    rel: np.ndarray  # int64: sequence number relative to the direction's ISN, unwrapped
    rel_ack: np.ndarray  # int64: acknowledgment number relative to the other direction's ISN (0 without ACK)
    retrans: np.ndarray  # bool, and the rest of PER_SEGMENT_FLAGS (schema.PACKETS says what each means)
    fast_retrans: np.ndarray
    spurious_retrans: np.ndarray
    out_of_order: np.ndarray
    lost_before: np.ndarray
    dup_ack: np.ndarray
    zero_window: np.ndarray
    keepalive: np.ndarray
    # per connection
    first_syn: np.ndarray  # int64: position of the client's first SYN, NONE if none
    first_synack: np.ndarray  # int64: position of the first SYN-ACK, NONE if none
    client_is_a: np.ndarray  # bool: endpoint A is the client
    irtt: np.ndarray  # int64: handshake round trip, ns (Wireshark's iRTT)
    has_rtt: np.ndarray  # bool: irtt was measured

    def segment_flags(self) -> dict[str, np.ndarray]:
        """`PER_SEGMENT_FLAGS` by name, in that order."""
        return {name: getattr(self, name) for name in PER_SEGMENT_FLAGS}


def seq_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b in sequence space (RFC 1982 serial arithmetic), as signed 64-bit values."""
    return ((a.astype(np.int64) - b.astype(np.int64) + (1 << 31)) % SEQ_MOD) - (1 << 31)


def reduce_groups(values: np.ndarray, starts: np.ndarray, ufunc) -> np.ndarray:
    """`ufunc.reduceat` over contiguous groups (rows sorted by group, `starts` = first row of each)."""
    if not len(starts):
        return np.zeros(0, dtype=values.dtype)
    return ufunc.reduceat(values, starts)


def _group_shift(values: np.ndarray, starts_mask: np.ndarray, fill) -> np.ndarray:
    """Value of the previous row within the same contiguous group (fill at group starts)."""
    out = np.empty_like(values)
    if not len(values):
        return out
    out[1:] = values[:-1]
    out[starts_mask] = fill
    return out


def _last_reverse(pos, dirn, first, conn) -> np.ndarray:
    """For each segment, the position of the latest earlier segment of the other direction (or -1)."""
    out = np.full(len(pos), -1, dtype=np.int64)
    conn_start = first[conn]
    for d in (0, 1):
        last = np.maximum.accumulate(np.where(dirn == d, pos, -1))
        mine = (dirn == 1 - d) & (last >= conn_start)
        out[mine] = last[mine]
    return out


def analyze(cfg: TcpConfig, part: Slice) -> Analysis:
    """The per-segment analysis of a slice of whole connections, in C when the core runs (the same either way)."""
    return _analyze_native(cfg, part) if native.ENABLED else _analyze_numpy(cfg, part)


def _analyze_numpy(cfg: TcpConfig, part: Slice) -> Analysis:
    """Orientation, relative sequence numbers and the per-segment flags of whole connections, vectorized."""
    conn, first, a_is_src, key_lo, key_hi = part.conn, part.first, part.a_is_src, part.key_lo, part.key_hi
    flags, seq, ack, plen, ts, win = part.flags, part.seq, part.ack, part.plen, part.ts, part.win
    n = len(flags)
    pos = np.arange(n)
    syn = (flags & SYN) > 0
    ackf = (flags & ACK) > 0
    syn_only = syn & ~ackf
    synack = syn & ackf
    n_conn = len(first)

    # ---- orientation: the SYN sender is the client; else the SYN-ACK receiver; else the higher port
    first_syn = reduce_groups(np.where(syn_only, pos, NONE), first, np.minimum)
    first_synack = reduce_groups(np.where(synack, pos, NONE), first, np.minimum)
    port_a = key_lo & 0xFFFF
    port_b = key_hi & 0xFFFF
    client_is_a = np.where(port_a == port_b, a_is_src[first], port_a > port_b)
    has_synack = first_synack != NONE
    client_is_a = np.where(has_synack, ~a_is_src[np.where(has_synack, first_synack, 0)], client_is_a)
    has_syn = first_syn != NONE
    client_is_a = np.where(has_syn, a_is_src[np.where(has_syn, first_syn, 0)], client_is_a)
    dirn = np.where(a_is_src == client_is_a[conn], 0, 1).astype(np.int64)

    # handshake RTT as Wireshark's iRTT: from the latest SYN to the first segment after it with ACK and
    # without SYN, in either direction (a SYN sent again restarts it; a SYN-ACK is not needed). A zero
    # difference does not count: Wireshark then takes the next such segment; a negative one (timestamps
    # going backwards, where Wireshark would keep it) is skipped the same way, so the RTT is never below
    # zero. Segments before that one judge out-of-order against the default threshold.
    last_syn = np.maximum.accumulate(np.where(syn_only, pos, -1))  # at or before each position
    after_syn = last_syn >= first[conn]  # ... in this connection
    syn_ts = ts[np.where(after_syn, last_syn, 0)]
    hs_ack = reduce_groups(np.where(after_syn & ackf & ~syn & (ts > syn_ts), pos, NONE), first, np.minimum)
    has_rtt = hs_ack != NONE
    hs_at = np.where(has_rtt, hs_ack, 0)
    irtt = np.where(has_rtt, ts[hs_at] - syn_ts[hs_at], 0)

    # ---- per direction (D order): unwrap sequence numbers, running state
    dkey = conn * 2 + dirn
    dorder = np.argsort(dkey, kind="stable")
    d_start = np.ones(n, dtype=bool)
    d_start[1:] = dkey[dorder][1:] != dkey[dorder][:-1]
    d_gid = np.cumsum(d_start) - 1
    d_first = np.flatnonzero(d_start)
    dseq, dack, dflags, dplen, dts, dwin = (
        seq[dorder],
        ack[dorder],
        flags[dorder],
        plen[dorder],
        ts[dorder],
        win[dorder],
    )
    step = np.zeros(n, dtype=np.int64)
    step[1:] = seq_diff(dseq[1:], dseq[:-1])
    step[d_start] = 0
    unwrapped = np.cumsum(step)
    unwrapped -= np.repeat(unwrapped[d_first], np.diff(np.append(d_first, n)))
    dsyn = (dflags & SYN) > 0
    syn_in_dir = reduce_groups(np.where(dsyn, np.arange(n), NONE), d_first, np.minimum)
    base = np.where(syn_in_dir != NONE, unwrapped[np.where(syn_in_dir != NONE, syn_in_dir, 0)], 0)
    rel = unwrapped - np.repeat(base, np.diff(np.append(d_first, n)))
    seglen = dplen + dsyn + ((dflags & FIN) > 0)
    seg_end = rel + seglen
    prev_max = pd.Series(seg_end).groupby(d_gid).cummax().to_numpy()
    nextseq = _group_shift(prev_max, d_start, NONE)  # highest sequence end before this segment
    known = nextseq != NONE
    advanced = ~known | (seg_end > nextseq)
    # time of the latest segment that advanced the sequence, in exact integer ns (float64 rounds epoch
    # nanoseconds to ~256 ns, which flipped out-of-order vs retransmission right at the threshold); a
    # direction's first segment always advances, so the running maximum never leaves its direction;
    # it is known exactly where `nextseq` is
    adv_ts = dts[np.maximum.accumulate(np.where(advanced, np.arange(n), -1))]
    nextseq_ts = _group_shift(adv_ts, d_start, 0)
    prev_ack = _group_shift(dack, d_start, -1)
    prev_win = _group_shift(dwin, d_start, -1)
    rst = (dflags & RST) > 0
    syn_or_fin = (dflags & (SYN | FIN)) > 0
    control = (dflags & (SYN | FIN | RST)) > 0
    # duplicate ACK: no data, same window (non-zero), same ACK, at the expected sequence number
    dup_ack = (
        (dplen == 0)
        & (dwin > 0)
        & (dwin == prev_win)
        & known
        & (rel == nextseq)
        & (dack == prev_ack)
        & ~control
    )
    keepalive = (seglen <= 1) & ~control & known & (rel == nextseq - 1)
    zero_window = (dwin == 0) & ~control
    lost_before = known & (rel > nextseq) & ~rst

    # back to S order to see the reverse direction's latest state at each segment
    inv = np.empty(n, dtype=np.int64)
    inv[dorder] = np.arange(n)
    rel_s, nextseq_s, plen_s = rel[inv], nextseq[inv], plen
    last_rev = _last_reverse(pos, dirn, first, conn)
    has_rev = last_rev >= 0
    rv = np.where(has_rev, last_rev, 0)
    # the ACK of a keep-alive repeats the previous ACK but is not a duplicate ACK
    keepalive_ack = np.zeros(n, dtype=bool)
    keepalive_ack[inv] = has_rev & keepalive[inv][rv]
    dup_ack &= ~keepalive_ack
    # Wireshark keeps counting duplicate ACKs until the ACK number moves (data segments in between do not
    # reset the count), which is what its fast-retransmission test then reads from the other direction
    runs = np.cumsum(dup_ack)
    ack_moved = d_start | (dack != prev_ack)
    dupack_run = runs - np.maximum.accumulate(np.where(ack_moved, runs - dup_ack, 0))
    rev_ack = np.where(has_rev, ack[rv], 0)
    rev_ack_ts = np.where(has_rev, ts[rv], 0)
    rev_dupacks = np.where(has_rev, dupack_run[inv][rv], 0)
    # retransmission family (Wireshark's tcp_analyze_sequence_number): data, SYN or FIN that does not
    # advance the sequence; keep-alives excluded. Order of tests as in tshark 4.0: fast, spurious, out-of-order, plain
    carries = ((plen_s > 0) | syn_or_fin[inv]) & ~keepalive[inv]
    not_advanced = (nextseq_s != NONE) & (rel_s < nextseq_s)
    not_advanced &= ~((plen_s > 1) & (rel_s == nextseq_s - 1))
    fast = (
        carries
        & not_advanced
        & (rev_dupacks >= 2)
        & (rev_ack == seq)
        & (ts - rev_ack_ts < cfg.fast_retrans_window_ns)
    )
    thres = np.where((irtt[conn] > 0) & (pos >= hs_ack[conn]), irtt[conn], cfg.ooo_threshold_ns)
    recent = (nextseq_s != NONE) & (ts - nextseq_ts[inv] < thres)  # since the sequence last advanced
    spurious = carries & ~fast & (plen_s > 0) & (rev_ack != 0) & (seq_diff(seq + plen_s, rev_ack) <= 0)
    ooo = carries & not_advanced & ~fast & ~spurious & recent & (nextseq_s != rel_s + seglen[inv])
    plain = carries & not_advanced & ~fast & ~ooo & ~spurious
    retrans = fast | spurious | plain  # Wireshark marks fast and spurious ones as retransmissions too

    # relative ACK: the reverse direction's ISN is its base
    base_by_dir = np.full((n_conn, 2), 0, dtype=np.int64)
    isn_raw = (dseq[d_first] - rel[d_first]) % SEQ_MOD  # raw initial sequence number per direction
    base_by_dir[conn[dorder][d_first], dirn[dorder][d_first]] = isn_raw
    rel_ack = np.where(ackf, seq_diff(ack, base_by_dir[conn, 1 - dirn]), 0)

    return Analysis(
        dirn=dirn,
        rel=rel_s,
        rel_ack=rel_ack,
        retrans=retrans,
        fast_retrans=fast,
        spurious_retrans=spurious,
        out_of_order=ooo,
        lost_before=lost_before[inv],
        dup_ack=dup_ack[inv],
        zero_window=zero_window[inv],
        keepalive=keepalive[inv],
        first_syn=first_syn,
        first_synack=first_synack,
        client_is_a=client_is_a,
        irtt=irtt,
        has_rtt=has_rtt,
    )


# The fields of `Analysis` the C core writes, in its order, with their dtypes: per segment, per connection.
_PER_SEGMENT_OUT = {
    "dirn": np.int64,
    "rel": np.int64,
    "rel_ack": np.int64,
    **dict.fromkeys(PER_SEGMENT_FLAGS, np.bool_),
}
_PER_CONNECTION_OUT = {
    "first_syn": np.int64,
    "first_synack": np.int64,
    "client_is_a": np.bool_,
    "irtt": np.int64,
    "has_rtt": np.bool_,
}


def _analyze_native(cfg: TcpConfig, part: Slice) -> Analysis:
    """`_analyze_numpy` in C: one pass per connection instead of ~150 array operations per slice."""
    n, n_conn = len(part.flags), len(part.first)
    per_segment = {name: np.empty(n, dtype) for name, dtype in _PER_SEGMENT_OUT.items()}
    per_connection = {name: np.empty(n_conn, dtype) for name, dtype in _PER_CONNECTION_OUT.items()}
    native.core.tcp_segments(
        as_i64(part.first),
        np.ascontiguousarray(part.a_is_src, dtype=np.bool_),
        as_i64(part.key_lo),
        as_i64(part.key_hi),
        as_i64(part.flags),
        as_i64(part.seq),
        as_i64(part.ack),
        as_i64(part.plen),
        as_i64(part.ts),
        as_i64(part.win),
        cfg.ooo_threshold_ns,
        cfg.fast_retrans_window_ns,
        tuple(per_segment.values()),
        tuple(per_connection.values()),
    )
    return Analysis(**per_segment, **per_connection)


class SackHoles:
    """Per packet: bytes between the cumulative ACK and the lowest SACK block above it (RFC 2018).

    Blocks at or below the cumulative ACK are D-SACKs (RFC 2883) and say nothing about a hole. Kept
    sparse (only packets that report a hole), since most packets carry no SACK block at all.
    """

    def __init__(self, packets, sack) -> None:
        self.rows = np.zeros(0, dtype=np.int64)
        self.size = np.zeros(0, dtype=np.int64)
        if not len(sack):
            return
        sack_rows = sack["row"].to_numpy()
        gap = seq_diff(sack["left"].to_numpy(), packets["ack"].to_numpy()[sack_rows])
        above = gap > 0
        lowest = pd.Series(gap[above]).groupby(sack_rows[above]).min()  # sorted by row
        self.rows, self.size = lowest.index.to_numpy(dtype=np.int64), lowest.to_numpy(dtype=np.int64)

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The hole each of `rows` reports (0: none)."""
        out = np.zeros(len(rows), dtype=np.int64)
        if len(self.rows):
            i = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
            hit = self.rows[i] == rows
            out[hit] = self.size[i[hit]]
        return out
