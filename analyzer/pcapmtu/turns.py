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

import numpy as np
import pandas as pd

ACK_FLAG = 0x10
TURN_COLUMNS = {
    "idle_turn": "who owed the next packet when the longest silence began: network, server, client or ''",
    "idle_outstanding_c2s": "client bytes sent and not yet acknowledged when the silence began",
    "idle_outstanding_s2c": "server bytes sent and not yet acknowledged when the silence began",
}


def turns(packets: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """Per connection (rows in flows order): TURN_COLUMNS."""
    n = len(flows)
    conn = packets["conn"].to_numpy()
    keep = (conn >= 0) & ~packets["dup_copy"].to_numpy()
    rows = np.flatnonzero(keep)
    c = conn[rows].astype(np.int64)
    idle_start = flows["idle_start_ts"].to_numpy()
    before = packets["ts"].to_numpy()[rows] <= idle_start[c] + 1e-9
    rows, c = rows[before], c[before]
    dirn = packets["dir"].to_numpy()[rows]
    plen = packets["payload_len"].to_numpy()[rows]
    end = packets["rel_seq"].to_numpy()[rows] + plen
    acked = packets["rel_ack"].to_numpy()[rows]
    is_ack = (packets["tcp_flags"].to_numpy()[rows] & ACK_FLAG) != 0
    data = plen > 0
    out = {}
    for d, tag in ((0, "c2s"), (1, "s2c")):
        sent = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(sent, c[data & (dirn == d)], end[data & (dirn == d)])
        got = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        reverse = is_ack & (dirn == 1 - d)
        np.maximum.at(got, c[reverse], acked[reverse])
        has_data = sent > np.iinfo(np.int64).min
        has_ack = got > np.iinfo(np.int64).min
        out[f"idle_outstanding_{tag}"] = np.where(
            has_data, np.where(has_ack, np.maximum(sent - got, 0), sent), 0
        )
    # the direction of the last data segment before the silence
    last_dir = np.full(n, -1, dtype=np.int64)
    if data.any():
        ts = packets["ts_ns"].to_numpy()[rows][data]
        order = np.lexsort((ts, c[data]))
        cd, dd = c[data][order], dirn[data][order]
        last = np.r_[cd[1:] != cd[:-1], True]
        last_dir[cd[last]] = dd[last]
    outstanding = (out["idle_outstanding_c2s"] > 0) | (out["idle_outstanding_s2c"] > 0)
    turn = np.where(outstanding, "network", np.where(last_dir == 0, "server", "client"))
    silent = flows["max_idle"].to_numpy() <= 0
    out["idle_turn"] = np.where(silent, "", turn)
    return pd.DataFrame(out)
