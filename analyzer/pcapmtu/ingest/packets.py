"""Stage 1: walk a capture file and build the columnar `packets` table.

Each batch's decoded columns are written straight into one growing array per column (`_ColumnStore`),
reserved ahead for the rows the whole file will hold at the rows per byte seen so far (and a quarter more),
grown by at least half when that falls short; the table's columns are views of those arrays, so no
per-batch pieces wait in the heap to be joined. Addresses are interned into a per-capture table and stored
as categorical codes (4 bytes per address per packet). With `keep_packets=False` only TCP packets and the
DNS/ICMP rows are kept, with `LEAN_COLUMNS`.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import schema
from . import decode, formats, native
from .budget import SACK_BYTES, ReadCheck
from .formats import CaptureFile

# The columns the later stages read (TCP reconstruction, DNS/ICMP/TLS layers, payload re-reads): all a
# capture keeps when its per-packet table is not wanted (`inspect` needs only the flows).
LEAN_COLUMNS = (
    *("frame", "ts_ns", "caplen", "iface", "file_off"),  # the record
    *("src", "dst", "linktype", "ifindex", "outer_ip_len", "ipv", "ip_len", "ip_id", "frag", "proto"),
    *("sport", "dport", "tcp_flags", "seq", "ack", "win", "payload_len", "payload0", "payload_off"),
    *("mss", "wscale", "sack_perm", "tsval", "has_ts", "status"),  # TCP options; the decode status
)


SFLOW_PORT = 6343


@dataclass
class PacketStats:
    """Whole-capture facts gathered while reading, so they hold whether or not the packets table is kept."""

    packets: int = 0
    first_ts_ns: int | None = None  # smallest timestamp (file order may differ)
    last_ts_ns: int | None = None  # largest timestamp
    truncated: int = 0  # packets cut by the snap length
    backwards: int = 0  # packets whose timestamp is earlier than the one before
    status: dict[str, int] = field(default_factory=dict)  # packets per decode status, largest count first
    first_sflow_frame: int | None = None  # sFlow samples quote TCP headers that Wireshark numbers as streams
    _previous: int = field(default=0, repr=False)  # last timestamp of the batch before

    def add(self, ts_ns: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray, status: np.ndarray) -> None:
        if not len(ts_ns):
            return
        lo, hi = int(ts_ns.min()), int(ts_ns.max())
        self.first_ts_ns = lo if self.first_ts_ns is None else min(self.first_ts_ns, lo)
        self.last_ts_ns = hi if self.last_ts_ns is None else max(self.last_ts_ns, hi)
        self.backwards += int(np.count_nonzero(ts_ns[1:] < ts_ns[:-1]))
        if self.packets and int(ts_ns[0]) < self._previous:
            self.backwards += 1
        self._previous = int(ts_ns[-1])
        self.packets += len(ts_ns)
        self.truncated += int(np.count_nonzero(caplen < wirelen))
        counts = np.bincount(status, minlength=len(decode.STATUS_NAMES))
        for name, count in zip(decode.STATUS_NAMES, counts.tolist(), strict=False):
            self.status[name] = self.status.get(name, 0) + count

    def finish(self) -> None:
        """Order the status counts like `value_counts()`: largest first, ties in category order."""
        names = list(decode.STATUS_NAMES)
        self.status = dict(sorted(self.status.items(), key=lambda kv: (-kv[1], names.index(kv[0]))))


@dataclass
class RawTables:
    """Everything the reader produced before TCP reconstruction."""

    packets: pd.DataFrame
    sack: pd.DataFrame  # one row per SACK block: frame, left, right
    rare: list[tuple[int, bytes]] = field(default_factory=list)  # (row, L4 bytes) of DNS and ICMP errors
    stats: PacketStats = field(default_factory=PacketStats)


class _AddressTable:
    """Interns 128-bit addresses (IPv4 mapped into ::ffff:0:0/96) as small integer codes."""

    def __init__(self) -> None:
        self.codes: dict[tuple[int, int], int] = {}
        self.names: list[str] = []

    def intern(self, addr: np.ndarray, side: int, keep: np.ndarray | None, valid: np.ndarray) -> np.ndarray:
        """Codes of one side of a batch's addresses (`addr[:, side]` high, `side + 1` low word).

        Rows not `valid` get -1; with `keep`, only the kept rows get a code. Codes are handed out in the
        order IPv4 addresses first appear, then the IPv6 ones sorted, batch by batch.
        """
        if native.ENABLED:
            codes = np.empty(len(valid) if keep is None else int(np.count_nonzero(keep)), dtype=np.int32)
            keys = native.core.factorize_addresses(
                addr, side, b"" if keep is None else keep.view(np.uint8), valid.view(np.uint8), codes
            )
            pairs = np.frombuffer(keys, dtype=np.uint64).reshape(-1, 2).tolist()
            to_table = np.append(self._codes([(hi, lo) for hi, lo in pairs]), np.int32(-1))  # -1 stays -1
            return to_table[codes]
        hi, lo = addr[:, side], addr[:, side + 1]
        if keep is not None:
            hi, lo, valid = hi[keep], lo[keep], valid[keep]  # a mask selects faster than positions
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


class _ColumnStore:
    """Columns filled batch by batch into one growing array each.

    Why not a list of per-batch arrays joined at the end: those small arrays sit in the heap between the
    decoder's freed temporaries, and the fragmented heap then holds about twice the live data. One big
    allocation per column is mapped lazily, so room reserved ahead costs address space, not memory.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.rows = 0

    def append(
        self,
        values: dict[str, np.ndarray],
        expected: int,
        keep: np.ndarray | None = None,
        prefiltered: tuple[str, ...] = (),
    ) -> None:
        """Add one batch; `expected` is the caller's estimate of the final row count. With `keep` (a mask of
        the batch's rows), each column is filtered on its way in, in one pass with no filtered copy made
        first; the columns named in `prefiltered` hold only the kept rows already."""
        k = len(next(iter(values.values()))) if keep is None else int(np.count_nonzero(keep))
        if not k:
            return
        need = self.rows + k
        capacity = len(next(iter(self.arrays.values()))) if self.arrays else 0
        if need > capacity:
            self._grow(max(need, expected + expected // 4 + 4096, capacity + capacity // 2), values)
        for name, v in values.items():
            into = self.arrays[name][self.rows : need]
            if keep is None or name in prefiltered:
                into[...] = v
            else:
                np.compress(keep, v, out=into)
        self.rows = need

    def _grow(self, capacity: int, like: dict[str, np.ndarray]) -> None:
        for name, v in like.items():
            bigger = np.empty(capacity, dtype=v.dtype)
            if name in self.arrays:
                bigger[: self.rows] = self.arrays[name][: self.rows]
            self.arrays[name] = bigger

    def finish(self) -> dict[str, np.ndarray]:
        """The filled part of each column (a view: the unused tail was never touched, so costs nothing)."""
        return {name: arr[: self.rows] for name, arr in self.arrays.items()}


def _address_text(hi: int, lo: int) -> str:
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def build_packets(
    cap: CaptureFile, progress=None, keep_packets: bool = True, budget: ReadCheck | None = None
) -> RawTables:
    """Read every record of `cap` into columns (see docs/tables.md for the schema).

    `progress(done_bytes, total_bytes)` is called after each chunk, for a progress bar. With
    `keep_packets=False` only TCP packets and the DNS/ICMP rows are kept, with `LEAN_COLUMNS` only: what
    the flows, dns and icmp tables need, at a fraction of the memory. `budget` is told the counts after
    each batch is decoded, before its rows are stored, and raises TooBig to stop the read there.
    """
    total = cap.readable_size()
    wanted = ("frame", "ts_ns", "caplen", "wirelen", "iface", "file_off", "src", "dst", *decode.COLUMNS)
    if not keep_packets:
        wanted = tuple(name for name in wanted if name in LEAN_COLUMNS)
    store = _ColumnStore()
    sack_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    rare: list[tuple[int, bytes]] = []
    addresses = _AddressTable()
    stats = PacketStats()
    base = 0  # rows kept so far
    kept_bytes = 0  # payload bytes kept beside the rows (DNS/ICMP layers, SACK blocks), for the budget
    walk = cap.batches(formats.CHUNK_BYTES)
    with contextlib.closing(walk):  # a read stopped by the budget ends the walk (and its reader thread) now
        for batch in walk:
            if budget is not None:  # what is known before decoding: the records, and rows at least
                n = len(batch.data_off)
                budget.batch(stats.packets + n, base + (n if keep_packets else 0), kept_bytes)
            linktypes = np.array([i.linktype for i in cap.interfaces], dtype=np.int64)[batch.iface]
            dec = decode.decode_batch(batch.buf, batch.data_off, batch.caplen, linktypes)
            stats.add(batch.ts_ns, batch.caplen, batch.wirelen, dec.cols["status"])
            n = len(batch.data_off)
            if stats.first_sflow_frame is None:
                udp = dec.cols["proto"] == 17
                sflow = np.flatnonzero(
                    udp & ((dec.cols["sport"] == SFLOW_PORT) | (dec.cols["dport"] == SFLOW_PORT))
                )
                if len(sflow):
                    stats.first_sflow_frame = stats.packets - n + 1 + int(sflow[0])
            columns = {
                **dec.cols,
                "frame": np.arange(stats.packets - n + 1, stats.packets + 1, dtype=np.int64),
                "ts_ns": batch.ts_ns,
                "caplen": batch.caplen.astype(np.uint32),
                "wirelen": batch.wirelen.astype(np.uint32),
                "iface": batch.iface.astype(np.uint16),
                "file_off": batch.file_off,
            }
            rare_rows = np.asarray(dec.rare_rows, dtype=np.int64)
            sack_rows, sack_left, sack_right = dec.sack_rows, dec.sack_left, dec.sack_right
            keep = None
            rows_kept = n
            if not keep_packets:  # TCP packets and the few DNS/ICMP rows; new row numbers for both
                tcp_or_rare = dec.cols["proto"] == 6
                tcp_or_rare[rare_rows] = True
                rows_kept = int(np.count_nonzero(tcp_or_rare))
                keep = tcp_or_rare if rows_kept < n else None  # a batch of TCP alone stays as it is
            if keep is not None:
                renumber = np.cumsum(keep) - 1
                on_kept = keep[sack_rows]  # SACK blocks come from TCP options: all of them, in practice
                sack_rows, sack_left, sack_right = sack_rows[on_kept], sack_left[on_kept], sack_right[on_kept]
                rare_rows, sack_rows = renumber[rare_rows], renumber[sack_rows]
            kept_bytes += sum(map(len, dec.rare_bytes)) + len(sack_rows) * SACK_BYTES
            if budget is not None:  # and with the rows and bytes kept, before they are stored
                budget.batch(stats.packets, base + rows_kept, kept_bytes)
            has_ip = dec.cols["ipv"] > 0
            for name, side in (("src", 0), ("dst", 2)):
                columns[name] = addresses.intern(dec.addr, side, keep, has_ip)
            done = int(batch.file_off[-1]) if len(batch.file_off) else total
            store.append(  # src and dst hold the kept rows already; the other columns are filtered going in
                {name: columns[name] for name in wanted},
                expected=(base + rows_kept) * total // max(done, 1),
                keep=keep,
                prefiltered=("src", "dst"),
            )
            if len(sack_rows):
                sack_parts.append((sack_rows + base, sack_left, sack_right))
            rare.extend(zip((rare_rows + base).tolist(), dec.rare_bytes, strict=True))
            base += rows_kept
            if progress is not None and len(batch.file_off):
                progress(done, total)
            del batch, dec, columns
    stats.finish()
    if progress is not None:
        progress(total, total)

    columns: dict[str, object] = store.finish()
    for name in wanted:
        if name not in columns:  # no packets at all
            dtype = decode.COLUMNS.get(name) or (np.int32 if name in ("src", "dst") else np.int64)
            columns[name] = np.zeros(0, dtype=dtype)
    categories = pd.Index(addresses.names, dtype=object)
    for name in ("src", "dst"):
        columns[name] = pd.Categorical.from_codes(columns[name], categories=categories)
    if keep_packets:
        columns["ts"] = columns["ts_ns"] / 1e9
        columns["time"] = schema.utc(columns["ts_ns"])
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
    return RawTables(packets=packets, sack=sack, rare=rare, stats=stats)
