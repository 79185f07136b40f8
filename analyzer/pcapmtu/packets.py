"""Stage 1: walk a capture file and build the columnar `packets` table.

Columns are accumulated per batch as numpy arrays and concatenated once at the end, one column at a time,
so peak memory is the finished table plus one column. Addresses are interned into a per-capture table
and stored as categorical codes (4 bytes per address per packet).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import decode
from .formats import CaptureFile


@dataclass
class RawTables:
    """Everything the reader produced before TCP reconstruction."""

    packets: pd.DataFrame
    sack: pd.DataFrame  # one row per SACK block: frame, left, right
    rare: list[tuple[int, bytes]] = field(default_factory=list)  # (row, L4 bytes) of DNS and ICMP errors


class _AddressTable:
    """Interns 128-bit addresses (IPv4 mapped into ::ffff:0:0/96) as small integer codes."""

    def __init__(self) -> None:
        self.codes: dict[tuple[int, int], int] = {}
        self.names: list[str] = []

    def intern(self, hi: np.ndarray, lo: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.full(len(hi), -1, dtype=np.int32)
        v4 = valid & (hi == 0)  # IPv4-mapped (and the rare ::/64 IPv6 address): the low word is the key
        if v4.any():
            codes, uniq = pd.factorize(lo[v4])
            out[v4] = self._codes([(0, int(x)) for x in uniq])[codes]
        v6 = valid & (hi != 0)
        if v6.any():
            uniq, inverse = np.unique(np.stack([hi[v6], lo[v6]], axis=1), axis=0, return_inverse=True)
            out[v6] = self._codes([(int(h), int(lo_)) for h, lo_ in uniq.tolist()])[inverse.reshape(-1)]
        return out

    def _codes(self, keys: list[tuple[int, int]]) -> np.ndarray:
        mapping = np.empty(len(keys), dtype=np.int32)
        for i, key in enumerate(keys):
            code = self.codes.get(key)
            if code is None:
                code = self.codes[key] = len(self.names)
                self.names.append(_address_text(*key))
            mapping[i] = code
        return mapping


def _address_text(hi: int, lo: int) -> str:
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def build_packets(cap: CaptureFile, progress=None) -> RawTables:
    """Read every record of `cap` into columns (see docs/tables.md for the schema).

    `progress(done_bytes, total_bytes)` is called after each chunk, for a progress bar.
    """
    total = cap.readable_size()
    parts: dict[str, list[np.ndarray]] = {
        name: []
        for name in ("ts_ns", "caplen", "wirelen", "iface", "file_off", "src", "dst", *decode.COLUMNS)
    }
    sack_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rare: list[tuple[int, bytes]] = []
    addresses = _AddressTable()
    base = 0
    for batch in cap.batches():
        linktypes = np.array([i.linktype for i in cap.interfaces], dtype=np.int64)[batch.iface]
        dec = decode.decode_batch(batch.buf, batch.data_off, batch.caplen, linktypes)
        for name, arr in dec.cols.items():
            parts[name].append(arr)
        parts["ts_ns"].append(batch.ts_ns)
        parts["caplen"].append(batch.caplen.astype(np.uint32))
        parts["wirelen"].append(batch.wirelen.astype(np.uint32))
        parts["iface"].append(batch.iface.astype(np.uint16))
        parts["file_off"].append(batch.file_off)
        has_ip = dec.cols["ipv"] > 0
        parts["src"].append(addresses.intern(dec.addr[:, 0], dec.addr[:, 1], has_ip))
        parts["dst"].append(addresses.intern(dec.addr[:, 2], dec.addr[:, 3], has_ip))
        if len(dec.sack_rows):
            sack_parts.append((dec.sack_rows + base, dec.sack_left, dec.sack_right))
        rare.extend((row + base, data) for row, data in zip(dec.rare_rows, dec.rare_bytes, strict=True))
        base += len(batch.data_off)
        if progress is not None and len(batch.file_off):
            progress(int(batch.file_off[-1]), total)
        del batch, dec
    if progress is not None:
        progress(total, total)

    columns: dict[str, object] = {"frame": np.arange(1, base + 1, dtype=np.int64)}
    for name in list(parts):
        chunks = parts.pop(name)
        dtype = decode.COLUMNS.get(name)
        if chunks:
            columns[name] = np.concatenate(chunks)
        else:
            columns[name] = np.zeros(0, dtype=dtype or (np.int32 if name in ("src", "dst") else np.int64))
        del chunks
    categories = pd.Index(addresses.names, dtype=object)
    for name in ("src", "dst"):
        columns[name] = pd.Categorical.from_codes(columns[name], categories=categories)
    columns["ts"] = columns["ts_ns"] / 1e9
    columns["truncated"] = columns["caplen"] < columns["wirelen"]
    columns["encap"] = pd.Categorical.from_codes(
        columns["encap"].astype(np.int8), categories=decode.ENCAP_NAMES
    )
    columns["status"] = pd.Categorical.from_codes(
        columns["status"].astype(np.int8), categories=decode.STATUS_NAMES
    )
    packets = pd.DataFrame(columns, copy=False)
    if sack_parts:
        sack = pd.DataFrame(
            {
                "row": np.concatenate([s[0] for s in sack_parts]),
                "left": np.concatenate([s[1] for s in sack_parts]),
                "right": np.concatenate([s[2] for s in sack_parts]),
            }
        )
    else:
        sack = pd.DataFrame(
            {"row": np.zeros(0, np.int64), "left": np.zeros(0, np.uint32), "right": np.zeros(0, np.uint32)}
        )
    return RawTables(packets=packets, sack=sack, rare=rare)
