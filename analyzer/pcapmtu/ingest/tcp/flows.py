"""The flows table: one row per connection, from per-connection sums, maxima and first positions.

The aggregates are computed per slice of whole connections (in C when the core runs, one pass per
connection), then named, combined with the handshake options, Zeek's history and conn_state (`states`)
and the state in words; `joined` puts the slices' tables together in connection order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from ... import schema
from .. import native
from ..http_framing import HTTP_COLUMNS
from ..native import as_i64
from ..rare_layers import TLS_COLUMNS
from .segments import ACK, FIN, NONE, PER_SEGMENT_FLAGS, RST, SYN, Analysis, Slice, reduce_groups
from .states import STATES, zeek_conn_state

HISTORY_LETTERS = (
    "SHADFRTWG"  # Zeek: SYN, SYN-ACK, pure ACK, data, FIN, RST, retransmission, zero window, gap
)
# the first positions Zeek's history is written from, in HISTORY_LETTERS order
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
)

# Per-connection sums, maxima and positions that `table` builds the table from, in the order of the C core's
# rows (_native.c); per direction they are named `{name}_c2s` / `{name}_s2c`. "Largest" values are never
# below 0 (as with no packet at all); a position is NONE where no packet qualifies.
CONN_AGGREGATES = ("ipv", "first_frame", "last_frame", "first_ts", "last_ts", "max_gap", "idle_end")
DIR_AGGREGATES = (
    *("pkts", "bytes", "max_payload", "max_ip_len", "max_outer_len"),
    *PER_SEGMENT_FLAGS,
    *("sack_acks", "max_sack_hole", "first_pos", "first_data_pos", "last_data_pos", "sent", "acked"),
    *("bytes_after_idle", "max_payload_after_idle", "max_payload_before_idle"),
    *HISTORY_POSITIONS,
)


@dataclass(frozen=True, slots=True, eq=False)
class PacketFields:
    """Per segment of a `Slice`, what the aggregates read from the packets table, and its SACK hole."""

    frame: np.ndarray  # int64: frame number
    ip_len: np.ndarray  # uint32: IP total length
    outer_ip_len: np.ndarray  # uint32: IP length of the outer (overlay) packet, 0 if none
    ipv: np.ndarray  # uint8: IP version
    sack_hole: np.ndarray  # int64: bytes between the ACK and the lowest SACK block above it, 0 if none

    @classmethod
    def gather(cls, packets: pd.DataFrame, rows: np.ndarray, sack_hole: np.ndarray) -> PacketFields:
        return cls(
            frame=packets["frame"].to_numpy()[rows],
            ip_len=packets["ip_len"].to_numpy()[rows],
            outer_ip_len=packets["outer_ip_len"].to_numpy()[rows],
            ipv=packets["ipv"].to_numpy()[rows],
            sack_hole=sack_hole,
        )


def table(
    packets: pd.DataFrame, part: Slice, found: Analysis, rank: np.ndarray, sack_hole: np.ndarray
) -> dict[str, np.ndarray]:
    """The flows table's columns for a slice of whole connections (see docs/tables.md), numbered by `rank`."""
    rows, seq, ts, key_lo, key_hi = part.rows, part.seq, part.ts, part.key_lo, part.key_hi
    first_syn, first_synack, client_is_a = found.first_syn, found.first_synack, found.client_is_a
    n_conn = len(part.first)
    fields = PacketFields.gather(packets, rows, sack_hole)
    frame = fields.frame
    agg = aggregates(part, found, fields)

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
        "handshake_rtt": np.where(found.has_rtt, found.irtt / 1e9, np.nan),
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
    for name in PER_SEGMENT_FLAGS:
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


def aggregates(part: Slice, found: Analysis, fields: PacketFields) -> dict[str, np.ndarray]:
    """`CONN_AGGREGATES` and `DIR_AGGREGATES` of a slice, in C when the core runs (the same either way)."""
    compute = _aggregates_native if native.ENABLED else _aggregates_numpy
    return compute(part, found, fields)


