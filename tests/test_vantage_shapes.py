"""The diagnosis holds wherever a capture was taken: hand-made captures of each shape, one behaviour per test.

Every scene is built as Linux stacks behave on a path of RTT 40 ms (container <-> docker host 50 us, docker
host <-> server 20 ms, 11 routers beyond the host): TTLs count the hops (a packet leaves with 64), the RTO
is 240 ms and doubles per retry, a receiver's duplicate ACKs carry SACK blocks (RFC 2018, newest first), a
sender learns of a hole from SACK and re-sends after RACK's reordering window (10 ms), a sender with no
ACK at all sends a tail-loss probe (2 RTTs) before its RTO, and a server with tcp_mtu_probing=1 gives up on
full-size segments once its retries have run 3 s and falls back to tcp_base_mss (1024-byte segments).
Captures are taken in the container (the client), on the docker host's uplink (after MASQUERADE to
10.66.0.2, client ports 40000+k -> 61000+k) or on the server (tcpdump there: the client is the NAT
address; what the server sent is in its capture even when the path dropped it).

Shapes (letters as in the brief that defined the contract):
a. download black hole captured at the server alone, and the same with the tcp_mtu_probing fallback;
b. PMTUD working at the server (ICMP frag-needed 1350, re-sent as 1350-byte packets);
c. ICMP frag-needed reaching the server, which keeps re-sending 1500-byte segments;
d. the classic container + host pair with the host's clock 312.5 s ahead (and 47.125 s behind);
e. a container capture started after the handshake of the hanging connection (pair and single);
f. a TLS server that thinks 4 s before answering in full-size segments (container and server side);
g. a busy keep-alive capture (healthy; the CLI exits 0);
h. the classic pair given with host and container swapped (and with roles left to inference);
i. an upload black hole seen from the client only;
j. negative controls at the server: random loss, a healthy transfer;
k. calibration: a healthy verdict beside a connection that stalled after its request is not confident.

Some of the contract (server=, captures=, vantage, role_changes, clock offsets) is being built while these
tests are written; they state what the analyzer must do, not what it does today.
"""

from __future__ import annotations

import random
import subprocess
import sys

import dpkt
import pytest

import pcapmtu
from support import packets as B
from support.scenes import (
    ACK,
    CH,
    CLIENT_HELLO,
    DNS,
    FIN,
    REQ,
    S2,
    SERVER_ROUTER,
    T0,
    C,
    Conn,
    R,
    S,
    frag_needed,
    tls_bytes,
    write,
)

OW_IN, OW_OUT, HOPS = 0.00005, 0.020, 11  # one-way delays (s) and routers beyond the docker host
RTO = 0.24  # Linux: srtt 40 ms + max(4 rttvar, 200 ms); doubles per retry
SER = 0.00012  # a 1500-byte packet on a 100 Mbit/s link
LOST = ("server",)  # a server packet the path dropped beyond the docker host: only the server captured it
LOST_UP = ("container", "host")  # a client packet dropped beyond the docker host
ICMP_TTL = 60  # the 1350-MTU router is 5 hops from the server
ICMP_RTT = 0.008  # and 4 ms away from it


# ------------------------------------------------------------------------------------------------ scenery
def real(**kw) -> Conn:
    """A connection on the realistic path (one-way delays, TTLs per hop)."""
    return Conn(**{"owd_inner": OW_IN, "owd_outer": OW_OUT, "hops": HOPS, **kw})


def view(conn: Conn, role: str) -> list:
    """The connection as the `role` capture saw it (NAT port 61000+k for client port 40000+k)."""
    nat = role != "container" and conn.client_at == "container"
    return conn.render(role, cport=conn.cport + 21000 if nat else None)


def after(part: list, start: float) -> list:
    """Only what a capture started at `start` holds."""
    return [(t, p) for t, p in part if t >= start]


def send(conn: Conn, d: int, t: float, seq: int, sizes, ack: int, *, lost=(), where=LOST, gap: float = SER):
    """Segments (sizes in bytes, or payloads) back to back from `t`; the indexes in `lost` never arrive
    (only `where` captured them). Returns the arrivals at the receiver [(t, seq, n)] and the next seq."""
    arrivals = []
    for i, size in enumerate(sizes):
        payload = size if isinstance(size, bytes) else None
        n = len(size) if payload is not None else size
        kw = {"where": where} if i in lost else {}
        (conn.s if d else conn.c)(t + i * gap, seq, ack, n=n, payload=payload, **kw)
        if i not in lost:
            arrivals.append((t + i * gap + conn.ow, seq, n))
        seq += n
    return arrivals, seq


class Receiver:
    """A Linux receiver's ACKs for one direction's data: every second in-order segment and the last of a
    burst; at once, with SACK blocks (newest first, at most 3), for data beyond a hole and while a hole
    is being filled."""

    def __init__(self, conn: Conn, d: int, rcv_nxt: int = 1):
        self.conn, self.d, self.nxt, self.blocks = conn, d, rcv_nxt, []

    def _sack(self, left: int, right: int) -> None:
        keep = []
        for lo, hi in self.blocks:
            if hi < left or lo > right:
                keep.append((lo, hi))
            else:
                left, right = min(lo, left), max(hi, right)
        self.blocks = [(left, right), *keep]

    def _ack(self, t: float, own_seq: int) -> float:
        (self.conn.c if self.d == 1 else self.conn.s)(t, own_seq, self.nxt, sack=tuple(self.blocks[:3]))
        return t

    def take(self, arrivals, own_seq: int, delay: float = 0.00004) -> list[float]:
        """ACK these arrivals [(t, seq, n)]; returns the times the ACKs were sent."""
        out, pending = [], 0
        arrivals = sorted(arrivals)
        for i, (t, seq, n) in enumerate(arrivals):
            last = i == len(arrivals) - 1 or arrivals[i + 1][0] - t > 0.002
            if seq + n <= self.nxt:  # a duplicate: ACK at once
                out.append(self._ack(t + delay, own_seq))
                continue
            if seq > self.nxt:  # beyond a hole: a duplicate ACK with SACK
                self._sack(seq, seq + n)
                out.append(self._ack(t + delay, own_seq))
                pending = 0
                continue
            had_hole = bool(self.blocks)
            self.nxt = seq + n
            for lo, hi in sorted(self.blocks):
                if lo <= self.nxt:
                    self.nxt = max(self.nxt, hi)
            self.blocks = [(lo, hi) for lo, hi in self.blocks if lo > self.nxt]
            pending += 1
            if had_hole or pending >= 2 or last:
                out.append(self._ack(t + delay, own_seq))
                pending = 0
        return out


