"""Build small captures in tests: literal packets written as pcap or pcapng (test helper, not library code).

Packets are built with dpkt so the bytes are what real stacks send; the writers are hand-rolled so that
tests control every header field (byte order, timestamp resolution, interface blocks, link types).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dpkt

SYN, ACK, FIN, RST, PSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH


def tcp_options(mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
                ts: tuple[int, int] | None = None, sack: Sequence[tuple[int, int]] = ()) -> bytes:  # fmt: skip
    opts = b""
    if mss is not None:
        opts += struct.pack(">BBH", 2, 4, mss)
    if sack_perm:
        opts += b"\x04\x02"
    if ts is not None:
        opts += b"\x01\x01" + struct.pack(">BBII", 8, 10, *ts)
    if wscale is not None:
        opts += b"\x01" + struct.pack(">BBB", 3, 3, wscale)
    if sack:
        opts += b"\x01\x01" + struct.pack(">BB", 5, 2 + 8 * len(sack))
        for left, right in sack:
            opts += struct.pack(">II", left, right)
    opts += b"\x00" * (-len(opts) % 4)
    return opts


def ip_packet(
    src: str, dst: str, l4: bytes, proto: int, *, ip_id: int = 1, df: bool = True, ttl: int = 64
) -> bytes:
    """IPv4 or IPv6 packet (chosen by the address family) around a transport payload."""
    if ":" in src:
        ip6 = dpkt.ip6.IP6(
            src=socket.inet_pton(socket.AF_INET6, src),
            dst=socket.inet_pton(socket.AF_INET6, dst),
            nxt=proto,
            hlim=ttl,
            plen=len(l4),
        )
        return bytes(ip6) + l4
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, id=ip_id, ttl=ttl)
    ip.df = int(df)
    ip.data = l4
    ip.len = 20 + len(l4)
    return bytes(ip)


def tcp(src: str, dst: str, sport: int, dport: int, *, seq: int = 0, ack: int = 0, flags: int = ACK,
        payload: bytes = b"", win: int = 65535, opts: bytes = b"", ip_id: int = 1, ttl: int = 64) -> bytes:  # fmt: skip
    """An IP packet carrying one TCP segment (`ttl`: the IPv4 TTL or IPv6 hop limit)."""
    seg = dpkt.tcp.TCP(
        sport=sport, dport=dport, seq=seq % (1 << 32), ack=ack % (1 << 32), flags=flags, win=win
    )
    seg.opts = opts
    seg.off = (20 + len(opts)) // 4
    seg.data = payload
    return ip_packet(src, dst, bytes(seg), 6, ip_id=ip_id, ttl=ttl)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, ttl: int = 64) -> bytes:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    u.ulen = 8 + len(payload)
    return ip_packet(src, dst, bytes(u), 17, ttl=ttl)


def ether(ip_bytes: bytes, vlans: Sequence[int] = ()) -> bytes:
    """Ethernet II frame (with optional 802.1Q tags) around an IP packet."""
    etype = 0x86DD if ip_bytes[0] >> 4 == 6 else 0x0800
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for i, vid in enumerate(vlans):
        tpid = 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100
        head += struct.pack(">HH", tpid, vid)
    return head + struct.pack(">H", etype) + ip_bytes


def sll2(ip_bytes: bytes, ifindex: int, pkttype: int = 0) -> bytes:
    """Linux cooked v2 header (what `tcpdump -i any` writes)."""
    etype = 0x86DD if ip_bytes[0] >> 4 == 6 else 0x0800
    return (
        struct.pack(">HHIHBB8s", etype, 0, ifindex, 1, pkttype, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00")
        + ip_bytes
    )


def sll(ip_bytes: bytes, pkttype: int = 0) -> bytes:
    etype = 0x86DD if ip_bytes[0] >> 4 == 6 else 0x0800
    return struct.pack(">HHH8sH", pkttype, 1, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00", etype) + ip_bytes


@dataclass
class Record:
    ts: float
    data: bytes
    wirelen: int | None = None
    iface: int = 0


def write_pcap(path, records: Iterable[Record | tuple[float, bytes]], *, linktype: int = 1, nano: bool = False,
               big_endian: bool = False, snaplen: int = 262144) -> None:  # fmt: skip
    o = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        rec = rec if isinstance(rec, Record) else Record(*rec)
        sec = int(rec.ts)
        frac = round((rec.ts - sec) * (1e9 if nano else 1e6))
        out.append(struct.pack(o + "IIII", sec, frac, len(rec.data), rec.wirelen or len(rec.data)) + rec.data)
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def write_pcapng(
    path, records: Iterable[Record], interfaces: Sequence[tuple[int, int]], *, big_endian: bool = False
) -> None:
    """pcapng with one IDB per (linktype, tsresol exponent) and EPBs referring to them."""
    o = ">" if big_endian else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        total = 12 + len(body)
        return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)

    out = [block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for linktype, exp in interfaces:
        opts = struct.pack(o + "HH", 9, 1) + bytes([exp]) + b"\x00\x00\x00" + struct.pack(o + "HH", 0, 0)
        out.append(block(1, struct.pack(o + "HHI", linktype, 0, 262144) + opts))
    for rec in records:
        exp = interfaces[rec.iface][1]
        units = round(rec.ts * 10**exp)
        body = struct.pack(
            o + "IIIII",
            rec.iface,
            units >> 32,
            units & 0xFFFFFFFF,
            len(rec.data),
            rec.wirelen or len(rec.data),
        )
        out.append(block(6, body + rec.data))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def handshake(client: str, server: str, cport: int, sport: int, *, t0: float = 1000.0, isn_c: int = 1000,
              isn_s: int = 5000, mss_c: int = 1460, mss_s: int = 1460, rtt: float = 0.01) -> list[tuple[float, bytes]]:  # fmt: skip
    """SYN, SYN-ACK, ACK as (time, IP packet) pairs."""
    return [
        (t0, tcp(client, server, cport, sport, seq=isn_c, flags=SYN, opts=tcp_options(mss=mss_c, sack_perm=True))),
        (t0 + rtt, tcp(server, client, sport, cport, seq=isn_s, ack=isn_c + 1, flags=SYN | ACK,
                       opts=tcp_options(mss=mss_s, sack_perm=True))),
        (t0 + rtt + 0.0001, tcp(client, server, cport, sport, seq=isn_c + 1, ack=isn_s + 1)),
    ]  # fmt: skip


def dns_answer(name: str, ip: str, txid: int = 7) -> bytes:
    """A DNS response (QR set) answering `name` with one A record for `ip`."""
    msg = dpkt.dns.DNS(id=txid)
    msg.qr = 1
    msg.qd = [dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)]
    msg.an = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=60, rdata=socket.inet_aton(ip))]
    return bytes(msg)
