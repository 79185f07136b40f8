"""Hand-made capture scenes for tests: connections written once as events, rendered per capture.

A connection is written once as events in relative sequence numbers (`Conn`) and rendered for the container
capture and, after MASQUERADE (client 10.66.0.2, maybe another port, the same sequence numbers), for the host.
ICMP builders (frag-needed, packet-too-big, port unreachable, ping) and TLS records complete the scenes.
The last part holds the connections the rule tests (tests/test_rules_*.py) are made of: a TLS black hole,
downloads and uploads, slow servers, resets, lossy links, connections without a handshake.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import pcapmtu
from support import packets as B
from support.pcapwriter import Record, write_pcap

C = "172.17.0.2"  # the container
NAT = "10.66.0.2"  # the docker host's uplink address (MASQUERADE source)
ROUTER = "10.66.0.1"  # the first hop beyond the host
S, S2, DNS = "198.18.0.10", "198.18.0.11", "198.18.0.53"  # servers
C6, NAT6, ROUTER6, S6, S6B = "fd00:17::2", "fd00:66::2", "fd00:66::1", "fd00:18::10", "fd00:18::11"
ACK, PSH, SYN, FIN, RST = B.ACK, B.PSH, B.SYN, B.FIN, B.RST
T0 = 1_700_000_000.0
REQ = b"GET /download HTTP/1.1\r\nHost: api.example\r\n\r\n"
R = len(REQ)


SERVER_ROUTER = "198.18.0.1"  # a router on the servers' side of the path (its ICMP reaches the servers)

# Where a capture can be taken, in path order: inside the container (the client), on the docker host's uplink
# (after MASQUERADE), on the server. A packet is captured where it was sent and wherever it got to.
VANTAGES = ("container", "host", "server")


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
    sack: tuple = ()  # (left, right) blocks of the other side's data, relative
    # which captures saw it: "both" (every capture on the path), a role, or a tuple of roles; the capture
    # at the sender always has it (it was sent), so a packet the path dropped is still in the sender's capture
    where: str | tuple[str, ...] = "both"


@dataclass
class Conn:
    """One TCP connection as events; `render()` writes it as the container, the docker host's uplink (after
    NAT) or the server saw it.

    An event's time is on the sender's side (the container's or, for a host's own connection, the host's
    for the client; the server's for the server). With the default zero one-way delays every capture shows
    the same times; `owd_inner` (container <-> host uplink) and `owd_outer` (host uplink <-> server) make
    each capture see a packet when it passed there, so the handshake RTT splits differently at each
    vantage. `hops` (routers between the host and the server) turns on realistic TTLs: a packet leaves
    with `ttl_c`/`ttl_s` (64, Linux) and loses one per router on the way, the docker host counting as one
    for the container's traffic; None keeps every TTL at 64. Realistic TTLs also number the IP IDs per
    direction (a retransmission is a new packet with a new ID; NAT keeps it)."""

    server: str = S
    sport: int = 443
    cport: int = 40000
    isn_c: int = 1_000_000
    isn_s: int = 7_000_000
    ev: list[Ev] = field(default_factory=list)
    client_at: str = "container"  # "host" for a connection of the docker host itself
    owd_inner: float = 0.0
    owd_outer: float = 0.0
    hops: int | None = None
    ttl_c: int = 64
    ttl_s: int = 64

    @property
    def ow(self) -> float:
        """One-way delay client -> server (and back)."""
        return (self.owd_inner if self.client_at == "container" else 0.0) + self.owd_outer

    @property
    def rtt(self) -> float:
        return 2 * self.ow

    def hs(self, t: float, mss_c: int | None = 1460, mss_s: int | None = 1460, rtt: float = 0.01):
        self.ev += [
            Ev(t, 0, 0, 0, SYN, mss=mss_c),
            Ev(t + rtt, 1, 0, 1, SYN | ACK, mss=mss_s),
            Ev(t + rtt + 0.0002, 0, 1, 1, ACK),
        ]
        return self

    def open(
        self, t: float, mss_c: int | None = 1460, mss_s: int | None = 1460, think: float = 0.00005
    ) -> float:
        """SYN sent at `t` (client clock), SYN-ACK `think` s after it arrived, the client's ACK as soon as the
        SYN-ACK arrives; timed by the one-way delays. Returns the time the client sent its ACK."""
        synack = t + self.ow + think
        ack = synack + self.ow + 0.00002
        self.ev += [
            Ev(t, 0, 0, 0, SYN, mss=mss_c),
            Ev(synack, 1, 0, 1, SYN | ACK, mss=mss_s),
            Ev(ack, 0, 1, 1, ACK),
        ]
        return ack

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

    def closed(self, t, cseq, sseq):
        """`close()` timed by the one-way delays: client FIN at `t`, the server's FIN-ACK when it arrives,
        the client's last ACK when that arrives."""
        self.c(t, cseq, sseq, flags=FIN | ACK)
        self.s(t + self.ow + 0.00005, sseq, cseq + 1, flags=FIN | ACK)
        return self.c(t + self.rtt + 0.0001, cseq + 1, sseq + 1)

    # ------------------------------------------------------------------------------ what each vantage saw
    def _pos(self, role: str) -> int:
        return VANTAGES.index(role)

    def _sender(self, e: Ev) -> str:
        return self.client_at if e.d == 0 else "server"

    def seen(self, e: Ev, role: str) -> bool:
        """Whether the `role` capture holds event `e`: its sender's always does."""
        if self.client_at == "host" and role == "container":
            return False
        if role == self._sender(e) or e.where == "both":
            return True
        return role in ((e.where,) if isinstance(e.where, str) else e.where)

    def _between(self, e: Ev, role: str) -> tuple[int, int]:
        """(1 if the docker host forwarded it on the way, routers beyond the host) from sender to `role`."""
        a, b = sorted((self._pos(self._sender(e)), self._pos(role)))
        return int(a == 0 and b >= 1), int(a <= 1 and b == 2)

    def when(self, e: Ev, role: str) -> float:
        inner, outer = self._between(e, role)
        return e.t + inner * self.owd_inner + outer * self.owd_outer

    def ttl(self, e: Ev, role: str) -> int:
        if self.hops is None:
            return 64
        inner, outer = self._between(e, role)
        return (self.ttl_c if e.d == 0 else self.ttl_s) - inner - outer * self.hops

    def packet(self, e: Ev, role: str = "container", client: str | None = None, cport: int | None = None,
               syn_mss: int | None = None, ip_id: int = 1) -> bytes:  # fmt: skip
        """Event `e` as an IP packet in the `role` capture (see `render`)."""
        v6 = ":" in self.server
        nat = self.client_at == "container" and role != "container"
        client = client or ((NAT6 if v6 else NAT) if role != "container" else (C6 if v6 else C))
        cport = cport or self.cport
        mss = e.mss
        if e.flags == SYN and mss is not None and nat and syn_mss:
            mss = syn_mss
        base = self.isn_s if e.d == 0 else self.isn_c
        sack = [(base + a, base + b) for a, b in e.sack]
        opts = B.tcp_options(mss=mss, sack_perm=bool(e.flags & SYN), sack=sack)
        ttl = self.ttl(e, role)
        if e.d == 0:
            seq, ack = self.isn_c + e.seq, (self.isn_s + e.ack) if e.flags & ACK else 0
            return B.tcp(client, self.server, cport, self.sport, seq=seq, ack=ack, flags=e.flags,
                         payload=e.payload, opts=opts, ip_id=ip_id, ttl=ttl)  # fmt: skip
        seq, ack = self.isn_s + e.seq, self.isn_c + e.ack
        return B.tcp(self.server, client, self.sport, cport, seq=seq, ack=ack, flags=e.flags,
                     payload=e.payload, opts=opts, ip_id=ip_id, ttl=ttl)  # fmt: skip

    def _ip_ids(self) -> list[int]:
        if self.hops is None:
            return [1] * len(self.ev)
        nxt = [(self.isn_c >> 3) & 0xFFFF, (self.isn_s >> 3) & 0xFFFF]
        out = []
        for e in sorted(range(len(self.ev)), key=lambda i: self.ev[i].t):
            out.append((e, nxt[self.ev[e].d]))
            nxt[self.ev[e].d] = (nxt[self.ev[e].d] + 1) & 0xFFFF
        return [i for _, i in sorted(out)]

    def render(self, role: str = "container", client: str | None = None, cport: int | None = None,
               syn_mss: int | None = None) -> list[tuple[float, bytes]]:  # fmt: skip
        """(time, IP packet) as the `role` capture saw them: on the host and at the server the client is the
        NAT address (maybe with another port; for a host's own connection, the host's) and `syn_mss` is what
        an MSS clamp on the host wrote into the SYN."""
        ids = self._ip_ids()
        return [
            (self.when(e, role), self.packet(e, role, client, cport, syn_mss, ip_id))
            for e, ip_id in zip(self.ev, ids, strict=True)
            if self.seen(e, role)
        ]


def shifted(part, dt: float) -> list[tuple[float, bytes]]:
    """(time, packet) pairs with the clock moved by `dt` seconds (a capture host whose clock is off)."""
    return [(t + dt, p) for t, p in part]


def write(tmp_path, name: str, *parts, shift: float = 0.0) -> Path:
    """Write (time, IP packet) lists, merged in time order, as an Ethernet pcap `name`.pcap; `shift` moves
    the capture's clock (seconds). Returns the path."""
    pkts = sorted((p for part in parts for p in part), key=lambda x: x[0])
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, [Record(t + shift, B.ether(p)) for t, p in pkts])
    return path