def transfer(conn: Conn, rcv: Receiver, t: float, seq: int, sizes, ack: int, *, own_seq: int, cwnd: int = 10,
             d: int = 1) -> tuple[int, float]:  # fmt: skip
    """Slow start: rounds of `cwnd` segments (doubling), each sent when the ACK that ended the previous round
    arrives; everything arrives. Returns the next seq and when the receiver sent its last ACK."""
    i, last = 0, t
    while i < len(sizes):
        arrivals, seq = send(conn, d, t, seq, sizes[i : i + cwnd], ack)
        last = rcv.take(arrivals, own_seq)[-1]
        t = last + conn.ow + 0.00002
        i, cwnd = i + cwnd, cwnd * 2
    return seq, last


def pieces(total: int, mss: int = 1460) -> list[int]:
    return [mss] * (total // mss) + ([total % mss] if total % mss else [])


def rto_times(start: float, count: int, rto: float = RTO) -> list[float]:
    """When the RTO fires `count` times from `start`, doubling each time."""
    out, t = [], start
    for k in range(count):
        t += rto * 2**k
        out.append(t)
    return out


# ---------------------------------------------------------------------------------- server-side downloads
ANSWER = [1460] * 7 + [420]  # an answer of 10640 bytes: IW10 sends it at once, the 420-byte tail gets through
END = 1 + sum(ANSWER)


def server_download(*, fallback: bool = False, icmp: bool = False) -> tuple[Conn, list]:
    """HTTP GET of a 10640-byte answer: the server's 7 full-size segments (1500-byte packets) die on the
    path, the 420-byte tail arrives and the client's duplicate ACK SACKs it. The server re-sends the head
    (RACK) and then on RTO (0.24, 0.48, 0.96, 1.92, 3.84 s). `fallback`: tcp_mtu_probing=1, so the fourth
    RTO (3.6 s into the retries) re-sends 1024 bytes, which arrive; the rest follows in 1024-byte segments,
    everything is acknowledged and the client closes. Otherwise the client gives up after 10 s (FIN) and
    the server ACKs it. `icmp`: a 1350-MTU router answers every full-size packet with frag-needed (the
    server ignores them). Returns the connection and the ICMP packets as the server captured them."""
    c = real(sport=80)
    ta = c.open(T0)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0003
    rcv = Receiver(c, 1)
    arrivals, _ = send(c, 1, ts, 1, ANSWER, 1 + R, lost=set(range(7)))
    dup = rcv.take(arrivals, 1 + R)[-1]
    full = [ts + i * SER for i in range(7)]  # when a full-size packet left the server
    fast = dup + c.ow + 0.01  # RACK: the head is lost
    c.s(fast, 1, 1 + R, n=1460, where=LOST)
    full.append(fast)
    retries = rto_times(fast, 5)
    icmp_pkts = []
    if fallback:
        for tt in retries[:3]:
            c.s(tt, 1, 1 + R, n=1460, where=LOST)
            full.append(tt)
        t, seq = retries[3], 1
        small = pieces(END - 1 - 420, 1024)  # 9 x 1024 + 1004
        seq, last = transfer(c, rcv, t, seq, small, 1 + R, own_seq=1 + R, cwnd=1)
        assert seq == END - 420 and rcv.nxt == END
        c.closed(last + 0.001, 1 + R, END)
    else:
        for tt in retries:
            c.s(tt, 1, 1 + R, n=1460, where=LOST)
            full.append(tt)
        give_up = ta + 10.0
        c.c(give_up, 1 + R, 1, flags=FIN | ACK, sack=tuple(rcv.blocks))
        c.s(give_up + c.ow + 0.00003, END, 2 + R)
    if icmp:
        seg = c.render("server", cport=c.cport + 21000)
        big = {round(t, 9): p for t, p in seg if len(p) == 1500}
        for t in full:
            icmp_pkts.append(
                (t + ICMP_RTT, frag_needed(SERVER_ROUTER, S, big[round(t, 9)], 1350, ttl=ICMP_TTL))
            )
    return c, icmp_pkts


def server_pmtud() -> tuple[Conn, list]:
    """PMTUD working: the server's four 1500-byte segments each draw an ICMP frag-needed (next-hop MTU 1350)
    8 ms later; on the first one the server re-sends them as 1310-byte segments (1350-byte packets), the
    300-byte tail got through and was SACKed, everything is acknowledged, the client closes."""
    c = real(sport=80)
    ta = c.open(T0)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0003
    rcv = Receiver(c, 1)
    sizes = [1460] * 4 + [300]
    arrivals, end = send(c, 1, ts, 1, sizes, 1 + R, lost={0, 1, 2, 3})
    seg = c.render("server", cport=c.cport + 21000)
    big = [p for _, p in seg if len(p) == 1500]
    icmp = [
        (ts + i * SER + ICMP_RTT, frag_needed(SERVER_ROUTER, S, big[i], 1350, ttl=ICMP_TTL)) for i in range(4)
    ]
    again, _ = send(c, 1, ts + ICMP_RTT + 0.00002, 1, pieces(4 * 1460, 1310), 1 + R)
    last = rcv.take(arrivals + again, 1 + R)[-1]
    assert rcv.nxt == end
    c.closed(last + 0.002, 1 + R, end)
    return c, icmp


def server_lossy() -> Conn:
    """Random loss seen by the server: a 30 KB answer in 21 full-size segments and a 700-byte tail; the 3rd,
    9th and 16th full-size segments die on the path (once each). The client's duplicate ACKs SACK what came
    after each hole; the server re-sends each lost segment (RACK, 10 ms after the SACK), and those full-size
    re-sends are acknowledged. The transfer completes, 6 s of keep-alive idle, the client closes."""
    c = real(sport=80, cport=40001, isn_c=2_000_000, isn_s=8_000_000)
    ta = c.open(T0)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0003
    rcv = Receiver(c, 1)
    sizes = [1460] * 21 + [700]
    starts = [1 + sum(sizes[:i]) for i in range(len(sizes))]
    first, seq = send(c, 1, ts, 1, sizes[:10], 1 + R, lost={2, 9})
    acks = rcv.take(first, 1 + R)
    t2 = acks[0] + c.ow + 0.00002  # slow start goes on with the ACKs
    second, end = send(c, 1, t2, seq, sizes[10:], 1 + R, lost={5})
    # RACK re-sends each lost segment 10 ms after the first SACK above it arrives
    resend = []
    for i in (2, 9, 15):
        sacked = next(a for a in sorted(first + second) if a[1] > starts[i])
        at = sacked[0] + 0.00004 + c.ow + 0.01
        got, _ = send(c, 1, at, starts[i], [1460], 1 + R)
        resend += got
    last = rcv.take(second + resend, 1 + R)[-1]
    assert rcv.nxt == end and not rcv.blocks
    c.closed(last + 6.0, 1 + R, end)
    return c


def server_healthy() -> Conn:
    """A healthy transfer at the server: HTTP GET, a 18 KB answer in 12 full-size segments and a 700-byte
    tail, all acknowledged, the client closes."""
    c = real(sport=80, cport=40002, isn_c=3_000_000, isn_s=9_000_000)
    ta = c.open(T0)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0003
    end, last = transfer(c, Receiver(c, 1), ts, 1, [1460] * 12 + [700], 1 + R, own_seq=1 + R)
    c.closed(last + 0.05, 1 + R, end)
    return c


# --------------------------------------------------------------------------------- container and host side
FLIGHT = [1460] * 3  # the server's TLS flight (ServerHello, certificates): 4380 bytes, all full-size


def classic_blackhole(t0: float = T0) -> Conn:
    """The container's HTTPS hangs: SYN/SYN-ACK with MSS 1460, ClientHello, the server ACKs it at once
    (quick-ack), its 3-segment flight of 1500-byte packets dies beyond the docker host; the server's
    tail-loss probe and RTO re-sends die too. The client gives up after 10 s (FIN); the server's ACK of the
    FIN (seq past its unseen flight) gets through."""
    c = real(sport=443)
    ta = c.open(t0)
    c.c(ta + 0.0001, 1, 1, payload=CLIENT_HELLO)
    tch = ta + 0.0001 + c.ow
    c.s(tch + 0.00003, 1, 1 + CH)
    tf = tch + 0.0008
    send(c, 1, tf, 1, FLIGHT, 1 + CH, lost={0, 1, 2})
    tlp = tf + 2 * c.rtt + 0.002
    c.s(tlp, 1 + 2 * 1460, 1 + CH, n=1460, where=LOST)
    for tt in rto_times(tlp, 5):
        c.s(tt, 1, 1 + CH, n=1460, where=LOST)
    give_up = ta + 10.0
    c.c(give_up, 1 + CH, 1, flags=FIN | ACK)
    c.s(give_up + c.ow + 0.00003, 1 + sum(FLIGHT), 2 + CH)
    return c


def host_own(t0: float = T0 + 0.5) -> Conn:
    """The docker host's own HTTP download from 198.18.0.11: its SYN says MSS 1410 (uplink MTU 1450), the
    server sends 1410-byte segments (1450-byte packets), all arrive; orderly close."""
    c = real(server=S2, sport=80, cport=50000, isn_c=3_000_000, isn_s=9_000_000, client_at="host")
    ta = c.open(t0, mss_c=1410, mss_s=1460)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0005
    end, last = transfer(c, Receiver(c, 1), ts, 1, [1410] * 6 + [200], 1 + R, own_seq=1 + R)
    c.closed(last + 0.03, 1 + R, end)
    return c


MID = [1460, 1460, 600, 1460, 1460, 380]  # the answer's segments: the 600- and 380-byte ones get through


def midstream(t0: float = T0) -> tuple[Conn, float]:
    """A download whose answer is written in pieces: of its segments (1460, 1460, 600, 1460, 1460, 380) only
    the small ones arrive; the client's duplicate ACKs SACK them (one hole, then two). The server re-sends
    (RACK, RTO), nothing more arrives; the client gives up after 15 s (FIN, still SACKing) and the server
    ACKs the FIN. Returns the connection and a capture start just after the request was sent."""
    c = real(sport=80)
    ta = c.open(t0)
    c.c(ta + 0.0001, 1, 1, payload=REQ)
    ts = ta + 0.0001 + c.ow + 0.0003
    rcv = Receiver(c, 1)
    arrivals, end = send(c, 1, ts, 1, MID, 1 + R, lost={0, 1, 3, 4})
    dup = rcv.take(arrivals, 1 + R)
    assert len(dup) == 2 and len(rcv.blocks) == 2
    fast = dup[-1] + c.ow + 0.01
    c.s(fast, 1, 1 + R, n=1460, where=LOST)
    c.s(fast + SER, 1461, 1 + R, n=1460, where=LOST)
    for tt in rto_times(fast, 5):
        c.s(tt, 1, 1 + R, n=1460, where=LOST)
    give_up = ta + 15.0
    c.c(give_up, 1 + R, 1, flags=FIN | ACK, sack=tuple(rcv.blocks))
    c.s(give_up + c.ow + 0.00003, end, 2 + R)
    return c, ta + 0.005


UPLOAD_HEAD = b"POST /upload HTTP/1.1\r\nHost: api.example\r\nContent-Length: 5840\r\n\r\n"


def upload_blackhole() -> Conn:
    """POST: the small head (67 bytes) is ACKed at once; the body's four 1500-byte packets die beyond the
    host; the client's tail-loss probe (the last segment, 2 RTTs after the ACK) and its RTO re-sends of the
    first (0.24, 0.48, 0.96, 1.92, 3.84 s) die too; the server never sends anything else."""
    c = real(sport=80)
    ta = c.open(T0)
    h = len(UPLOAD_HEAD)
    c.c(ta + 0.0001, 1, 1, payload=UPLOAD_HEAD)
    base = 1 + h
    send(c, 0, ta + 0.0002, base, [1460] * 4, 1, lost={0, 1, 2, 3}, where=LOST_UP)
    t_head = ta + 0.0001 + c.ow
    c.s(t_head + 0.00003, 1, base)
    t_ack = t_head + 0.00003 + c.ow
    tlp = t_ack + 2 * c.rtt + 0.002
    c.c(tlp, base + 3 * 1460, 1, n=1460, where=LOST_UP)
    for tt in rto_times(tlp, 5):
        c.c(tt, base, 1, n=1460, where=LOST_UP)
    return c


def tls_slow_server(t0: float = T0) -> Conn:
    """TLS 1.2 to a server that thinks 4 s: ClientHello; the server's flight (ServerHello, Certificate,
    ServerHelloDone: 1460 + 1460 + 1460 + 700 bytes, 1500-byte packets) arrives and is ACKed; the client's
    ClientKeyExchange/ChangeCipherSpec/Finished, the server's ChangeCipherSpec/Finished; then the HTTP
    request as one application-data record (type 23), ACKed at once; 4 s of silence; the answer (type 23
    records, six 1460-byte segments and a 530-byte tail) arrives, all ACKed; the client closes."""
    c = real(sport=443)
    ta = c.open(t0)
    c.c(ta + 0.0001, 1, 1, payload=CLIENT_HELLO)
    tch = ta + 0.0001 + c.ow
    flight = tls_bytes(22, 2000, b"s") + tls_bytes(22, 2380, b"c") + tls_bytes(22, 700, b"d")
    rcv = Receiver(c, 1)
    cut = [flight[:1460], flight[1460:2920], flight[2920:4380], flight[4380:]]
    s_end, last = transfer(c, rcv, tch + 0.0008, 1, cut, 1 + CH, own_seq=1 + CH)
    keys = tls_bytes(22, 75, b"k") + tls_bytes(20, 6, b"\x01") + tls_bytes(22, 45, b"f")
    c.c(last + 0.002, 1 + CH, s_end, payload=keys)
    c_end = 1 + CH + len(keys)
    fin = tls_bytes(20, 6, b"\x01") + tls_bytes(22, 45, b"F")
    t_fin = last + 0.002 + c.ow + 0.001
    c.s(t_fin, s_end, c_end, payload=fin)
    s_end += len(fin)
    rcv.nxt = s_end  # the client's next ACK covers it (its request carries that ACK)
    t_req = t_fin + c.ow + 0.0003
    request = tls_bytes(23, 120, b"a")
    c.c(t_req, c_end, s_end, payload=request)
    c_end += len(request)
    t_arr = t_req + c.ow
    c.s(t_arr + 0.00003, s_end, c_end)  # quick-ack: the request is in
    answer = [tls_bytes(23, 1460, b"x")] * 6 + [tls_bytes(23, 530, b"y")]
    s_end, last = transfer(c, rcv, t_arr + 4.0, s_end, answer, c_end, own_seq=c_end)
    c.closed(last + 0.01, c_end, s_end)
    return c


# ------------------------------------------------------------------------------------------- busy capture
def dns_pair(t: float, name: str, ip: str, txid: int) -> list:
    """The container's DNS query for `name` and the resolver's answer 2 ms later (TTLs as on the path)."""
    q = dpkt.dns.DNS(id=txid)
    q.qd = [dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)]
    return [
        (t, B.udp(C, DNS, 53000 + txid, 53, bytes(q), ttl=64)),
        (t + 0.002, B.udp(DNS, C, 53, 53000 + txid, B.dns_answer(name, ip, txid), ttl=64 - HOPS - 1)),
    ]


