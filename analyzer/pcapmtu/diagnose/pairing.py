"""The same connection seen in two captures, across NAT and clock offsets.

Docker's MASQUERADE rewrites the client address (and maybe the port) but never the TCP sequence numbers,
so a container connection and its twin in the other capture share the server endpoint and the client's
initial sequence number. 32 random bits plus the endpoint are a strong key, so no time window is needed:
the two captures may come from machines whose clocks differ by minutes. Without the SYN, the server's
initial sequence number (SYN-ACK) matches instead; without either, the first sequence numbers seen (these
weaker keys must also start together once the clock offset measured on the stronger ones is taken out).
Connections of the far capture left unmatched are its own traffic.

The clock offset and the one-way delay between the two capture points come from the segments both saw:
a client-to-server packet reaches the far point `offset + delay` later by the two clocks, a server-to-client
packet `offset - delay`; the smallest of the first and the largest of the second bound both (as NTP does
with its four timestamps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ingest.capture import Capture
from . import rowkeys

PAIR_COLUMNS = [
    "container",
    "container_conn",
    "host_conn",
    "matched_by",
    "nat_client",
    "host_copies",
    "clock_offset_s",
    "one_way_delay_s",
]
ISN_KEYS = ("isn_client", "isn_server")


def match_flows(
    host: Capture, container: Capture, role: str = "container", window_s: float = 5.0
) -> pd.DataFrame:
    """One row per container connection found in the far (`host`) capture, with the two points' clocks."""
    h, c = host.flows, container.flows
    found = []
    offset = None
    # strongest first: the SYN, the SYN-ACK, then (captures that start mid-connection) the first sequence
    # number each side was seen with, which matches only when both captures started at the same moment
    for key in ("isn_client", "isn_server", "first_seq_s2c", "first_seq_c2s"):
        left = c.loc[c[key] >= 0, ["conn", "server_ip", "server_port", key, "first_ts"]]
        right = h.loc[
            h[key] >= 0, ["conn", "server_ip", "server_port", key, "first_ts", "client_ip", "client_port"]
        ]
        hit = left.merge(right, on=["server_ip", "server_port", key], suffixes=("_c", "_h"))
        if key not in ISN_KEYS:
            if offset is None:  # the clocks as measured on the connections the handshake matched
                strong = pd.concat(found, ignore_index=True) if found else hit.iloc[:0]
                offset = float((strong["first_ts_h"] - strong["first_ts_c"]).median()) if len(strong) else 0.0
            hit = hit[(hit["first_ts_h"] - hit["first_ts_c"] - offset).abs() <= window_s]
        how = {
            "isn_client": "client initial sequence number",
            "isn_server": "server initial sequence number",
            "first_seq_s2c": "server sequence number (no handshake captured)",
            "first_seq_c2s": "client sequence number (no handshake captured)",
        }[key]
        hit = hit.assign(matched_by=how)
        found.append(hit)
    pairs = pd.concat(found, ignore_index=True)
    if not len(pairs):
        return pd.DataFrame(columns=PAIR_COLUMNS)
    # `tcpdump -i any` on the host sees a container connection twice: before NAT (bridge, veth) and after
    # it (uplink). Every copy is "not the host's own"; the twin is the NATed one, as it left the host.
    container_ips = c.set_index("conn")["client_ip"]
    pairs["nated"] = pairs["client_ip"].to_numpy() != container_ips.reindex(pairs["conn_c"]).to_numpy()
    pairs = pairs.sort_values(["conn_c", "nated"], ascending=[True, False], kind="stable")
    also = _copies(pairs["conn_c"].to_numpy(), pairs["conn_h"].to_numpy())
    pairs = pairs.drop_duplicates("conn_c").drop_duplicates("conn_h")
    pairs["host_copies"] = pairs["conn_c"].map(also)
    pairs["nat_client"] = pairs["client_ip"].astype(str) + ":" + pairs["client_port"].astype(str)
    out = pairs.rename(columns={"conn_c": "container_conn", "conn_h": "host_conn"})
    out.insert(0, "container", role)
    out["clock_offset_s"], out["one_way_delay_s"] = clocks(container, host, out)
    return out[PAIR_COLUMNS].sort_values("container_conn").reset_index(drop=True)