def capture(tmp_path, name: str, *parts, shift: float = 0.0):
    """Write (time, IP packet) lists, merged in time order, as an Ethernet pcap and read it back."""
    return pcapmtu.read(write(tmp_path, name, *parts, shift=shift))


def checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp4(src: str, dst: str, typ: int, code: int, rest: bytes, body: bytes, *, df: bool = False,
          ttl: int = 64) -> bytes:  # fmt: skip
    msg = struct.pack(">BBH", typ, code, 0) + rest + body
    msg = msg[:2] + struct.pack(">H", checksum(msg)) + msg[4:]
    return B.ip_packet(src, dst, msg, 1, df=df, ttl=ttl)


def frag_needed(router: str, to: str, quoted: bytes, mtu: int, *, ttl: int = 64) -> bytes:
    """ICMP type 3 code 4 with the next-hop MTU (RFC 1191), quoting the IP header + 8 bytes of `quoted`."""
    return icmp4(router, to, 3, 4, struct.pack(">HH", 0, mtu), quoted[:28], ttl=ttl)


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


def tls_bytes(content_type: int, n: int, fill: bytes = b"e") -> bytes:
    """One TLS 1.2 record of content type `content_type` (20 change cipher spec, 21 alert, 22 handshake,
    23 application data), `n` bytes long with its 5-byte header."""
    return bytes([content_type]) + b"\x03\x03" + (n - 5).to_bytes(2, "big") + fill * (n - 5)