def keepalive(
    rng: random.Random, c: Conn, t: float, cseq: int, sseq: int, exchanges: int
) -> tuple[int, int, float]:
    """Request/answer exchanges separated by 2-5 s of idle with nothing outstanding. Returns the next
    client and server seqs and the time of the client's last ACK."""
    rcv = Receiver(c, 1, sseq)
    last = t
    for _ in range(exchanges):
        n = 90 + rng.randrange(300)
        c.c(t, cseq, sseq, n=n)
        cseq += n
        ts = t + c.ow + rng.uniform(0.002, 0.03)
        sseq, last = transfer(c, rcv, ts, sseq, pieces(rng.randrange(600, 40000)), cseq, own_seq=cseq)
        t = last + rng.uniform(2.0, 5.0)
    return cseq, sseq, last


def busy_scene() -> list:
    """Ten keep-alive HTTP connections to five servers (each resolved by DNS first), 2-3 exchanges each,
    answers of 0.6-40 KB in full-size segments, all acknowledged; connections 0 and 1 stay idle and open at
    the end of the capture, the others close; an eleventh was opened before the capture started (no
    handshake: a complete exchange, idle, another, close). Container capture."""
    rng = random.Random(20261201)
    servers = [(S, "api.example"), (S2, "cdn.example"), ("198.18.0.12", "img.example"),
               ("198.18.0.13", "auth.example"), ("198.18.0.14", "logs.example")]  # fmt: skip
    part: list = []
    for k in range(10):
        ip, name = servers[k % 5]
        c = real(
            server=ip,
            sport=80,
            cport=40100 + k,
            isn_c=10_000_000 * (k + 1),
            isn_s=500_000_000 + 7_777_777 * k,
        )
        t0 = T0 + 0.7 * k + rng.uniform(0.0, 0.3)
        part += dns_pair(t0 - 0.004, name, ip, 100 + k)
        ta = c.open(t0)
        cseq, sseq, last = keepalive(rng, c, ta + 0.0001, 1, 1, 2 if k < 2 else 3)
        if k >= 2:
            c.closed(max(last + rng.uniform(2.0, 5.0), T0 + 30.0 + k), cseq, sseq)
        part += view(c, "container")
    cut = real(server=S2, sport=80, cport=40200, isn_c=900_000_000, isn_s=1_900_000_000)
    cut.open(T0 - 40.0)
    cseq, sseq, last = keepalive(rng, cut, T0 + 0.2, 1 + 3 * 200, 1 + 60_000, 2)
    cut.closed(last + 3.0, cseq, sseq)
    del cut.ev[:3]  # the handshake happened before the capture started
    return part + view(cut, "container")


