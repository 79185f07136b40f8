"""tcpdump's pcap, rewritten as pcapng with comments: what was recorded about the capture travels inside it.

tcpdump 4.99 writes pcap only. The rewrite streams the file once: a section header whose comments hold the
summary and the metadata document (opt_comment may repeat; Wireshark shows them under Statistics > Capture
File Properties), one interface block with the interface's name, filter and a comment with its MTU, then one
enhanced packet block per record, bytes unchanged (draft-ietf-opsawg-pcapng).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from ..errors import CaptureFailed

SHB, IDB, EPB = 0x0A0D0D0A, 1, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_COMMENT = 0, 1
SHB_HARDWARE, SHB_OS, SHB_USERAPPL = 2, 3, 4
IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_FILTER = 2, 3, 9, 11
PCAP_MAGICS = {  # magic as read little-endian -> (struct prefix, nanosecond timestamps)
    0xA1B2C3D4: ("<", False),
    0xA1B23C4D: ("<", True),
    0xD4C3B2A1: (">", False),
    0x4D3CB2A1: (">", True),
}
MAX_OPTION = 0xFFFF  # an option's length is 16 bits


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def _option(code: int, value: bytes) -> bytes:
    value = value[:MAX_OPTION]
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad(len(value))


def _options(items: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_option(c, v) for c, v in items) + struct.pack("<HH", OPT_END, 0) if items else b""


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def convert(
    pcap: Path,
    out: Path,
    *,
    comments: list[str],
    iface: str,
    iface_comment: str,
    bpf: str,
    application: str,
    system: str = "",
) -> int:
    """Write `out` (pcapng) from `pcap`; returns the number of packets. A damaged tail (tcpdump killed
    mid-record) ends the file at the last whole packet."""
    try:
        src = pcap.open("rb")
    except OSError as exc:
        raise CaptureFailed(f"cannot read {pcap}: {exc.strerror}") from None
    with src, out.open("wb") as dst:
        header = src.read(24)
        if len(header) < 24:
            raise CaptureFailed(f"{pcap}: tcpdump wrote no capture header")
        (magic,) = struct.unpack("<I", header[:4])
        if magic not in PCAP_MAGICS:
            raise CaptureFailed(f"{pcap}: not a pcap file tcpdump wrote")
        order, nano = PCAP_MAGICS[magic]
        _major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(order + "HHiIII", header[4:])
        shb_opts = [(OPT_COMMENT, c.encode()) for c in comments]
        shb_opts += [(SHB_OS, system.encode())] if system else []
        shb_opts.append((SHB_USERAPPL, application.encode()))
        dst.write(_block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(shb_opts)))
        idb_opts = [
            (IF_NAME, iface.encode()),
            (IF_FILTER, b"\0" + bpf.encode()),  # 0: a libpcap filter string
            (IF_TSRESOL, bytes([9 if nano else 6])),
            (OPT_COMMENT, iface_comment.encode()),
        ]
        dst.write(_block(IDB, struct.pack("<HHI", linktype & 0xFFFF, 0, snaplen) + _options(idb_opts)))
        return _packets(src, dst, order, nano)


def count(pcap: Path) -> int:
    """Whole packets in a pcap file, from the record headers alone: what `convert` will write."""
    try:
        with pcap.open("rb") as src:
            header = src.read(24)
            if len(header) < 24 or struct.unpack("<I", header[:4])[0] not in PCAP_MAGICS:
                return 0
            order = PCAP_MAGICS[struct.unpack("<I", header[:4])[0]][0]
            size, pos, n = pcap.stat().st_size, 24, 0
            while pos + 16 <= size:
                src.seek(pos)
                caplen = struct.unpack(order + "I", src.read(16)[8:12])[0]
                pos += 16 + caplen
                if pos > size:
                    break
                n += 1
            return n
    except OSError:
        return 0


def _packets(src: BinaryIO, dst: BinaryIO, order: str, nano: bool) -> int:
    count = 0
    record = struct.Struct(order + "IIII")
    scale = 1_000_000_000 if nano else 1_000_000
    while True:
        head = src.read(16)
        if len(head) < 16:
            return count
        sec, frac, caplen, wirelen = record.unpack(head)
        data = src.read(caplen)
        if len(data) < caplen:
            return count
        ts = sec * scale + frac
        body = (
            struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, caplen, wirelen) + data + b"\0" * _pad(caplen)
        )
        dst.write(_block(EPB, body))
        count += 1
