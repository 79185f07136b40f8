"""Whose turn it was during a connection's longest silence.

A silence is only a symptom. When it began, either

- data was outstanding: sent and not yet acknowledged, in either direction, as far as this capture saw
  (`network`): the network owes the other side those bytes;
- the client's last data (the request) had been acknowledged and the server owed the answer (`server`):
  server think time when the answer then comes, or an answer lost without a trace;
- the server's last data had been acknowledged, or nobody had sent data yet (`client`): an idle
  keep-alive connection, or a client that has nothing to ask. Not evidence of anything.

Outstanding bytes at a receiver-side capture cannot include segments that never reached it; the client's
SACK holes (Context.s2c_holes) cover that case, so detectors read both.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..ingest import native
from ..ingest.native import as_i64
from . import rowkeys

ACK_FLAG = 0x10
ALERT_BYTES = 64  # a TLS alert (close_notify) is 24-31 bytes: not an answer
TURN_COLUMNS = {
    "idle_turn": "who owed the next packet when the longest silence began: network, server, client or ''",
    "idle_outstanding_c2s": "client bytes sent and not yet acknowledged when the silence began",
    "idle_outstanding_s2c": "server bytes sent and not yet acknowledged when the silence began",
    "end_turn": "who owed the next packet when the capture ended (same values)",
}


def turns(packets: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """Per connection (rows in flows order): TURN_COLUMNS."""
    kept = _Kept(packets)
    out = _turn_at(kept, len(flows), flows["idle_start_ts"].to_numpy())
    out["idle_turn"] = np.where(flows["max_idle"].to_numpy() <= 0, "", out.pop("turn"))
    out["end_turn"] = _turn_at(kept, len(flows), np.full(len(flows), np.inf))["turn"]
    return pd.DataFrame(out)


class _Kept:
    """The columns both cuts read, taken once, whole (no copy of the kept rows: masks select them); and the
    data segments of connections (interface copies left out) in (connection, time) order, for the first and
    last segment around a cut."""

    def __init__(self, packets: pd.DataFrame) -> None:
        conn = packets["conn"].to_numpy()
        self.keep = (conn >= 0) & ~packets["dup_copy"].to_numpy()
        self.c = np.where(self.keep, conn, 0)  # an index everywhere; rows not kept are masked out
        self.ts = packets["ts"].to_numpy()
        self.dirn = packets["dir"].to_numpy()
        self.plen = packets["payload_len"].to_numpy()
        self.end = packets["rel_seq"].to_numpy() + self.plen
        self.acked = packets["rel_ack"].to_numpy()
        self.is_ack = (packets["tcp_flags"].to_numpy() & ACK_FLAG) != 0
        data = np.flatnonzero(self.keep & (self.plen > 0))
        # stable: segments at the same time keep their capture order, as a sort of any subset would
        self.data_sorted = data[rowkeys.conn_order(conn[data], packets["ts_ns"].to_numpy()[data])]

    @cached_property
    def for_c(self) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """The row columns as the C core's turn_state reads them, and `data_sorted`: converted once, for
        both cuts."""
        as_u8 = lambda v: np.ascontiguousarray(v, dtype=np.uint8)  # noqa: E731
        rows = (
            *(as_i64(self.c), as_u8(self.keep), np.ascontiguousarray(self.ts, dtype=np.float64)),
            *(as_i64(self.dirn), as_i64(self.plen), as_i64(self.end), as_i64(self.acked), as_u8(self.is_ack)),
        )
        return rows, as_i64(self.data_sorted)


def _turn_at(kept: _Kept, n: int, cut: np.ndarray) -> dict[str, np.ndarray]:
    """At time `cut` of each connection: the bytes outstanding each way, and whose turn it was."""
    low = np.iinfo(np.int64).min
    state = _state_c if n and native.entry("turn_state") else _state_numpy
    sent, got, last_dir, next_dir, next_len = state(kept, n, cut)
    out = {}
    for d, tag in ((0, "c2s"), (1, "s2c")):
        missing = np.where(got[d] > low, np.maximum(sent[d] - got[d], 0), sent[d])
        out[f"idle_outstanding_{tag}"] = np.where(sent[d] > low, missing, 0)
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


def _state_c(kept: _Kept, n: int, cut: np.ndarray):
    """_state_numpy in the C core: both directions and both edges in one walk."""
    low = np.iinfo(np.int64).min
    sent, got = np.full((2, n), low, dtype=np.int64), np.full((2, n), low, dtype=np.int64)
    last_dir, next_dir, next_len = np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.zeros(n, np.int64)
    rows, ordered = kept.for_c
    cut = np.ascontiguousarray(cut, dtype=np.float64)
    native.core.turn_state(*rows, cut, ordered, sent, got, last_dir, next_dir, next_len)
    return sent, got, last_dir, next_dir, next_len


def _state_numpy(kept: _Kept, n: int, cut: np.ndarray):
    """Per direction the highest sequence end sent and acknowledged up to the cut; the direction of the last
    data segment before it, and the direction and length of the first after it (the C core's turn_state)."""
    limit = cut[kept.c] + 1e-9 if n else np.zeros(len(kept.c))  # no connections: no row is kept
    before = kept.keep & (kept.ts <= limit)
    data = kept.plen > 0
    low = np.iinfo(np.int64).min
    sent, got = np.full((2, n), low, dtype=np.int64), np.full((2, n), low, dtype=np.int64)
    for d in (0, 1):
        mine = before & data & (kept.dirn == d)
        np.maximum.at(sent[d], kept.c[mine], kept.end[mine])
        reverse = before & kept.is_ack & (kept.dirn == 1 - d)
        np.maximum.at(got[d], kept.c[reverse], kept.acked[reverse])
    ordered = kept.data_sorted
    last_dir = _edge_data(kept, ordered[before[ordered]], n, last=True)[0]
    # after the cut: who spoke first, and with how much
    next_dir, next_len = _edge_data(kept, ordered[kept.ts[ordered] > limit[ordered]], n, last=False)
    return sent, got, last_dir, next_dir, next_len


def _edge_data(kept: _Kept, ordered: np.ndarray, n: int, last: bool):
    """Per connection: direction and payload length of its first (or last) data segment among `ordered`
    (positions into `kept`, in connection and time order)."""
    dirs = np.full(n, -1, dtype=np.int64)
    lens = np.zeros(n, dtype=np.int64)
    if len(ordered):
        cs = kept.c[ordered]
        edge = np.r_[cs[1:] != cs[:-1], True] if last else np.r_[True, cs[1:] != cs[:-1]]
        dirs[cs[edge]] = kept.dirn[ordered[edge]]
        lens[cs[edge]] = kept.plen[ordered[edge]]
    return dirs, lens
