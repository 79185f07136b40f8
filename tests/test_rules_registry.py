"""Every detector, one behaviour per test: a small capture built from literal packets, `analyze()` on it.

For each registered code there is a positive test (the pattern it exists to find, with its numbers) and a
negative one (the closest look-alike, on which it must stay silent), named `test_<code>_positive_*` and
`test_<code>_negative_*`; a meta-test holds every code in the registry to that. Then verdict tests on built
host+container pairs, and tests of the registry itself.

An analysis takes ~0.5 s, so scenes are fixtures shared by the tests that read them (those several modules
read are session fixtures in tests/support/scene_fixtures.py), and some captures hold several unrelated
connections; those tests assert per connection.

Connections are written with the scene builders of tests/support/scenes.py (`Conn`, rendered for the container
capture and, after MASQUERADE, for the host).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pcapmtu
from pcapmtu.diagnose import detectors
from pcapmtu.diagnose.detectors import RULES
from support import packets as B
from support.findings import codes, found, one, run, verdict_of
from support.pcapwriter import Record, write_pcap
from support.scenes import (
    ACK,
    C6,
    CH,
    CLIENT_HELLO,
    FIN,
    NAT,
    REQ,
    ROUTER6,
    RST,
    S2,
    S6,
    T0,
    C,
    Conn,
    R,
    S,
    capture,
    download,
    download_icmp_ignored,
    frag_needed,
    host_own,
    midstream,
    packet_too_big,
    pair,
    ping,
    syn_retried_then_answered,
    tls_blackhole,
)

# ------------------------------------------------------------------------ scenes only this module reads


@pytest.fixture(scope="module")
def pauses_small_answers(tmp_path_factory):
    """Container capture, conn 0: a slow server answers 200 bytes after 4 s; conn 1: two SYNs lost, then a
    prompt 800-byte answer. Both complete with an orderly close and never needed a full-size packet.
    Analysed alone, and with `--host-mtu 1450` (an MTU mismatch that is real, but not their problem)."""
    conns = [download(sizes=(200,), pause=4.0), syn_retried_then_answered(T0 + 20, cport=40001)]
    cap = capture(tmp_path_factory.mktemp("pauses"), "c", *(c.render() for c in conns))
    return run(container=cap), run(container=cap, host_mtu=1450)


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
    recs = [
        Record(t, B.ether(p)[:96], wirelen=len(B.ether(p))) for t, p in download(sizes=(1460,) * 3).render()
    ]
    write_pcap(path, recs, snaplen=96)
    return run(container=pcapmtu.read(path))


@pytest.fixture(scope="module")
def file_cut(tmp_path_factory):
    """A whole-packet capture whose last 30 bytes were lost in transfer (the final ACK's record is cut)."""
    path = tmp_path_factory.mktemp("filecut") / "cut.pcap"
    write_pcap(path, [Record(t, B.ether(p)) for t, p in download(sizes=(1460,)).render()])
    whole = path.read_bytes()
    path.write_bytes(whole[:-30])
    return run(container=pcapmtu.read(path)), len(whole)


@pytest.fixture(scope="module")
def gro_and_garbage(tmp_path_factory):
    """GRO merged pairs of 1460-byte segments into 2960-byte packets before the capture saw them; and at the
    end one frame whose IPv4 header claims 16 bytes (impossible)."""
    pkts = download(sizes=(2920, 2920, 1460)).render()
    bad = bytearray(pkts[-1][1])
    bad[0] = 0x44
    pkts.append((T0 + 5, bytes(bad)))
    return run(container=capture(tmp_path_factory.mktemp("gro"), "c", pkts)), len(pkts)


def test_Q001_positive_snaplen_cut_packets_are_counted_and_sizes_still_read(snaplen_cut):
    r = snaplen_cut
    q = one(r, "Q001", "container")
    assert q.message == (
        "4 of 14 packets in the container capture were cut by the snapshot length (smallest kept: 96 bytes)"
    )
    assert q.frames == (4, 6, 8, 10)
    # cut bytes are not lost bytes: the segments count as delivered at their IP length, nothing looks lost
    flow = r.context.flows("container").iloc[0]
    assert flow["max_ip_len_s2c"] == 1500 and flow["full_delivered_s2c"]
    assert not codes(r) & {"B001", "B003", "L001", "S001", "Q005"}


def test_Q001_negative_file_cut_mid_record_is_not_a_snaplen_cut(file_cut):
    """A file cut in transfer loses its tail record: that is damage (Q005), not truncated packets."""
    r, _ = file_cut
    assert "Q005" in codes(r)
    assert not found(r, "Q001")
    assert not r.captures["container"].packets["truncated"].any()


def test_Q002_positive_malformed_ip_header(gro_and_garbage):
    r, n = gro_and_garbage
    q = one(r, "Q002", "container")
    assert (
        q.message
        == "1 packets in the container capture could not be fully decoded (ipv4-bad-header-length: 1)"
    )
    assert q.frames == (n,) and q.wireshark_filter == f"frame.number in {{{n}}}"


def test_Q002_negative_arp_and_other_non_ip_frames_are_not_damage(quiet):
    packets = quiet.captures["container"].packets
    assert (packets["ipv"] == 0).sum() == 2  # ARP and LLDP
    assert not found(quiet, "Q002")


def test_Q003_positive_gro_super_packets_are_flagged_and_not_taken_as_path_evidence(gro_and_garbage):
    r, _ = gro_and_garbage
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
        recs += [Record(t, B.sll2(p, ifindex=5)), Record(t + 0.000003, B.sll2(p, ifindex=3))]
    write_pcap(path, recs, linktype=276)
    r = run(host=pcapmtu.read(path))
    q = one(r, "Q004", "host")
    assert q.message.startswith(
        f"{len(pkts)} packets in the host capture are copies of a packet already seen"
    )
    assert q.frames[:3] == (2, 4, 6)
    assert r.context.flows("host").loc[0, "retransmissions"] == 0


def test_Q004_negative_identical_packets_on_one_interface_are_retransmissions(steady_retrans):
    assert not found(steady_retrans, "Q004")
    assert steady_retrans.context.flows("container").loc[0, "retrans_s2c"] == 11


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
    assert snaplen_cut.captures["container"].skipped_bytes == 0


# ------------------------------------------------------------------------------------------ M: MSS/MTU
def test_M001_positive_interface_mtu_of_host_and_container(blackhole):
    r, _ = blackhole
    host = one(r, "M001", "host")
    assert (
        host.message
        == "the docker host (10.66.0.2) advertises MSS 1410 in its SYNs, so its interface MTU is 1450"
    )
    assert host.evidence == {"client": NAT, "mss": 1410, "mtu": 1450, "ipv": 4}
    assert host.frames == (r.context.flows("host").set_index("conn").loc[1, "syn_frame"],)
    cont = one(r, "M001", "container")
    assert (
        cont.message
        == "172.17.0.2 in the container capture advertises MSS 1460 in its SYNs, so its interface MTU is 1500"
    )
    assert cont.frames == (1,)


def test_M001_negative_nat_copies_on_the_host_say_nothing_about_the_host(slow_full):
    """The host capture's only SYN is the container's, forwarded (MSS 1460): not the host's own MTU."""
    r = slow_full
    assert r.context.flows("host").loc[0, "mss_client"] == 1460
    assert not found(r, "M001", "host")
    assert len(found(r, "M001", "container")) == 1


def test_M002_positive_clamp_rewrites_the_syn(clamped):
    m = one(clamped, "M002", "container")
    assert m.message == (
        "the host rewrites the SYN's MSS from 1460 to 1410 (1 connections): an MSS clamp is in effect"
    )
    assert m.evidence == {
        "mss_before": 1460,
        "mss_after": 1410,
        "container_syn_frames": [1],
        "host_syn_frames": [1],
    }
    assert "1410 + 40 fits the path" in m.hint


def test_M002_negative_host_mss_of_another_connection_is_not_a_clamp(blackhole):
    """The host's own SYN says 1410 and the container's says 1460, but the forwarded SYN kept 1460."""
    r, _ = blackhole
    assert r.context.flows("host").loc[0, "mss_client"] == 1460
    assert not found(r, "M002")


def test_M003_positive_icmp_frag_needed_reaches_the_container(pmtud_upload):
    r = pmtud_upload
    host = one(r, "M003", "host")
    assert host.message == (
        "1 x ICMP fragmentation needed with next-hop MTU 1450 from 10.66.0.1 in the host capture, about "
        "10.66.0.2:61000 -> 198.18.0.10:80 (1500-byte packets); it reached the container"
    )
    assert host.evidence == {"mtu": 1450, "count": 1, "quoted_ip_len": 1500}
    assert "clamp the MSS to 1410" in host.hint
    cont = one(r, "M003", "container")
    assert cont.message == (
        "1 x ICMP fragmentation needed with next-hop MTU 1450 from 10.66.0.1 in the container capture, about "
        "172.17.0.2:40000 -> 198.18.0.10:80 (1500-byte packets)"
    )
    assert r.path_mtu == 1450


def test_M003_positive_icmpv6_packet_too_big(tmp_path):
    c = download(server=S6, sizes=(1000,))
    quoted = B.tcp(C6, S6, 40000, 80, seq=c.isn_c + 1, ack=c.isn_s + 1, payload=b"q" * 1440)
    ptb = [(T0 + 0.025, packet_too_big(ROUTER6, C6, quoted, 1450))]
    r = run(container=capture(tmp_path, "c", c.render(), ptb))
    m = one(r, "M003", "container")
    assert m.message == (
        "1 x ICMPv6 packet too big with next-hop MTU 1450 from fd00:66::1 in the container capture, about "
        "[fd00:17::2]:40000 -> [fd00:18::10]:80 (1500-byte packets)"
    )
    assert "clamp the MSS to 1390" in m.hint
    assert r.context.path[6].value == 1450


def test_M003_negative_port_unreachable_is_not_a_size_report(quiet):
    """ICMP type 3 too, but code 3 (port unreachable, for a DNS query): nothing about sizes."""
    assert quiet.captures["container"].icmp["kind"].tolist() == ["unreachable"]
    assert not found(quiet, "M003")
    assert not any(s["kind"] == "icmp" for s in quiet.context.path[4].signals)


def test_M004_positive_server_may_send_more_than_the_path_carries(blackhole):
    r, _ = blackhole
    m = one(r, "M004", "container", 0)
    assert m.message == (
        "198.18.0.10:443: the server may send 1500-byte packets (MSS 1460) "
        "but the path carries at most 1450 bytes"
    )
    assert m.hint == "Clamp the MSS to 1410 on the host, or give the container an MTU of 1450."
    assert m.frames == (1, 2)


def test_M004_positive_from_the_engineers_host_mtu(host_mtu_1450):
    """A healthy small download and `--host-mtu 1450`: the risk is there even though nothing broke."""
    r = host_mtu_1450
    m = one(r, "M004", "container", 1)
    assert "may send 1500-byte packets (MSS 1460) but the path carries at most 1450 bytes" in m.message
    assert verdict_of(r, "container", 1) == ("healthy", "")


def test_M004_negative_clamped_connection(clamped):
    assert clamped.path_mtu == 1450
    assert clamped.context.flows("container").loc[0, "server_full"] == 1450
    assert not found(clamped, "M004")


@pytest.fixture(scope="module")
def pings(tmp_path_factory):
    """Host capture: `ping -M do` to 198.18.0.10 of 1450 bytes (answered) and 1500 bytes (twice, never
    answered); the same sizes to 198.18.0.11 without DF (`-M dont`, a router may fragment: no proof)."""
    probes = []
    for dst, df, t in ((S, True, T0 + 1), (S2, False, T0 + 5)):
        probes += [
            (t, ping(NAT, dst, 1450, df=df, seq=1)),
            (t + 0.01, ping(dst, NAT, 1450, reply=True, df=df, seq=1)),
            (t + 1, ping(NAT, dst, 1500, df=df, seq=2)),
            (t + 2, ping(NAT, dst, 1500, df=df, seq=3)),
        ]
    return run(host=capture(tmp_path_factory.mktemp("pings"), "h", host_own(T0).render("host"), probes))


def test_M005_positive_df_pings_bracket_the_path(pings):
    got = sorted(f.message for f in found(pings, "M005", "host"))
    assert got == [
        "DF ping of 1450 bytes to 198.18.0.10 in the host capture: reply",
        "DF ping of 1500 bytes to 198.18.0.10 in the host capture: no reply",
    ]
    lost = next(f for f in found(pings, "M005") if "1500" in f.message)
    assert len(lost.frames) == 2
    path = pings.context.path[4]
    assert (path.low, path.high, path.value) == (1450, 1500, 1450)


def test_M005_negative_pings_without_df(pings):
    assert not [f for f in found(pings, "M005") if S2 in f.message]
    assert not [s for s in pings.context.path[4].signals if s.get("target") == S2]


# ------------------------------------------------------------------------------------------ T: TCP
def test_T001_positive_server_segment_backoff(inner_hop):
    t = one(inner_hop, "T001", "host", 0)
    assert t.message == (
        "198.18.0.10:443: the server sent the same segment 5 times with growing gaps "
        "(0.2s, 0.4s, 0.8s, 1.6s) - retransmission timeouts with exponential backoff"
    )
    assert t.evidence == {"segment_ip_len": 1500, "direction": "server"}
    assert len(t.frames) == 5


def test_T001_positive_client_segment_backoff(uploads):
    t = one(uploads, "T001", "container", 0)
    assert t.message.startswith("198.18.0.10:80: the client sent the same segment 5 times with growing gaps")
    assert "(0.2s, 0.4s, 0.8s, 1.6s)" in t.message
    assert t.evidence == {"segment_ip_len": 1500, "direction": "client"}


def test_T001_negative_steady_retries_are_not_backoff(steady_retrans):
    assert steady_retrans.context.flows("container").loc[0, "retrans_s2c"] == 11
    assert not found(steady_retrans, "T001")


def test_T001_negative_each_segment_retransmitted_once(quiet):
    assert quiet.context.flows("container").loc[4, "retrans_s2c"] == 2
    assert not found(quiet, "T001", "container", 4)


def test_T002_positive_unanswered_syns(filtered):
    t = one(filtered, "T002", "container", 0)
    assert (
        t.message
        == "198.18.0.10:443: 4 SYN(s) got no answer - the port is filtered or the server is unreachable"
    )
    assert t.hint.startswith("Check firewalls and routes to 198.18.0.10;")
    assert t.frames == (1,)
    assert not found(filtered, "T002", "host"), "the host's copy of the container's SYNs is the same failure"


def test_T002_negative_refused_connection(refused):
    assert not found(refused, "T002")


def test_T002_negative_syn_retransmitted_then_answered(quiet):
    flow = quiet.context.flows("container").iloc[0]
    assert (flow["retrans_c2s"], flow["state"], flow["syn_frame"]) == (2, "closed", 5)
    assert not found(quiet, "T002")


def test_T003_positive_refused(refused):
    t = one(refused, "T003", "container", 0)
    assert t.message == "198.18.0.10:443: the connection was refused (RST in answer to the SYN)"
    assert t.hint == "Nothing listens on 198.18.0.10:443, or a firewall rejects it; not an MTU problem."


def test_T003_negative_reset_after_the_handshake(stalled_tls):
    assert found(stalled_tls, "T004", "container", 1)
    assert not found(stalled_tls, "T003")


def test_T004_positive_server_resets_after_a_stall(stalled_tls):
    t = one(stalled_tls, "T004", "container", 1)
    assert t.message == "198.18.0.10:443: the server reset the connection after 3.0 s"
    assert t.frames == (stalled_tls.context.flows("container").loc[1, "last_frame"],)


def test_T004_names_who_sent_the_rst_not_who_closed_first(tmp_path):
    """The client gives up with a FIN after the stall and the server answers with RST: the server reset it
    (T004 once said "the client", from who closed first, and cited the client's FIN frame)."""
    c = Conn(cport=40009, isn_c=2_000_000).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(T0 + 0.03, 1, 1 + CH)
    c.c(T0 + 3.0, 1 + CH, 1, flags=FIN | ACK)
    c.s(T0 + 3.01, 1, 2 + CH, flags=RST | ACK)
    r = run(container=capture(tmp_path, "c", c.render()))
    t = one(r, "T004", "container", 0)
    assert t.message == "198.18.0.10:443: the server reset the connection after 3.0 s"
    p = r.captures["container"].packets
    assert t.frames == (int(p.loc[(p["tcp_flags"] & 4) != 0, "frame"].iloc[0]),)


def test_T004_negative_reset_right_after_a_complete_answer(quiet):
    assert quiet.context.flows("container").loc[1, "state"] == "reset"
    assert not found(quiet, "T004")


def test_T004_negative_refused_is_not_a_reset(refused):
    assert not found(refused, "T004")


# ------------------------------------------------------------------------------------------ S: TLS
def test_S001_positive_only_acks_after_the_client_hello(blackhole):
    r, _ = blackhole
    s = one(r, "S001", "container", 0)
    assert s.message == (
        "198.18.0.10:443: the ClientHello was sent but the server's handshake never arrived - the server "
        "sent only zero-length segments (2 segments, largest 40 bytes) in the container capture"
    )
    assert s.evidence == {"client_hello_len": 508, "largest_server_packet": 40}
    assert not found(r, "S001", "host"), "the host's copy of the same connection is not a second finding"


def test_S001_positive_only_the_tail_of_the_flight(stalled_tls):
    s = one(stalled_tls, "S001", "container", 0)
    assert "the server sent only small segments (3 segments, largest 1240 bytes)" in s.message
    assert s.evidence["largest_server_packet"] == 1240


def test_S001_negative_handshake_completes(quiet):
    flow = quiet.context.flows("container").iloc[3]
    assert flow["client_hello_len"] == 508 and flow["server_hello"]
    assert not found(quiet, "S001")
    assert verdict_of(quiet, "container", 3) == ("healthy", "")


def test_S001_negative_plain_http_stall(slow_full):
    assert not found(slow_full, "S001")


# ----------------------------------------------------------------------------------- B: black holes
def test_B001_positive_download_blackhole_pair(blackhole):
    r, _ = blackhole
    b = one(r, "B001", "container", 0)
    assert b.message == (
        "198.18.0.10:443: PMTUD black hole - the server's 1500-byte packets never reached the container; the "
        "largest that did was 48 bytes, and no ICMP size report came back"
    )
    assert b.hint == "Clamp the MSS to 1410 on the docker host, or set the container MTU to 1450."
    ev = b.evidence
    assert (ev["mss_client"], ev["mss_at_server"], ev["mss_server"]) == (1460, 1460, 1460)
    assert (ev["server_full"], ev["largest_delivered"]) == (1500, 48)
    assert ev["stall_s"] == pytest.approx(7.97, abs=0.01)
    assert ev["where"].startswith("before the host's uplink")
    assert any("1450" in why for why in ev["because"])
    assert not found(r, "B001", "host")
    assert verdict_of(r, "container", 0) == ("mtu_blackhole", "")


def test_B001_positive_lost_inside_the_docker_host(inner_hop):
    b = one(inner_hop, "B001", "container", 0)
    assert "the server's 1500-byte packets never reached the container" in b.message
    assert (
        b.evidence["where"]
        == "between the host's uplink and the container (bridge, veth or inside the container)"
    )


def test_B001_positive_sack_holes_in_one_capture(stalled_tls):
    b = one(stalled_tls, "B001", "container", 0)
    assert "the largest that did was 1240 bytes" in b.message
    assert "the client's ACKs show holes in the server's data" in b.evidence["because"]
    assert b.evidence["max_sack_hole"] == 2920
    assert b.evidence["where"].startswith("somewhere between the server and the container")


def test_B001_positive_ipv6(blackhole_v6):
    r = blackhole_v6
    b = one(r, "B001", "container", 0)
    assert b.message.startswith("[fd00:18::10]:443: PMTUD black hole - the server's 1500-byte packets never")
    assert b.hint == "Clamp the MSS to 1390 on the docker host, or set the container MTU to 1450."
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole", 1450, 1390)
    assert one(r, "M001", "container").message.endswith(
        "advertises MSS 1440 in its SYNs, so its interface MTU is 1500"
    )
    assert one(r, "M001", "host").message.endswith(
        "advertises MSS 1390 in its SYNs, so its interface MTU is 1450"
    )
    assert any(
        c["command"].startswith("ip6tables") and "--set-mss 1390" in c["command"] for c in r.fix.commands
    )


def test_B001_negative_full_size_packets_arrive_then_idle(quiet):
    """Loss with SACK holes and then 6 s of keep-alive idling, but full-size packets did arrive."""
    flow = quiet.context.flows("container").iloc[4]
    assert flow["stalled_s"] > 5 and flow["s2c_holes"] and flow["full_delivered_s2c"]
    assert not found(quiet, "B001")


def test_B001_negative_icmp_made_the_server_shrink(tmp_path):
    """docker0 has MTU 1450: the host receives the server's 1500-byte segment, answers it with ICMP
    frag-needed (MTU 1450) and the server re-sends at once in 1410-byte segments: PMTUD working."""
    c = Conn(sport=80).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=REQ)
    c.s(T0 + 0.03, 1, 1 + R)
    c.s(T0 + 0.031, 1, 1 + R, n=1460, where="host")
    n = 1
    for i in range(5):
        c.s(T0 + 0.06 + i * 0.001, n, 1 + R, n=1410)
        n += 1410
        c.c(T0 + 0.0605 + i * 0.001, 1 + R, n)
    c.close(T0 + 0.07, 1 + R, n)
    quoted = B.tcp(S, NAT, 80, 61000, seq=c.isn_s + 1, ack=c.isn_c + 1 + R, payload=b"r" * 1460)
    icmp = [(T0 + 0.0312, frag_needed(NAT, S, quoted, 1450))]
    host, cont = pair(tmp_path, [c], [c.render("host", cport=61000), icmp])
    r = run(host=host, container=cont)
    assert one(r, "M003", "host").evidence["mtu"] == 1450
    assert r.context.flows("container").loc[0, "max_ip_len_s2c"] == 1450
    assert not found(r, "B001")
    assert r.verdict == "healthy"