def stall_among_healthy(role: str) -> list:
    """Four healthy downloads (full-size segments, all ACKed, closed; starting at 0, 4, 9 and 15 s) and, at
    1 s, a request the server ACKs at once and then never answers; the capture ends 14 s later with that
    connection still open.
    All to 198.18.0.10:80, as the `role` capture saw them."""
    part = []
    for k, start in enumerate((0.0, 4.0, 9.0, 15.0)):
        c = real(sport=80, cport=40300 + k, isn_c=20_000_000 * (k + 1), isn_s=600_000_000 + 9_999_999 * k)
        ta = c.open(T0 + start)
        c.c(ta + 0.0001, 1, 1, payload=REQ)
        ts = ta + 0.0001 + c.ow + 0.0004
        end, last = transfer(c, Receiver(c, 1), ts, 1, pieces(12_000 + 5_000 * k), 1 + R, own_seq=1 + R)
        c.closed(last + 0.2, 1 + R, end)
        part += view(c, role)
    stalled = real(sport=80, cport=40310, isn_c=70_000_000, isn_s=770_000_000)
    ta = stalled.open(T0 + 1.0)
    stalled.c(ta + 0.0001, 1, 1, payload=REQ)
    stalled.s(ta + 0.0001 + stalled.ow + 0.00003, 1, 1 + R)
    return part + view(stalled, role)


