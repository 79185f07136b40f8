"""TCP reconstruction on small captures built in the test: one behaviour per test, literal packets."""

from __future__ import annotations

import pytest

import pcapmtu
from support import packets as B
from support.pcapwriter import Record, write_pcap

C, S = "172.17.0.2", "198.18.0.10"


def read(tmp_path, packets, link=B.ether, **kw):
    path = tmp_path / "t.pcap"
    write_pcap(path, [Record(t, link(p)) for t, p in packets], **kw)
    return pcapmtu.read(path)


def data(src, dst, sp, dp, seq, ack, n, t, flags=B.ACK | B.PSH, **kw):
    return (t, B.tcp(src, dst, sp, dp, seq=seq, ack=ack, flags=flags, payload=b"x" * n, **kw))


def test_handshake_options_rtt_and_orientation(tmp_path):
    pkts = B.handshake(C, S, 40000, 443, mss_c=1460, mss_s=1410, rtt=0.02)
    cap = read(tmp_path, pkts)
    (flow,) = cap.flows.itertuples()
    assert (flow.client_ip, flow.client_port, flow.server_ip, flow.server_port) == (C, 40000, S, 443)
    assert (flow.mss_client, flow.mss_server) == (1460, 1410)
    assert flow.handshake_rtt == pytest.approx(0.0201, abs=1e-6)
    assert flow.sack_perm_client and flow.sack_perm_server
    assert flow.state == "open" and flow.conn_state == "S1"


def test_port_reuse_splits_on_new_isn(tmp_path):
    first = B.handshake(C, S, 40000, 80, isn_c=100, t0=1000)
    first += [
        (1000.1, B.tcp(C, S, 40000, 80, seq=101, ack=5001, flags=B.FIN | B.ACK)),
        (1000.2, B.tcp(S, C, 80, 40000, seq=5001, ack=102, flags=B.FIN | B.ACK)),
        (1000.3, B.tcp(C, S, 40000, 80, seq=102, ack=5002)),
    ]
    second = B.handshake(C, S, 40000, 80, isn_c=900_000, t0=1001)
    cap = read(tmp_path, first + second)
    assert len(cap.flows) == 2
    assert list(cap.flows["state"]) == ["closed", "open"]
    assert list(cap.flows["conn_state"]) == ["SF", "S1"]
    assert cap.flows["retransmissions"].sum() == 0


def test_syn_retransmission_stays_in_one_connection(tmp_path):
    syn = B.tcp(C, S, 40000, 443, seq=7, flags=B.SYN, opts=B.tcp_options(mss=1460))
    cap = read(tmp_path, [(1000, syn), (1001, syn), (1003, syn)])
    (flow,) = cap.flows.itertuples()
    assert flow.state == "no_answer" and flow.conn_state == "S0"
    assert flow.retrans_c2s == 2  # tshark counts SYN retransmissions too


def test_refused_and_reset(tmp_path):
    syn = B.tcp(C, S, 40001, 443, seq=7, flags=B.SYN)
    rst = B.tcp(S, C, 443, 40001, seq=0, ack=8, flags=B.RST | B.ACK)
    reset = B.handshake(C, S, 40002, 443, t0=1002) + [
        (1002.5, B.tcp(S, C, 443, 40002, seq=5001, flags=B.RST))
    ]
    cap = read(tmp_path, [(1000, syn), (1000.001, rst), *reset])
    assert list(cap.flows["state"]) == ["refused", "reset"]
    assert list(cap.flows["conn_state"]) == ["REJ", "RSTR"]


def test_sequence_wraparound_is_not_a_retransmission(tmp_path):
    isn_c, isn_s = (1 << 32) - 3000, 10
    pkts = B.handshake(C, S, 40000, 80, isn_c=isn_c, isn_s=isn_s)
    seq = isn_c + 1
    for i in range(5):
        pkts.append(data(C, S, 40000, 80, seq, isn_s + 1, 1000, 1000.1 + i * 0.001))
        seq += 1000
    cap = read(tmp_path, pkts)
    tcp = cap.packets[(cap.packets["conn"] == 0) & (cap.packets["payload_len"] > 0)]
    assert list(tcp["rel_seq"]) == [1, 1001, 2001, 3001, 4001]
    assert not tcp["retrans"].any() and not tcp["lost_before"].any()
    assert cap.flows.loc[0, "bytes_c2s"] == 5000