def test_B001_negative_slow_server(slow_full):
    assert "L002" in codes(slow_full)
    assert not found(slow_full, "B001")


def test_B001_negative_slow_server_small_answer_without_size_evidence(pauses_small_answers):
    r, _ = pauses_small_answers
    assert one(r, "L002", "container", 0)
    assert not found(r, "B001")
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")


def test_B001_negative_slow_server_small_answer_on_a_small_mtu_host(pauses_small_answers):
    _, r = pauses_small_answers
    assert r.path_mtu == 1450
    assert found(r, "L002", "container", 0)
    assert not found(r, "B001", "container", 0)
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")


def test_B001_negative_syn_retries_then_prompt_small_answer_on_a_small_mtu_host(pauses_small_answers):
    _, r = pauses_small_answers
    flow = r.context.flows("container").iloc[1]
    assert flow["state"] == "closed" and flow["bytes_s2c"] == 800
    assert not found(r, "B001", "container", 1)


def test_B001_negative_upload_blackhole(uploads):
    assert found(uploads, "B002", "container", 0)
    assert not found(uploads, "B001")


def test_B002_positive_upload_lost_inside_the_host(uploads):
    r = uploads
    b = one(r, "B002", "container", 0)
    assert b.message == (
        "198.18.0.10:80: PMTUD black hole on upload - the client's 1500-byte packets are sent and re-sent "
        "but never acknowledged; lost inside the docker host: the container sent them, the host's uplink "
        "never did"
    )
    assert b.evidence["client_full"] == 1500 and b.evidence["retrans_c2s"] == 4
    assert any(
        w.startswith("the host capture never shows them (largest there: ") for w in b.evidence["because"]
    )
    assert verdict_of(r, "container", 0) == ("mtu_blackhole", "")
    assert r.verdict == "mtu_blackhole"