# --------------------------------------------------------------------------------------------- analysis
def run(**kw):
    result = pcapmtu.analyze(**kw)
    crashed = [f.message for f in result.findings_list if f.code == "E900"]
    assert not crashed, crashed
    return result


@pytest.fixture(scope="module")
def server_bh(tmp_path_factory):
    """(a) the download black hole, the server's capture alone."""
    c, _ = server_download()
    path = write(tmp_path_factory.mktemp("server_bh"), "server", view(c, "server"))
    return path, run(server=path)


@pytest.fixture(scope="module")
def server_recovered(tmp_path_factory):
    """(a) the same with the tcp_mtu_probing fallback to 1024-byte segments, the server's capture."""
    c, _ = server_download(fallback=True)
    return run(server=write(tmp_path_factory.mktemp("server_rec"), "server", view(c, "server")))


@pytest.fixture(scope="module")
def server_pmtud_ok(tmp_path_factory):
    """(b) PMTUD working at the server."""
    c, icmp = server_pmtud()
    return run(server=write(tmp_path_factory.mktemp("pmtud"), "server", view(c, "server"), icmp))


@pytest.fixture(scope="module")
def server_icmp_ignored(tmp_path_factory):
    """(c) frag-needed 1350 reaches the server, which keeps re-sending 1500-byte packets."""
    c, icmp = server_download(icmp=True)
    assert len(icmp) == 7 + 1 + 5
    return run(server=write(tmp_path_factory.mktemp("icmp_ignored"), "server", view(c, "server"), icmp))


@pytest.fixture(scope="module")
def classic(tmp_path_factory):
    """(d, h) the classic black hole as three captures (container, host uplink, server) with true clocks:
    returns the directory; files container.pcap, host.pcap, server.pcap."""
    tmp = tmp_path_factory.mktemp("classic")
    bh, own = classic_blackhole(), host_own()
    write(tmp, "container", view(bh, "container"))
    write(tmp, "host", view(bh, "host"), view(own, "host"))
    write(tmp, "server", view(bh, "server"))
    return tmp


@pytest.fixture(scope="module")
def classic_pair(classic):
    return run(host=classic / "host.pcap", container=classic / "container.pcap")


