"""Stage 2: reconstruct TCP connections from the packets table, vectorized.

    connections   5-tuples interned and split into connections (port reuse); copies from several interfaces
    segments      each connection oriented, sequence numbers made relative, every segment flagged as tshark does
    flows         per-connection aggregates, and the flows table built from them
    states        Zeek's conn_state, from the first-event positions `flows` gathers
    streams       Wireshark's tcp.stream number of each connection

`reconstruct` runs the first three: it sorts TCP packets by their direction-free 5-tuple (file order inside),
splits them into connections, and analyses slices of whole connections so temporary memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import connections, flows, segments
from .segments import ACK, FIN, PSH, RST, SYN, seq_diff

__all__ = [
    "ACK",
    "ESSENTIAL_COLUMNS",
    "FIN",
    "GATHERED_COLUMNS",
    "PACKET_ANALYSIS_COLUMNS",
    "PSH",
    "RST",
    "SYN",
    "TcpConfig",
    "reconstruct",
    "seq_diff",
]


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
        return cols, flows.empty()

    # Memory: these arrays span every TCP packet, so they are kept narrow (raw 32-bit sequence numbers,
    # 32-bit positions); the wide per-connection arithmetic happens slice by slice below.
    if len(rows) < 2**31:
        rows = rows.astype(np.int32)
    a_is_src, tup = connections.tuple_ids(packets, rows, cfg.block_rows)

    def column(name, dtype):
        return packets[name].to_numpy()[rows].astype(dtype, copy=False)

    flags, plen, win = column("tcp_flags", np.int16), column("payload_len", np.int32), column("win", np.int32)
    seq, ack, ts = column("seq", np.uint32), column("ack", np.uint32), column("ts_ns", np.int64)
    dup_copy = connections.interface_copies(packets, rows, tup, a_is_src, cfg)
    if "dup_copy" in cols:
        cols["dup_copy"][rows] = dup_copy
    holes = segments.SackHoles(packets, sack)
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
    start = connections.starts(tup, a_is_src, flags, seq, ack)
    # ---- analyse in slices of whole connections: temporaries stay bounded whatever the capture size
    first_all = np.flatnonzero(start)
    rank = np.empty(len(first_all), dtype=np.int64)  # number connections by first frame, like tcp.stream
    rank[np.argsort(rows[first_all], kind="stable")] = np.arange(len(first_all))
    parts = []
    lo = 0
    while lo < n:
        hi = min(n, lo + cfg.slice_rows)
        if hi < n:
            hi = int(first_all[np.searchsorted(first_all, hi)]) if hi <= first_all[-1] else n
        sl = slice(lo, hi)
        starts_here = start[sl]
        first = np.flatnonzero(starts_here)
        rows_here = rows[sl].astype(np.int64)
        _, key_lo, key_hi = connections.endpoint_keys(packets, rows_here[first])  # each connection's 5-tuple
        part = segments.Slice(
            rows=rows_here,
            a_is_src=a_is_src[sl],
            flags=flags[sl].astype(np.int64),
            seq=seq[sl].astype(np.int64),
            ack=ack[sl].astype(np.int64),
            plen=plen[sl],
            ts=ts[sl],
            win=win[sl],
            conn=np.cumsum(starts_here) - 1,
            first=first,
            key_lo=key_lo,
            key_hi=key_hi,
        )
        conn_base = int(np.searchsorted(first_all, lo))
        rank_here = rank[conn_base : conn_base + len(first)]
        parts.append(_analyze_slice(packets, holes, cfg, cols, rank_here, part))
        lo = hi
    return cols, flows.joined(parts)


def _analyze_slice(
    packets: pd.DataFrame,
    holes: segments.SackHoles,
    cfg: TcpConfig,
    cols: dict[str, np.ndarray],
    rank: np.ndarray,
    part: segments.Slice,
) -> dict[str, np.ndarray]:
    """Per-segment analysis and per-connection aggregates of a run of whole connections, numbered by `rank`;
    writes the per-packet columns the caller asked for (`cols`) and returns the slice's flows columns."""
    found = segments.analyze(cfg, part)
    per_packet = {"conn": rank[part.conn], "dir": found.dirn, "rel_seq": found.rel, "rel_ack": found.rel_ack}
    for name, values in {**per_packet, **found.segment_flags()}.items():
        if name in cols:
            cols[name][part.rows] = values
    return flows.table(packets, part, found, rank, holes.at(part.rows))
