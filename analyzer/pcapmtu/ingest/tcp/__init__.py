"""Stage 2: reconstruct TCP connections from the packets table, vectorized.

A connection is a 5-tuple plus a SYN: a new SYN with a different initial sequence number on a reused
5-tuple starts a new connection (port reuse is common in real captures). Each direction's sequence
numbers are unwrapped across 32-bit wraparound and made relative to the initial sequence number.

Per-segment analysis follows Wireshark's `tcp_analyze_sequence_number` closely so that counts can be
checked against `tcp.analysis.*` (see tests/test_oracle.py and docs/tables.md for the remaining
differences): retransmission / fast retransmission / spurious retransmission / out-of-order, previous
segment not captured, duplicate ACK, zero window, keep-alive. Copies of one packet seen on several
interfaces (`tcpdump -i any`) are flagged `dup_copy` and left out of the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import schema
from . import native
from .states import STATES, zeek_conn_state

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SEQ_MOD = 1 << 32
NONE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class TcpConfig:
    """Thresholds of the per-segment analysis (Wireshark's defaults)."""

    ooo_threshold_ns: int = 3_000_000  # used until the handshake RTT is known
    fast_retrans_window_ns: int = 20_000_000  # a retransmission within 20 ms of the 2nd dup ACK
    dup_copy_window_ns: int = 1_000_000_000  # same packet on another interface within this time
    sll_copy_window_ns: int = 2_000_000  # same packet again within this time when interfaces are unknown
    slice_rows: int = 1 << 15  # packets analysed at once (whole connections): bounds temporary memory
    block_rows: int = 1 << 16  # packets whose 5-tuples are interned at once


PACKET_ANALYSIS_COLUMNS = {
    "conn": np.int32,
    "dir": np.int8,
    "rel_seq": np.int64,
    "rel_ack": np.int64,
    "retrans": np.bool_,
    "fast_retrans": np.bool_,
    "spurious_retrans": np.bool_,
    "out_of_order": np.bool_,
    "lost_before": np.bool_,
    "dup_ack": np.bool_,
    "zero_window": np.bool_,
    "keepalive": np.bool_,
    "dup_copy": np.bool_,
    "sack_hole": np.int64,
}


def seq_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b in sequence space (RFC 1982 serial arithmetic), as signed 64-bit values."""
    return ((a.astype(np.int64) - b.astype(np.int64) + (1 << 31)) % SEQ_MOD) - (1 << 31)


def _segments(values: np.ndarray, starts: np.ndarray, ufunc) -> np.ndarray:
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


# what the TLS layer reads per packet when the rest of the per-packet analysis is not kept
ESSENTIAL_COLUMNS = ("conn", "dir", "rel_seq")
# packet columns read only at the start of the reconstruction (copied into its own sorted arrays)
GATHERED_COLUMNS = (
    "tcp_flags",
    "seq",
    "ack",
    "win",
    "ip_id",
    "tsval",
    "ifindex",
    "iface",
    "linktype",
    "frag",
)


def reconstruct(packets: pd.DataFrame, sack: pd.DataFrame, cfg: TcpConfig | None = None, per_packet=True):
    """Return (per-packet analysis columns, flows table). See docs/tables.md for every column.

    `per_packet=False` returns only `ESSENTIAL_COLUMNS` per packet (same flows, less memory) and removes
    `GATHERED_COLUMNS` from `packets` once they are read: for a table the caller does not keep.
    """
    cfg = cfg or TcpConfig()
    n_all = len(packets)
    wanted = (
        PACKET_ANALYSIS_COLUMNS if per_packet else {k: PACKET_ANALYSIS_COLUMNS[k] for k in ESSENTIAL_COLUMNS}
    )
    cols = {name: np.zeros(n_all, dtype=dt) for name, dt in wanted.items()}
    cols["conn"][:] = -1
    cols["dir"][:] = -1
    status_ok = packets["status"].cat.codes.to_numpy() == 0
    proto = packets["proto"].to_numpy()
    is_tcp = (proto == 6) & status_ok & (packets["ipv"].to_numpy() > 0) & ~packets["frag"].to_numpy()
    rows = np.flatnonzero(is_tcp)
    if not len(rows):
        return cols, _empty_flows()

    # Memory: these arrays span every TCP packet, so they are kept narrow (raw 32-bit sequence numbers,
    # 32-bit positions); the wide per-connection arithmetic happens slice by slice below.
    if len(rows) < 2**31:
        rows = rows.astype(np.int32)
    a_is_src, tup = _tuple_ids(packets, rows, cfg.block_rows)

    def column(name, dtype):
        return packets[name].to_numpy()[rows].astype(dtype, copy=False)

    flags, plen, win = column("tcp_flags", np.int16), column("payload_len", np.int32), column("win", np.int32)
    seq, ack, ts = column("seq", np.uint32), column("ack", np.uint32), column("ts_ns", np.int64)
    dup_copy = _interface_copies(packets, rows, tup, a_is_src, flags, seq, ack, plen, win, ts, cfg)
    if "dup_copy" in cols:
        cols["dup_copy"][rows] = dup_copy
    holes = _SackHoles(packets, sack)
    if "sack_hole" in cols:
        cols["sack_hole"][holes.rows] = holes.size
    if not per_packet:  # nothing after this point reads them: let their memory go
        for name in GATHERED_COLUMNS:
            if name in packets.columns:
                del packets[name]

    # ---- S order: by 5-tuple, file order inside; interface copies left out
    kept = np.flatnonzero(~dup_copy)
    order = kept[np.argsort(tup[kept], kind="stable")]
    del kept, dup_copy
    # one array at a time, so only one capture-wide copy exists at any moment
    rows = rows[order]
    tup = tup[order]
    a_is_src = a_is_src[order]
    flags = flags[order]
    seq = seq[order]
    ack = ack[order]
    plen = plen[order]
    ts = ts[order]
    win = win[order]
    del order
    n = len(rows)
    syn = (flags & SYN) > 0
    ackf = (flags & ACK) > 0
    syn_only = syn & ~ackf
    synack = syn & ackf
    start = np.ones(n, dtype=bool)
    start[1:] = tup[1:] != tup[:-1]
    syn_pos = np.flatnonzero(syn_only)
    if len(syn_pos):
        new_syn = np.ones(len(syn_pos), dtype=bool)
        same_tuple = tup[syn_pos[1:]] == tup[syn_pos[:-1]]
        new_syn[1:] = (
            ~same_tuple
            | (seq[syn_pos[1:]] != seq[syn_pos[:-1]])
            | (a_is_src[syn_pos[1:]] != a_is_src[syn_pos[:-1]])
        )
        # the first SYN of a 5-tuple joins the rows before it when those hold the SYN-ACK answering it
        # (captures taken on several interfaces or cores sometimes write the SYN-ACK first)
        first_in_tuple = np.ones(len(syn_pos), dtype=bool)
        first_in_tuple[1:] = ~same_tuple
        new_syn &= ~(first_in_tuple & _answered_earlier(syn_pos, tup, seq, ack, synack, start))
        start[syn_pos[new_syn]] = True
    # ---- analyse in slices of whole connections: temporaries stay bounded whatever the capture size
    first_all = np.flatnonzero(start)
    rank = np.empty(len(first_all), dtype=np.int64)  # number connections by first frame, like tcp.stream
    rank[np.argsort(rows[first_all], kind="stable")] = np.arange(len(first_all))
    flows = []
    lo = 0
    while lo < n:
        hi = min(n, lo + cfg.slice_rows)
        if hi < n:
            hi = int(first_all[np.searchsorted(first_all, hi)]) if hi <= first_all[-1] else n
        sl = slice(lo, hi)
        conn_base = int(np.searchsorted(first_all, lo))
        flows.append(
            _analyze_slice(
                packets,
                holes,
                cfg,
                cols,
                rank,
                conn_base,
                rows[sl].astype(np.int64),
                a_is_src[sl],
                flags[sl].astype(np.int64),
                seq[sl].astype(np.int64),
                ack[sl].astype(np.int64),
                plen[sl],
                ts[sl],
                win[sl],
                start[sl],
            )  # fmt: skip
        )
        lo = hi
    return cols, _joined(flows)


def _joined(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One flows table from the slices' columns, in connection order, built one column at a time."""
    order = np.argsort(np.concatenate([p["conn"] for p in parts]), kind="stable")
    columns = {}
    for name in list(parts[0]):
        values = [p.pop(name) for p in parts]
        if isinstance(values[0], pd.Categorical):
            columns[name] = pd.Categorical(np.concatenate([np.asarray(v) for v in values])[order],
                                           categories=values[0].categories)  # fmt: skip
        else:
            columns[name] = np.concatenate(values)[order]
        del values
    return pd.DataFrame(columns, copy=False)


def _analyze_slice(packets, holes, cfg, cols, rank, conn_base, rows, a_is_src, flags, seq, ack, plen, ts, win,
                   start) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-segment analysis and per-connection aggregates for a run of whole connections (S order)."""
    conn = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    _, key_lo, key_hi = _endpoint_keys(packets, rows[first])  # per connection: its 5-tuple
    rank = rank[conn_base : conn_base + len(first)]
    segments = _segments_native if native.ENABLED else _segments_numpy
    seg = segments(cfg, conn, first, a_is_src, key_lo, key_hi, flags, seq, ack, plen, ts, win)
    dirn, rel_s, rel_ack = seg["dirn"], seg["rel"], seg["rel_ack"]
    per_packet = {name: seg[name] for name in PER_SEGMENT_FLAGS}
    # ---- write the per-packet columns the caller asked for
    for name, values in {
        "conn": rank[conn],
        "dir": dirn,
        "rel_seq": rel_s,
        "rel_ack": rel_ack,
        **per_packet,
    }.items():
        if name in cols:
            cols[name][rows] = values
    hole = holes.at(rows)

    return _flows(
        packets,
        rows=rows,
        first=first,
        conn=conn,
        rank=rank,
        dirn=dirn,
        flags=flags,
        seq=seq,
        rel=rel_s,
        rel_ack=rel_ack,
        plen=plen,
        ts=ts,
        client_is_a=seg["client_is_a"],
        key_lo=key_lo,
        key_hi=key_hi,
        first_syn=seg["first_syn"],
        first_synack=seg["first_synack"],
        irtt=seg["irtt"],
        has_rtt=seg["has_rtt"],
        per_packet=per_packet,
        hole=hole,
    )


PER_SEGMENT_FLAGS = ("retrans", "fast_retrans", "spurious_retrans", "out_of_order", "lost_before", "dup_ack",
                     "zero_window", "keepalive")  # fmt: skip


def _segments_numpy(cfg, conn, first, a_is_src, key_lo, key_hi, flags, seq, ack, plen, ts, win) -> dict:
    """Orientation, relative sequence numbers and the per-segment flags of whole connections, vectorized.

    Returns per packet `dirn`, `rel`, `rel_ack` and `PER_SEGMENT_FLAGS`; per connection `first_syn`,
    `first_synack` (positions, NONE if absent), `client_is_a`, `irtt`, `has_rtt`.
    """
    n = len(flags)
    pos = np.arange(n)
    syn = (flags & SYN) > 0
    ackf = (flags & ACK) > 0
    syn_only = syn & ~ackf
    synack = syn & ackf
    n_conn = len(first)

    # ---- orientation: the SYN sender is the client; else the SYN-ACK receiver; else the higher port
    first_syn = _segments(np.where(syn_only, pos, NONE), first, np.minimum)
    first_synack = _segments(np.where(synack, pos, NONE), first, np.minimum)
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
    hs_ack = _segments(np.where(after_syn & ackf & ~syn & (ts > syn_ts), pos, NONE), first, np.minimum)
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
    syn_in_dir = _segments(np.where(dsyn, np.arange(n), NONE), d_first, np.minimum)
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

    return {
        "dirn": dirn,
        "rel": rel_s,
        "rel_ack": rel_ack,
        "retrans": retrans,
        "fast_retrans": fast,
        "spurious_retrans": spurious,
        "out_of_order": ooo,
        "lost_before": lost_before[inv],
        "dup_ack": dup_ack[inv],
        "zero_window": zero_window[inv],
        "keepalive": keepalive[inv],
        "first_syn": first_syn,
        "first_synack": first_synack,
        "client_is_a": client_is_a,
        "irtt": irtt,
        "has_rtt": has_rtt,
    }


def _i64(values) -> np.ndarray:
    """The contiguous int64 array the C core reads (no copy when it already is one)."""
    return np.ascontiguousarray(values, dtype=np.int64)


def _segments_native(cfg, conn, first, a_is_src, key_lo, key_hi, flags, seq, ack, plen, ts, win) -> dict:
    """`_segments_numpy` in C: one pass per connection instead of ~150 array operations per slice."""
    n, n_conn = len(flags), len(first)
    out = {"dirn": np.empty(n, np.int64), "rel": np.empty(n, np.int64), "rel_ack": np.empty(n, np.int64)}
    for name in PER_SEGMENT_FLAGS:
        out[name] = np.empty(n, np.bool_)
    for name, dtype in (("first_syn", np.int64), ("first_synack", np.int64), ("client_is_a", np.bool_),
                        ("irtt", np.int64), ("has_rtt", np.bool_)):  # fmt: skip
        out[name] = np.empty(n_conn, dtype)

    native.core.tcp_segments(
        _i64(first), np.ascontiguousarray(a_is_src, dtype=np.bool_), _i64(key_lo), _i64(key_hi), _i64(flags),
        _i64(seq), _i64(ack), _i64(plen), _i64(ts), _i64(win), cfg.ooo_threshold_ns, cfg.fast_retrans_window_ns,
        tuple(out[name] for name in ("dirn", "rel", "rel_ack", *PER_SEGMENT_FLAGS)),
        tuple(out[name] for name in ("first_syn", "first_synack", "client_is_a", "irtt", "has_rtt")),
    )  # fmt: skip
    return out


def _tuple_ids(packets, rows, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(a_is_src, 5-tuple id) per row; ids number the tuples in order of first appearance.

    Interned a block of rows at a time: a hash table over every packet of a big capture would be the
    largest allocation of the whole analysis, while the distinct tuples are few.
    """
    a_is_src = np.empty(len(rows), dtype=bool)
    tup = np.empty(len(rows), dtype=np.int32)
    if native.ENABLED and rows.dtype == np.int32:  # one pass in C, a hash table over the distinct tuples only
        native.core.tuple_ids(
            packets["src"].cat.codes.to_numpy().astype(np.int32, copy=False),
            np.ascontiguousarray(packets["sport"].to_numpy(), dtype=np.uint16),
            packets["dst"].cat.codes.to_numpy().astype(np.int32, copy=False),
            np.ascontiguousarray(packets["dport"].to_numpy(), dtype=np.uint16),
            np.ascontiguousarray(rows),
            a_is_src,
            tup,
        )
        return a_is_src, tup
    known: dict[tuple[int, int], int] = {}
    for lo in range(0, len(rows), step):
        part = slice(lo, lo + step)
        a_is_src[part], key_lo, key_hi = _endpoint_keys(packets, rows[part])
        c_lo, u_lo = pd.factorize(key_lo)
        c_hi, u_hi = pd.factorize(key_hi)
        local, pairs = pd.factorize(c_lo.astype(np.int64) * len(u_hi) + c_hi)
        ids = np.empty(len(pairs), dtype=np.int32)
        for i, (a, b) in enumerate(
            zip(u_lo[pairs // len(u_hi)].tolist(), u_hi[pairs % len(u_hi)].tolist(), strict=True)
        ):
            ids[i] = known.setdefault((a, b), len(known))
        tup[part] = ids[local]
    return a_is_src, tup


def _endpoint_keys(packets, rows):
    """Direction-free 5-tuple: endpoint A is the lower (address code, port); keys are code << 16 | port."""
    src = packets["src"].cat.codes.to_numpy()[rows].astype(np.int64)
    src <<= 16  # in place: these arrays can span every TCP packet of the capture
    src |= packets["sport"].to_numpy()[rows]
    dst = packets["dst"].cat.codes.to_numpy()[rows].astype(np.int64)
    dst <<= 16
    dst |= packets["dport"].to_numpy()[rows]
    a_is_src = src <= dst
    key_lo = np.minimum(src, dst)
    return a_is_src, key_lo, np.maximum(src, dst, out=src)


def _answered_earlier(syn_pos, tup, seq, ack, synack, start) -> np.ndarray:
    """For each SYN, whether an earlier row of its 5-tuple, since the tuple's start, is its SYN-ACK."""
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(start)), 0))
    sa = np.flatnonzero(synack)
    acked = pd.DataFrame({"t": tup[sa], "s": (ack[sa].astype(np.int64) - 1) % SEQ_MOD, "p": sa})
    syns = pd.DataFrame(
        {"t": tup[syn_pos], "s": seq[syn_pos].astype(np.int64), "q": syn_pos, "g": group_start[syn_pos]}
    )
    hit = syns.reset_index().merge(acked, on=["t", "s"], how="inner")
    hit = hit[(hit["p"] < hit["q"]) & (hit["p"] >= hit["g"])]
    out = np.zeros(len(syn_pos), dtype=bool)
    out[hit["index"].to_numpy()] = True
    return out