CLIENT_HELLO = tls_record(1, 508)  # 517 bytes of TCP payload, like curl's
CH = len(CLIENT_HELLO)


# ------------------------------------------------------------------------------- the rule tests' connections
def tls_blackhole(
    t: float = T0, *, server: str = S, cport: int = 40000, mss: int = 1460, isn_c: int = 1_000_000
):
    """The RFC 2923 pattern as the container sees it: ClientHello, a bare ACK, then silence until the
    client gives up (FIN after 8 s); the server's certificate flight never arrives."""
    c = Conn(server=server, cport=cport, isn_c=isn_c).hs(t, mss, mss)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(t + 0.03, 1, 1 + CH)
    c.c(t + 8.0, 1 + CH, 1, flags=FIN | ACK)
    return c.s(t + 8.05, 1, 2 + CH)


def download(t: float = T0, *, sizes=(1460,) * 4, pause: float = 0.0, mss_c: int = 1460, mss_s: int = 1460,
             server: str = S, sport: int = 80, cport: int = 40000, isn_c: int = 1_000_000,
             isn_s: int = 7_000_000) -> Conn:  # fmt: skip
    """HTTP GET; the server ACKs it, waits `pause` seconds, sends segments of `sizes`; orderly close."""
    c = Conn(server=server, sport=sport, cport=cport, isn_c=isn_c, isn_s=isn_s).hs(t, mss_c, mss_s)
    c.c(t + 0.02, 1, 1, payload=REQ)
    c.s(t + 0.03, 1, 1 + R)
    tt, n = t + 0.03 + pause, 1
    for size in sizes:
        c.s(tt + 0.001, n, 1 + R, n=size)
        n += size
        c.c(tt + 0.0015, 1 + R, n)
        tt += 0.002
    return c.close(tt + 0.01, 1 + R, n)


