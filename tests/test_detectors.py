"""Every detector, one behaviour per test: a small capture built from literal packets, `analyze()` on it.

For each registered code there is a positive test (the pattern it exists to find, with its numbers) and a
negative one (the closest look-alike, on which it must stay silent); the meta-test at the end holds every
code to that. Then verdict tests on built host+container pairs, and the registry itself.

A connection is written once as events in relative sequence numbers (`Conn`) and rendered for the container
capture and, after MASQUERADE (client 10.66.0.2, maybe another port, same sequence numbers), for the host.
"""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pcapbuild as B
import pcapmtu
from pcapmtu import detectors
from pcapmtu.detectors import RULES

C, C2 = "172.17.0.2", "172.17.0.3"  # containers
BRIDGE = "172.17.0.1"  # docker0
NAT = "10.66.0.2"  # the docker host's uplink address (MASQUERADE source)
ROUTER = "10.66.0.1"  # the first hop beyond the host
S, S2 = "198.18.0.10", "198.18.0.11"  # servers
C6, NAT6, ROUTER6, S6 = "fd00:17::2", "fd00:66::2", "fd00:66::1", "fd00:18::10"
ACK, PSH, SYN, FIN, RST = B.ACK, B.PSH, B.SYN, B.FIN, B.RST
T0 = 1_700_000_000.0


# --------------------------------------------------------------------------------------------- builders
@dataclass
class Ev:
    t: float
    d: int  # 0 client -> server, 1 server -> client
    seq: int  # relative to the sender's ISN (SYN = 0)
    ack: int  # relative to the other side's ISN
    flags: int
    payload: bytes = b""
    mss: int | None = None
    sack: tuple = ()  # relative (left, right) blocks of the server's data
    where: str = "both"  # "both", "container" or "host": which capture saw it


@dataclass
class Conn:
    """One TCP connection as events; `render()` writes it as the container or (after NAT) the host saw it."""

    server: str = S
    sport: int = 443
    cport: int = 40000
    isn_c: int = 1_000_000
    isn_s: int = 7_000_000
    ev: list[Ev] = field(default_factory=list)

    def hs(self, t: float, mss_c: int | None = 1460, mss_s: int | None = 1460, rtt: float = 0.01, **kw):
        self.ev += [
            Ev(t, 0, 0, 0, SYN, mss=mss_c, **kw),
            Ev(t + rtt, 1, 0, 1, SYN | ACK, mss=mss_s, **kw),
            Ev(t + rtt + 0.0002, 0, 1, 1, ACK, **kw),
        ]
        return self

    def c(self, t, seq, ack, n=0, flags=None, payload=None, **kw):
        payload = payload if payload is not None else b"q" * n
        flags = flags if flags is not None else (ACK | PSH if payload else ACK)
        self.ev.append(Ev(t, 0, seq, ack, flags, payload, **kw))
        return self

    def s(self, t, seq, ack, n=0, flags=None, payload=None, **kw):
        payload = payload if payload is not None else b"r" * n
        flags = flags if flags is not None else (ACK | PSH if payload else ACK)
        self.ev.append(Ev(t, 1, seq, ack, flags, payload, **kw))
        return self

    def render(self, role: str = "container", client: str | None = None, cport: int | None = None,
               syn_mss: int | None = None, synack_mss: int | None = None) -> list[tuple[float, bytes]]:  # fmt: skip
        """(time, IP packet) as the `role` capture saw them; on the host give the NAT address/port and any
        MSS the host's clamp wrote into the SYN (`syn_mss`) or SYN-ACK (`synack_mss`)."""
        v6 = ":" in self.server
        client = client or ((C6 if v6 else C) if role == "container" else (NAT6 if v6 else NAT))
        cport = cport or self.cport
        out = []
        for e in self.ev:
            if e.where not in ("both", role):
                continue
            mss = e.mss
            if e.flags & SYN and mss is not None and role == "host":
                mss = (syn_mss if e.d == 0 else synack_mss) or mss
            sack = [(self.isn_s + a, self.isn_s + b) for a, b in e.sack]
            opts = B.tcp_options(mss=mss, sack_perm=bool(e.flags & SYN), sack=sack)
            if e.d == 0:
                seq, ack = self.isn_c + e.seq, (self.isn_s + e.ack) if e.flags & ACK else 0
                pkt = B.tcp(client, self.server, cport, self.sport, seq=seq, ack=ack, flags=e.flags,
                            payload=e.payload, opts=opts)  # fmt: skip
            else:
                seq, ack = self.isn_s + e.seq, self.isn_c + e.ack
                pkt = B.tcp(self.server, client, self.sport, cport, seq=seq, ack=ack, flags=e.flags,
                            payload=e.payload, opts=opts)  # fmt: skip
            out.append((e.t, pkt))
        return out


