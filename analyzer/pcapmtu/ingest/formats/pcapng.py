"""pcapng: the block walker, over every section and every interface, each with its own link type and
timestamp resolution.

Blocks are read one by one where they need judging (section headers, interface descriptions, simple and
obsolete packet blocks, anything damaged); runs of enhanced packet blocks in little-endian sections are
gathered at once (in C, or through a uint32 view of the chunk; `chunks.BULK_WALKS` off: one by one too).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from .. import native
from . import chunks
from .chunks import Interface, RecordBatch, walk_chunks

if TYPE_CHECKING:
    from .open import CaptureFile

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
MAX_TS_NS = 1 << 62  # year 2116: a pcapng time past this is corrupt (and int64 sums cannot overflow)
MAX_TS_OFFSET = 1 << 32  # seconds; a larger pcapng if_tsoffset is corrupt
# pcapng block types (draft-ietf-opsawg-pcapng)
SHB, IDB, PB_OBSOLETE, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
MIN_BLOCK = {IDB: 20, PB_OBSOLETE: 32, SPB: 16, EPB: 32}  # block length with the fixed fields, in bytes


@dataclass(frozen=True, slots=True, eq=False)
class _Packets:
    """Packet blocks found in a chunk, in file order, their times still in their interface's units."""

    data_off: np.ndarray  # int64: start of the packet bytes in the chunk
    iface: np.ndarray  # int64: index into CaptureFile.interfaces
    ts_raw: np.ndarray  # uint64: timestamp in units of the interface's resolution
    caplen: np.ndarray  # int64: captured bytes
    wirelen: np.ndarray  # int64: original length on the wire

    @classmethod
    def of_lists(cls, data_off, iface, ts_raw, caplen, wirelen) -> _Packets:
        """Blocks gathered one by one, as the arrays a run of enhanced packet blocks yields."""
        return cls(
            data_off=np.asarray(data_off, dtype=np.int64),
            iface=np.asarray(iface, dtype=np.int64),
            ts_raw=np.asarray(ts_raw, dtype=np.uint64),
            caplen=np.asarray(caplen, dtype=np.int64),
            wirelen=np.asarray(wirelen, dtype=np.int64),
        )

    @classmethod
    def joined(cls, runs: list[_Packets]) -> _Packets:
        return cls(
            data_off=np.concatenate([run.data_off for run in runs]),
            iface=np.concatenate([run.iface for run in runs]),
            ts_raw=np.concatenate([run.ts_raw for run in runs]),
            caplen=np.concatenate([run.caplen for run in runs]),
            wirelen=np.concatenate([run.wirelen for run in runs]),
        )


def batches(cap: CaptureFile, fh: BinaryIO, chunk_bytes: int) -> Iterator[RecordBatch]:
    """The records of a pcapng file, every section; sets the format facts on `cap`."""
    cap.format = "pcapng"
    walker = _Walker(cap)
    yield from walk_chunks(cap, fh, chunk_bytes, 0, walker.walk, "block")


