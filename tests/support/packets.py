"""Packets for the captures tests build (test helper, not library code): IP packets, link-layer frames,
TCP options, a handshake, DNS answers; support/pcapwriter.py writes them into files.

Packets are built with dpkt so the bytes are what real stacks send.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

import dpkt

SYN, ACK, FIN, RST, PSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH
# the client and the server of the frames below, unless a test names others
C, S = "10.0.0.1", "10.0.0.2"
C6, S6 = "2001:db8::1", "2001:db8::2"


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


# ------------------------------------------------------------------ literal headers (every field chosen)
def ipv4(src, dst, proto, payload, *, ident=7, df=False, mf=False, frag_off=0, total=None, ttl=64) -> bytes:
    """A literal IPv4 header (checksum left 0: nothing here verifies it)."""
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    total = 20 + len(payload) if total is None else total
    head = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, ident, flags, ttl, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return head + payload


def ipv6(src, dst, nh, payload, *, plen=None, hlim=64) -> bytes:
    plen = len(payload) if plen is None else plen
    head = struct.pack(">IHBB16s16s", 0x60000000, plen, nh, hlim,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))  # fmt: skip
    return head + payload


def tcp_bytes(sport, dport, *, seq=1, ack=0, flags=ACK, opts=b"", payload=b"") -> bytes:
    """A TCP segment (header + payload) without an IP header."""
    assert len(opts) % 4 == 0
    off = (20 + len(opts)) // 4
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + opts + payload


def icmp_frag_needed(mtu: int) -> tuple[bytes, bytes]:
    """ICMP frag-needed (next-hop MTU `mtu`) from 192.0.2.254 to C, quoting a C -> S segment whose sequence
    number reads 0xDEADBEEF in the quote; returns (the ICMP packet, the whole quoted packet)."""
    quoted = tcp(C, S, 40000, 443, payload=b"b" * 1400, flags=ACK | PSH)
    quoted_seq = struct.unpack_from(">I", quoted, 24)[0]
    assert quoted_seq == 0
    quoted = bytearray(quoted)
    quoted[24:28] = struct.pack(">I", 0xDEADBEEF)
    icmp = struct.pack(">BBHHH", 3, 4, 0, 0, mtu) + bytes(quoted[:28])
    return ipv4("192.0.2.254", C, 1, icmp, df=False), bytes(quoted)


def dns_response() -> bytes:
    """A NOERROR response for www.example.com: a CNAME to edge.example.net, its A (S) and AAAA (S6)."""
    msg = dpkt.dns.DNS(id=0x4242, op=0x8180)  # QR, RD, RA: a NOERROR response
    msg.qd = [dpkt.dns.DNS.Q(name="www.example.com", type=dpkt.dns.DNS_A)]
    cname = dpkt.dns.DNS.RR(name="www.example.com", type=dpkt.dns.DNS_CNAME, ttl=300)
    cname.cname = "edge.example.net"
    a = dpkt.dns.DNS.RR(name="edge.example.net", type=dpkt.dns.DNS_A, ttl=60, rdata=socket.inet_aton(S))
    aaaa = dpkt.dns.DNS.RR(name="edge.example.net", type=dpkt.dns.DNS_AAAA, ttl=61,
                           rdata=socket.inet_pton(socket.AF_INET6, S6))  # fmt: skip
    msg.an = [cname, a, aaaa]
    return bytes(msg)


# -------------------------------------------------------------------------------------------- overlays
def vxlan(inner_frame: bytes, port: int, outer_sport: int = 50000) -> bytes:
    vx = struct.pack(">BBHI", 0x08, 0, 0, 42 << 8) + inner_frame
    udp = struct.pack(">HHHH", outer_sport, port, 8 + len(vx), 0) + vx
    return ipv4("192.168.1.1", "192.168.1.2", 17, udp, df=True)


def gre(inner_ip: bytes, key: bool = False) -> bytes:
    proto = 0x86DD if inner_ip[0] >> 4 == 6 else 0x0800
    head = struct.pack(">HH", 0x2000 if key else 0, proto) + (struct.pack(">I", 99) if key else b"")
    return ipv4("192.168.1.1", "192.168.1.2", 47, head + inner_ip)