def _interface_copies(packets, rows, tup, a_is_src, flags, seq, ack, plen, win, ts, cfg) -> np.ndarray:
    """Flag later copies of one packet captured on another interface (`tcpdump -i any`, pcapng).

    A copy has the same TCP/IP identity (IP ID, TSval, sequence, ACK, length, flags, window) as an earlier
    packet. With an interface id (pcapng, SLL2) it must come from another interface within a second; Linux
    cooked v1 has no interface id, so there a copy must follow within `sll_copy_window_ns` - a real
    retransmission takes at least an RTO or an RTT and gets a new IP ID.
    """
    iface = packets["iface"].to_numpy()[rows]
    ifindex = packets["ifindex"].to_numpy()[rows]
    blind = packets["linktype"].to_numpy()[rows] == 113  # SLL v1: which interface is unknown
    one_place = len(rows) == 0 or (iface.min() == iface.max() and ifindex.min() == ifindex.max())
    if one_place and not blind.any():  # the common case, checked without a capture-wide sort
        return np.zeros(len(rows), dtype=bool)
    where_seen = (iface.astype(np.int64) << 32) | (ifindex.astype(np.int64) & 0xFFFFFFFF)
    del iface, ifindex
    ip_id = packets["ip_id"].to_numpy()[rows]
    tsval = packets["tsval"].to_numpy()[rows]
    ident = pd.DataFrame(
        {"t": tup, "a": a_is_src, "f": flags, "s": seq, "k": ack, "l": plen, "w": win, "i": ip_id, "v": tsval}
    )
    group = ident.groupby(list(ident.columns), sort=False).ngroup().to_numpy()
    _, first_idx = np.unique(group, return_index=True)
    orig = first_idx[group]
    later = np.arange(len(rows)) != orig
    gap = np.abs(ts - ts[orig])
    elsewhere = (where_seen != where_seen[orig]) & (gap <= cfg.dup_copy_window_ns)
    unknown_iface = blind & blind[orig] & (gap <= cfg.sll_copy_window_ns)
    return later & (elsewhere | unknown_iface)


