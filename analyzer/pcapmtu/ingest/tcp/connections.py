"""Which packets form which connection: 5-tuples interned, split into connections at each new SYN,
and copies of one packet captured on several interfaces recognised.

A connection is a 5-tuple plus a SYN: a new SYN with a different initial sequence number on a reused 5-tuple
starts a new connection (port reuse is common in real captures); a SYN-ACK captured before its SYN stays
with it. Copies of one packet seen on several interfaces (`tcpdump -i any`, pcapng) are flagged `dup_copy`
and left out of the analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import native
from .segments import ACK, SEQ_MOD, SYN


def tuple_ids(packets, rows, step: int) -> tuple[np.ndarray, np.ndarray]:
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
        a_is_src[part], key_lo, key_hi = endpoint_keys(packets, rows[part])
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


def endpoint_keys(packets, rows):
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


def starts(tup, a_is_src, flags, seq, ack) -> np.ndarray:
    """Where each connection starts, over rows sorted by 5-tuple (file order inside): a new 5-tuple, or a
    new SYN on the same one (another initial sequence number or the other side sending it)."""
    n = len(tup)
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
    return start


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


# What makes a packet seen again on another interface the same packet, beside its connection and direction
COPY_IDENTITY = ("tcp_flags", "seq", "ack", "payload_len", "win", "ip_id", "tsval")


def interface_copies(packets, rows, tup, a_is_src, cfg) -> np.ndarray:
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
    identity = {"tup": tup, "a_is_src": a_is_src}  # and the TCP/IP identity fields of the packet:
    for name in COPY_IDENTITY:
        identity[name] = packets[name].to_numpy()[rows]
    ident = pd.DataFrame(identity)
    ts = packets["ts_ns"].to_numpy()[rows]
    group = ident.groupby(list(ident.columns), sort=False).ngroup().to_numpy()
    _, first_idx = np.unique(group, return_index=True)
    orig = first_idx[group]
    later = np.arange(len(rows)) != orig
    gap = np.abs(ts - ts[orig])
    elsewhere = (where_seen != where_seen[orig]) & (gap <= cfg.dup_copy_window_ns)
    unknown_iface = blind & blind[orig] & (gap <= cfg.sll_copy_window_ns)
    return later & (elsewhere | unknown_iface)
