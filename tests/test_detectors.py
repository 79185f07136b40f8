"""Every detector, one behaviour per test: a small capture built from literal packets, `analyze()` on it.

For each registered code there is a positive test (the pattern it exists to find, with its numbers) and a
negative one (the closest look-alike, on which it must stay silent); `test_every_code_has_positive_and_
negative_tests` holds every code in the registry to that. Then verdict tests on built host+container pairs,
and tests of the registry itself.

A connection is written once as events in relative sequence numbers (`Conn`) and rendered for the container
capture and, after MASQUERADE (client 10.66.0.2, maybe another port, the same sequence numbers), for the host.
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


def capture(tmp_path, name: str, *parts, link=B.ether, linktype: int = 1):
    """Write (time, IP packet) lists, merged in time order, as a pcap and read it back."""
    pkts = sorted((p for part in parts for p in part), key=lambda x: x[0])
    path = tmp_path / f"{name}.pcap"
    B.write_pcap(path, [B.Record(t, link(p)) for t, p in pkts], linktype=linktype)
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


# -------------------------------------------------------------------------------------------- scenarios
def tls_blackhole(t: float = T0, *, server: str = S, cport: int = 40000, mss: int = 1460, isn_c: int = 1_000_000):
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
    return download(t, sizes=(mss,) * 3, mss_c=mss, server=server, cport=50000, isn_c=3_000_000, isn_s=9_000_000)


def pair(tmp_path, container_conns, host_conns, name: str = ""):
    """Read the container capture and the host capture (after NAT) of these connections."""
    cont = capture(tmp_path, f"container{name}", *(c.render("container") for c in container_conns))
    host = capture(tmp_path, f"host{name}", *host_conns)
    return host, cont


def run(*, host=None, container=None, **kw):
    result = pcapmtu.analyze(host=host, container=container, **kw)
    crashed = [f.message for f in result.findings_list if f.code == "E900"]
    assert not crashed, crashed
    return result


def found(result, code: str, capture: str | None = None, conn: int | None = None) -> list:
    return [
        f
        for f in result.findings_list
        if f.code == code and (capture is None or f.capture == capture) and (conn is None or f.conn == conn)
    ]


def one(result, code: str, capture: str | None = None, conn: int | None = None):
    hits = found(result, code, capture, conn)
    assert len(hits) == 1, (code, capture, conn, [(f.code, f.capture, f.conn, f.message) for f in result.findings_list])
    return hits[0]


def codes(result) -> set[str]:
    return {f.code for f in result.findings_list}


def verdict_of(result, capture: str, conn: int) -> tuple[str, str]:
    v = result.verdicts
    row = v[(v["capture"] == capture) & (v["conn"] == conn)]
    assert len(row) == 1, v
    return row.iloc[0]["verdict"], row.iloc[0]["reason"]


# ---------------------------------------------------------------------------------- shared module scenes
@pytest.fixture(scope="module")
def blackhole(tmp_path_factory):
    """The canonical download black hole: container (MSS 1460 both ways, ClientHello, bare ACK, silence) and
    the host (the same connection after NAT to 10.66.0.2:61000, plus its own connection with SYN MSS 1410
    that receives 1450-byte packets)."""
    tmp = tmp_path_factory.mktemp("blackhole")
    bh = tls_blackhole()
    host, cont = pair(tmp, [bh], [bh.render("host", cport=61000), host_own().render("host")])
    return run(host=host, container=cont), run(container=cont)


@pytest.fixture(scope="module")
def clamped(tmp_path_factory):
    """The fix in place: the host rewrites the container's SYN MSS 1460 to 1410; 1450-byte packets arrive."""
    tmp = tmp_path_factory.mktemp("clamped")
    dl = download(sport=443, sizes=(1410, 1410, 1410, 300))
    host, cont = pair(tmp, [dl], [dl.render("host", cport=61000, syn_mss=1410), host_own().render("host")])
    return run(host=host, container=cont)


