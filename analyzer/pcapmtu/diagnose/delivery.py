"""Delivery is what the receiver acknowledged, wherever the capture was taken.

A capture shows what passed its capture point: at the sender that is what was *sent*, not what arrived.
An ACK, though, is made by the receiver, so it proves delivery at every vantage point. Here a data
segment is

- **delivered** when the receiver's cumulative ACK or one of its SACK blocks (RFC 2018) covers it and no
  later copy of the same bytes was sent before that ACK (a range sent twice counts by the copy that got
  through, so a 1500-byte original re-sent as 1024-byte pieces counts as 1024 bytes delivered);
- **lost** when a later copy of its bytes (a retransmission) was sent before any ACK covered it;
- **unresolved** otherwise: still in flight when the capture ended, or the receiver's ACKs were not captured.

Per connection and direction this gives the largest delivered IP packet, the smallest and largest lost
one, and how many lost packets were no larger than one that was delivered (loss that spares no size is
the link, not the MTU). Every detector and the path-MTU evidence read these columns (one definition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ingest import native
from ..ingest.native import as_i64
from ..ingest.tcp import seq_diff
from . import rowkeys

ACK_FLAG = 0x10
NO_TIME = np.iinfo(np.int64).max
# (i, j) candidate pairs examined at once when finding later copies: bounds memory on lossy captures
PAIR_BUDGET = 4_000_000

DELIVERY_COLUMNS = {
    "acks_seen": "receiver ACKs captured for this direction",
    "delivered_segments": "data segments delivered (ACK or SACK covers them, counted by the copy that got through)",
    "delivered_max_ip": "largest IP packet delivered, 0 if none",
    "lost_segments": "data segments re-sent before any ACK covered them",
    "lost_min_ip": "smallest lost IP packet, 0 if none",
    "lost_max_ip": "largest lost IP packet, 0 if none",
    "lost_not_larger": "lost packets no larger than the largest delivered one (size-blind loss)",
    "unresolved_max_ip": "largest IP packet neither delivered nor lost (in flight at the end, or no ACKs captured)",
}


def delivery(packets: pd.DataFrame, fate: np.ndarray, n_flows: int) -> pd.DataFrame:
    """Per connection (rows 0..n_flows-1): the DELIVERY_COLUMNS for each direction (`_c2s`, `_s2c`), from
    the per-packet `segment_fate` (computed once per capture, also read by detectors for evidence)."""
    out = {}
    for d, tag in ((0, "c2s"), (1, "s2c")):
        for name, values in _direction(packets, fate, n_flows, d).items():
            out[f"{name}_{tag}"] = values
    return pd.DataFrame(out)


def never_acknowledged(packets: pd.DataFrame, n_flows: int, d: int) -> np.ndarray:
    """Per connection: how far the sender's sequence numbers (in any of its packets, a bare ACK or FIN too:
    its sequence number is the next byte it would send) ran ahead of the receiver's highest ACK; 0 when
    this capture lacks either side.

    Without the handshake a capture may hold none of the lost segments themselves, yet the sender's later
    packets still say how much it had sent: a capture that starts after a black hole swallowed the
    server's data shows the client acknowledging 149 bytes and the server's FIN at byte 17,525."""
    conn = packets["conn"].to_numpy()
    keep = (conn >= 0) & ~packets["dup_copy"].to_numpy()
    dirn = packets["dir"].to_numpy()
    low = np.iinfo(np.int64).min
    sent = np.full(n_flows, low, dtype=np.int64)
    mine = np.flatnonzero(keep & (dirn == d))  # positions: each column is then gathered once, not masked
    ends = packets["rel_seq"].to_numpy()[mine].astype(np.int64) + packets["payload_len"].to_numpy()[mine]
    np.maximum.at(sent, conn[mine], ends)
    acked = np.full(n_flows, low, dtype=np.int64)
    theirs = np.flatnonzero(keep & (dirn == 1 - d) & ((packets["tcp_flags"].to_numpy() & ACK_FLAG) != 0))
    np.maximum.at(acked, conn[theirs], packets["rel_ack"].to_numpy()[theirs].astype(np.int64))
    both = (sent > low) & (acked > low)
    return np.where(both, np.maximum(sent - np.where(both, acked, 0), 0), 0)


def segment_fate(packets: pd.DataFrame, sack: pd.DataFrame) -> np.ndarray:
    """Per packet: 1 delivered, -1 lost, 0 unresolved or not a data segment (for evidence frames)."""
    fate = np.zeros(len(packets), dtype=np.int8)
    for d in (0, 1):
        rows, delivered, lost = _fates(packets, sack, d)
        fate[rows[delivered]] = 1
        fate[rows[lost]] = -1
    return fate


def _direction(packets: pd.DataFrame, fate: np.ndarray, n_flows: int, d: int) -> dict[str, np.ndarray]:
    rows = _data_rows(packets, d)
    delivered, lost = fate[rows] == 1, fate[rows] == -1
    conn = packets["conn"].to_numpy()
    flags = packets["tcp_flags"].to_numpy()
    dirn = packets["dir"].to_numpy()
    copies = packets["dup_copy"].to_numpy()
    acks = (conn >= 0) & (dirn == 1 - d) & ((flags & ACK_FLAG) != 0) & ~copies
    out = {"acks_seen": np.bincount(conn[acks], minlength=n_flows)[:n_flows].astype(np.int64)}
    size = packets["ip_len"].to_numpy()[rows].astype(np.int64)  # gathered first: the rows, not every packet
    c = conn[rows]

    def largest(mask):
        v = np.zeros(n_flows, dtype=np.int64)
        np.maximum.at(v, c[mask], size[mask])
        return v

    def smallest(mask):
        v = np.full(n_flows, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(v, c[mask], size[mask])
        v[v == np.iinfo(np.int64).max] = 0
        return v

    out["delivered_segments"] = np.bincount(c[delivered], minlength=n_flows)[:n_flows].astype(np.int64)
    out["delivered_max_ip"] = largest(delivered)
    out["lost_segments"] = np.bincount(c[lost], minlength=n_flows)[:n_flows].astype(np.int64)
    out["lost_min_ip"] = smallest(lost)
    out["lost_max_ip"] = largest(lost)
    small = lost & (size <= out["delivered_max_ip"][c])
    out["lost_not_larger"] = np.bincount(c[small], minlength=n_flows)[:n_flows].astype(np.int64)
    out["unresolved_max_ip"] = largest(~delivered & ~lost)
    return out


def _fates(packets: pd.DataFrame, sack: pd.DataFrame, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of direction `d`'s data segments, and which of them were delivered / lost."""
    rows = _data_rows(packets, d)
    conn = packets["conn"].to_numpy()
    plen = packets["payload_len"].to_numpy()
    if not len(rows):
        empty = np.zeros(0, dtype=bool)
        return rows, empty, empty
    ts = packets["ts_ns"].to_numpy()
    c = conn[rows].astype(np.int64)
    start = packets["rel_seq"].to_numpy()[rows]
    end = start + plen[rows]
    t = ts[rows]
    acked_at = _first_cumulative_ack(packets, c, end, d)
    sacked = _sack_covered(packets, sack, c, start, end, d)
    copied_at = _first_later_copy(c, start, end, t)
    delivered = ((acked_at < NO_TIME) & (copied_at >= acked_at)) | (sacked & (copied_at == NO_TIME))
    lost = ~delivered & (copied_at < NO_TIME) & (copied_at < acked_at)
    return rows, delivered, lost