def host_own(t: float = T0 + 0.5, *, mss: int = 1410, server: str = S2) -> Conn:
    """A connection of the docker host itself: its SYN MSS tells its uplink MTU, full-size packets arrive."""
    return download(
        t, sizes=(mss,) * 3, mss_c=mss, server=server, cport=50000, isn_c=3_000_000, isn_s=9_000_000
    )


def pair(tmp_path, container_conns, host_parts):
    """Read the container capture of these connections and the host capture made of `host_parts`."""
    cont = capture(tmp_path, "container", *(c.render("container") for c in container_conns))
    host = capture(tmp_path, "host", *host_parts)
    return host, cont


def upload(
    t: float = T0, *, host_sees: bool, acked: bool, cport: int = 40000, isn_c: int = 1_000_000
) -> Conn:
    """POST of 4 full-size segments; the first is re-sent after RTOs 0.2, 0.4, 0.8, 1.6 s apart. `host_sees`:
    the host's uplink captured them (so they died beyond it) or not (inside the host). `acked`: the last
    re-send is acknowledged and the exchange completes (random loss), else the client resets 3 s later."""
    head = b"POST /upload HTTP/1.1\r\nContent-Length: 5840\r\n\r\n"
    c = Conn(sport=80, cport=cport, isn_c=isn_c).hs(t)
    c.c(t + 0.02, 1, 1, payload=head)
    c.s(t + 0.03, 1, 1 + len(head))
    base, where = 1 + len(head), "both" if host_sees else "container"
    for i in range(4):
        c.c(t + 0.031 + i * 0.0001, base + i * 1460, 1, n=1460, where=where)
    tt = t + 0.031
    for gap in (0.2, 0.4, 0.8, 1.6):
        tt += gap
        c.c(tt, base, 1, n=1460, where=where)
    end = base + 4 * 1460
    if not acked:
        return c.c(tt + 3.0, end, 1, flags=RST | ACK)
    c.s(tt + 0.01, 1, end)
    c.s(tt + 0.02, 1, end, n=200)
    c.c(tt + 0.03, end, 201)
    return c.close(tt + 0.04, end, 201)


def upload_pmtud_works(t: float = T0) -> tuple[Conn, list, list]:
    """A POST whose first 1500-byte segment meets a 1450-MTU router beyond the host: the router's ICMP
    frag-needed reaches the host and, translated back, the container, which re-sends 1410-byte segments."""
    head = b"POST /upload HTTP/1.1\r\nContent-Length: 1460\r\n\r\n"
    c = Conn(sport=80).hs(t)
    c.c(t + 0.02, 1, 1, payload=head)
    c.s(t + 0.03, 1, 1 + len(head))
    base = 1 + len(head)
    c.c(t + 0.031, base, 1, n=1460)
    c.c(t + 0.033, base, 1, n=1410)
    c.c(t + 0.0331, base + 1410, 1, n=50)
    c.s(t + 0.04, 1, base + 1460)
    c.s(t + 0.05, 1, base + 1460, n=200)
    c.c(t + 0.051, base + 1460, 201)
    c.close(t + 0.06, base + 1460, 201)
    seq, ack = c.isn_c + base, c.isn_s + 1
    on_host = B.tcp(NAT, S, 61000, 80, seq=seq, ack=ack, payload=b"q" * 1460)
    in_container = B.tcp(C, S, c.cport, 80, seq=seq, ack=ack, payload=b"q" * 1460)
    return (
        c,
        [(t + 0.032, frag_needed(ROUTER, NAT, on_host, 1450))],
        [(t + 0.0321, frag_needed(ROUTER, C, in_container, 1450))],
    )


