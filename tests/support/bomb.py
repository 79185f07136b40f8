"""Decompression bombs: a small compressed file of a pcap with millions of minimal records.

Built by streaming: one block of identical records is compressed once, and that compressed member (gzip) or
frame (zstd) is written again and again; both formats decode concatenated members/frames as one stream. The
test writing a bomb of 10 million records holds ~1 MiB in memory and writes a file of ~160 KB (gzip).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

# little-endian, microseconds, Ethernet
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
RECORD = 16  # a zero-length record is its header only
BLOCK_RECORDS = 1 << 16  # records per compressed member (1 MiB of records)


def zero_length_records(n: int, ts: int = 1_700_000_000) -> bytes:
    """`n` records of zero captured and zero original bytes, all at second `ts`."""
    return struct.pack("<IIII", ts, 0, 0, 0) * n


def write_bomb(path: Path, records: int, codec: str = "gzip") -> int:
    """Write a pcap of `records` zero-length records compressed with `codec` ("gzip" or "zstd"). Returns the
    decompressed size in bytes."""
    compress = _compressor(codec)
    full, rest = divmod(records, BLOCK_RECORDS)
    block = compress(zero_length_records(BLOCK_RECORDS))
    with open(path, "wb") as out:
        out.write(compress(PCAP_HEADER))
        for _ in range(full):
            out.write(block)
        if rest:
            out.write(compress(zero_length_records(rest)))
    return len(PCAP_HEADER) + records * RECORD


def _compressor(codec: str):
    if codec == "gzip":
        return lambda data: gzip.compress(data, compresslevel=9, mtime=0)
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=19).compress
    raise ValueError(codec)