def test_B002_positive_upload_lost_beyond_the_host(uploads):
    b = one(uploads, "B002", "container", 1)
    assert b.message.endswith(
        "the client's 1500-byte packets are sent and re-sent but never acknowledged; lost after the host's "
        "uplink, on the path"
    )
    assert not found(uploads, "X002", conn=1)


def test_B002_negative_icmp_reached_the_container(pmtud_upload):
    r = pmtud_upload
    assert not found(r, "B002")
    assert r.verdict == "healthy"


def test_B002_negative_resent_segment_finally_acknowledged(lossy_upload):
    r = lossy_upload
    assert r.context.flows("container").loc[0, "state"] == "closed"
    assert not found(r, "B002")
    assert verdict_of(r, "container", 0) == ("not_mtu", "lossy_link")


def test_B003_positive_stall_then_smaller_segments(host_mtu_1450):
    r = host_mtu_1450
    b = one(r, "B003", "container", 0)
    assert b.message == (
        "198.18.0.10:80: stalled 3.0 s, then the server continued with 1395-byte segments instead of "
        "1460-byte ones - packetization-layer PMTU probing got around a black hole"
    )
    assert b.hint.startswith("It works, slowly: clamp the MSS to 1410")
    assert b.evidence["payload_after"] == 1395
    assert not found(r, "B001")
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole_recovered", 1450, 1410)