class _Walker:
    """Walks pcapng blocks; keeps section state (byte order, interfaces) across chunks."""

    def __init__(self, cap: CaptureFile) -> None:
        self.cap = cap
        self.order = "<"
        self.section_base = 0  # global index of this section's first interface
        self.seen_shb = False

    def walk(self, chunk: bytes, file_base: int) -> tuple[RecordBatch | None, int, str | None]:
        cap = self.cap
        n = len(chunk)
        pos = 0
        data_off: list[int] = []
        ifaces: list[int] = []
        ts_raw: list[int] = []
        caplens: list[int] = []
        wirelens: list[int] = []
        two = struct.Struct(self.order + "II").unpack_from
        problem = None
        runs: list[_Packets] = []  # fast-path EPB runs and slow-path records, in file order
        max_record = chunks.MAX_RECORD
        fast = chunks.BULK_WALKS and sys.byteorder == "little" and n >= 4
        words = memoryview(chunk)[: n // 4 * 4].cast("I") if fast else None  # blocks are 4-byte aligned
        while pos + 12 <= n:
            if fast and self.seen_shb and self.order == "<":
                run, pos = self._epb_run(chunk, words, pos)
                if run is not None:
                    if data_off:  # keep file order: records gathered one by one so far come first
                        runs.append(_Packets.of_lists(data_off, ifaces, ts_raw, caplens, wirelens))
                        data_off, ifaces, ts_raw, caplens, wirelens = [], [], [], [], []
                    runs.append(run)
                if pos + 12 > n:
                    break
            if not self.seen_shb and chunk[pos : pos + 4] != PCAPNG_MAGIC:
                problem = "is not a section header block"
                break
            if chunk[pos : pos + 4] == PCAPNG_MAGIC:
                bom = chunk[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    self.order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    self.order = ">"
                else:
                    problem = "has a section header with an invalid byte-order magic"
                    break
                two = struct.Struct(self.order + "II").unpack_from
            btype, blen = two(chunk, pos)
            if blen < 12 or blen % 4 or blen > max_record:
                problem = f"has an invalid block length ({blen})"
                break
            if pos + blen > n:
                break
            if btype in MIN_BLOCK and blen < MIN_BLOCK[btype]:
                problem = f"is too short for a block of type {btype} ({blen} bytes)"
                break
            if btype in (EPB, PB_OBSOLETE):
                if btype == EPB:
                    iface, hi, lo, clen, wlen = struct.unpack_from(self.order + "IIIII", chunk, pos + 8)
                else:
                    iface, _drops, hi, lo, clen, wlen = struct.unpack_from(
                        self.order + "HHIIII", chunk, pos + 8
                    )
                if clen > blen - 32:
                    problem = f"holds a packet longer than its block ({clen} > {blen - 32})"
                    break
                gidx = self.section_base + iface
                if iface >= len(cap.interfaces) - self.section_base:
                    problem = f"refers to interface {iface}, which was never described"
                    break
                data_off.append(pos + 28)
                ifaces.append(gidx)
                ts_raw.append((hi << 32) | lo)
                caplens.append(clen)
                wirelens.append(wlen)
            elif btype == SPB:
                (wlen,) = struct.unpack_from(self.order + "I", chunk, pos + 8)
                if len(cap.interfaces) <= self.section_base:
                    problem = "is a simple packet block before any interface"
                    break
                snap = cap.interfaces[self.section_base].snaplen or 1 << 30
                data_off.append(pos + 12)
                ifaces.append(self.section_base)
                ts_raw.append(0)  # simple packet blocks carry no timestamp
                caplens.append(min(wlen, snap, blen - 16))
                wirelens.append(wlen)
            elif btype == IDB:
                self._interface(chunk, pos, blen)
            elif btype == SHB:
                if blen < 28:
                    problem = "is a section header that is too short"
                    break
                (major,) = struct.unpack_from(self.order + "H", chunk, pos + 12)
                if major != 1:
                    problem = f"starts a section of unsupported pcapng version {major}"
                    break
                self.seen_shb = True
                self.section_base = len(cap.interfaces)
            pos += blen
        if words is not None:
            words.release()
        if data_off:
            runs.append(_Packets.of_lists(data_off, ifaces, ts_raw, caplens, wirelens))
        if not runs:
            return None, pos, problem
        return self._batch(chunk, file_base, _Packets.joined(runs)), pos, problem

    def _epb_run(self, chunk, words, pos: int) -> tuple[_Packets | None, int]:
        """Consecutive enhanced packet blocks from `pos`, read without a Python step per field.

        Stops before anything else (another block type, a length to judge, a block cut by the chunk's
        end, an unknown interface, a packet longer than its block): the block-by-block walk then takes
        that block, with its checks and messages. Little-endian sections only (nearly all captures).
        """
        n = len(chunk)
        max_record = chunks.MAX_RECORD
        starts: list[int] | np.ndarray
        head = None
        if native.ENABLED:  # with each block's first seven words, read as it walked
            found, pos, first_words = native.core.epb_run(chunk, pos, max_record)
            starts = np.frombuffer(found, dtype=np.int64)
            head = np.frombuffer(first_words, dtype=np.int64).reshape(-1, 7)
        else:
            starts = []
            append = starts.append
            while pos + 32 <= n:
                i = pos >> 2
                if words[i] != EPB:
                    break
                blen = words[i + 1]
                if blen < 32 or blen & 3 or blen > max_record or pos + blen > n:
                    break
                append(pos)
                pos += blen
        if not len(starts):
            return None, pos
        at = np.asarray(starts, dtype=np.int64)
        if head is None:
            u32 = np.frombuffer(chunk, dtype="<u4", count=n // 4)
            # item i: the 7 words from word i (type, length, interface, ts high, ts low, captured, original);
            # one 28-byte item per block is gathered faster than 6 separate words
            blocks = np.ndarray(
                shape=(max(len(u32) - 6, 0),), dtype=np.dtype((np.void, 28)), buffer=u32, strides=(4,)
            )
            head = blocks[at >> 2].view("<u4").reshape(-1, 7).astype(np.int64)
        blen, iface, clen, wlen = head[:, 1], head[:, 2], head[:, 5], head[:, 6]
        bad = np.flatnonzero((clen > blen - 32) | (iface >= len(self.cap.interfaces) - self.section_base))
        if len(bad):  # end the run there; the block-by-block walk reports that block
            k = int(bad[0])
            at, head, iface, clen, wlen = at[:k], head[:k], iface[:k], clen[:k], wlen[:k]
            pos = int(starts[k])
            if not k:
                return None, pos
        ts = (head[:, 3].astype(np.uint64) << np.uint64(32)) | head[:, 4].astype(np.uint64)
        found = _Packets(
            data_off=at + 28, iface=iface + self.section_base, ts_raw=ts, caplen=clen, wirelen=wlen
        )
        return found, pos

    def _interface(self, chunk: bytes, pos: int, blen: int) -> None:
        linktype, _res, snaplen = struct.unpack_from(self.order + "HHI", chunk, pos + 8)
        iface = Interface(linktype=linktype, snaplen=snaplen)
        opt = pos + 16
        end = pos + blen - 4
        while opt + 4 <= end:
            code, olen = struct.unpack_from(self.order + "HH", chunk, opt)
            if code == 0 or opt + 4 + olen > end:  # opt_endofopt, or an option that runs past its block
                break
            val = bytes(chunk[opt + 4 : opt + 4 + olen])
            if code == 2:
                iface.name = val.decode("utf-8", "replace")
            elif code == 9 and olen >= 1:
                iface.ts_base, iface.ts_exp = (2, val[0] & 0x7F) if val[0] & 0x80 else (10, val[0])
            elif code == 14 and olen >= 8:
                (offset,) = struct.unpack(self.order + "q", val[:8])
                if abs(offset) <= MAX_TS_OFFSET:
                    iface.ts_offset = offset
                else:
                    self.cap.warnings.append(
                        f"interface {len(self.cap.interfaces)} has an absurd if_tsoffset ({offset} s); ignored"
                    )
            opt += 4 + olen + (-olen % 4)
        self.cap.interfaces.append(iface)

    def _batch(self, chunk, file_base, found: _Packets) -> RecordBatch:
        cap = self.cap
        iface = np.asarray(found.iface, dtype=np.int32)
        raw_u = np.asarray(found.ts_raw, dtype=np.uint64)
        absurd = raw_u >= np.uint64(1 << 62)  # beyond any real clock in any resolution; keep it harmless
        cap._absurd_ts += int(absurd.sum())
        raw = np.where(absurd, 0, raw_u).astype(np.int64)
        ts_ns = np.zeros(len(raw), dtype=np.int64)
        for idx in np.flatnonzero(np.bincount(iface)):  # the interfaces present (np.unique hashes: slower)
            sel = iface == idx
            ts_ns[sel], out_of_range = _to_ns(raw[sel], cap.interfaces[idx])
            cap._absurd_ts += out_of_range
        caplen = np.asarray(found.caplen, dtype=np.int64)
        offs = np.asarray(found.data_off, dtype=np.int64)
        cap.records += len(offs)
        return RecordBatch(
            buf=np.frombuffer(chunk, dtype=np.uint8),
            data_off=offs,
            caplen=caplen,
            wirelen=np.maximum(np.asarray(found.wirelen, dtype=np.int64), caplen),
            ts_ns=ts_ns,
            iface=iface,
            file_off=offs + file_base,
        )


def _to_ns(raw: np.ndarray, iface: Interface) -> tuple[np.ndarray, int]:
    """Convert raw timestamp units (0 <= raw < 2**62) of one interface to nanoseconds.

    No step overflows int64 whatever the resolution (if_tsresol may be any byte value): a time past
    MAX_TS_NS becomes 0, like an absurd raw value, and is counted. `ts_offset` is within MAX_TS_OFFSET.
    Returns (nanoseconds, how many were out of range).
    """
    offset = iface.ts_offset * 1_000_000_000
    k = iface.ts_exp
    if iface.ts_base == 10:
        if k <= 9:
            mult = 10 ** (9 - k)
            ok = raw <= MAX_TS_NS // mult
            ns = np.where(ok, raw, 0) * mult
        elif k - 9 <= 18:
            ok, ns = None, raw // 10 ** (k - 9)
        else:  # units below 10^-27 s: every 62-bit count is less than a nanosecond
            ok, ns = None, np.zeros_like(raw)
    else:
        if k >= 62:
            whole, frac = np.zeros_like(raw), raw
        else:
            whole, frac = raw >> k, raw & ((1 << k) - 1)
        ok = whole < MAX_TS_NS // 1_000_000_000
        part = (frac.astype(np.float64) * (1e9 / 2.0**k)).astype(np.int64)
        ns = np.where(ok, np.where(ok, whole, 0) * 1_000_000_000 + part, 0)
    bad = 0 if ok is None else int(np.count_nonzero(~ok))
    return ns + offset, bad