def _data_rows(packets: pd.DataFrame, d: int) -> np.ndarray:
    """Rows of direction `d`'s data segments (interface copies of `-i any` left out)."""
    conn, dirn = packets["conn"].to_numpy(), packets["dir"].to_numpy()
    plen, copies = packets["payload_len"].to_numpy(), packets["dup_copy"].to_numpy()
    return np.flatnonzero((conn >= 0) & (dirn == d) & (plen > 0) & ~copies)


class _Axis:
    """(connection, value) pairs on one sorted int64 axis: each connection owns a span of its own.

    A connection's keys are base + (value - low); a query (conn, v) is clipped to one slot below or above
    the connection's values, so a search never lands in a neighbour's span."""

    def __init__(self, conn: np.ndarray, value: np.ndarray) -> None:
        n = int(conn.max()) + 1 if len(conn) else 0
        low = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        high = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(low, conn, value)
        np.maximum.at(high, conn, value)
        present = low <= high
        self.span = np.where(present, high - low + 3, 0)
        self.low = np.where(present, low, 0)
        self.base = np.concatenate(([0], np.cumsum(self.span)[:-1])).astype(np.int64) + 1
        self.keys = self.base[conn] + (value - self.low[conn])

    def query(self, conn: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inside = conn < len(self.base)
        c = np.where(inside, conn, 0)
        rel = np.clip(v - self.low[c], -1, np.maximum(self.span[c] - 2, -1))
        return np.where(inside, self.base[c] + rel, -1), inside


def _first_cumulative_ack(packets, c, end, d) -> np.ndarray:
    """Time (ns) of the first receiver ACK whose cumulative acknowledgment covers `end`; NO_TIME if none."""
    conn = packets["conn"].to_numpy()
    flags = packets["tcp_flags"].to_numpy()
    sel = np.flatnonzero(
        (conn >= 0)
        & (packets["dir"].to_numpy() == 1 - d)
        & ((flags & ACK_FLAG) != 0)
        & ~packets["dup_copy"].to_numpy()
    )
    out = np.full(len(c), NO_TIME, dtype=np.int64)
    if not len(sel):
        return out
    a_conn = conn[sel].astype(np.int64)
    a_ts = packets["ts_ns"].to_numpy()[sel]
    order = rowkeys.conn_order(a_conn, a_ts)
    a_conn, a_ts = a_conn[order], a_ts[order]
    a_ack = packets["rel_ack"].to_numpy()[sel][order]
    if search := native.entry(
        "first_cumulative_ack"
    ):  # the same search, one connection's run of ACKs at a time
        search(as_i64(c), as_i64(end), a_conn, as_i64(a_ack), as_i64(a_ts), out)
        return out
    # running highest acknowledgment per connection, in time order (non-decreasing inside a connection)
    reach = pd.Series(a_ack).groupby(a_conn).cummax().to_numpy()
    axis = _Axis(a_conn, reach)
    q, inside = axis.query(c, end)
    i = np.searchsorted(axis.keys, q, side="left")
    i_ok = inside & (i < len(axis.keys))
    j = np.where(i_ok, i, 0)
    hit = i_ok & (a_conn[j] == c) & (reach[j] >= end)
    out[hit] = a_ts[j[hit]]
    return out


def _sack_covered(packets, sack, c, start, end, d) -> np.ndarray:
    """Whether a SACK block the receiver sent covers each segment [start, end)."""
    out = np.zeros(len(c), dtype=bool)
    if not len(sack):
        return out
    rows = sack["row"].to_numpy()
    conn = packets["conn"].to_numpy()[rows]
    keep = (conn >= 0) & (packets["dir"].to_numpy()[rows] == 1 - d) & ~packets["dup_copy"].to_numpy()[rows]
    if not keep.any():
        return out
    rows, conn = rows[keep], conn[keep].astype(np.int64)
    raw_ack = packets["ack"].to_numpy()[rows]
    rel_ack = packets["rel_ack"].to_numpy()[rows]
    left = rel_ack + seq_diff(sack["left"].to_numpy()[keep], raw_ack)
    right = rel_ack + seq_diff(sack["right"].to_numpy()[keep], raw_ack)
    order = rowkeys.conn_order(conn, left)
    conn, left, right = conn[order], left[order], right[order]
    if search := native.entry("sack_covered"):
        covered = np.zeros(len(c), dtype=np.uint8)
        search(as_i64(c), as_i64(start), as_i64(end), conn, as_i64(left), as_i64(right), covered)
        return covered.view(bool)
    # per connection, the furthest right edge of any block starting at or before each block's left edge
    reach = pd.Series(right).groupby(conn).cummax().to_numpy()
    axis = _Axis(conn, left)
    q, inside = axis.query(c, start)
    i = np.searchsorted(axis.keys, q, side="right") - 1
    ok = inside & (i >= 0)
    j = np.where(ok, i, 0)
    out[ok] = (conn[j[ok]] == c[ok]) & (left[j[ok]] <= start[ok]) & (reach[j[ok]] >= end[ok])
    return out


def _first_later_copy(c, start, end, t) -> np.ndarray:
    """Time of the first later segment that sends any byte of each segment again; NO_TIME if none.

    Every segment is looked at, not only those flagged as retransmissions: a sender that lowers its MSS
    after an ICMP size report re-sends the lost range as new, smaller segments, which Wireshark's analysis
    does not always flag."""
    out = np.full(len(c), NO_TIME, dtype=np.int64)
    later = np.arange(len(c))
    order = rowkeys.conn_order(c, start)
    if search := native.entry("first_later_copy"):  # the same candidates and test, without making the pairs
        search(as_i64(c), as_i64(start), as_i64(end), as_i64(t), as_i64(order), out)
        return out
    axis = _Axis(c[order], start[order])
    longest = np.zeros(len(axis.base), dtype=np.int64)
    np.maximum.at(longest, c, end - start)
    # a segment overlapping a later segment j starts in [start_j - longest, end_j) of j's connection
    q_lo, _ = axis.query(c[later], start[later] - longest[c[later]])
    q_hi, _ = axis.query(c[later], end[later])
    lo = np.searchsorted(axis.keys, q_lo, side="left")
    hi = np.searchsorted(axis.keys, q_hi, side="left")
    counts = np.maximum(hi - lo, 0)
    reach = np.cumsum(counts)
    done = 0
    while done < len(later):  # in chunks, so a lossy capture's pairs stay within PAIR_BUDGET
        before = int(reach[done - 1]) if done else 0
        stop = max(done + 1, int(np.searchsorted(reach, before + PAIR_BUDGET, side="right")))
        n = counts[done:stop]
        j = np.repeat(later[done:stop], n)
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        i = order[np.repeat(lo[done:stop], n) + offset]
        ok = (c[i] == c[j]) & (t[i] < t[j]) & (end[i] > start[j]) & (start[i] < end[j]) & (i != j)
        np.minimum.at(out, i[ok], t[j[ok]])
        done = stop
    return out