def test_B003_negative_full_size_after_the_pause(slow_full):
    assert not found(slow_full, "B003")


def test_B003_negative_server_mss_is_smaller(quiet):
    """The server's own MSS is 1400: 1400-byte segments after a pause are its full size, not probing."""
    assert quiet.context.flows("container").loc[2, "server_full"] == 1440
    assert not found(quiet, "B003")
    assert verdict_of(quiet, "container", 2) == ("not_mtu", "server_slow")


# ------------------------------------------------------------------------------------ X: cross-capture
def test_X001_positive_matched_across_nat(blackhole):
    r, _ = blackhole
    x = one(r, "X001", "container")
    assert x.message == (
        "1 of 1 connections in the container capture were found in the host capture (matched by client "
        "initial sequence number); 1 connections there are the host's own"
    )
    assert x.evidence == {"nat_clients": ["10.66.0.2:61000"]}
    assert list(r.pairs[["container_conn", "host_conn"]].itertuples(index=False, name=None)) == [(0, 0)]


def test_X001_negative_single_capture(blackhole):
    _, single = blackhole
    assert not found(single, "X001")
    assert not found(single, "X003")


def test_X002_positive_server_segments_only_on_the_host(inner_hop):
    x = one(inner_hop, "X002", "host", 0)
    assert x.message == (
        "198.18.0.10:443: 6 server segments were captured on the host side only (largest 1500 bytes) - they "
        "were lost between the two capture points"
    )
    assert len(x.frames) == 6