def _last_reverse(pos, dirn, first, conn) -> np.ndarray:
    """For each segment, the position of the latest earlier segment of the other direction (or -1)."""
    out = np.full(len(pos), -1, dtype=np.int64)
    conn_start = first[conn]
    for d in (0, 1):
        last = np.maximum.accumulate(np.where(dirn == d, pos, -1))
        mine = (dirn == 1 - d) & (last >= conn_start)
        out[mine] = last[mine]
    return out


class _SackHoles:
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


HISTORY_LETTERS = (
    "SHADFRTWG"  # Zeek: SYN, SYN-ACK, pure ACK, data, FIN, RST, retransmission, zero window, gap
)


# Per-connection sums, maxima and positions that `_flows` builds the table from; per direction they are
# named `{name}_c2s` / `{name}_s2c`. "Largest" values are never below 0 (as with no packet at all); a
# position is NONE where no packet qualifies.
CONN_AGGREGATES = ("ipv", "first_frame", "last_frame", "first_ts", "last_ts", "max_gap", "idle_end")
DIR_AGGREGATES = (
    "pkts", "bytes", "max_payload", "max_ip_len", "max_outer_len", *PER_SEGMENT_FLAGS, "sack_acks",
    "max_sack_hole", "first_pos", "first_data_pos", "last_data_pos", "sent", "acked", "bytes_after_idle",
    "max_payload_after_idle", "max_payload_before_idle", "syn_pos", "synack_pos", "pure_ack_pos", "data_pos",
    "fin_pos", "rst_pos", "retrans_pos", "zero_window_pos", "lost_pos",
)  # fmt: skip
HISTORY_POSITIONS = (
    "syn_pos",
    "synack_pos",
    "pure_ack_pos",
    "data_pos",
    "fin_pos",
    "rst_pos",
    "retrans_pos",
    "zero_window_pos",
    "lost_pos",
)  # fmt: skip, in HISTORY_LETTERS order


