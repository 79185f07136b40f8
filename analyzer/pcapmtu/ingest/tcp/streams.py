"""Wireshark's `tcp.stream` number of each connection, so that `tcp.stream eq N` selects it.

pcapmtu numbers connections by their first frame, as Wireshark does, but Wireshark also opens a stream for
a TCP header quoted inside an ICMP error when no stream of that 5-tuple exists yet: a router's "fragmentation
needed" about a connection whose own packets this capture never saw (or saw only later) takes a number, and
every later stream moves up by one. This module replays that rule, measured against tshark 4.0: a quote opens
or joins a stream when the ICMP type is an error that quotes a packet (ICMPv4 3, 4, 11, 12; ICMPv6 1-4) and at
least 16 bytes of the TCP header were quoted (through the window field; tshark reads that far before it
looks up the conversation). A later connection of the same 5-tuple then continues that stream.

Wireshark also numbers the TCP headers that sFlow samples quote, which pcapmtu does not decode: from the first
sFlow datagram on, the numbers are unknown (-1) rather than guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUOTED_TCP_BYTES = 16


def tcp_streams(flows: pd.DataFrame, icmp: pd.DataFrame, unknown_from: int | None = None) -> np.ndarray:
    """`tcp.stream` of each connection in `flows` (in `conn` order); -1 for connections that start at or
    after frame `unknown_from`, where the capture holds TCP that Wireshark numbers and pcapmtu does not."""
    streams = _numbers(flows, icmp)
    if unknown_from is not None:
        streams[flows["first_frame"].to_numpy() >= unknown_from] = -1
    return streams


def _numbers(flows: pd.DataFrame, icmp: pd.DataFrame) -> np.ndarray:
    starts = flows["first_frame"].to_numpy(dtype=np.int64).copy()
    quotes = _stream_quotes(icmp)
    if not len(quotes):
        return np.argsort(np.argsort(starts, kind="stable"), kind="stable")
    conns_of: dict[tuple, list[int]] = {}
    conn_keys = _keys(flows["client_ip"], flows["client_port"], flows["server_ip"], flows["server_port"])
    for conn, key in enumerate(conn_keys):
        conns_of.setdefault(key, []).append(conn)
    quote_only: dict[tuple, int] = {}  # 5-tuple -> frame of the quote that opened a stream of its own
    quote_keys = _keys(
        quotes["quoted_src"], quotes["quoted_sport"], quotes["quoted_dst"], quotes["quoted_dport"]
    )
    for frame, key in zip(quotes["frame"].to_numpy(), quote_keys, strict=True):
        if key in quote_only or any(starts[c] < frame for c in conns_of.get(key, ())):
            continue  # joins a stream that is already open
        quote_only[key] = int(frame)
    extra = []
    for key, frame in quote_only.items():
        later = [c for c in conns_of.get(key, ()) if starts[c] > frame]
        if later:
            first = min(later, key=lambda c: starts[c])
            starts[first] = frame  # the connection continues the stream its quote opened
        else:
            extra.append(frame)
    everything = np.concatenate([starts, np.asarray(extra, dtype=np.int64)])
    rank = np.empty(len(everything), dtype=np.int64)
    rank[np.argsort(everything, kind="stable")] = np.arange(len(everything))
    return rank[: len(starts)]


def _stream_quotes(icmp: pd.DataFrame) -> pd.DataFrame:
    """ICMP errors whose quoted TCP header is long enough for Wireshark to file it under a stream (the icmp
    table holds exactly the error types that quote a packet)."""
    if not len(icmp):
        return icmp
    keep = (icmp["quoted_proto"].to_numpy() == 6) & (icmp["quoted_l4_bytes"].to_numpy() >= QUOTED_TCP_BYTES)
    return icmp[keep].sort_values("frame", kind="stable")


def _keys(ip_a: pd.Series, port_a: pd.Series, ip_b: pd.Series, port_b: pd.Series) -> list[tuple]:
    """Direction-free 5-tuple keys (TCP is implied)."""
    a = zip(ip_a.astype(str), port_a.astype(int), strict=True)
    b = zip(ip_b.astype(str), port_b.astype(int), strict=True)
    return [tuple(sorted((x, y))) for x, y in zip(a, b, strict=True)]