def test_X002_positive_client_segments_only_in_the_container(uploads):
    x = one(uploads, "X002", "container", 0)
    assert x.message.startswith("198.18.0.10:80: 8 client segments were captured on the container side only")
    assert "(largest 1500 bytes)" in x.message


def test_X002_negative_same_segments_on_both_sides(blackhole, clamped):
    """NAT rewrote address and port (and the clamp the MSS); the segments are the same on both sides."""
    assert not found(blackhole[0], "X002")
    assert not found(clamped, "X002")


def test_X003_positive_connection_missing_from_the_host(slow_full):
    r = slow_full
    x = one(r, "X003", "container")
    assert x.message == "1 connections of the container capture are not in the host capture (198.18.0.11:443)"
    assert x.frames == (r.context.flows("container").loc[1, "first_frame"],)
    assert one(r, "X001", "container").message.startswith("1 of 2 connections")


def test_X003_negative_nat_port_rewrite_still_matches(blackhole):
    assert blackhole[0].pairs.loc[0, "nat_client"] == "10.66.0.2:61000"
    assert not found(blackhole[0], "X003")


# ------------------------------------------------------------------------------- L: not-MTU look-alikes
def test_L001_positive_lossy_download(quiet):
    x = one(quiet, "L001", "container", 4)
    assert x.message == (
        "198.18.0.10:80: 2 retransmissions, yet full-size 1500-byte packets were delivered - random loss, "
        "not a size limit"
    )
    assert x.wireshark_filter.endswith("&& tcp.analysis.retransmission")
    assert verdict_of(quiet, "container", 4) == ("not_mtu", "lossy_link")