def _aggregates_numpy(first, conn, dirn, flags, rel, rel_ack, plen, ts, frame, ip_len, outer, ipv, hole,
                      per_packet) -> dict[str, np.ndarray]:  # fmt: skip
    """`CONN_AGGREGATES` and `DIR_AGGREGATES` of a slice, vectorized."""
    n = len(dirn)
    pos = np.arange(n)

    def total(v):
        return _segments(v.astype(np.int64), first, np.add)

    def biggest(v, mask):
        return _segments(np.where(mask, v, 0).astype(np.int64), first, np.maximum)

    def earliest(mask):
        return _segments(np.where(mask, pos, NONE), first, np.minimum)

    def latest(mask):
        last = _segments(np.where(mask, pos, -1), first, np.maximum)
        return np.where(last >= 0, last, NONE)

    out = {
        "ipv": _segments(ipv.astype(np.int64), first, np.maximum),
        "first_frame": _segments(frame, first, np.minimum),
        "last_frame": _segments(frame, first, np.maximum),
        "first_ts": _segments(ts, first, np.minimum),
        "last_ts": _segments(ts, first, np.maximum),
    }
    gap = np.zeros(n, dtype=np.int64)
    gap[1:] = np.maximum(ts[1:] - ts[:-1], 0)
    gap[first] = 0
    max_gap = _segments(gap, first, np.maximum)
    idle_end = earliest((gap == max_gap[conn]) & (gap > 0))
    out["max_gap"], out["idle_end"] = max_gap, idle_end
    after = pos >= np.where(idle_end == NONE, n, idle_end)[conn]
    data = plen > 0
    syn, ackf = (flags & SYN) > 0, (flags & ACK) > 0
    fin, rst = (flags & FIN) > 0, (flags & RST) > 0
    pure_ack = ackf & (plen == 0) & ((flags & (SYN | FIN | RST)) == 0)
    for d, tag in ((0, "c2s"), (1, "s2c")):
        mask, other = dirn == d, dirn == 1 - d
        out[f"pkts_{tag}"] = total(mask)
        out[f"bytes_{tag}"] = total(np.where(mask, plen, 0))
        out[f"max_payload_{tag}"] = biggest(plen, mask)
        out[f"max_ip_len_{tag}"] = biggest(ip_len, mask)
        out[f"max_outer_len_{tag}"] = biggest(outer, mask)
        for name, values in per_packet.items():
            out[f"{name}_{tag}"] = total(values & mask)
        out[f"sack_acks_{tag}"] = total((hole > 0) & mask)
        out[f"max_sack_hole_{tag}"] = biggest(hole, mask)
        out[f"first_pos_{tag}"] = earliest(mask)
        out[f"first_data_pos_{tag}"] = earliest(mask & data)
        out[f"last_data_pos_{tag}"] = latest(mask & data)
        out[f"sent_{tag}"] = biggest(rel + plen, mask & data)
        out[f"acked_{tag}"] = biggest(rel_ack - 1, other & ackf)
        out[f"bytes_after_idle_{tag}"] = total(np.where(after & mask, plen, 0))
        out[f"max_payload_after_idle_{tag}"] = biggest(plen, after & mask)
        out[f"max_payload_before_idle_{tag}"] = biggest(plen, ~after & mask)
        for name, m in zip(HISTORY_POSITIONS, (syn & ~ackf, syn & ackf, pure_ack, data, fin, rst,
                                               per_packet["retrans"], per_packet["zero_window"],
                                               per_packet["lost_before"]), strict=True):  # fmt: skip
            out[f"{name}_{tag}"] = earliest(m & mask)
    return out