def _aggregates_numpy(part: Slice, found: Analysis, fields: PacketFields) -> dict[str, np.ndarray]:
    """`CONN_AGGREGATES` and `DIR_AGGREGATES` of a slice, vectorized."""
    first, conn, flags, plen, ts = part.first, part.conn, part.flags, part.plen, part.ts
    dirn, rel, rel_ack, per_packet = found.dirn, found.rel, found.rel_ack, found.segment_flags()
    frame, ip_len, outer, ipv, hole = (
        fields.frame,
        fields.ip_len,
        fields.outer_ip_len,
        fields.ipv,
        fields.sack_hole,
    )
    n = len(dirn)
    pos = np.arange(n)

    def total(v):
        return reduce_groups(v.astype(np.int64), first, np.add)

    def biggest(v, mask):
        return reduce_groups(np.where(mask, v, 0).astype(np.int64), first, np.maximum)

    def earliest(mask):
        return reduce_groups(np.where(mask, pos, NONE), first, np.minimum)

    def latest(mask):
        last = reduce_groups(np.where(mask, pos, -1), first, np.maximum)
        return np.where(last >= 0, last, NONE)

    out = {
        "ipv": reduce_groups(ipv.astype(np.int64), first, np.maximum),
        "first_frame": reduce_groups(frame, first, np.minimum),
        "last_frame": reduce_groups(frame, first, np.maximum),
        "first_ts": reduce_groups(ts, first, np.minimum),
        "last_ts": reduce_groups(ts, first, np.maximum),
    }
    gap = np.zeros(n, dtype=np.int64)
    gap[1:] = np.maximum(ts[1:] - ts[:-1], 0)
    gap[first] = 0
    max_gap = reduce_groups(gap, first, np.maximum)
    idle_end = earliest((gap == max_gap[conn]) & (gap > 0))
    out["max_gap"], out["idle_end"] = max_gap, idle_end
    after = pos >= np.where(idle_end == NONE, n, idle_end)[conn]
    data = plen > 0
    syn, ackf = (flags & SYN) > 0, (flags & ACK) > 0
    fin, rst = (flags & FIN) > 0, (flags & RST) > 0
    pure_ack = ackf & (plen == 0) & ((flags & (SYN | FIN | RST)) == 0)
    events = {  # in HISTORY_POSITIONS order
        "syn_pos": syn & ~ackf,
        "synack_pos": syn & ackf,
        "pure_ack_pos": pure_ack,
        "data_pos": data,
        "fin_pos": fin,
        "rst_pos": rst,
        "retrans_pos": per_packet["retrans"],
        "zero_window_pos": per_packet["zero_window"],
        "lost_pos": per_packet["lost_before"],
    }
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
        for name, happened in events.items():
            out[f"{name}_{tag}"] = earliest(happened & mask)
    return out


def _aggregates_native(part: Slice, found: Analysis, fields: PacketFields) -> dict[str, np.ndarray]:
    """`_aggregates_numpy` in C: one pass over each connection's packets."""
    bits = np.zeros(len(found.dirn), dtype=np.uint8)
    for k, values in enumerate(found.segment_flags().values()):
        bits |= values.view(np.uint8) << k
    table = np.empty((len(part.first), len(CONN_AGGREGATES) + 2 * len(DIR_AGGREGATES)), dtype=np.int64)
    native.core.tcp_aggregates(
        as_i64(part.first),
        as_i64(found.dirn),
        as_i64(part.flags),
        as_i64(found.rel),
        as_i64(found.rel_ack),
        as_i64(part.plen),
        as_i64(part.ts),
        as_i64(fields.frame),
        as_i64(fields.ip_len),
        as_i64(fields.outer_ip_len),
        as_i64(fields.ipv),
        as_i64(fields.sack_hole),
        bits,
        table,
    )
    names = [*CONN_AGGREGATES] + [f"{name}_{tag}" for tag in ("c2s", "s2c") for name in DIR_AGGREGATES]
    return {name: table[:, k] for k, name in enumerate(names)}


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


def joined(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One flows table from the slices' columns, in connection order, built one column at a time."""
    order = np.argsort(np.concatenate([p["conn"] for p in parts]), kind="stable")
    columns = {}
    for name in list(parts[0]):
        values = [p.pop(name) for p in parts]
        # categoricals joined by their codes, datetimes as datetimes: not through one object per connection
        if isinstance(values[0], pd.Categorical):
            columns[name] = union_categoricals(values)[order]
        elif isinstance(values[0], pd.DatetimeIndex):
            columns[name] = values[0].append(values[1:]).take(order)
        else:
            columns[name] = np.concatenate(values)[order]
        del values
    return pd.DataFrame(columns, copy=False)


# flows columns written after the reconstruction: by the TLS layer (rare_layers) and service_names
LATER_COLUMNS = (*TLS_COLUMNS[1:], *HTTP_COLUMNS[1:], "name", "name_source")  # [0] is the key, conn


def empty() -> pd.DataFrame:
    return schema.empty({k: v for k, v in schema.FLOWS.items() if k not in LATER_COLUMNS})