def test_L001_positive_upload_resent_then_acknowledged(lossy_upload):
    x = one(lossy_upload, "L001", "container", 0)
    assert "4 retransmissions, yet full-size 1500-byte packets were delivered" in x.message


def test_L001_negative_full_size_reached_the_host_only(inner_hop):
    """The host saw the server's 1500-byte segments (and their retransmissions), but they died before the
    container: the host's copy of a forwarded connection is no proof that full-size packets pass."""
    r = inner_hop
    twin = r.context.flows("host").iloc[0]
    assert twin["retrans_s2c"] >= 2 and twin["full_sent_s2c"] and not twin["full_delivered_s2c"]
    assert not found(r, "L001")
    assert r.verdict == "mtu_blackhole"


def test_L001_negative_upload_blackhole(uploads):
    assert not found(uploads, "L001")


def test_L002_positive_slow_server(slow_full):
    r = slow_full
    x = one(r, "L002", "container", 0)
    assert x.message == "198.18.0.10:80: the server took 4.0 s to answer the request, with no loss"
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")
    assert (r.verdict, r.diagnosis.reason) == ("not_mtu", "server_slow")


def test_L002_negative_stall_then_smaller_segments(host_mtu_1450):
    """The answer also came 3 s late with no visible loss, but in segments smaller than full size."""
    assert not found(host_mtu_1450, "L002")


