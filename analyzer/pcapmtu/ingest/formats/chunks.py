"""The chunk reader: a capture's bytes in bounded chunks, handed one by one to a format's record walk.

One reusable buffer (or two taking turns, the next one filled by a helper thread while the current one is
walked and decoded); the bytes of a record cut by a chunk's end move to the front of the next chunk.
`walk_chunks` feeds the chunks to a walk and stops at damage with a warning. A walk makes a `RecordBatch` of
each chunk, its records referring to the capture's `Interface`s. `MAX_RECORD` and `BULK_WALKS` are what
every walk obeys.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from .open import CaptureFile

CHUNK_BYTES = 16 * 1024 * 1024
SMALLEST_CHUNK = 64 * 1024  # a file that grows while it is read still goes on in chunks of a useful size
MAX_RECORD = 16 * 1024 * 1024  # a record claiming more than this is corrupt (pcap's own cap is 256 KiB)
# The bulk walks (pcap lengths through uint32 views, pcapng runs of packet blocks) must give exactly what
# the plain record-by-record walks give; tests switch them off to compare the two on damaged files.
BULK_WALKS = True
# The next chunk is read by a helper thread while the current one is decoded; tests compare both ways.
READ_AHEAD = True


@dataclass
class Interface:
    """One capture interface: where its packets came from and how to read their timestamps."""

    linktype: int
    snaplen: int = 0
    name: str = ""
    ts_base: int = 10  # timestamp unit is ts_base ** -ts_exp seconds
    ts_exp: int = 6
    ts_offset: int = 0  # seconds to add (pcapng if_tsoffset)


@dataclass(frozen=True, slots=True, eq=False)
class RecordBatch:
    """A chunk of records. `buf` holds the bytes; offsets index into it."""

    buf: np.ndarray  # uint8
    data_off: np.ndarray  # int64, start of the packet bytes in buf
    caplen: np.ndarray  # int64, captured bytes
    wirelen: np.ndarray  # int64, original length on the wire
    ts_ns: np.ndarray  # int64, nanoseconds since the epoch
    iface: np.ndarray  # int32, index into CaptureFile.interfaces
    file_off: np.ndarray  # int64, offset of the packet bytes in the (decompressed) file


# walk(chunk, file_base) -> (the batch of the records wholly inside the chunk or None, bytes consumed, problem)
Walk = Callable[[memoryview, int], "tuple[RecordBatch | None, int, str | None]"]


def walk_chunks(
    cap: CaptureFile, fh: BinaryIO, chunk_bytes: int, start: int, walk: Walk, unit: str
) -> Iterator[RecordBatch]:
    """Feed the file from `start` in chunks to `walk`; stop at damage with a warning on `cap`."""
    # A file smaller than a chunk is read into a buffer of its own size, without the helper thread: two
    # zero-filled 17 MB buffers and a thread cost ~50 ms, most of the read of a small incident capture.
    left = os.fstat(fh.fileno()).st_size - start
    if left < chunk_bytes:
        reader = _Chunks(fh, max(left, SMALLEST_CHUNK), start)
    elif READ_AHEAD:
        reader = _ReadAheadChunks(fh, chunk_bytes, start)
    else:
        reader = _Chunks(fh, chunk_bytes, start)
    try:
        while (chunk := reader.fill()) is not None:
            batch, pos, problem = walk(chunk, reader.file_base)
            if batch is not None:
                yield batch
            if problem:
                rest = len(chunk) - pos + reader.remaining()
                _stop(cap, f"{unit} at offset {reader.file_base + pos} {problem}", rest)
                return
            if reader.consume(pos, len(chunk)):
                _stop(cap, f"file ends inside a {unit} at offset {reader.file_base}", reader.have)
                return
    finally:
        reader.close()


def _stop(cap: CaptureFile, why: str, skipped: int) -> None:
    cap.skipped_bytes += skipped
    cap.warnings.append(f"{why}; stopped reading there, {skipped} byte(s) skipped")


class _Chunks:
    """Reads a file into one reusable buffer; bytes of a record cut by the chunk end move to the front.

    The memoryview `fill()` returns is only valid until the next `fill()`: batches are decoded (and their
    columns copied out) before the walk goes on, so no chunk is ever copied or kept alive.
    """

    def __init__(self, fh: BinaryIO, chunk_bytes: int, start: int) -> None:
        self.fh = fh
        self.size = chunk_bytes
        self.buf = bytearray(chunk_bytes + 65536)
        self.have = 0  # carried-over bytes at the front of buf
        self.file_base = start  # file offset of buf[0]
        self.eof = False

    def fill(self) -> memoryview | None:
        if self.eof:
            return None
        if len(self.buf) < self.have + self.size:  # a record longer than a chunk: make room for it
            bigger = bytearray(self.have + self.size + 65536)  # a new buffer: old views stay valid
            bigger[: self.have] = self.buf[: self.have]
            self.buf = bigger
        got = self.fh.readinto(memoryview(self.buf)[self.have : self.have + self.size])
        self.eof = got == 0
        n = self.have + got
        return memoryview(self.buf)[:n] if n and not (self.eof and not self.have) else None

    def consume(self, pos: int, n: int) -> bool:
        """Keep bytes [pos, n) for the next fill. True when the file ended inside a record."""
        rest = n - pos
        self.buf[:rest] = self.buf[pos:n]
        self.have = rest
        self.file_base += pos
        return bool(self.eof and rest)

    def remaining(self) -> int:
        """Bytes of the file after the last chunk `fill()` returned."""
        return _remaining(self.fh)

    def close(self) -> None:
        """Nothing runs in the background here."""


class _ReadAheadChunks(_Chunks):
    """The same chunks, with the next one read by a helper thread while the current one is decoded.

    `readinto` releases the GIL, so copying the file out of the page cache (a third of a second per GB)
    overlaps the work on the chunk before. Two buffers take turns; the bytes of a record cut by a chunk's
    end are copied into the room kept in front of the next buffer.
    """

    ROOM = 1 << 20  # in front of each buffer, for carried-over bytes (a longer carry gets its own buffer)

    def __init__(self, fh: BinaryIO, chunk_bytes: int, start: int) -> None:
        self.fh = fh
        self.size = chunk_bytes
        self.have = 0
        self.file_base = start
        self.eof = False
        self.end = start  # file offset just after the last chunk returned
        self.carry = self.current = memoryview(b"")
        self.bufs = [bytearray(self.ROOM + chunk_bytes), bytearray(self.ROOM + chunk_bytes)]
        self.turn = 0  # the buffer the pending read fills
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcapmtu-read")
        self.pending: Future[int] | None = self.pool.submit(self._read, 0)

    def _read(self, k: int) -> int:
        return self.fh.readinto(memoryview(self.bufs[k])[self.ROOM : self.ROOM + self.size])

    def fill(self) -> memoryview | None:
        if self.eof or self.pending is None:
            return None
        got = self.pending.result()
        self.pending = None
        self.eof = got == 0
        n = self.have + got
        if not n or (self.eof and not self.have):
            return None
        buf, room = self.bufs[self.turn], self.ROOM
        if self.have <= room:
            buf[room - self.have : room] = self.carry
            view = memoryview(buf)[room - self.have : room + got]
        else:  # a record longer than the room in front: join it with the new bytes in a buffer of its own
            joined = bytearray(n)
            joined[: self.have] = self.carry
            joined[self.have :] = memoryview(buf)[room : room + got]
            view = memoryview(joined)
        self.carry = memoryview(b"")
        if not self.eof:  # the other buffer held the chunk before, which is done with
            self.turn ^= 1
            self.pending = self.pool.submit(self._read, self.turn)
        self.current = view
        self.end = self.file_base + n
        return view

    def consume(self, pos: int, n: int) -> bool:
        self.carry = self.current[pos:n]  # copied into the next buffer before its old bytes are replaced
        self.have = n - pos
        self.file_base += pos
        return bool(self.eof and self.have)

    def remaining(self) -> int:
        self._settle()
        return os.fstat(self.fh.fileno()).st_size - self.end

    def close(self) -> None:
        self._settle()
        self.pool.shutdown(wait=True)

    def _settle(self) -> None:
        """Wait for the read in flight, if any, so the file is left to one thread."""
        if self.pending is not None:
            with contextlib.suppress(Exception):  # the reader reports errors where it waits, not here
                self.pending.result()
            self.pending = None


def _remaining(fh: BinaryIO) -> int:
    here = fh.tell()
    end = fh.seek(0, os.SEEK_END)
    fh.seek(here)
    return end - here
