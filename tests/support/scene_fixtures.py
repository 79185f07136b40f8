"""The analysed scenes several rule modules read (tests/test_rules_*.py), as session fixtures: an analysis
takes ~0.5 s, so each is made once per test process and shared by every test that reads it. conftest.py loads
this module as a pytest plugin. A scene only one module reads stays a module fixture there.

Tests only read these results; none may change them.
"""

from __future__ import annotations

import pytest

import pcapmtu
from support import packets as B
from support.findings import run
from support.pcapwriter import Record, write_pcap
from support.scenes import (
    ACK,
    DNS,
    REQ,
    RST,
    S2,
    S6,
    S6B,
    SYN,
    T0,
    C,
    Conn,
    Ev,
    R,
    capture,
    download,
    host_own,
    inner_hop_blackhole,
    lossy_download,
    pair,
    port_unreachable,
    reset_after_answer,
    reset_after_stall,
    syn_retried_then_answered,
    tail_only,
    tls_blackhole,
    tls_completes,
    upload,
    upload_pmtud_works,
)


@pytest.fixture(scope="session")
def blackhole(tmp_path_factory):
    """The canonical download black hole: container (MSS 1460 both ways, ClientHello, bare ACK, silence) and
    host (the same connection after NAT to 10.66.0.2:61000, plus its own connection with SYN MSS 1410 that
    receives 1450-byte packets). Returns the analysis of the pair and of the container capture alone."""
    tmp = tmp_path_factory.mktemp("blackhole")
    bh = tls_blackhole()
    host, cont = pair(tmp, [bh], [bh.render("host", cport=61000), host_own().render("host")])
    return run(host=host, container=cont), run(container=cont)


@pytest.fixture(scope="session")
def clamped(tmp_path_factory):
    """The fix in place: the host rewrites the container's SYN MSS 1460 to 1410; 1450-byte packets arrive."""
    tmp = tmp_path_factory.mktemp("clamped")
    dl = download(sport=443, sizes=(1410, 1410, 1410, 300))
    host, cont = pair(tmp, [dl], [dl.render("host", cport=61000, syn_mss=1410), host_own().render("host")])
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def inner_hop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inner")
    c = inner_hop_blackhole()
    host, cont = pair(tmp, [c], [c.render("host", cport=61000)])
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def slow_full(tmp_path_factory):
    """A slow server, no loss: the request is ACKed at once, the answer (4 full-size segments) comes 4 s
    later; container and host (NAT to 10.66.0.2:61000), no connection of the host's own. The container also
    made a second connection (198.18.0.11:443, 10 s later) that left by another way: not on the host."""
    tmp = tmp_path_factory.mktemp("slow")
    dl = download(sizes=(1460,) * 4, pause=4.0)
    other = download(T0 + 10, sizes=(500,), server=S2, sport=443, cport=40002, isn_c=5_000_000)
    host, cont = pair(tmp, [dl, other], [dl.render("host", cport=61000)])
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def uploads(tmp_path_factory):
    """Two upload black holes: conn 0 dies inside the docker host (the host's uplink never carries the
    1500-byte segments), conn 1 (20 s later) beyond it (the host capture has them)."""
    tmp = tmp_path_factory.mktemp("uploads")
    inside = upload(host_sees=False, acked=False)
    beyond = upload(T0 + 20, host_sees=True, acked=False, cport=40001, isn_c=2_000_000)
    host, cont = pair(
        tmp, [inside, beyond], [inside.render("host", cport=61000), beyond.render("host", cport=61001)]
    )
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def lossy_upload(tmp_path_factory):
    """One full-size upload segment is lost four times (RTOs 0.2-1.6 s), then acknowledged; the exchange
    completes: full-size packets get through, random loss, not a size limit. Container capture."""
    return run(
        container=capture(
            tmp_path_factory.mktemp("lossy_up"), "c", upload(host_sees=True, acked=True).render()
        )
    )