def _copies(conn_c: np.ndarray, conn_h: np.ndarray) -> pd.Series:
    """Per container connection (the index, ascending): the far connections matched to it, distinct and
    ascending, as a list. Sorted once, not a Python function per group: a pair of big captures has ~10^4."""
    pairs = _distinct_pairs(conn_c.astype(np.int64), conn_h.astype(np.int64))
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    hosts = pairs[:, 1].tolist()
    bounds = [*starts.tolist(), len(hosts)]
    lists = [hosts[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return pd.Series(lists, index=pd.Index(pairs[starts, 0], dtype=np.int64), dtype=object)


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.unique` of the (a, b) rows, as an (n, 2) array in ascending order: each pair as one integer
    a * span + (b - low), which sorts the same way, where it fits in 62 bits (a few times quicker than
    unique's row mode)."""
    if not len(a):
        return np.zeros((0, 2), dtype=np.int64)
    low = int(b.min())
    span = int(b.max()) - low + 1
    if (max(abs(int(a.min())), abs(int(a.max()))) + 1) * span >= 1 << 62:
        return np.unique(np.stack([a, b], axis=1), axis=0)
    key = np.unique(a * span + (b - low))
    return np.stack([key // span, key % span + low], axis=1)


SEGMENT_KEY = ("pair", "dir", "seq", "payload_len", "tcp_flags")  # a segment, as both capture points see it
SEGMENT_COLUMNS = ("dir", "seq", "payload_len", "tcp_flags", "ts_ns")


def clocks(near: Capture, far: Capture, pairs: pd.DataFrame) -> tuple[float, float]:
    """(far clock minus near clock, one-way delay from near to far), seconds, from segments both captured.

    Only segments each capture holds exactly once are joined: a segment sent twice (a retransmission, or the
    pure ACKs that repeat one sequence number) may be one transmission in one capture and another in the
    other, when a capture missed a packet (`tcpdump` dropping under load, or the loss being diagnosed), and
    one such pair made the bounds below cross: a negative one-way delay and an offset off by as much.
    NaN when no segment was seen in both directions at both points. The segments are joined by a 64-bit hash
    of their key, every joined pair's key compared in full; pandas' dedupe and merge (`_clocks_by_merge`, the
    same result) take over where a hash stands for two keys."""
    if not len(pairs):
        return float("nan"), float("nan")
    return _clocks_by_hash(_segments(near, pairs["container_conn"]), _segments(far, pairs["host_conn"]))


def _clocks_by_hash(n: dict[str, np.ndarray], f: dict[str, np.ndarray]) -> tuple[float, float]:
    """`clocks` of the near and far `_segments`."""
    together = rowkeys.number_together(n, f, SEGMENT_KEY)
    if together is None:  # a hash shared by two keys in one capture
        return _clocks_by_merge(n, f)
    n_codes, f_codes, n_first, f_first = together
    count = len(n_first)
    once = (np.bincount(n_codes, minlength=count) == 1) & (np.bincount(f_codes, minlength=count) == 1)
    shared = np.flatnonzero(once)  # segments both captures hold, each once
    n_rows, f_rows = n_first[shared], f_first[shared]
    same = rowkeys.same_keys(n, n_rows, f, f_rows, SEGMENT_KEY)
    n_rows, f_rows = n_rows[same], f_rows[same]
    delta = (f["ts_ns"][f_rows] - n["ts_ns"][n_rows]).astype(np.float64) / 1e9
    return _bounds(delta, n["dir"][n_rows])


def _segments(cap: Capture, conns: pd.Series) -> dict[str, np.ndarray]:
    """The segments of the paired connections (`pair`: their position in `conns`), interface copies left out,
    in capture order; the few columns read, not a copy of the wide packets table."""
    p = cap.packets
    rows, pair = rowkeys.connection_rows(p["conn"].to_numpy(), conns.to_numpy(), ~p["dup_copy"].to_numpy())
    out = {name: p[name].to_numpy()[rows] for name in SEGMENT_COLUMNS}
    out["pair"] = pair
    out["hash"] = rowkeys.key_hash(out, SEGMENT_KEY)
    return out


def _clocks_by_merge(near: dict[str, np.ndarray], far: dict[str, np.ndarray]) -> tuple[float, float]:
    """`clocks` by pandas' dedupe and merge on the five key columns."""
    key = list(SEGMENT_KEY)

    def once(segments: dict[str, np.ndarray]) -> pd.DataFrame:
        t = pd.DataFrame({name: segments[name] for name in (*SEGMENT_COLUMNS, "pair")})
        return t.drop_duplicates(key, keep=False)

    both = once(near).merge(once(far), on=key, suffixes=("_n", "_f"))
    delta = (both["ts_ns_f"] - both["ts_ns_n"]).to_numpy(dtype=np.float64) / 1e9
    return _bounds(delta, both["dir"].to_numpy())


def _bounds(delta: np.ndarray, direction: np.ndarray) -> tuple[float, float]:
    """(offset, delay) from the far-minus-near times of the segments both points saw, either way."""
    forward, backward = delta[direction == 0], delta[direction == 1]
    if not len(forward) or not len(backward):
        return float("nan"), float("nan")
    ahead, behind = (
        float(forward.min()),
        float(backward.max()),
    )  # offset + delay >= ahead; offset - delay <= behind
    return (ahead + behind) / 2, (ahead - behind) / 2