def _aggregates_native(first, conn, dirn, flags, rel, rel_ack, plen, ts, frame, ip_len, outer, ipv, hole,
                       per_packet) -> dict[str, np.ndarray]:  # fmt: skip
    """`_aggregates_numpy` in C: one pass over each connection's packets."""
    bits = np.zeros(len(dirn), dtype=np.uint8)
    for k, name in enumerate(PER_SEGMENT_FLAGS):
        bits |= per_packet[name].view(np.uint8) << k
    table = np.empty((len(first), len(CONN_AGGREGATES) + 2 * len(DIR_AGGREGATES)), dtype=np.int64)

    native.core.tcp_aggregates(
        _i64(first), _i64(dirn), _i64(flags), _i64(rel), _i64(rel_ack), _i64(plen), _i64(ts), _i64(frame), _i64(ip_len),
        _i64(outer), _i64(ipv), _i64(hole), bits, table,
    )  # fmt: skip
    names = [*CONN_AGGREGATES] + [f"{name}_{tag}" for tag in ("c2s", "s2c") for name in DIR_AGGREGATES]
    return {name: table[:, k] for k, name in enumerate(names)}


def _flows(packets, *, rows, first, conn, rank, dirn, flags, seq, rel, rel_ack, plen, ts, client_is_a, key_lo, key_hi,
           first_syn, first_synack, irtt, has_rtt, per_packet, hole) -> dict[str, np.ndarray]:  # fmt: skip
    n_conn = len(first)
    frame = packets["frame"].to_numpy()[rows]
    aggregates = _aggregates_native if native.ENABLED else _aggregates_numpy
    agg = aggregates(
        first, conn, dirn, flags, rel, rel_ack, plen, ts, frame, packets["ip_len"].to_numpy()[rows],
        packets["outer_ip_len"].to_numpy()[rows], packets["ipv"].to_numpy()[rows], hole, per_packet,
    )  # fmt: skip

    def at(position, values, missing):
        ok = position != NONE
        return np.where(ok, values[np.where(ok, position, 0)], missing)

    def option(position, name, missing):  # a handshake option: read at one packet per connection
        ok = position != NONE
        return np.where(ok, packets[name].to_numpy()[rows[np.where(ok, position, 0)]], missing)

    lo_addr, lo_port = key_lo >> 16, key_lo & 0xFFFF
    hi_addr, hi_port = key_hi >> 16, key_hi & 0xFFFF
    c_addr = np.where(client_is_a, lo_addr, hi_addr)
    s_addr = np.where(client_is_a, hi_addr, lo_addr)
    names = packets["src"].cat.categories.to_numpy()

    out: dict[str, object] = {
        "conn": rank,
        "client_ip": names[c_addr],
        "client_port": np.where(client_is_a, lo_port, hi_port).astype(np.int32),
        "server_ip": names[s_addr],
        "server_port": np.where(client_is_a, hi_port, lo_port).astype(np.int32),
        "ipv": agg["ipv"].astype(np.int8),
        "first_frame": agg["first_frame"],
        "last_frame": agg["last_frame"],
        "first_ts": agg["first_ts"] / 1e9,
        "first_time": schema.utc(agg["first_ts"]),
        "last_ts": agg["last_ts"] / 1e9,
        "last_time": schema.utc(agg["last_ts"]),
        "syn_frame": at(first_syn, frame, -1),
        "synack_frame": at(first_synack, frame, -1),
        "handshake_rtt": np.where(has_rtt, irtt / 1e9, np.nan),
        "mss_client": option(first_syn, "mss", 0).astype(np.int32),
        "mss_server": option(first_synack, "mss", 0).astype(np.int32),
        "wscale_client": option(first_syn, "wscale", -1).astype(np.int8),
        "wscale_server": option(first_synack, "wscale", -1).astype(np.int8),
        "sack_perm_client": option(first_syn, "sack_perm", False).astype(bool),
        "sack_perm_server": option(first_synack, "sack_perm", False).astype(bool),
        "ts_client": option(first_syn, "has_ts", False).astype(bool),
        "ts_server": option(first_synack, "has_ts", False).astype(bool),
    }
    for tag in ("c2s", "s2c"):
        for name in ("pkts", "bytes", "max_payload", "max_ip_len", "max_outer_len"):
            out[f"{name}_{tag}"] = agg[f"{name}_{tag}"]
    for name in per_packet:
        for tag in ("c2s", "s2c"):
            out[f"{name}_{tag}"] = agg[f"{name}_{tag}"]
    out["retransmissions"] = out["retrans_c2s"] + out["retrans_s2c"]
    for tag in ("c2s", "s2c"):
        out[f"sack_acks_{tag}"] = agg[f"sack_acks_{tag}"]
        out[f"max_sack_hole_{tag}"] = agg[f"max_sack_hole_{tag}"]

    out["isn_client"] = at(first_syn, seq, -1)
    out["isn_server"] = at(first_synack, seq, -1)
    out["first_seq_c2s"] = at(agg["first_pos_c2s"], seq, -1)
    out["first_seq_s2c"] = at(agg["first_pos_s2c"], seq, -1)
    for tag in ("c2s", "s2c"):
        out[f"first_data_ts_{tag}"] = at(agg[f"first_data_pos_{tag}"], ts, -1) / 1e9
        out[f"last_data_ts_{tag}"] = at(agg[f"last_data_pos_{tag}"], ts, -1) / 1e9
    # the longest silence inside the connection, and what the server sent after it (recovery by probing)
    max_gap, idle_end = agg["max_gap"], agg["idle_end"]
    out["max_idle"] = max_gap / 1e9
    out["idle_start_ts"] = np.where(idle_end != NONE, at(idle_end, ts, 0) - max_gap, 0) / 1e9
    for tag in ("s2c", "c2s"):
        out[f"bytes_{tag}_after_idle"] = agg[f"bytes_after_idle_{tag}"]
        out[f"max_payload_{tag}_after_idle"] = agg[f"max_payload_after_idle_{tag}"]
        out[f"max_payload_{tag}_before_idle"] = agg[f"max_payload_before_idle_{tag}"]
    # how far each side's data got, and how far the other side acknowledged it
    for tag in ("c2s", "s2c"):
        out[f"sent_{tag}"] = agg[f"sent_{tag}"]
        out[f"acked_{tag}"] = agg[f"acked_{tag}"]
    fin_c, fin_s = agg["fin_pos_c2s"] != NONE, agg["fin_pos_s2c"] != NONE
    out["fin_client"] = fin_c
    out["fin_server"] = fin_s
    end_c = np.minimum(agg["fin_pos_c2s"], agg["rst_pos_c2s"])
    end_s = np.minimum(agg["fin_pos_s2c"], agg["rst_pos_s2c"])
    out["closed_by"] = np.select([(end_c < end_s), (end_s < end_c)], ["client", "server"], default="")

    has_syn = first_syn != NONE
    has_synack = first_synack != NONE
    out["history"] = _history(
        n_conn, [(agg[f"{name}_c2s"], agg[f"{name}_s2c"]) for name in HISTORY_POSITIONS]
    )
    conn_state, established, rst = zeek_conn_state(
        agg, out["bytes_c2s"], out["bytes_s2c"], out["history"], NONE
    )
    state = np.select(
        [
            (conn_state == "REJ") & ~established,
            rst,
            (conn_state == "S0") | ((conn_state == "SH") & (out["pkts_s2c"] == 0)),
            conn_state == "SF",
            np.isin(
                conn_state, ("S2", "S3", "SH", "SHR")
            ),  # SH of a midstream capture: the server did answer
        ],
        ["refused", "reset", "no_answer", "closed", "closing"],
        default="open",
    )
    out["state"] = pd.Categorical(state, categories=list(STATES))
    out["conn_state"] = conn_state
    out["midstream"] = ~has_syn & ~has_synack
    out["duration"] = out["last_ts"] - out["first_ts"]
    return out


def _history(n_conn, positions: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Zeek-style history: one letter per event kind and side, in order of first occurrence."""
    conns, places, letters = [], [], []
    for letter, where_both in zip(HISTORY_LETTERS, positions, strict=True):
        for where, ch in zip(where_both, (letter, letter.lower()), strict=True):
            seen = np.flatnonzero(where != NONE)
            conns.append(seen)
            places.append(where[seen])
            letters.append(np.full(len(seen), ch))
    conn_of = np.concatenate(conns)
    order = np.lexsort((np.concatenate(places), conn_of))
    text = "".join(np.concatenate(letters)[order].tolist())
    bounds = np.searchsorted(conn_of[order], np.arange(n_conn + 1))
    return np.array(
        [text[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)], dtype=object
    )


LATER_COLUMNS = ("sni", "tls_version", "client_hello_len", "server_hello", "certificate_len",
                 "server_flight_bytes", "client_second_flight", "name", "name_source")  # fmt: skip


def _empty_flows() -> pd.DataFrame:
    return schema.empty({k: v for k, v in schema.FLOWS.items() if k not in LATER_COLUMNS})