@pytest.fixture(scope="module", params=[312.5, -47.125], ids=["host_ahead_312.5s", "host_behind_47.125s"])
def shifted_pair(request, tmp_path_factory):
    """(d) the classic pair with the host capture's clock off by `param` seconds."""
    off = request.param
    tmp = tmp_path_factory.mktemp("shifted")
    bh, own = classic_blackhole(), host_own()
    write(tmp, "container", view(bh, "container"))
    write(tmp, "host", view(bh, "host"), view(own, "host"), shift=off)
    return off, run(host=tmp / "host.pcap", container=tmp / "container.pcap")


@pytest.fixture(scope="module")
def client_server_shifted(tmp_path_factory):
    """The classic black hole captured in the container and at the server, whose clock is 47.125 s behind."""
    tmp = tmp_path_factory.mktemp("client_server")
    bh = classic_blackhole()
    write(tmp, "container", view(bh, "container"))
    write(tmp, "server", view(bh, "server"), shift=-47.125)
    return run(container=tmp / "container.pcap", server=tmp / "server.pcap")


@pytest.fixture(scope="module")
def midstream_files(tmp_path_factory):
    """(e) container and host captures both started after the handshake and the request."""
    tmp = tmp_path_factory.mktemp("midstream")
    c, start = midstream()
    write(tmp, "container", after(view(c, "container"), start))
    write(tmp, "host", after(view(c, "host"), start), after(view(host_own(), "host"), start))
    return tmp


@pytest.fixture(scope="module")
def midstream_pair(midstream_files):
    return run(host=midstream_files / "host.pcap", container=midstream_files / "container.pcap")


@pytest.fixture(scope="module")
def midstream_single(midstream_files):
    return run(container=midstream_files / "container.pcap")


@pytest.fixture(scope="module", params=["container", "server"])
def tls_slow(request, tmp_path_factory):
    """(f) the TLS server that thinks 4 s, captured in the container or at the server."""
    role = request.param
    path = write(tmp_path_factory.mktemp(f"tls_slow_{role}"), role, view(tls_slow_server(), role))
    return run(**{role: path})


@pytest.fixture(scope="module")
def busy_path(tmp_path_factory):
    """(g) the busy keep-alive capture (container)."""
    return write(tmp_path_factory.mktemp("busy"), "busy", busy_scene())


@pytest.fixture(scope="module")
def busy(busy_path):
    return run(container=busy_path)


@pytest.fixture(scope="module")
def swapped(classic):
    """(h) the classic pair with the roles swapped."""
    return run(host=classic / "container.pcap", container=classic / "host.pcap")


@pytest.fixture(scope="module")
def unplaced(classic):
    """The classic pair given with no roles at all."""
    return run(captures=[classic / "host.pcap", classic / "container.pcap"])


@pytest.fixture(scope="module")
def three_sides(classic):
    """The classic incident captured in the container, on the host's uplink and at the server."""
    return run(
        host=classic / "host.pcap", container=classic / "container.pcap", server=classic / "server.pcap"
    )


@pytest.fixture(scope="module")
def upload_client(tmp_path_factory):
    """(i) the upload black hole, the container's capture alone."""
    return run(
        container=write(tmp_path_factory.mktemp("upload"), "container", view(upload_blackhole(), "container"))
    )


@pytest.fixture(scope="module")
def server_lossy_run(tmp_path_factory):
    """(j) random loss, the server's capture."""
    return run(server=write(tmp_path_factory.mktemp("lossy"), "server", view(server_lossy(), "server")))


@pytest.fixture(scope="module")
def server_healthy_run(tmp_path_factory):
    """(j) a healthy transfer, the server's capture."""
    return run(server=write(tmp_path_factory.mktemp("healthy"), "server", view(server_healthy(), "server")))


@pytest.fixture(scope="module", params=["container", "server"])
def stall_healthy(request, tmp_path_factory):
    """(k) healthy downloads beside one request that was never answered."""
    role = request.param
    path = write(tmp_path_factory.mktemp(f"stall_{role}"), role, stall_among_healthy(role))
    return run(**{role: path})


# ----------------------------------------------------------------------------------- the scenes themselves
def test_scene_ttls_count_the_hops(classic):
    """The scenes carry the vantage signals they claim: TTL 64 where a packet was sent, one less per router."""
    ttl = {}
    for name in ("container", "host", "server"):
        pk = pcapmtu.read(classic / f"{name}.pcap").packets
        ttl[name] = dict(pk.groupby("src")["ttl"].max())
    assert ttl["container"] == {C: 64, S: 64 - HOPS - 1}
    assert ttl["host"]["10.66.0.2"] == 64 and ttl["host"][S] == 64 - HOPS and ttl["host"][S2] == 64 - HOPS
    assert ttl["server"] == {"10.66.0.2": 64 - HOPS - 1, S: 64}


def test_scene_dropped_packets_are_only_in_the_senders_capture(classic):
    """The server's 1500-byte flight, probe and re-sends died beyond the docker host: only the server has them."""
    big = {name: int((pcapmtu.read(classic / f"{name}.pcap").packets["ip_len"] == 1500).sum()) for name in
           ("container", "host", "server")}  # fmt: skip
    assert big == {"container": 0, "host": 0, "server": len(FLIGHT) + 1 + 5}


def test_scene_handshake_rtt_splits_by_vantage(classic):
    """SYN -> SYN-ACK takes the whole RTT in the container, 40 ms on the host's uplink; at the server the
    whole RTT lies between its SYN-ACK and the client's ACK."""

    def gap(name: str) -> float:
        pk = pcapmtu.read(classic / f"{name}.pcap").packets
        pk = pk[(pk["dport"] == 443) | (pk["sport"] == 443)]
        return float(pk["ts"].iloc[1] - pk["ts"].iloc[0]), float(pk["ts"].iloc[2] - pk["ts"].iloc[1])

    assert gap("container")[0] == pytest.approx(2 * (OW_IN + OW_OUT), abs=1e-4)
    assert gap("host")[0] == pytest.approx(2 * OW_OUT, abs=1e-4)
    assert gap("server")[1] == pytest.approx(2 * (OW_IN + OW_OUT), abs=1e-4)


