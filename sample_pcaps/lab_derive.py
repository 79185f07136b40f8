"""Derived variants of lab captures (Python stdlib only): what real captures look like when taken less well.

lab.py writes them after a scenario's run, next to the originals:

- `host_shifted.pcap`: host.pcap with every timestamp moved by a fixed offset (a host whose clock is off).
  Packets, lengths and order are untouched.
- `container_midstream.pcap`: container.pcap started late: every packet up to and including the client's
  ACK of the SYN-ACK of one connection (the one that hangs) is dropped, so that connection starts
  mid-stream without its handshake (and its MSS options); DNS and other connections after it are kept.

Classic pcap only (microsecond and nanosecond magic, either byte order); Ethernet, Linux cooked (v1/v2)
and raw IP link types for the connection lookup. pcapng is refused.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
GLOBAL_HEADER = 24
RECORD_HEADER = 16
LINK_ETHERNET, LINK_RAW, LINK_IPV4, LINK_IPV6, LINK_SLL, LINK_SLL2 = 1, 101, 228, 229, 113, 276
ETH_IPV4, ETH_IPV6, ETH_VLAN = 0x0800, 0x86DD, (0x8100, 0x88A8)
TCP_PROTO = 6
TCP_SYN, TCP_ACK = 0x02, 0x10


class DeriveError(ValueError):
    """A capture this module cannot read, or a connection that is not in it."""


@dataclass
class Pcap:
    endian: str  # "<" or ">"
    nanoseconds: bool
    header: bytes  # the 24-byte global header, unchanged
    linktype: int
    records: list[tuple[int, int, int, int, bytes]]  # (ts_sec, ts_frac, incl_len, orig_len, data)

    @property
    def frac_per_s(self) -> int:
        return 1_000_000_000 if self.nanoseconds else 1_000_000


def read_pcap(path: Path) -> Pcap:
    raw = Path(path).read_bytes()
    if len(raw) < GLOBAL_HEADER:
        raise DeriveError(f"{path}: shorter than a pcap header")
    for endian in ("<", ">"):
        (magic,) = struct.unpack(endian + "I", raw[:4])
        if magic in (MAGIC_US, MAGIC_NS):
            break
    else:
        if struct.unpack("<I", raw[:4])[0] == PCAPNG_SHB:
            raise DeriveError(f"{path}: pcapng is not supported here (classic pcap only)")
        raise DeriveError(f"{path}: not a pcap file")
    (linktype,) = struct.unpack(endian + "I", raw[20:24])
    records = []
    offset = GLOBAL_HEADER
    while offset < len(raw):
        if offset + RECORD_HEADER > len(raw):
            raise DeriveError(f"{path}: truncated record header at byte {offset}")
        sec, frac, incl, orig = struct.unpack(endian + "IIII", raw[offset : offset + RECORD_HEADER])
        start = offset + RECORD_HEADER
        if start + incl > len(raw):
            raise DeriveError(f"{path}: truncated packet at byte {offset}")
        records.append((sec, frac, incl, orig, raw[start : start + incl]))
        offset = start + incl
    return Pcap(endian, magic == MAGIC_NS, raw[:GLOBAL_HEADER], linktype & 0x0FFFFFFF, records)


def write_pcap(pcap: Pcap, path: Path) -> None:
    parts = [pcap.header]
    for sec, frac, incl, orig, data in pcap.records:
        parts.append(struct.pack(pcap.endian + "IIII", sec, frac, incl, orig))
        parts.append(data)
    Path(path).write_bytes(b"".join(parts))


# --- (a) shifted clock -------------------------------------------------------------------------------------


def shift_timestamps(src: Path, dst: Path, offset_s: float) -> dict:
    """Write `src` with every timestamp + offset_s (exact in the file's own resolution). Returns a summary."""
    pcap = read_pcap(src)
    per_s = pcap.frac_per_s
    delta = round(offset_s * per_s)  # integer units of the file's resolution, no float drift per packet
    shifted = []
    for sec, frac, incl, orig, data in pcap.records:
        total = sec * per_s + frac + delta
        if total < 0 or total // per_s > 0xFFFFFFFF:
            raise DeriveError(f"{src}: a timestamp shifted by {offset_s} s leaves the pcap range")
        shifted.append((total // per_s, total % per_s, incl, orig, data))
    pcap.records = shifted
    write_pcap(pcap, dst)
    return {"packets": len(shifted), "clock_offset_s": delta / per_s}


# --- (b) started mid-stream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    flags: int


def _ip_payload(linktype: int, data: bytes) -> tuple[int, bytes] | None:
    """(IP version, IP packet) of one frame, or None for anything that is not IP."""
    if linktype == LINK_ETHERNET:
        ethertype, offset = struct.unpack("!H", data[12:14])[0], 14
        while ethertype in ETH_VLAN and len(data) >= offset + 4:
            ethertype, offset = struct.unpack("!H", data[offset + 2 : offset + 4])[0], offset + 4
    elif linktype == LINK_SLL:
        ethertype, offset = struct.unpack("!H", data[14:16])[0], 16
    elif linktype == LINK_SLL2:
        ethertype, offset = struct.unpack("!H", data[0:2])[0], 20
    elif linktype in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        version = data[0] >> 4 if data else 0
        return (version, data) if version in (4, 6) else None
    else:
        raise DeriveError(f"link type {linktype} is not supported")
    if ethertype == ETH_IPV4:
        return 4, data[offset:]
    if ethertype == ETH_IPV6:
        return 6, data[offset:]
    return None


def tcp_segment(linktype: int, data: bytes) -> Segment | None:
    """Addresses, ports and flags of a TCP segment (not one quoted inside ICMP), else None."""
    ip = _ip_payload(linktype, data)
    if ip is None:
        return None
    version, pkt = ip
    if version == 4 and len(pkt) >= 20:
        ihl = (pkt[0] & 0x0F) * 4
        frag = struct.unpack("!H", pkt[6:8])[0] & 0x1FFF
        if pkt[9] != TCP_PROTO or frag or len(pkt) < ihl + 14:
            return None
        src, dst, tcp = pkt[12:16], pkt[16:20], pkt[ihl:]
    elif version == 6 and len(pkt) >= 40:
        if pkt[6] != TCP_PROTO or len(pkt) < 54:  # extension headers: not needed for the lab's captures
            return None
        src, dst, tcp = pkt[8:24], pkt[24:40], pkt[40:]
    else:
        return None
    sport, dport = struct.unpack("!HH", tcp[:4])
    return Segment(
        str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), sport, dport, tcp[13] & 0x3F
    )


def handshake_end(pcap: Pcap, server_ip: str, server_port: int, client_port: int) -> int:
    """Index of the client's ACK of the SYN-ACK of the connection client_port -> server_ip:server_port."""
    seen_syn_ack = False
    for i, (*_, data) in enumerate(pcap.records):
        seg = tcp_segment(pcap.linktype, data)
        if seg is None:
            continue
        from_server = seg.src == server_ip and seg.sport == server_port and seg.dport == client_port
        to_server = seg.dst == server_ip and seg.dport == server_port and seg.sport == client_port
        syn, ack = bool(seg.flags & TCP_SYN), bool(seg.flags & TCP_ACK)
        if from_server and syn and ack:
            seen_syn_ack = True
        elif to_server and seen_syn_ack and ack and not syn:
            return i
    raise DeriveError(f"no completed handshake of port {client_port} -> {server_ip}:{server_port}")


def cut_midstream(src: Path, dst: Path, server_ip: str, server_port: int, client_port: int) -> dict:
    """Write `src` without its packets up to and including the handshake's last ACK. Returns a summary."""
    pcap = read_pcap(src)
    end = handshake_end(pcap, server_ip, server_port, client_port)
    total = len(pcap.records)
    pcap.records = pcap.records[end + 1 :]
    if not pcap.records:
        raise DeriveError(f"{src}: nothing left after the handshake")
    write_pcap(pcap, dst)
    return {
        "packets": len(pcap.records),
        "dropped_packets": end + 1,
        "first_kept_frame": end + 2,  # 1-based frame number in the source capture
        "source_packets": total,
    }
