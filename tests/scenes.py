"""Hand-made capture scenes for tests: connections written once as events, rendered per capture.

A connection is written once as events in relative sequence numbers (`Conn`) and rendered for the container
capture and, after MASQUERADE (client 10.66.0.2, maybe another port, the same sequence numbers), for the host.
ICMP builders (frag-needed, packet-too-big, port unreachable, ping) and TLS records complete the scenes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pcapbuild as B
import pcapmtu

C = "172.17.0.2"  # the container
NAT = "10.66.0.2"  # the docker host's uplink address (MASQUERADE source)
ROUTER = "10.66.0.1"  # the first hop beyond the host
S, S2, DNS = "198.18.0.10", "198.18.0.11", "198.18.0.53"  # servers
C6, NAT6, ROUTER6, S6, S6B = "fd00:17::2", "fd00:66::2", "fd00:66::1", "fd00:18::10", "fd00:18::11"
ACK, PSH, SYN, FIN, RST = B.ACK, B.PSH, B.SYN, B.FIN, B.RST
T0 = 1_700_000_000.0
REQ = b"GET /download HTTP/1.1\r\nHost: api.example\r\n\r\n"
R = len(REQ)


# --------------------------------------------------------------------------------------------- builders
@dataclass
class Ev:
    t: float
    d: int  # 0 client -> server, 1 server -> client
    seq: int  # relative to the sender's ISN (the SYN is 0)
    ack: int  # relative to the other side's ISN
    flags: int
    payload: bytes = b""
    mss: int | None = None
    sack: tuple = ()  # (left, right) blocks of the server's data, relative
    where: str = "both"  # which capture saw it: "both", "container" or "host"


@dataclass
class Conn:
    """One TCP connection as events; `render()` writes it as the container or (after NAT) the host saw it."""

    server: str = S
    sport: int = 443
    cport: int = 40000
    isn_c: int = 1_000_000
    isn_s: int = 7_000_000
    ev: list[Ev] = field(default_factory=list)

    def hs(self, t: float, mss_c: int | None = 1460, mss_s: int | None = 1460, rtt: float = 0.01):
        self.ev += [
            Ev(t, 0, 0, 0, SYN, mss=mss_c),
            Ev(t + rtt, 1, 0, 1, SYN | ACK, mss=mss_s),
            Ev(t + rtt + 0.0002, 0, 1, 1, ACK),
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

    def close(self, t, cseq, sseq):
        """Client FIN, server FIN-ACK, client ACK."""
        self.c(t, cseq, sseq, flags=FIN | ACK)
        self.s(t + 0.01, sseq, cseq + 1, flags=FIN | ACK)
        return self.c(t + 0.0102, cseq + 1, sseq + 1)

    def render(self, role: str = "container", client: str | None = None, cport: int | None = None,
               syn_mss: int | None = None) -> list[tuple[float, bytes]]:  # fmt: skip
        """(time, IP packet) as the `role` capture saw them: on the host the client is the NAT address
        (maybe with another port) and `syn_mss` is what an MSS clamp on the host wrote into the SYN."""
        v6 = ":" in self.server
        client = client or ((C6 if v6 else C) if role == "container" else (NAT6 if v6 else NAT))
        cport = cport or self.cport
        out = []
        for e in self.ev:
            if e.where not in ("both", role):
                continue
            mss = e.mss
            if e.flags == SYN and mss is not None and role == "host" and syn_mss:
                mss = syn_mss
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


def capture(tmp_path, name: str, *parts):
    """Write (time, IP packet) lists, merged in time order, as an Ethernet pcap and read it back."""
    pkts = sorted((p for part in parts for p in part), key=lambda x: x[0])
    path = tmp_path / f"{name}.pcap"
    B.write_pcap(path, [B.Record(t, B.ether(p)) for t, p in pkts])
    return pcapmtu.read(path)


def checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp4(src: str, dst: str, typ: int, code: int, rest: bytes, body: bytes, *, df: bool = False) -> bytes:
    msg = struct.pack(">BBH", typ, code, 0) + rest + body
    msg = msg[:2] + struct.pack(">H", checksum(msg)) + msg[4:]
    return B.ip_packet(src, dst, msg, 1, df=df)


def frag_needed(router: str, to: str, quoted: bytes, mtu: int) -> bytes:
    """ICMP type 3 code 4 with the next-hop MTU (RFC 1191), quoting the IP header + 8 bytes of `quoted`."""
    return icmp4(router, to, 3, 4, struct.pack(">HH", 0, mtu), quoted[:28])


def port_unreachable(router: str, to: str, quoted: bytes) -> bytes:
    return icmp4(router, to, 3, 3, bytes(4), quoted[:28])


def packet_too_big(router: str, to: str, quoted: bytes, mtu: int) -> bytes:
    """ICMPv6 type 2 (RFC 4443) with the MTU, quoting the start of `quoted` (checksum not verified)."""
    return B.ip_packet(router, to, struct.pack(">BBHI", 2, 0, 0, mtu) + quoted[:1232], 58)


def ping(src: str, dst: str, ip_len: int, *, reply: bool = False, df: bool = True, seq: int = 1) -> bytes:
    """An ICMP echo request (or reply) of `ip_len` bytes: `ping -M do -s (ip_len - 28)`."""
    return icmp4(src, dst, 0 if reply else 8, 0, struct.pack(">HH", 0x4242, seq), b"p" * (ip_len - 28), df=df)


def tls_record(msg_type: int, n: int) -> bytes:
    """A TLS handshake record with one message of type `msg_type` (1 ClientHello, 2 ServerHello), n bytes."""
    msg = bytes([msg_type]) + n.to_bytes(3, "big") + b"\x03\x03" + b"h" * (n - 2)
    return b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg


CLIENT_HELLO = tls_record(1, 508)  # 517 bytes of TCP payload, like curl's
CH = len(CLIENT_HELLO)