# -------------------------------------------------------------------------- a. black hole at the server
def test_a_server_blackhole_verdict(server_bh):
    _, r = server_bh
    assert r.verdict == "mtu_blackhole", (r.verdict, r.diagnosis.reason, r.explanation)


def test_a_server_blackhole_path_below_1500(server_bh):
    _, r = server_bh
    assert r.path_mtu is None or r.path_mtu < 1500, r.path_mtu
    p = r.context.path[4]
    assert p.high is not None and p.high <= 1500, p


def test_a_server_blackhole_fix_never_mss_1460(server_bh):
    """MSS 1460 is what failed: a fix may be absent (the server side cannot see the client's MTU), never that."""
    _, r = server_bh
    if r.fix is not None:
        assert r.fix.mss != 1460, r.fix
        said = [r.fix.summary] + [c.get("command", "") for c in r.fix.commands]
        assert not any("1460" in text for text in said), said


def test_a_server_capture_is_at_the_server(server_bh):
    _, r = server_bh
    v = r.vantage["server"]
    assert v.position == "server", (v.position, v.reasons)
    assert v.reasons and all(isinstance(x, str) and x for x in v.reasons)


def test_a_server_recovered_after_mss_fallback(server_recovered):
    r = server_recovered
    assert r.verdict == "mtu_blackhole_recovered", (r.verdict, r.diagnosis.reason, r.explanation)


def test_a_unplaced_server_capture_is_found_at_the_server(server_bh):
    path, _ = server_bh
    r = run(captures=[path])
    assert [v.position for v in r.vantage.values()] == ["server"], {
        k: v.reasons for k, v in r.vantage.items()
    }
    assert r.verdict == "mtu_blackhole"


# ------------------------------------------------------------------------------- b, c. ICMP at the server
def test_b_pmtud_working_at_the_server_is_healthy(server_pmtud_ok):
    r = server_pmtud_ok
    assert r.verdict == "healthy", (r.verdict, r.diagnosis.reason, r.explanation)


def test_b_pmtud_working_at_the_server_pins_1350(server_pmtud_ok):
    assert server_pmtud_ok.path_mtu == 1350


def test_c_icmp_ignored_by_the_server_is_a_blackhole(server_icmp_ignored):
    r = server_icmp_ignored
    assert r.verdict == "mtu_blackhole", (r.verdict, r.diagnosis.reason, r.explanation)


def test_c_icmp_ignored_by_the_server_pins_1350(server_icmp_ignored):
    assert server_icmp_ignored.path_mtu == 1350


# ------------------------------------------------------------------ d. the pair with the host's clock off
def test_d_true_clock_pair_is_the_classic_blackhole(classic_pair):
    r = classic_pair
    assert (r.verdict, r.path_mtu) == ("mtu_blackhole", 1450), (r.verdict, r.path_mtu, r.explanation)


def test_d_true_clock_pair_vantages(classic_pair):
    v = classic_pair.vantage
    assert v["container"].position == "client", v["container"].reasons
    assert v["host"].position == "middle", v["host"].reasons


def test_d_pairs_table_columns(classic_pair):
    need = {"container", "container_conn", "host_conn", "matched_by", "nat_client", "host_copies",
            "clock_offset_s", "one_way_delay_s"}  # fmt: skip
    assert need <= set(classic_pair.pairs.columns), list(classic_pair.pairs.columns)


def test_d_true_clock_offset_is_zero(classic_pair):
    offsets = classic_pair.pairs["clock_offset_s"].astype(float)
    assert len(offsets) >= 1 and (offsets.abs() <= 0.010).all(), offsets.tolist()


def test_d_shifted_pair_is_matched(shifted_pair):
    off, r = shifted_pair
    assert len(r.pairs) >= 1, (off, r.pairs)


def test_d_shifted_pair_measures_the_offset(shifted_pair):
    off, r = shifted_pair
    offsets = r.pairs["clock_offset_s"].astype(float)
    assert len(offsets) >= 1 and (offsets - off).abs().max() <= 0.010, (off, offsets.tolist())


def test_d_shifted_pair_same_diagnosis_as_true_clocks(shifted_pair, classic_pair):
    off, r = shifted_pair
    assert (
        (r.verdict, r.path_mtu) == (classic_pair.verdict, classic_pair.path_mtu) == ("mtu_blackhole", 1450)
    ), (
        off,
        r.verdict,
        r.path_mtu,
    )


def test_d_shifted_pair_json_pairing_offset(shifted_pair):
    off, r = shifted_pair
    pairing = r.to_json()["pairing"]
    assert pairing and all(abs(p["clock_offset_s"] - off) <= 0.010 for p in pairing), pairing


def test_d_json_captures_carry_their_vantage(classic_pair):
    doc = classic_pair.to_json()
    assert sorted(c["vantage"]["position"] for c in doc["captures"]) == ["client", "middle"], doc["captures"]


def test_d_json_confidence_factors(classic_pair):
    factors = classic_pair.to_json()["confidence_factors"]
    assert isinstance(factors, list) and factors, factors
    for f in factors:
        assert isinstance(f["why"], str) and f["why"], f
        assert isinstance(f["delta"], int | float) and not isinstance(f["delta"], bool), f


def test_d_container_and_server_pair_measures_the_offset(client_server_shifted):
    """Paired across the whole path (container and server): the server's clock minus the container's."""
    offsets = client_server_shifted.pairs["clock_offset_s"].astype(float)
    assert len(offsets) >= 1 and (offsets + 47.125).abs().max() <= 0.010, offsets.tolist()