def test_L002_negative_blackhole(blackhole):
    assert not found(blackhole[0], "L002")
    assert not found(blackhole[1], "L002")


# ------------------------------------------------------------------------------------------- verdicts
def test_verdict_blackhole_pair(blackhole):
    r, _ = blackhole
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole", 1450, 1410)
    assert r.fix.mss == 1410 and r.fix.mtu == 1450
    assert any("--set-mss 1410" in c["command"] for c in r.fix.commands)
    assert verdict_of(r, "host", 1) == ("healthy", "")
    assert "1500-byte packets never reached the container" in r.explanation


def test_verdict_clamped_pair_is_healthy(clamped):
    r = clamped
    assert r.verdict == "healthy"
    assert "M002" in codes(r)
    assert verdict_of(r, "container", 0) == ("healthy", "")
    assert r.fix is not None and r.fix.mss == 1410 and "already in effect" in r.fix.summary
    assert "An MSS clamp to 1410" in r.explanation


def test_verdict_filtered(filtered):
    assert (filtered.verdict, filtered.diagnosis.reason) == ("not_mtu", "filtered")
    assert verdict_of(filtered, "container", 0) == ("not_mtu", "filtered")
    assert filtered.fix is None


def test_verdict_refused(refused):
    assert (refused.verdict, refused.diagnosis.reason) == ("not_mtu", "refused")
    assert refused.fix is None


def test_verdict_single_capture_is_less_confident(blackhole):
    both, single = blackhole
    assert both.verdict == single.verdict == "mtu_blackhole"
    assert single.confidence < both.confidence
    assert set(single.captures) == {"container"}


def test_verdict_ipv6_fix_headline_uses_the_ipv6_mss(blackhole_v6):
    r = blackhole_v6
    assert r.fix.mss == r.diagnosis.recommended_mss == 1390
    assert "1390" in r.fix.summary


# ---------------------------------------------------------------------------- SYN-ACK MSS between points
@pytest.fixture(scope="module")
def synack_clamped(tmp_path_factory):
    """A clamp acting on the SYN-ACK on its way in: MSS 1460 at the host's uplink, 1410 in the container."""
    tmp = tmp_path_factory.mktemp("synack")
    far = download(sport=443, sizes=(1410, 1410, 300), mss_s=1460)
    near = download(sport=443, sizes=(1410, 1410, 300), mss_s=1410)
    return run(host=capture(tmp, "host", far.render("host", cport=61000)),
               container=capture(tmp, "container", near.render("container")))  # fmt: skip


def test_M006_positive_synack_mss_rewritten_between_the_points(synack_clamped):
    f = one(synack_clamped, "M006", "container")
    assert f.evidence["mss_far"] == 1460 and f.evidence["mss_near"] == 1410
    assert "1460 in the host capture and 1410 in the container capture" in f.message


def test_M006_negative_only_the_syn_is_clamped(clamped):
    assert not found(clamped, "M006")


# ------------------------------------------------------------------- what a sender did with an ICMP report


@pytest.fixture(scope="module")
def icmp_ignored(tmp_path_factory):
    c, icmp = download_icmp_ignored()
    return run(server=capture(tmp_path_factory.mktemp("ignored"), "server", c.render("host"), icmp))


def test_B004_positive_icmp_then_smaller_segments_acknowledged(pmtud_upload):
    f = one(pmtud_upload, "B004", "container", 0)
    assert f.evidence["mtu"] == 1450 and f.evidence["sender"] == "client"
    assert f.evidence["resent_ip_len"] == 1450 and 0 <= f.evidence["cost_s"] < 0.01
    assert "PMTUD works" in f.message
    assert pmtud_upload.verdict == "healthy" and pmtud_upload.path_mtu == 1450


