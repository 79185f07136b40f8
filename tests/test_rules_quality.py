"""Q rules, capture quality: packets cut by the snapshot length, packets that could not be decoded,
super-packets from GRO/TSO, copies of one packet from `tcpdump -i any`, damaged files.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

import pytest

import pcapmtu
from support import packets as B
from support.findings import codes, found, one, run
from support.pcapwriter import Record, write_pcap
from support.scenes import T0, capture, download


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


def test_Q003_negative_without_an_mss_to_measure_against():
    """A capture started mid-connection holds no SYN, so no MSS: its 1252-byte segments are not "larger than
    any MTU on the path" (the limit was the headers alone, 40 bytes, and every data packet passed it)."""
    from support.environment import SAMPLES

    r = run(container=pcapmtu.read(SAMPLES / "blackhole_tls12" / "container_midstream.pcap"))
    flows = r.context.flows("container")
    assert (flows[["mss_client", "mss_server"]] == 0).all(axis=None)
    assert flows["max_ip_len_s2c"].max() == 1252
    assert not found(r, "Q003")


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("semantic/tcpdump__bigtcp-ipv4.pcap", True),  # BIG TCP: 80,052-byte packets on Ethernet, no SYN
        (
            "malformed/tcpdump__heapoverflow-tcp_print.pcap",
            True,
        ),  # 12,336 bytes on Ethernet, above any jumbo MTU
        ("format/gopacket__test_loopback-null.pcap", False),  # 16,384 bytes on loopback (MTU 65,536)
        (
            "malformed/tcpdump__tcp_rst_data-trunc.pcap",
            False,
        ),  # 98 bytes: was flagged against the headers alone
        ("semantic/suricata__tcp-overlap.pcap", False),  # 44 bytes: the same
    ],
)
def test_Q003_without_an_mss_the_link_s_limit_decides(name, flagged):
    """No SYN, no MSS: a packet is merged by offload only when its link could not carry it (Ethernet: above
    9,216 bytes, the largest jumbo MTU in use; loopback and the rest: above 65,536)."""
    from support.environment import CORPUS

    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not found")
    r = run(container=pcapmtu.read(path))
    assert bool(found(r, "Q003")) == flagged


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