def test_retransmitted_full_size_segment(tmp_path):
    pkts = B.handshake(C, S, 40000, 80, isn_c=1, isn_s=1)
    pkts += [data(S, C, 80, 40000, 2, 2, 1448, 1000.1), data(S, C, 80, 40000, 2, 2, 1448, 1000.4)]
    cap = read(tmp_path, pkts)
    flow = cap.flows.iloc[0]
    assert flow["retrans_s2c"] == 1 and flow["retrans_c2s"] == 0
    assert flow["max_payload_s2c"] == 1448 and flow["max_ip_len_s2c"] == 1448 + 40
    assert "T" not in flow["history"] and "t" in flow["history"]


def test_gap_and_sack_hole(tmp_path):
    pkts = B.handshake(C, S, 40000, 80, isn_c=1, isn_s=1)
    pkts += [
        data(S, C, 80, 40000, 2, 2, 1000, 1000.1),
        data(S, C, 80, 40000, 2002, 2, 1000, 1000.2),  # 1002..2002 never captured
        (1000.3, B.tcp(C, S, 40000, 80, seq=2, ack=1002, opts=B.tcp_options(sack=[(2002, 3002)]))),
    ]
    cap = read(tmp_path, pkts)
    p = cap.packets
    assert p.loc[p["frame"] == 5, "lost_before"].item()
    assert p.loc[p["frame"] == 6, "sack_hole"].item() == 1000
    assert cap.flows.loc[0, "max_sack_hole_c2s"] == 1000
    assert list(cap.sack[["left", "right"]].itertuples(index=False, name=None)) == [(2002, 3002)]


def test_any_interface_copies_are_not_retransmissions(tmp_path):
    """`tcpdump -i any` writes a forwarded packet once per interface (veth, bridge): same bytes."""
    path = tmp_path / "any.pcap"
    recs = []
    for t, pkt in B.handshake(C, S, 40000, 443) + [data(C, S, 40000, 443, 1001, 5001, 500, 1000.2)]:
        recs.append(Record(t, B.sll2(pkt, ifindex=5)))
        recs.append(Record(t + 0.000002, B.sll2(pkt, ifindex=3)))
    write_pcap(path, recs, linktype=276)
    cap = pcapmtu.read(path)
    assert len(cap.flows) == 1
    assert cap.flows.loc[0, "retransmissions"] == 0
    assert cap.packets["dup_copy"].sum() == 4
    assert sorted(cap.packets["ifindex"].unique()) == [3, 5]


def test_midstream_connection_orients_by_port(tmp_path):
    pkts = [data(S, C, 443, 40000, 500, 100, 1000, 1000.0), data(C, S, 40000, 443, 100, 1500, 10, 1000.1)]
    cap = read(tmp_path, pkts)
    flow = cap.flows.iloc[0]
    assert (flow["client_ip"], flow["server_port"]) == (C, 443)
    assert flow["midstream"] and flow["conn_state"] == "OTH"


def test_synack_captured_before_syn(tmp_path):
    hs = B.handshake(C, S, 40000, 443)
    cap = read(tmp_path, [hs[1], hs[0], hs[2]])
    assert len(cap.flows) == 1
    assert cap.flows.loc[0, "client_ip"] == C


def test_ipv6_connection(tmp_path):
    c6, s6 = "fd00:17::2", "fd00:198::10"
    cap = read(tmp_path, B.handshake(c6, s6, 40000, 443, mss_c=1440, mss_s=1440))
    flow = cap.flows.iloc[0]
    assert (flow["client_ip"], flow["server_ip"], flow["ipv"], flow["mss_client"]) == (c6, s6, 6, 1440)