def test_B004_negative_icmp_ignored_by_the_sender(icmp_ignored):
    assert not found(icmp_ignored, "B004")


def test_B005_positive_full_size_goes_on_after_the_report(icmp_ignored):
    f = one(icmp_ignored, "B005", "server", 0)
    assert (
        f.evidence["mtu"] == 1450
        and f.evidence["sender"] == "server"
        and f.evidence["full_after_report"] == 4
    )
    assert "went on sending 1500-byte packets" in f.message
    assert icmp_ignored.verdict == "mtu_blackhole" and icmp_ignored.path_mtu == 1450
    assert icmp_ignored.fix.mss == 1410


def test_B005_negative_sender_obeys_the_report(pmtud_upload):
    assert not found(pmtud_upload, "B005")


# --------------------------------------------------------------------- connections without a handshake


@pytest.fixture(scope="module")
def midstreams(tmp_path_factory):
    """Container capture started mid-transfer: conn 0 stalls with a SACK hole, conn 1 recovers and closes."""
    conns = [midstream(T0, 40000, completes=False), midstream(T0 + 20, 40001, completes=True)]
    return run(container=capture(tmp_path_factory.mktemp("mid"), "c", *(c.render() for c in conns)))


def test_T005_positive_stall_with_a_sack_hole_and_no_handshake(midstreams):
    f = one(midstreams, "T005", "container", 0)
    assert f.frames and "2896 bytes of the server's data missing" in f.message
    assert verdict_of(midstreams, "container", 0)[0] == "inconclusive"
    assert not (midstreams.verdict == "healthy" and midstreams.confidence > 0.5)


def test_T005_negative_recovered_loss_without_handshake(midstreams):
    assert not found(midstreams, "T005", "container", 1)
    assert verdict_of(midstreams, "container", 1)[0] != "inconclusive"


# ------------------------------------------------------------------------------------------- registry
def test_registry_codes_are_unique_and_well_formed():
    assert len(RULES) >= 23
    for code, rule in RULES.items():
        assert re.fullmatch(r"[A-Z]\d{3}", code), code
        assert rule.code == code
        assert rule.message.strip() and rule.why.strip(), code
        assert rule.severity in ("info", "warning", "error"), code
        assert rule.func is not None, code
        if rule.implies:
            assert rule.implies in pcapmtu.results.VERDICTS and rule.implies != "healthy", code
            assert bool(rule.reason) == (rule.implies == "not_mtu"), code
    assert len({r.name for r in RULES.values()}) == len(RULES)
    with pytest.raises(ValueError, match="registered twice"):
        detectors.rule("B001", "again", "info", "m", "h", "w")(lambda ctx: [])
    assert RULES["B001"].name == "pmtud-blackhole"


def test_registry_every_placeholder_reads_as_words():
    """`pcapmtu explain` and docs/detectors.md show templates as sentences: no placeholder is left undescribed."""
    import string

    for rule in [*RULES.values(), detectors.CRASH]:
        for template in (rule.message, rule.hint):
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            assert names <= set(detectors.PLACEHOLDERS), (rule.code, names - set(detectors.PLACEHOLDERS))
            shown = detectors.readable(template)
            assert "{" not in shown and "}" not in shown, (rule.code, shown)


def test_registry_a_message_its_values_cannot_fill_is_a_finding_not_a_crash(blackhole):
    r, _ = blackhole
    detectors.rule("Z998", "broken-template", "info", "{missing} thing", "h", "w")(
        lambda ctx: [detectors.Hit({"other": 1})]
    )
    try:
        found = detectors.run(r.context)
    finally:
        del detectors.RULES["Z998"]
    crash = [f for f in found if f.code == "E900" and "Z998" in f.message]
    assert crash and "cannot be filled" in crash[0].message, [f.message for f in found if f.code == "E900"]


def test_registry_every_code_has_a_hint():
    missing = sorted(code for code, rule in RULES.items() if not rule.hint.strip())
    assert missing == [], missing


def test_docs_detectors_md_is_generated_from_the_registry():
    docs = Path(__file__).resolve().parents[1] / "docs" / "detectors.md"
    assert docs.read_text() == detectors.markdown(), (
        "run: python -m pcapmtu.diagnose.detectors > docs/detectors.md"
    )


def test_every_code_has_positive_and_negative_tests():
    names = {
        node.name
        for node in ast.parse(Path(__file__).read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    missing = [
        f"{code}_{kind}"
        for code in sorted(RULES)
        for kind in ("positive", "negative")
        if not any(n.startswith(f"test_{code}_{kind}") for n in names)
    ]
    assert missing == [], missing