def inner_hop_blackhole(t: float = T0) -> Conn:
    """Packets die inside the docker host: the host's uplink receives the server's 1500-byte segments (and
    their RTO retransmissions at 0.2/0.4/0.8/1.6 s gaps), the container never does."""
    c = Conn(sport=443).hs(t)
    c.c(t + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(t + 0.03, 1, 1 + CH)
    c.s(t + 0.031, 1, 1 + CH, n=1460, where="host")
    c.s(t + 0.0311, 1461, 1 + CH, n=1460, where="host")
    tt = t + 0.031
    for gap in (0.2, 0.4, 0.8, 1.6):
        tt += gap
        c.s(tt, 1, 1 + CH, n=1460, where="host")
    c.c(t + 8.0, 1 + CH, 1, flags=FIN | ACK)
    return c


@pytest.fixture(scope="module")
def inner_hop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inner")
    c = inner_hop_blackhole()
    host, cont = pair(tmp, [c], [c.render("host", cport=61000)])
    return run(host=host, container=cont)


def upload(t: float = T0, *, host_sees: bool, acked: bool, gaps=(0.2, 0.4, 0.8, 1.6)) -> Conn:
    """POST of 4 full-size segments; the first is re-sent after RTOs with `gaps`. `host_sees`: the host's
    uplink captured them (lost beyond it) or not (lost inside the host). `acked`: the last re-send is
    acknowledged and the exchange completes (random loss), else the client resets after 3 s of silence."""
    head = b"POST /upload HTTP/1.1\r\nContent-Length: 5840\r\n\r\n"
    c = Conn(sport=80).hs(t)
    c.c(t + 0.02, 1, 1, payload=head)
    c.s(t + 0.03, 1, 1 + len(head))
    base, where = 1 + len(head), "both" if host_sees else "container"
    for i in range(4):
        c.c(t + 0.031 + i * 0.0001, base + i * 1460, 1, n=1460, where=where)
    tt = t + 0.031
    for gap in gaps:
        tt += gap
        c.c(tt, base, 1, n=1460, where=where)
    end = base + 4 * 1460
    if not acked:
        return c.c(tt + 3.0, end, 1, flags=RST | ACK)
    c.s(tt + 0.01, 1, end)
    c.s(tt + 0.02, 1, end, n=200)
    c.c(tt + 0.03, end, 201)
    return c.close(tt + 0.04, end, 201)


def test_scaffolding_renders_nat_twins_with_the_same_sequence_numbers(tmp_path):
    """The builder itself: the host copy differs in client address/port and clamped MSS, not in sequence."""
    bh = tls_blackhole()
    host, cont = pair(tmp_path, [bh], [bh.render("host", cport=61000, syn_mss=1410)])
    (h,), (c,) = host.flows.itertuples(), cont.flows.itertuples()
    assert (c.client_ip, c.client_port, h.client_ip, h.client_port) == (C, 40000, NAT, 61000)
    assert h.isn_client == c.isn_client == 1_000_000 and h.isn_server == c.isn_server == 7_000_000
    assert (c.mss_client, h.mss_client, h.mss_server) == (1460, 1410, 1460)
    assert c.client_hello_len == 508 and not c.server_hello


# ------------------------------------------------------------------------------------ Q: capture quality
@pytest.fixture(scope="module")
def snaplen_cut(tmp_path_factory):
    """`tcpdump -s 96`: 14 packets (handshake, 99-byte request, ACK, 3 x (1500-byte segment, ACK), close),
    the request and the three segments cut to 96 bytes; the file itself is whole."""
    path = tmp_path_factory.mktemp("snaplen") / "cut.pcap"
    recs = [B.Record(t, B.ether(p)[:96], wirelen=len(B.ether(p))) for t, p in download(sizes=(1460,) * 3).render()]
    B.write_pcap(path, recs, snaplen=96)
    return run(container=pcapmtu.read(path))


@pytest.fixture(scope="module")
def file_cut(tmp_path_factory):
    """A whole-packet capture whose last 30 bytes were lost in transfer (the final ACK's record is cut)."""
    path = tmp_path_factory.mktemp("filecut") / "cut.pcap"
    B.write_pcap(path, [B.Record(t, B.ether(p)) for t, p in download(sizes=(1460,)).render()])
    whole = path.read_bytes()
    path.write_bytes(whole[:-30])
    return run(container=pcapmtu.read(path)), len(whole)


def test_Q001_positive_snaplen_cut_packets_are_counted_and_sizes_still_read(snaplen_cut):
    r = snaplen_cut
    q = one(r, "Q001", "container")
    assert q.message == "4 of 14 packets in the container capture were cut by the snapshot length (smallest kept: 96 bytes)"
    assert q.frames == (4, 6, 8, 10)
    # cut bytes are not lost bytes: the segments count as delivered at their IP length, nothing looks lost
    flow = r.context.flows("container").iloc[0]
    assert flow["max_ip_len_s2c"] == 1500 and flow["full_delivered_s2c"]
    assert not codes(r) & {"B001", "B003", "L001", "S001"}


def test_Q001_negative_file_cut_mid_record_is_not_a_snaplen_cut(file_cut):
    """A file cut in transfer loses its tail record: that is damage (Q005), not truncated packets."""
    r, _ = file_cut
    assert "Q005" in codes(r)
    assert not found(r, "Q001")
    assert not r.captures["container"].packets["truncated"].any()


def test_Q002_positive_malformed_ip_header(tmp_path):
    pkts = download(sizes=(500,)).render()
    bad = bytearray(pkts[4][1])
    bad[0] = 0x44  # IPv4 with a 16-byte header: impossible
    pkts[4] = (pkts[4][0], bytes(bad))
    r = run(container=capture(tmp_path, "c", pkts))
    q = one(r, "Q002", "container")
    assert q.message == "1 packets in the container capture could not be fully decoded (ipv4-bad-header-length: 1)"
    assert q.frames == (5,) and q.wireshark_filter == "frame.number in {5}"


def test_Q002_negative_arp_and_other_non_ip_frames_are_not_damage(tmp_path):
    path = tmp_path / "arp.pcap"
    arp = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x06" + bytes.fromhex("0001080006040001") + bytes(20)
    lldp = b"\x01\x80\xc2\x00\x00\x0e" + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xcc" + bytes(30)
    recs = [B.Record(t, B.ether(p)) for t, p in download().render()]
    B.write_pcap(path, [B.Record(T0 - 1, arp), B.Record(T0 - 0.5, lldp), *recs])
    r = run(container=pcapmtu.read(path))
    assert len(r.captures["container"].packets) == 2 + len(recs)
    assert not found(r, "Q002")


def test_Q003_positive_gro_super_packets_are_flagged_and_not_taken_as_path_evidence(tmp_path):
    """GRO merged pairs of 1460-byte segments into 2960-byte packets before the capture saw them."""
    r = run(container=capture(tmp_path, "c", download(sizes=(2920, 2920, 1460)).render()))
    q = one(r, "Q003", "container")
    assert q.message.startswith(
        "2 packets in the container capture are larger than any MTU on the path (up to 2960 bytes)"
    )
    assert q.frames == (6, 8)
    low = r.context.path[4].low
    assert low is None or low <= 1500, "a super-packet is no proof that 2960-byte packets cross the path"


def test_Q003_negative_exact_full_size_packets(slow_full):
    r = slow_full
    assert r.context.flows("container").loc[0, "max_ip_len_s2c"] == 1500
    assert not found(r, "Q003")


def test_Q004_positive_any_interface_copies(tmp_path):
    """`tcpdump -i any` on the host: every packet of the connection once on veth (5), once on docker0 (3)."""
    path = tmp_path / "any.pcap"
    pkts = download(sizes=(1460, 1460)).render()
    recs = []
    for t, p in pkts:
        recs += [B.Record(t, B.sll2(p, ifindex=5)), B.Record(t + 0.000003, B.sll2(p, ifindex=3))]
    B.write_pcap(path, recs, linktype=276)
    r = run(host=pcapmtu.read(path))
    q = one(r, "Q004", "host")
    assert q.message.startswith(f"{len(pkts)} packets in the host capture are copies of a packet already seen")
    assert r.context.flows("host").loc[0, "retransmissions"] == 0


def test_Q004_negative_identical_packets_on_one_interface_are_retransmissions(tmp_path):
    """The same segment twelve times on one interface is a sender retrying, not a capture artefact."""
    c = Conn(sport=80).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=REQ)
    for i in range(12):
        c.s(T0 + 0.03 + 0.25 * i, 1, 1 + R, n=1000)
    path = tmp_path / "one.pcap"
    B.write_pcap(path, [B.Record(t, B.sll2(p, ifindex=5)) for t, p in c.render()], linktype=276)
    r = run(container=pcapmtu.read(path))
    assert not found(r, "Q004")
    assert r.context.flows("container").loc[0, "retrans_s2c"] == 11


def test_Q005_positive_file_cut_inside_a_record(file_cut):
    r, size = file_cut
    q = one(r, "Q005", "container")
    last_record = size - (16 + 14 + 40)  # the final pure ACK: record header + Ethernet + IPv4/TCP
    assert q.message == (
        f"the container capture is damaged: file ends inside a record at offset {last_record}; "
        f"stopped reading there, {16 + 54 - 30} byte(s) skipped"
    )
    assert len(r.captures["container"].packets) == len(download(sizes=(1460,)).render()) - 1


def test_Q005_negative_snaplen_cut_packets_in_a_whole_file(snaplen_cut):
    assert "Q001" in codes(snaplen_cut)
    assert not found(snaplen_cut, "Q005")
    assert r_skipped(snaplen_cut) == 0


def r_skipped(result) -> int:
    return result.captures["container"].skipped_bytes