def inner_hop_blackhole(t: float = T0) -> Conn:
    """Packets die inside the docker host: its uplink receives the server's 1500-byte segments (and their
    RTO retransmissions 0.2, 0.4, 0.8, 1.6 s apart), the container never does."""
    c = Conn(sport=443).hs(t)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(t + 0.03, 1, 1 + CH)
    c.s(t + 0.031, 1, 1 + CH, n=1460, where="host")
    c.s(t + 0.0311, 1461, 1 + CH, n=1460, where="host")
    tt = t + 0.031
    for gap in (0.2, 0.4, 0.8, 1.6):
        tt += gap
        c.s(tt, 1, 1 + CH, n=1460, where="host")
    return c.c(t + 8.0, 1 + CH, 1, flags=FIN | ACK)


def tail_only(t: float = T0, cport: int = 40000) -> Conn:
    """Only the tail of the server's TLS flight arrives (1200 bytes at relative 2921: the two full-size
    segments before it died); the client SACKs it, waits, gives up."""
    c = Conn(cport=cport).hs(t)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(t + 0.03, 1, 1 + CH)
    c.s(t + 0.035, 2921, 1 + CH, n=1200)
    c.c(t + 0.0351, 1 + CH, 1, sack=((2921, 4121),))
    c.c(t + 8.0, 1 + CH, 1, flags=FIN | ACK, sack=((2921, 4121),))
    return c.s(t + 8.05, 4121, 2 + CH)


def reset_after_stall(t: float, cport: int) -> Conn:
    """ClientHello, a bare ACK, 3 s of nothing, then the server resets the connection."""
    c = Conn(cport=cport, isn_c=2_000_000).hs(t)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(t + 0.03, 1, 1 + CH)
    return c.s(t + 3.0, 1, 1 + CH, flags=RST | ACK)


def syn_retried_then_answered(t: float, cport: int, answer: int = 800) -> Conn:
    """Two SYNs lost (sent at 0 and 1 s), the third (3 s) answered; a small answer, orderly close."""
    c = download(t + 3, sizes=(answer,), cport=cport, isn_c=3_000_000)
    c.ev[:0] = [Ev(t, 0, 0, 0, SYN, mss=1460), Ev(t + 1, 0, 0, 0, SYN, mss=1460)]
    return c


def reset_after_answer(t: float, cport: int) -> Conn:
    """The client ends with RST instead of FIN once it has the whole answer: no stall, not a failure."""
    c = Conn(sport=80, cport=cport, isn_c=4_000_000).hs(t)
    c.c(t + 0.02, 1, 1, payload=REQ)
    c.s(t + 0.03, 1, 1 + R, n=1460)
    c.s(t + 0.031, 1461, 1 + R, n=300)
    c.c(t + 0.032, 1 + R, 1761)
    return c.c(t + 0.04, 1 + R, 1761, flags=RST | ACK)


def tls_completes(t: float, cport: int) -> Conn:
    """ServerHello and certificate in full-size segments, the client's second flight, data, close."""
    c = Conn(cport=cport, isn_c=5_000_000).hs(t)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    flight = tls_record(2, 1451) + b"\x16\x03\x03\x05\xa0" + b"c" * 1455
    c.s(t + 0.03, 1, 1 + CH, payload=flight[:1460])
    c.s(t + 0.0301, 1461, 1 + CH, payload=flight[1460:])
    c.c(t + 0.031, 1 + CH, 1 + len(flight))
    fin = b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x20" + b"f" * 32
    c.c(t + 0.032, 1 + CH, 1 + len(flight), payload=fin)
    c.s(t + 0.04, 1 + len(flight), 1 + CH + len(fin), n=300)
    c.c(t + 0.041, 1 + CH + len(fin), 301 + len(flight))
    return c.close(t + 0.05, 1 + CH + len(fin), 301 + len(flight))


