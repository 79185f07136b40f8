"""The one writer of capture files in tests: classic pcap (and its variants) and pcapng, byte by byte.

Hand-rolled so that tests choose every header field: byte order, timestamp resolution, version, link type,
snapshot length, interface blocks and their options, obsolete and simple packet blocks, sections that switch
byte order, and raw bytes where a test damages a file on purpose. Packets come from support/packets.py.

- `pcap_bytes` / `write_pcap`: a record is a `Record` or (time in seconds, data), or, for exact timestamps,
  (seconds, fraction in the file's units, data[, original length]).
- `Pcapng`: blocks one by one (`Pcapng().shb().idb(1, 9).epb(0, units, frame).bytes()`); `write_pcapng` writes
  `Record`s with one interface per (link type, if_tsresol exponent).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PCAP_MAGIC, PCAP_NSEC_MAGIC, PCAP_MODIFIED_MAGIC = 0xA1B2C3D4, 0xA1B23C4D, 0xA1B2CD34
SHB, IDB, OBSOLETE_PB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6


@dataclass
class Record:
    ts: float
    data: bytes
    wirelen: int | None = None
    iface: int = 0


def _exact(rec, nano: bool) -> tuple[int, int, bytes, int]:
    """(seconds, fraction in file units, data, original length) of any record form `pcap_bytes` takes."""
    if isinstance(rec, Record) or len(rec) == 2:
        rec = rec if isinstance(rec, Record) else Record(*rec)
        sec = int(rec.ts)
        frac = round((rec.ts - sec) * (1e9 if nano else 1e6))
        return sec, frac, rec.data, rec.wirelen or len(rec.data)
    sec, frac, data = rec[:3]
    return sec, frac, data, rec[3] if len(rec) > 3 else len(data)


def pcap_bytes(records: Iterable, *, linktype: int = 1, nano: bool = False, big_endian: bool = False,
               snaplen: int = 262144, version: tuple[int, int] = (2, 4), modified: bool = False) -> bytes:  # fmt: skip
    """Classic pcap. Before version 2.3 a record header holds the original length before the captured one
    (libpcap sf-pcap.c); `modified` writes the 24-byte record headers of Kuznetsov's modified pcap."""
    o = ">" if big_endian else "<"
    magic = PCAP_MODIFIED_MAGIC if modified else PCAP_NSEC_MAGIC if nano else PCAP_MAGIC
    out = [struct.pack(o + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)]
    for rec in records:
        sec, frac, data, wirelen = _exact(rec, nano)
        lens = (wirelen, len(data)) if version < (2, 3) else (len(data), wirelen)
        out.append(struct.pack(o + "IIII", sec, frac, *lens))
        if modified:  # ifindex, protocol, pkt_type, padding
            out.append(struct.pack(o + "IHBB", 3, 0x0800, 0, 0))
        out.append(data)
    return b"".join(out)


def write_pcap(path, records: Iterable, **kw) -> None:
    """`pcap_bytes(records, **kw)` written to `path`."""
    Path(path).write_bytes(pcap_bytes(records, **kw))


class Pcapng:
    """pcapng with every block spelled out (sections may switch byte order)."""

    def __init__(self) -> None:
        self.o = "<"
        self.parts: list[bytes] = []

    def block(self, btype: int, body: bytes) -> Pcapng:
        body += b"\x00" * (-len(body) % 4)
        total = 12 + len(body)
        self.parts.append(struct.pack(self.o + "II", btype, total) + body + struct.pack(self.o + "I", total))
        return self

    def option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self.o + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    def shb(self, big_endian: bool = False) -> Pcapng:
        self.o = ">" if big_endian else "<"
        return self.block(SHB, struct.pack(self.o + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    def idb(
        self, linktype: int, tsresol: int | None = None, *, snaplen=262144, name="", tsoffset=None
    ) -> Pcapng:
        opts = b""
        if name:
            opts += self.option(2, name.encode())
        if tsresol is not None:
            opts += self.option(9, bytes([tsresol]))
        if tsoffset is not None:
            opts += self.option(14, struct.pack(self.o + "q", tsoffset))
        if opts:
            opts += self.option(0, b"")
        return self.block(IDB, struct.pack(self.o + "HHI", linktype, 0, snaplen) + opts)

    def epb(self, iface: int, units: int, data: bytes, wirelen: int | None = None) -> Pcapng:
        head = struct.pack(
            self.o + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), wirelen or len(data)
        )
        return self.block(EPB, head + data)

    def pb(self, iface: int, units: int, data: bytes) -> Pcapng:
        """Obsolete Packet Block (type 2)."""
        head = struct.pack(self.o + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
        return self.block(OBSOLETE_PB, head + data)

    def spb(self, data: bytes, wirelen: int | None = None) -> Pcapng:
        return self.block(SPB, struct.pack(self.o + "I", wirelen or len(data)) + data)

    def raw(self, data: bytes) -> Pcapng:
        self.parts.append(data)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def write_pcapng(
    path, records: Iterable[Record], interfaces: Sequence[tuple[int, int]], *, big_endian: bool = False
) -> None:
    """pcapng with one IDB per (linktype, tsresol exponent) and EPBs referring to them."""
    ng = Pcapng().shb(big_endian)
    for linktype, exp in interfaces:
        ng.idb(linktype, exp)
    for rec in records:
        ng.epb(rec.iface, round(rec.ts * 10 ** interfaces[rec.iface][1]), rec.data, rec.wirelen)
    Path(path).write_bytes(ng.bytes())