@pytest.fixture(scope="session")
def pmtud_upload(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pmtud")
    c, icmp_host, icmp_container = upload_pmtud_works()
    host = capture(tmp, "host", c.render("host", cport=61000), icmp_host)
    cont = capture(tmp, "container", c.render("container"), icmp_container)
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def filtered(tmp_path_factory):
    """SYNs to 198.18.0.10:443 at 0, 1, 3 and 7 s, never answered; seen in the container and on the host."""
    tmp = tmp_path_factory.mktemp("filtered")
    c = Conn()
    c.ev += [Ev(T0 + dt, 0, 0, 0, SYN, mss=1460) for dt in (0, 1, 3, 7)]
    host, cont = pair(tmp, [c], [c.render("host", cport=61000)])
    return run(host=host, container=cont)


@pytest.fixture(scope="session")
def refused(tmp_path_factory):
    """The SYN is answered by RST-ACK: nothing listens on 198.18.0.10:443. Container capture."""
    c = Conn()
    c.ev += [Ev(T0, 0, 0, 0, SYN, mss=1460), Ev(T0 + 0.01, 1, 0, 1, RST | ACK)]
    return run(container=capture(tmp_path_factory.mktemp("refused"), "c", c.render()))


@pytest.fixture(scope="session")
def stalled_tls(tmp_path_factory):
    """Container capture: conn 0 receives only the tail of the server's flight, conn 1 is reset by the
    server after a 3 s stall."""
    conns = [tail_only(), reset_after_stall(T0 + 20, cport=40001)]
    return run(container=capture(tmp_path_factory.mktemp("stalled"), "c", *(c.render() for c in conns)))


@pytest.fixture(scope="session")
def quiet(tmp_path_factory):
    """A container capture of unrelated look-alikes that are all fine: ARP and LLDP frames, a DNS query
    answered by ICMP port unreachable, then conn 0 SYN retried then answered, conn 1 reset by the client
    after a complete answer, conn 2 a slow server whose own MSS is 1400, conn 3 a TLS handshake that
    completes, conn 4 a download with random loss, then keep-alive idling."""
    tmp = tmp_path_factory.mktemp("quiet")
    arp = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01\x08\x06" + bytes.fromhex("0001080006040001") + bytes(20)
    lldp = b"\x01\x80\xc2\x00\x00\x0e" + b"\x02\x00\x00\x00\x00\x01\x88\xcc" + bytes(30)
    query = B.udp(
        C,
        DNS,
        53000,
        53,
        bytes.fromhex("123401000001000000000000") + b"\x03api\x07example\x00\x00\x01\x00\x01",
    )
    conns = [
        syn_retried_then_answered(T0, cport=40000),
        reset_after_answer(T0 + 10, cport=40001),
        download(T0 + 20, sizes=(1400,) * 5, pause=3.0, mss_s=1400, cport=40002, isn_c=7_000_000),
        tls_completes(T0 + 30, cport=40003),
        lossy_download(T0 + 40, cport=40004),
    ]
    pkts = sorted(
        [p for c in conns for p in c.render()]
        + [(T0 - 0.5, query), (T0 - 0.49, port_unreachable(DNS, C, query))]
    )
    path = tmp / "quiet.pcap"
    recs = [Record(T0 - 2, arp), Record(T0 - 1.5, lldp)] + [Record(t, B.ether(p)) for t, p in pkts]
    write_pcap(path, recs)
    return run(container=pcapmtu.read(path))


@pytest.fixture(scope="session")
def host_mtu_1450(tmp_path_factory):
    """Container capture analysed with `--host-mtu 1450`: conn 0 stalls 3 s, then the server goes on with
    1395-byte segments instead of 1460-byte ones (RFC 4821 probing); conn 1 is a prompt 400-byte download."""
    conns = [
        download(sizes=(1395,) * 6, pause=3.0),
        download(T0 + 20, sizes=(400,), cport=40001, isn_c=8_000_000),
    ]
    cap = capture(tmp_path_factory.mktemp("hostmtu"), "c", *(c.render() for c in conns))
    return run(container=cap, host_mtu=1450)


@pytest.fixture(scope="session")
def steady_retrans(tmp_path_factory):
    """The server re-sends the same 1000-byte segment every 0.25 s, twelve times, all on one interface."""
    c = Conn(sport=80).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=REQ)
    for i in range(12):
        c.s(T0 + 0.03 + 0.25 * i, 1, 1 + R, n=1000)
    path = tmp_path_factory.mktemp("steady") / "one.pcap"
    write_pcap(path, [Record(t, B.sll2(p, ifindex=5)) for t, p in c.render()], linktype=276)
    return run(container=pcapmtu.read(path))


@pytest.fixture(scope="session")
def blackhole_v6(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v6")
    bh = tls_blackhole(server=S6, mss=1440)
    own = host_own(mss=1390, server=S6B)
    host, cont = pair(tmp, [bh], [bh.render("host", cport=61000), own.render("host")])
    return run(host=host, container=cont)