def capture(tmp_path, name: str, *parts, link=B.ether, linktype: int = 1, snaplen: int = 262144):
    """Write (time, IP packet) lists (merged in time order) as a pcap and read it back."""
    pkts = sorted((p for part in parts for p in part), key=lambda x: x[0])
    path = tmp_path / f"{name}.pcap"
    B.write_pcap(path, [B.Record(t, link(p)) for t, p in pkts], linktype=linktype, snaplen=snaplen)
    return pcapmtu.read(path)


def checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_frag_needed(router: str, to: str, quoted: bytes, mtu: int) -> bytes:
    """ICMP type 3 code 4 (RFC 1191) quoting the IP header and 8 bytes of `quoted`."""
    body = struct.pack(">BBHHH", 3, 4, 0, 0, mtu) + quoted[:28]
    body = body[:2] + struct.pack(">H", checksum(body)) + body[4:]
    return B.ip_packet(router, to, body, 1, df=False)


def icmp_unreachable(router: str, to: str, quoted: bytes, code: int = 3) -> bytes:
    body = struct.pack(">BBHI", 3, code, 0, 0) + quoted[:28]
    body = body[:2] + struct.pack(">H", checksum(body)) + body[4:]
    return B.ip_packet(router, to, body, 1, df=False)


def icmp6_packet_too_big(router: str, to: str, quoted: bytes, mtu: int) -> bytes:
    """ICMPv6 type 2 (RFC 4443) quoting the start of `quoted` (checksum left 0: not verified)."""
    return B.ip_packet(router, to, struct.pack(">BBHI", 2, 0, 0, mtu) + quoted[:1232], 58)


def ping(src: str, dst: str, ip_len: int, *, reply: bool = False, df: bool = True, seq: int = 1) -> bytes:
    """An ICMP echo request (or reply) whose IP packet is `ip_len` bytes (`ping -M do -s ip_len-28`)."""
    body = struct.pack(">BBHHH", 0 if reply else 8, 0, 0, 0x4242, seq) + b"p" * (ip_len - 28)
    body = body[:2] + struct.pack(">H", checksum(body)) + body[4:]
    return B.ip_packet(src, dst, body, 1, df=df)


def tls_record(msg_type: int, n: int) -> bytes:
    """A TLS handshake record holding one message of type `msg_type` (1 ClientHello, 2 ServerHello)."""
    msg = bytes([msg_type]) + n.to_bytes(3, "big") + b"\x03\x03" + b"h" * (n - 2)
    return b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg


CLIENT_HELLO = tls_record(1, 512)  # 521 bytes of TCP payload, like curl's


def run(*, host=None, container=None, **kw):
    return pcapmtu.analyze(host=host, container=container, **kw)


def found(result, code: str, capture: str | None = None, conn: int | None = None) -> list:
    return [
        f
        for f in result.findings_list
        if f.code == code and (capture is None or f.capture == capture) and (conn is None or f.conn == conn)
    ]


def codes(result) -> set[str]:
    return {f.code for f in result.findings_list}


def no_crash(result) -> None:
    crashed = [f.message for f in result.findings_list if f.code == "E900"]
    assert not crashed, crashed


def verdict_of(result, capture: str, conn: int) -> tuple[str, str]:
    v = result.verdicts
    row = v[(v["capture"] == capture) & (v["conn"] == conn)].iloc[0]
    return row["verdict"], row["reason"]