def lossy_download(t: float, cport: int) -> Conn:
    """Eight full-size segments; the 3rd and 6th are lost once and re-sent 0.2 s later (SACK shows the
    holes): full-size packets get through, the link loses packets, not sizes. Then 6 s of keep-alive
    idling before the orderly close."""
    c = Conn(sport=80, cport=cport, isn_c=6_000_000).hs(t)
    c.c(t + 0.02, 1, 1, payload=REQ)
    c.s(t + 0.03, 1, 1 + R)
    for i in (0, 1, 3, 4, 6, 7):
        c.s(t + 0.04 + i * 0.001, 1 + i * 1460, 1 + R, n=1460)
    seg = [1 + i * 1460 for i in range(9)]
    c.c(t + 0.0421, 1 + R, seg[2], sack=((seg[3], seg[5]),))
    c.c(t + 0.0481, 1 + R, seg[2], sack=((seg[3], seg[5]), (seg[6], seg[8])))
    c.s(t + 0.24, seg[2], 1 + R, n=1460)
    c.c(t + 0.2405, 1 + R, seg[5], sack=((seg[6], seg[8]),))
    c.s(t + 0.241, seg[5], 1 + R, n=1460)
    c.c(t + 0.2415, 1 + R, seg[8])
    return c.close(t + 6.25, 1 + R, seg[8])


def download_icmp_ignored(t: float = T0) -> tuple[Conn, list]:
    """The server's own capture: a GET answered with 1500-byte segments; a router's frag-needed (MTU 1450)
    about each reaches the server's interface, yet its TCP re-sends 1500 bytes with backoff (its firewall drops
    the ICMP); the client only ever acknowledges the request. The client gives up after 7 s."""
    c = Conn(sport=80).hs(t)
    c.c(t + 0.02, 1, 1, payload=REQ)
    c.s(t + 0.021, 1, 1 + R)
    icmp = []
    for when in (0.022, 0.23, 0.65, 1.5, 3.2):
        c.s(t + when, 1, 1 + R, n=1460)
        quoted = B.tcp(S, NAT, c.sport, c.cport, seq=c.isn_s + 1, ack=c.isn_c + 1 + R, payload=b"r" * 1460)
        icmp.append((t + when + 0.0005, frag_needed(ROUTER, S, quoted, 1450)))
    c.c(t + 7.0, 1 + R, 1, flags=FIN | ACK)
    return c, icmp


def midstream(t: float, cport: int, *, completes: bool) -> Conn:
    """A download already running when the capture began (no SYN, no SYN-ACK): the client's request went
    out before; 1448-byte segments arrive, two of them are lost on the way and the client SACKs what came
    after. It either recovers and closes, or stalls and the client gives up 6 s later with a FIN."""
    c = Conn(cport=cport)
    c.s(t, 1, 1 + R, n=1448)
    c.c(t + 0.0005, 1 + R, 1449)
    c.s(t + 0.001, 4345, 1 + R, n=1448)  # 1449..4345 never arrived
    c.c(t + 0.0015, 1 + R, 1449, sack=((4345, 5793),))
    if completes:
        c.s(t + 0.2, 1449, 1 + R, n=1448)
        c.s(t + 0.2005, 2897, 1 + R, n=1448)
        c.c(t + 0.201, 1 + R, 5793)
        return c.close(t + 0.3, 1 + R, 5793)
    c.c(t + 6.0, 1 + R, 1449, flags=FIN | ACK, sack=((4345, 5793),))
    return c.s(t + 6.05, 5793, 2 + R)


def http_response(
    t: float = T0,
    *,
    head: bytes,
    body: tuple[int, ...] = (),
    request: bytes = REQ,
    client_closes_after: float | None = None,
    cport: int = 40000,
    isn_c: int = 1_000_000,
) -> Conn:
    """HTTP/1.1 request; the server answers with the response head `head` (status line and headers, maybe the
    start of a body) in one segment, then body segments of `body` sizes, each acknowledged; then silence, and
    the client's FIN `client_closes_after` seconds after the server's last data (None: the capture ends)."""
    c = Conn(sport=80, cport=cport, isn_c=isn_c).hs(t)
    q = len(request)
    c.c(t + 0.02, 1, 1, payload=request)
    c.s(t + 0.021, 1, 1 + q)
    c.s(t + 0.022, 1, 1 + q, payload=head)
    n = 1 + len(head)
    c.c(t + 0.0225, 1 + q, n)
    tt = t + 0.023
    for size in body:
        c.s(tt, n, 1 + q, n=size)
        n += size
        c.c(tt + 0.0005, 1 + q, n)
        tt += 0.001
    if client_closes_after is not None:
        c.c(tt + client_closes_after, 1 + q, n, flags=FIN | ACK)
    return c