def test_d_container_and_server_pair_one_way_delay(client_server_shifted):
    """The symmetric path's one-way delay container -> server is 20.05 ms."""
    delays = client_server_shifted.pairs["one_way_delay_s"].astype(float)
    assert len(delays) >= 1 and (delays - (OW_IN + OW_OUT)).abs().max() <= 0.005, delays.tolist()


def test_d_container_and_server_pair_is_the_blackhole(client_server_shifted):
    r = client_server_shifted
    assert r.verdict == "mtu_blackhole", (r.verdict, r.diagnosis.reason, r.explanation)


def test_d_three_vantages_agree(three_sides):
    r = three_sides
    assert (r.verdict, r.path_mtu) == ("mtu_blackhole", 1450), (r.verdict, r.path_mtu, r.explanation)
    assert {k: v.position for k, v in r.vantage.items()} == {
        "container": "client",
        "host": "middle",
        "server": "server",
    }


# --------------------------------------------------------------------- e. capture started mid-connection
def test_e_midstream_pair_is_not_confidently_healthy(midstream_pair):
    r = midstream_pair
    assert not (r.verdict == "healthy" and r.confidence > 0.5), (r.verdict, r.confidence, r.explanation)


def test_e_midstream_single_is_not_confidently_healthy(midstream_single):
    r = midstream_single
    assert not (r.verdict == "healthy" and r.confidence > 0.5), (r.verdict, r.confidence, r.explanation)


# ----------------------------------------------------------------------------- f. a TLS server thinks 4 s
def test_f_tls_server_thinking_is_server_slow(tls_slow):
    r = tls_slow
    assert (r.verdict, r.diagnosis.reason) == ("not_mtu", "server_slow"), (
        r.verdict,
        r.diagnosis.reason,
        r.explanation,
    )


# -------------------------------------------------------------------------------------- g. busy capture
def test_g_busy_keepalive_capture_is_healthy(busy):
    assert busy.verdict == "healthy", (busy.verdict, busy.diagnosis.reason, busy.explanation)


def test_g_busy_capture_cli_exits_0(busy_path):
    done = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "analyze", "--container", str(busy_path), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])


# ------------------------------------------------------------------------------------ h. swapped roles
def test_h_swapped_roles_are_noticed(swapped):
    assert swapped.role_changes and all(isinstance(x, str) and x for x in swapped.role_changes)


def test_h_swapped_roles_corrected(swapped):
    assert swapped.captures["container"].name == "container.pcap"
    assert swapped.captures["host"].name == "host.pcap"


def test_h_swapped_roles_same_diagnosis(swapped):
    r = swapped
    assert (r.verdict, r.path_mtu) == ("mtu_blackhole", 1450), (r.verdict, r.path_mtu, r.explanation)


def test_h_swapped_roles_findings_name_the_container(swapped):
    """Every finding about the container's own connection (client 172.17.0.2) is filed under "container",
    and "container" is the file that really was captured in the container."""
    r = swapped
    about = []
    for row in r.findings.itertuples():
        if row.conn < 0 or row.capture not in r.captures:
            continue
        flows = r.captures[row.capture].flows
        client = flows.loc[flows["conn"] == row.conn, "client_ip"]
        if len(client) and client.iloc[0] == C:
            about.append((row.code, row.capture, r.captures[row.capture].name))
    assert about, r.findings[["code", "capture", "conn"]]
    assert all(cap == "container" and name == "container.pcap" for _, cap, name in about), about


def test_h_unplaced_captures_are_placed(unplaced):
    r = unplaced
    assert r.captures["container"].name == "container.pcap" and r.captures["host"].name == "host.pcap"
    assert (r.verdict, r.path_mtu) == ("mtu_blackhole", 1450), (r.verdict, r.path_mtu)


# ------------------------------------------------------------------------ i. upload black hole, client
def test_i_upload_blackhole_from_the_client(upload_client):
    r = upload_client
    assert r.verdict == "mtu_blackhole", (r.verdict, r.diagnosis.reason, r.explanation)


def test_i_upload_blackhole_path_below_1500(upload_client):
    p = upload_client.context.path[4]
    assert p.high is not None and p.high <= 1500, p


def test_i_container_capture_is_at_the_client(upload_client):
    v = upload_client.vantage["container"]
    assert v.position == "client", v.reasons


# ------------------------------------------------------------------------ j. negative controls at the server
def test_j_random_loss_at_the_server_is_a_lossy_link(server_lossy_run):
    r = server_lossy_run
    assert (r.verdict, r.diagnosis.reason) == ("not_mtu", "lossy_link"), (
        r.verdict,
        r.diagnosis.reason,
        r.explanation,
    )


def test_j_healthy_transfer_at_the_server(server_healthy_run):
    r = server_healthy_run
    assert r.verdict == "healthy", (r.verdict, r.diagnosis.reason, r.explanation)


# ------------------------------------------------------------------------------------- k. calibration
def test_k_healthy_beside_a_stalled_request_is_not_confident(stall_healthy):
    r = stall_healthy
    assert r.verdict != "healthy" or r.confidence <= 0.5, (r.verdict, r.confidence, r.explanation)


@pytest.mark.parametrize(
    "scene",
    [
        "server_bh",
        "server_icmp_ignored",
        "classic_pair",
        "midstream_pair",
        "midstream_single",
        "upload_client",
    ],
)
def test_k_no_confident_healthy_while_a_connection_hangs(scene, request):
    """Every shape here with a connection that stalled after its request and never finished."""
    r = request.getfixturevalue(scene)
    r = r[1] if isinstance(r, tuple) else r
    assert r.verdict != "healthy" or r.confidence <= 0.5, (scene, r.verdict, r.confidence)
