"""The reader reads any capture tcpdump, `tcpdump -i any`, dumpcap or Wireshark writes.

Files are built here byte by byte (exact integer timestamps, every header field chosen) and the public
corpus is compared with tshark where tshark knows the answer.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import struct
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import dpkt
import pytest
import zstandard

import pcapmtu
from pcapmtu.ingest.formats import CaptureFile
from support import packets as pb
from support import tshark
from support.environment import CORPUS, corpus_files, require_tool
from support.packets import C6, S6, C, S, dns_response, gre, icmp_frag_needed, ipv4, ipv6, tcp_bytes, vxlan
from support.pcapwriter import Pcapng, pcap_bytes


def write(tmp_path, data: bytes, name: str = "cap.pcap"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_bytes(tmp_path, data: bytes, name: str = "cap.pcap") -> pcapmtu.Capture:
    return pcapmtu.read(write(tmp_path, data, name))


def seg(src=C, dst=S, sport=40000, dport=443, **kw) -> bytes:
    return pb.tcp(src, dst, sport, dport, **kw)


def row(cap: pcapmtu.Capture, frame: int):
    return cap.packets.iloc[frame - 1]


# --------------------------------------------------------------------------------------------- pcap
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_pcap_byte_orders_and_resolutions(tmp_path, big_endian, nano):
    frac = 123456789 if nano else 123456
    full = seg(payload=b"x" * 1000)
    records = [
        (1700000000, frac, pb.ether(seg(flags=pb.SYN))),
        (1700000001, 0, pb.ether(seg(payload=b"hello"))),
        (1700000002, 999999999 if nano else 999999, pb.ether(full)[:100], 14 + len(full)),
    ]
    cap = read_bytes(tmp_path, pcap_bytes(records, nano=nano, big_endian=big_endian))
    p = cap.packets
    scale = 1 if nano else 1000
    assert cap.format == ("pcap-ns" if nano else "pcap")
    assert p["ts_ns"].tolist() == [
        1700000000 * 10**9 + frac * scale,
        1700000001 * 10**9,
        1700000002 * 10**9 + (999999999 if nano else 999999) * scale,
    ]
    assert p["frame"].tolist() == [1, 2, 3]
    assert p["caplen"].tolist() == [len(records[0][2]), len(records[1][2]), 100]
    assert p["wirelen"].tolist() == [len(records[0][2]), len(records[1][2]), 14 + len(full)]
    assert p["truncated"].tolist() == [False, False, True]
    # the truncated segment's payload length comes from the IP header, not from what was captured
    assert p["payload_len"].tolist() == [0, 5, 1000]
    assert p["ip_len"].iloc[2] == len(full)
    assert (p["status"] == "ok").all()
    assert [str(x) for x in p["src"]] == [C] * 3
    assert p["dport"].tolist() == [443] * 3
    assert not cap.warnings


@pytest.mark.parametrize(
    "version, stored",
    [((2, 4), "cap-wire"), ((2, 1), "wire-cap"), ((2, 3), "wire-cap"), ((2, 3), "cap-wire")],
    ids=["2.4", "2.1-swapped", "2.3-swapped", "2.3-normal"],
)
def test_pcap_old_versions_swap_the_length_fields(tmp_path, version, stored):
    """Before pcap 2.3 the record header put the original length first (libpcap sf-pcap.c)."""
    data = pb.ether(seg(payload=b"y" * 500))
    o = "<"
    head = struct.pack(o + "IHHiIII", 0xA1B2C3D4, *version, 0, 0, 262144, 1)
    lens = (60, len(data)) if stored == "cap-wire" else (len(data), 60)
    rec = struct.pack(o + "IIII", 1, 0, *lens) + data[:60]
    cap = read_bytes(tmp_path, head + rec + rec)
    assert cap.packets["caplen"].tolist() == [60, 60]
    assert cap.packets["wirelen"].tolist() == [len(data), len(data)]
    assert cap.skipped_bytes == 0


def test_modified_pcap_with_24_byte_record_headers(tmp_path):
    records = [(5, 1, pb.ether(seg(flags=pb.SYN))), (6, 2, pb.ether(seg()))]
    cap = read_bytes(tmp_path, pcap_bytes(records, modified=True))
    assert cap.packets["ts_ns"].tolist() == [5_000_001_000, 6_000_002_000]
    assert cap.packets["sport"].tolist() == [40000, 40000]
    assert cap.skipped_bytes == 0


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_small_chunks_give_the_same_records(tmp_path, fmt):
    """Records straddling the reader's chunk boundary are carried over, never lost or split."""
    frames = [pb.ether(seg(seq=i, payload=bytes([i]) * (i * 37 % 300))) for i in range(40)]
    if fmt == "pcap":
        data = pcap_bytes([(100 + i, i, f) for i, f in enumerate(frames)])
    else:
        ng = Pcapng().shb().idb(1, 9)
        for i, f in enumerate(frames):
            ng.epb(0, (100 + i) * 10**9 + i, f)
        data = ng.bytes()
    path = write(tmp_path, data)
    whole = CaptureFile.open(path)
    expected = [(b.ts_ns.tolist(), b.caplen.tolist()) for b in whole.batches()]
    assert len(expected) == 1 and len(expected[0][0]) == 40
    for chunk in (64, 100, 333, 1000):
        cf = CaptureFile.open(path)
        ts, caplen, seqs = [], [], []
        for b in cf.batches(chunk_bytes=chunk):
            ts += b.ts_ns.tolist()
            caplen += b.caplen.tolist()
            seqs += [int.from_bytes(b.buf[o + 38 : o + 42].tobytes(), "big") for o in b.data_off]
        assert (ts, caplen) == expected[0], chunk
        assert seqs == list(range(40))
        assert not cf.warnings and cf.skipped_bytes == 0


# ------------------------------------------------------------------------------------------- pcapng
def _multi_interface(big_endian: bool) -> tuple[bytes, list[int]]:
    ng = Pcapng().shb(big_endian)
    ng.idb(1, 9, name="eth0")  # Ethernet, nanoseconds
    ng.idb(276, 6, name="any")  # SLL2, microseconds (tcpdump -i any)
    ng.idb(101, 0x88)  # raw IP, 2^-8 s
    ng.idb(1, 3, tsoffset=1_000)  # milliseconds plus if_tsoffset
    ng.idb(113, 0x80 | 20)  # SLL, 2^-20 s
    ng.idb(1)  # no if_tsresol: microseconds
    ng.epb(0, 1700000000_123456789, pb.ether(seg(flags=pb.SYN)))
    ng.epb(1, 1700000001_234567, pb.sll2(seg(src=S, dst=C, sport=443, dport=40000), ifindex=7, pkttype=4))
    ng.epb(2, 1700000002 * 256 + 128, seg(seq=2))
    ng.epb(3, 5, pb.ether(seg(seq=3)))
    ng.epb(4, 1700000003 * 2**20 + 2**18, pb.sll(seg(seq=4), pkttype=0))
    ng.epb(5, 1700000004_000001, pb.ether(pb.udp(C6, S6, 5353, 53, b"q")))
    expected = [
        1700000000_123456789,
        1700000001_234567000,
        1700000002_500000000,
        1_000_000_000_000 + 5_000_000,
        1700000003_250000000,
        1700000004_000001000,
    ]
    return ng.bytes(), expected


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_pcapng_interfaces_with_their_own_link_type_and_resolution(tmp_path, big_endian):
    data, expected_ts = _multi_interface(big_endian)
    cap = read_bytes(tmp_path, data, "multi.pcapng")
    p = cap.packets
    assert cap.format == "pcapng"
    assert [i["linktype"] for i in cap.interfaces] == [1, 276, 101, 1, 113, 1]
    assert [i["name"] for i in cap.interfaces][:2] == ["eth0", "any"]
    assert p["ts_ns"].tolist() == expected_ts
    assert p["iface"].tolist() == [0, 1, 2, 3, 4, 5]
    assert p["linktype"].tolist() == [1, 276, 101, 1, 113, 1]
    assert p["ifindex"].tolist() == [-1, 7, -1, -1, -1, -1]
    assert p["pkttype"].tolist() == [-1, 4, -1, -1, 0, -1]
    assert p["seq"].tolist()[2:5] == [2, 3, 4]
    assert [str(x) for x in p["src"]] == [C, S, C, C, C, C6]
    assert p["sport"].tolist() == [40000, 443, 40000, 40000, 40000, 5353]
    assert (p["status"] == "ok").all()
    assert cap.link_types == ["EN10MB", "RAW", "LINUX_SLL", "LINUX_SLL2"]
    assert not [w for w in cap.warnings if "absurd" in w or "skipped" in w]


def test_built_pcapng_agrees_with_tshark(tmp_path):
    """The writer above makes what Wireshark reads the same way (so the expectations mean something)."""
    require_tool("tshark")
    data, expected_ts = _multi_interface(False)
    path = write(tmp_path, data, "multi.pcapng")
    ref = tshark.fields(path, ["frame.time_epoch", "frame.interface_id"])
    assert [epoch_ns(r["frame.time_epoch"]) for r in ref] == expected_ts
    assert [int(r["frame.interface_id"]) for r in ref] == list(range(6))


def test_pcapng_sections_restart_interface_numbering(tmp_path):
    ng = Pcapng().shb().idb(1, 6)
    ng.epb(0, 1_000_000, pb.ether(seg(seq=10)))
    ng.shb(big_endian=True).idb(101, 9).idb(276, 6)  # a second section, other byte order
    ng.epb(0, 2_000_000_000, seg(seq=11))  # section 2's interface 0: raw IP
    ng.epb(1, 3_000_000, pb.sll2(seg(seq=12), ifindex=3))
    ng.spb(seg(seq=13))  # simple packet blocks belong to the section's first interface
    ng.shb().idb(113, 6)
    ng.pb(0, 4_000_000, pb.sll(seg(seq=14)))
    cap = read_bytes(tmp_path, ng.bytes(), "sections.pcapng")
    p = cap.packets
    assert [i["linktype"] for i in cap.interfaces] == [1, 101, 276, 113]
    assert p["iface"].tolist() == [0, 1, 2, 1, 3]
    assert p["linktype"].tolist() == [1, 101, 276, 101, 113]
    assert p["seq"].tolist() == [10, 11, 12, 13, 14]
    assert p["ts_ns"].tolist()[:3] == [1_000_000_000, 2_000_000_000, 3_000_000_000]
    assert p["ts_ns"].iloc[4] == 4_000_000_000
    assert p["ifindex"].iloc[2] == 3
    assert (p["status"] == "ok").all()
    assert cap.skipped_bytes == 0


def test_pcapng_simple_packet_blocks_respect_the_snaplen(tmp_path):
    full = pb.ether(seg(payload=b"z" * 400))
    ng = Pcapng().shb().idb(1, 6, snaplen=96)
    ng.spb(full[:96], wirelen=len(full))
    ng.spb(pb.ether(seg(flags=pb.SYN)))
    cap = read_bytes(tmp_path, ng.bytes(), "spb.pcapng")
    p = cap.packets
    assert p["caplen"].tolist() == [96, 54]
    assert p["wirelen"].tolist() == [len(full), 54]
    assert p["truncated"].tolist() == [True, False]
    assert p["payload_len"].tolist() == [400, 0]


def test_pcapng_skips_unknown_blocks(tmp_path):
    ng = Pcapng().shb().idb(1, 6)
    ng.block(0x0BAD, b"\x01" * 10)  # unknown block type
    ng.block(5, b"\x00" * 24)  # interface statistics
    ng.block(0x0A, struct.pack("<II", 0x544C534B, 4) + b"keys")  # decryption secrets
    ng.epb(0, 1, pb.ether(seg()))
    cap = read_bytes(tmp_path, ng.bytes(), "x.pcapng")
    assert len(cap.packets) == 1 and cap.skipped_bytes == 0


def test_pcapng_block_types_interleaved_with_packet_runs(tmp_path):
    """Runs of enhanced packet blocks are read in bulk; other blocks between them keep their order."""
    ng = Pcapng().shb().idb(1, 6)
    for i in range(5):
        ng.epb(0, 1_000 + i, pb.ether(seg(seq=i)))
    ng.idb(1, 9)  # a second interface, in nanoseconds, after packets already came
    ng.spb(pb.ether(seg(seq=5)))
    ng.block(5, b"\x00" * 24)  # interface statistics
    for i in range(6, 9):
        ng.epb(1, 2_000_000_000 + i, pb.ether(seg(seq=i)))
    ng.pb(0, 3_000, pb.ether(seg(seq=9)))
    ng.epb(0, 4_000, pb.ether(seg(seq=10)))
    cap = read_bytes(tmp_path, ng.bytes(), "mixed.pcapng")
    p = cap.packets
    assert p["seq"].tolist() == list(range(11))
    assert p["iface"].tolist() == [0] * 6 + [1] * 3 + [0, 0]
    assert p["ts_ns"].tolist()[:5] == [(1_000 + i) * 1_000 for i in range(5)]
    assert p["ts_ns"].tolist()[6:9] == [2_000_000_000 + i for i in range(6, 9)]
    assert cap.skipped_bytes == 0 and not any("stopped" in w for w in cap.warnings)


@pytest.mark.parametrize(
    "damage, message",
    [("iface", "refers to interface 7, which was never described"), ("caplen", "holds a packet longer")],
)
def test_pcapng_damaged_block_inside_a_run_of_packets(tmp_path, damage, message):
    """The packets before a damaged block are kept, the damage is reported, nothing after it is read."""
    ng = Pcapng().shb().idb(1, 6)
    for i in range(4):
        ng.epb(0, 10 + i, pb.ether(seg(seq=i)))
    frame = pb.ether(seg(seq=4))
    if damage == "iface":
        ng.epb(7, 14, frame)
    else:
        head = struct.pack("<IIIII", 0, 0, 14, len(frame) + 64, len(frame))
        ng.block(6, head + frame)
    for i in range(5, 8):
        ng.epb(0, 10 + i, pb.ether(seg(seq=i)))
    cap = read_bytes(tmp_path, ng.bytes(), "damaged.pcapng")
    assert cap.packets["seq"].tolist() == [0, 1, 2, 3]
    assert any(message in w for w in cap.warnings), cap.warnings
    assert cap.skipped_bytes > 0


@pytest.mark.parametrize("tsresol", [0x7F, 0xFF, 0x3F, 0xBF, 0x80, 0])
def test_pcapng_absurd_resolutions_do_not_break_the_reader(tmp_path, tsresol):
    ng = Pcapng().shb().idb(1, tsresol).epb(0, (1 << 61) + 12345, pb.ether(seg())).epb(0, 7, pb.ether(seg()))
    cap = read_bytes(tmp_path, ng.bytes(), "x.pcapng")
    ts = cap.packets["ts_ns"].to_numpy()
    assert len(ts) == 2 and (ts >= 0).all() and (ts < 1 << 63).all()


def test_pcapng_absurd_tsoffset_is_ignored(tmp_path):
    ng = Pcapng().shb().idb(1, 9, tsoffset=-(1 << 62)).epb(0, 5, pb.ether(seg()))
    cap = read_bytes(tmp_path, ng.bytes(), "x.pcapng")
    assert cap.packets["ts_ns"].tolist() == [5]
    assert any("if_tsoffset" in w for w in cap.warnings)


# --------------------------------------------------------------------------------------- compression
def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize(
    "name, compress",
    [("gzip", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress), ("zstd", _zstd)],
)
def test_compressed_captures_detected_by_magic_not_name(tmp_path, name, compress):
    plain = pcap_bytes([(10 + i, i, pb.ether(seg(seq=i))) for i in range(5)])
    ng = Pcapng().shb().idb(1, 9).epb(0, 42, pb.ether(seg(seq=9))).bytes()
    cap = read_bytes(tmp_path, compress(plain), "misleading.pcap")  # no compression suffix
    assert cap.compression == name and cap.format == "pcap"
    assert cap.packets["seq"].tolist() == [0, 1, 2, 3, 4]
    assert cap.packets["ts_ns"].tolist() == [(10 + i) * 10**9 + i * 1000 for i in range(5)]
    cap = read_bytes(tmp_path, compress(ng), "other.pcapng")
    assert cap.compression == name and cap.format == "pcapng"
    assert cap.packets["ts_ns"].tolist() == [42]


def test_uncompressed_capture_with_a_compression_suffix(tmp_path):
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(seg()))]), "looks.pcap.gz")
    assert cap.compression == "" and len(cap.packets) == 1


def test_corpus_compressed_files_match_their_plain_twin():
    fmt = CORPUS / "format"
    if not (fmt / "pcapplusplus__pcapng-example.pcapng.zst").exists():
        pytest.skip("corpus not present")
    plain = pcapmtu.read(fmt / "pcapplusplus__pcapng-example.pcapng")
    packed = pcapmtu.read(fmt / "pcapplusplus__pcapng-example.pcapng.zst")
    assert packed.compression == "zstd" and plain.compression == ""
    cols = ["ts_ns", "caplen", "wirelen", "iface", "linktype", "sport", "dport", "seq", "ip_len"]
    assert plain.packets[cols].equals(packed.packets[cols])
    assert len(plain.flows) == len(packed.flows) == 15
    for name, count in (("scapy__http_head.pcapng.gz", 10), ("zeek__tls-fragmented-handshake.pcap.gz", 416)):
        cap = pcapmtu.read(fmt / name)
        assert cap.compression == "gzip" and len(cap.packets) == count


# ------------------------------------------------------------------------------------------ link types
def _vlan_stack(ip: bytes, tags) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for tpid, vid in tags:
        head += struct.pack(">HH", tpid, vid)
    return head + struct.pack(">H", 0x86DD if ip[0] >> 4 == 6 else 0x0800) + ip


def _pppoe(ip: bytes) -> bytes:
    proto = 0x0057 if ip[0] >> 4 == 6 else 0x0021
    body = struct.pack(">BBHHH", 0x11, 0, 0x1234, len(ip) + 2, proto) + ip
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + struct.pack(">H", 0x8864) + body


def _mpls(ip: bytes, labels: int) -> bytes:
    stack = b"".join(struct.pack(">I", (100 + i) << 12 | (i == labels - 1) << 8 | 64) for i in range(labels))
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + struct.pack(">H", 0x8847) + stack + ip


V4 = seg(flags=pb.SYN)
V6 = seg(C6, S6, flags=pb.SYN)

LINK_CASES = {
    # id: (linktype, frame, expected address family, extra expected columns)
    "ethernet": (1, pb.ether(V4), 4, {}),
    "ethernet-v6": (1, pb.ether(V6), 6, {}),
    "802.1q": (1, pb.ether(V4, vlans=[100]), 4, {}),
    "qinq-88a8": (1, pb.ether(V4, vlans=[10, 20]), 4, {}),
    "qinq-9100": (1, _vlan_stack(V6, [(0x9100, 5), (0x8100, 6)]), 6, {}),
    "three-tags": (1, _vlan_stack(V4, [(0x88A8, 1), (0x8100, 10), (0x8100, 100)]), 4, {}),
    "pppoe": (1, _pppoe(V4), 4, {}),
    "pppoe-v6": (1, _pppoe(V6), 6, {}),
    "mpls": (1, _mpls(V4, 1), 4, {}),
    "mpls-2-labels-v6": (1, _mpls(V6, 2), 6, {}),
    "sll": (113, pb.sll(V4, pkttype=4), 4, {"pkttype": 4, "ifindex": -1}),
    "sll-v6": (113, pb.sll(V6, pkttype=0), 6, {"pkttype": 0}),
    "sll2": (276, pb.sll2(V4, ifindex=12, pkttype=4), 4, {"pkttype": 4, "ifindex": 12}),
    "sll2-v6": (276, pb.sll2(V6, ifindex=3), 6, {"pkttype": 0, "ifindex": 3}),
    "raw-101-v4": (101, V4, 4, {}),
    "raw-101-v6": (101, V6, 6, {}),
    "raw-12": (12, V6, 6, {}),
    "raw-14": (14, V4, 4, {}),
    "ipv4-228": (228, V4, 4, {}),
    "ipv6-229": (229, V6, 6, {}),
    "null-le-inet": (0, struct.pack("<I", 2) + V4, 4, {}),
    "null-be-inet": (0, struct.pack(">I", 2) + V4, 4, {}),
    "null-le-inet6-darwin": (0, struct.pack("<I", 30) + V6, 6, {}),
    "null-be-inet6-bsd": (0, struct.pack(">I", 24) + V6, 6, {}),
    "null-le-inet6-freebsd": (0, struct.pack("<I", 28) + V6, 6, {}),
    "null-ethertype": (0, bytes.fromhex("0f000800") + V4, 4, {}),
    "loop-inet": (108, struct.pack(">I", 2) + V4, 4, {}),
    "loop-inet6": (108, struct.pack(">I", 24) + V6, 6, {}),
}


@pytest.mark.parametrize("case", list(LINK_CASES))
def test_link_types(tmp_path, case):
    linktype, frame, family, extra = LINK_CASES[case]
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, frame)], linktype=linktype))
    r = row(cap, 1)
    assert r["status"] == "ok"
    assert r["linktype"] == linktype
    assert r["ipv"] == family
    assert (str(r["src"]), str(r["dst"])) == ((C, S) if family == 4 else (C6, S6))
    assert (r["proto"], r["sport"], r["dport"], r["tcp_flags"]) == (6, 40000, 443, pb.SYN)
    for col, value in extra.items():
        assert r[col] == value, col
    if not extra:
        assert (r["ifindex"], r["pkttype"]) == (-1, -1)


def test_link_types_in_one_pcapng(tmp_path):
    """Every link type above at once, one interface each: each frame is decoded by its own interface."""
    ng = Pcapng().shb()
    for linktype, _frame, _family, _extra in LINK_CASES.values():
        ng.idb(linktype, 6)
    for i, (_lt, frame, _family, _extra) in enumerate(LINK_CASES.values()):
        ng.epb(i, i, frame)
    cap = read_bytes(tmp_path, ng.bytes(), "all.pcapng")
    p = cap.packets
    assert (p["status"] == "ok").all()
    assert p["ipv"].tolist() == [case[2] for case in LINK_CASES.values()]
    assert (p["dport"] == 443).all()
    assert len(cap.flows) == 2  # one IPv4 and one IPv6 connection attempt, seen over many links


@pytest.mark.parametrize("linktype", [147, 105, 0xFFFF])
def test_unsupported_link_type_gives_status_rows(tmp_path, linktype):
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(V4)), (2, 0, b"\x01" * 30)], linktype=linktype))
    assert cap.packets["status"].tolist() == ["unsupported-linktype"] * 2
    assert (cap.packets["ipv"] == 0).all()
    assert cap.link_types == [f"LINKTYPE_{linktype}"]
    assert any("unsupported-linktype: 2" in w for w in cap.warnings)


@pytest.mark.parametrize(
    "frame, status",
    [
        (pb.ether(V4)[:10], "link-truncated"),
        (pb.ether(V4, vlans=[5])[:16], "link-truncated"),
        (pb.ether(V4)[:30], "ip-truncated"),
        (pb.ether(V4)[:40], "tcp-truncated"),
        (pb.ether(V6)[:50], "ip-truncated"),
    ],
    ids=["ethernet", "vlan-tag", "ipv4", "tcp", "ipv6"],
)
def test_truncated_headers_give_status_not_errors(tmp_path, frame, status):
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, frame, 200)]))
    assert row(cap, 1)["status"] == status


# ---------------------------------------------------------------------------------------------- IPv4
def test_ipv4_fields_and_fragments(tmp_path):
    tcp_seg = tcp_bytes(40000, 443, payload=b"a" * 100)
    frames = [
        ipv4(C, S, 6, tcp_seg, ident=0x1234, df=True, ttl=63),  # whole, DF
        ipv4(C, S, 6, tcp_seg[:48], ident=0x2222, mf=True, total=20 + 48),  # first fragment
        ipv4(C, S, 6, tcp_seg[48:], ident=0x2222, frag_off=48),  # last fragment: no TCP header here
        ipv4(C, S, 17, b"\x00\x35" + b"\x00" * 30, ident=0x3333, mf=True, frag_off=1480),  # middle fragment
    ]
    cap = read_bytes(tmp_path, pcap_bytes([(1, i, pb.ether(f)) for i, f in enumerate(frames)]))
    p = cap.packets
    assert p["df"].tolist() == [True, False, False, False]
    assert p["ip_id"].tolist() == [0x1234, 0x2222, 0x2222, 0x3333]
    assert p["ip_len"].tolist() == [20 + len(tcp_seg), 68, 20 + len(tcp_seg) - 48, 52]
    assert p["ttl"].tolist() == [63, 64, 64, 64]
    assert p["frag"].tolist() == [False, True, True, True]
    assert p["frag_off"].tolist() == [0, 0, 48, 1480]
    assert p["sport"].tolist() == [40000, 40000, 0, 0]
    assert p["dport"].tolist() == [443, 443, 0, 0]
    assert p["proto"].tolist() == [6, 6, 6, 17]
    assert p["payload_len"].tolist()[:2] == [100, 28]
    assert (p["status"] == "ok").all()


@pytest.mark.parametrize(
    "total, status",
    [(19, "ipv4-bad-total-length"), (0, "ok")],  # 0: TSO super-packet, length taken from the capture
)
def test_ipv4_odd_total_lengths(tmp_path, total, status):
    pkt = ipv4(C, S, 6, tcp_bytes(1, 2, payload=b"p" * 10), total=total)
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, pkt)], linktype=101)), 1)
    assert r["status"] == status
    if status == "ok":
        assert (r["ip_len"], r["payload_len"]) == (50, 10)


def test_ipv4_header_options_are_skipped(tmp_path):
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    head = bytearray(ipv4(C, S, 6, b""))
    head[0] = 0x46
    seg_bytes = tcp_bytes(1234, 80, payload=b"q" * 7)
    head[2:4] = struct.pack(">H", 24 + len(seg_bytes))
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, bytes(head) + opts + seg_bytes)], linktype=228)), 1)
    assert (r["sport"], r["dport"], r["payload_len"], r["status"]) == (1234, 80, 7, "ok")


# ---------------------------------------------------------------------------------------------- IPv6
def _ext(nh: int, body6: bytes = b"\x01\x04\x00\x00\x00\x00") -> bytes:
    return bytes([nh, 0]) + body6


def _frag(nh: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack(">BBHI", nh, 0, offset | int(more), ident)


@pytest.mark.parametrize(
    "chain, frag, frag_off, ports",
    [
        ([(0, _ext(43)), (43, bytes([60, 0, 4, 0, 0, 0, 0, 0])), (60, _ext(6))], False, 0, True),
        ([(0, _ext(60)), (60, _ext(44)), (44, _frag(6, 0, True, 0xABCDEF01))], True, 0, True),
        ([(44, _frag(6, 1232, False, 0xABCDEF01))], True, 1232, False),
        ([(44, _frag(6, 0, False, 0xABCDEF01))], False, 0, True),  # atomic fragment (RFC 6946)
        ([(0, _ext(44)), (44, _frag(6, 8, True, 0xABCDEF01))], True, 8, False),
    ],
    ids=[
        "hbh-routing-dstopts",
        "dstopts-first-fragment",
        "later-fragment",
        "atomic-fragment",
        "middle-fragment",
    ],
)
def test_ipv6_extension_headers(tmp_path, chain, frag, frag_off, ports):
    tcp_seg = tcp_bytes(40000, 443, payload=b"d" * 33)
    exts = b"".join(h for _nh, h in chain)
    pkt = ipv6(C6, S6, chain[0][0], exts + tcp_seg)
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(pkt))])), 1)
    assert r["status"] == "ok"
    assert (r["ipv"], r["ip_len"]) == (6, 40 + len(exts) + len(tcp_seg))
    assert r["frag"] == frag
    assert r["frag_off"] == frag_off
    if any(nh == 44 for nh, _h in chain):
        assert r["ip_id"] == 0xABCDEF01
    if ports:
        assert (r["proto"], r["sport"], r["dport"], r["payload_len"]) == (6, 40000, 443, 33)
    else:
        assert (r["sport"], r["dport"]) == (0, 0)


def test_ipv6_extension_header_past_the_packet(tmp_path):
    pkt = ipv6(C6, S6, 0, bytes([6, 8]) + b"\x00" * 14)  # claims 72 bytes, the payload holds 16
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, pkt)], linktype=229)), 1)
    assert r["status"] == "ipv6-bad-extension"


# ----------------------------------------------------------------------------------------- TCP options
def test_tcp_options(tmp_path):
    syn_opts = pb.tcp_options(mss=1360, wscale=7, sack_perm=True, ts=(123456, 0))
    sack_opts = pb.tcp_options(ts=(2000, 1000), sack=[(5000, 6000), (7000, 8000), (9000, 9500)])
    frames = [
        seg(flags=pb.SYN, opts=syn_opts),
        seg(S, C, 443, 40000, flags=pb.SYN | pb.ACK, opts=pb.tcp_options(mss=1460)),
        seg(seq=1, opts=sack_opts),
        seg(seq=1),
    ]
    cap = read_bytes(tmp_path, pcap_bytes([(1, i, pb.ether(f)) for i, f in enumerate(frames)]))
    p = cap.packets
    assert p["mss"].tolist() == [1360, 1460, 0, 0]
    assert p["wscale"].tolist() == [7, -1, -1, -1]
    assert p["sack_perm"].tolist() == [True, False, False, False]
    assert p["has_ts"].tolist() == [True, False, True, False]
    assert p["tsval"].tolist() == [123456, 0, 2000, 0]
    assert p["tsecr"].tolist() == [0, 0, 1000, 0]
    assert p["sack_blocks"].tolist() == [0, 0, 3, 0]
    assert p["tcp_hdr_len"].tolist() == [20 + len(syn_opts), 24, 20 + len(sack_opts), 20]
    sack = cap.sack
    assert sack["row"].tolist() == [2, 2, 2]
    assert list(zip(sack["left"].tolist(), sack["right"].tolist(), strict=True)) == [
        (5000, 6000),
        (7000, 8000),
        (9000, 9500),
    ]


@pytest.mark.parametrize(
    "opts, mss, wscale, has_ts",
    [
        (b"\x02\x04\x05\x00" + b"\x03\x00\x07\x01", 1280, -1, False),  # length 0 stops the walk
        (b"\x02\x04\x05\x00" + b"\x08\x01\x00\x00", 1280, -1, False),  # length 1
        (b"\x02\x04\x05\x00" + b"\x08\x0a\x00\x00", 1280, -1, False),  # timestamps overrun the header
        (b"\x01\x01\x03\x03\x02" + b"\xfe\x28\x00" + b"\x02\x04\x05\x00", 0, 2, False),  # length 40 overrun
        (b"\x02\x03\x05" + b"\x03\x03\x02" + b"\x00\x00", 0, 2, False),  # MSS of the wrong length is ignored
        (b"\x00\x00\x00\x00" + b"\x02\x04\x05\x00", 0, -1, False),  # end of options, then nothing
        (b"\x01" * 40, 0, -1, False),  # only NOPs
        (b"\x05\x0a" + b"\x00" * 6, 0, -1, False),  # SACK too short for one block
    ],
)
def test_malformed_tcp_options_stop_the_walk(tmp_path, opts, mss, wscale, has_ts):
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(seg(flags=pb.SYN, opts=opts)))]))
    r = row(cap, 1)
    assert (r["mss"], r["wscale"], r["has_ts"], r["status"]) == (mss, wscale, has_ts, "ok")
    assert r["sack_blocks"] == 0 and len(cap.sack) == 0


def test_tcp_options_cut_by_snaplen(tmp_path):
    frame = pb.ether(seg(flags=pb.SYN, opts=pb.tcp_options(mss=1400, sack_perm=True, ts=(1, 2), wscale=9)))
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, frame[: 14 + 20 + 20 + 6], len(frame))]))
    r = row(cap, 1)
    assert (r["mss"], r["sack_perm"], r["has_ts"], r["wscale"]) == (1400, True, False, -1)
    assert r["truncated"]


# --------------------------------------------------------------------------------- UDP, ICMP, DNS, TLS
def test_udp(tmp_path):
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(pb.udp(C, S, 5000, 6000, b"u" * 77)))]))
    r = row(cap, 1)
    assert (r["proto"], r["sport"], r["dport"], r["payload_len"], r["status"]) == (17, 5000, 6000, 77, "ok")
    assert len(cap.flows) == 0


def test_icmp_frag_needed(tmp_path):
    pkt, quoted = icmp_frag_needed(1400)
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(pkt))]))
    r = row(cap, 1)
    assert (r["proto"], r["icmp_type"], r["icmp_code"], r["status"]) == (1, 3, 4, "ok")
    assert len(cap.icmp) == 1
    e = cap.icmp.iloc[0]
    assert (e["kind"], e["mtu"], e["ipv"]) == ("frag_needed", 1400, 4)
    assert (e["quoted_src"], e["quoted_dst"], e["quoted_proto"]) == (C, S, 6)
    assert (e["quoted_sport"], e["quoted_dport"], e["quoted_seq"]) == (40000, 443, 0xDEADBEEF)
    assert (e["quoted_ip_len"], bool(e["quoted_df"])) == (len(quoted), True)
    assert (e["src"], e["dst"], e["frame"]) == ("192.0.2.254", C, 1)


def test_icmpv6_packet_too_big(tmp_path):
    quoted = ipv6(C6, S6, 6, tcp_bytes(40000, 443, seq=77, payload=b"c" * 1300))
    icmp = struct.pack(">BBHI", 2, 0, 0, 1280) + quoted[:48]
    pkt = ipv6("2001:db8::fe", C6, 58, icmp)
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(pkt))]))
    e = cap.icmp.iloc[0]
    assert (e["kind"], e["mtu"], e["ipv"], e["icmp_type"]) == ("packet_too_big", 1280, 6, 2)
    assert (e["quoted_src"], e["quoted_dst"], e["quoted_proto"]) == (C6, S6, 6)
    assert (e["quoted_sport"], e["quoted_dport"], e["quoted_seq"], e["quoted_ip_len"]) == (
        40000,
        443,
        77,
        1360,
    )


def test_icmp_echo_is_not_an_error(tmp_path):
    pkt = ipv4(C, S, 1, struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"ping")
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(pkt))]))
    assert row(cap, 1)["icmp_type"] == 8 and len(cap.icmp) == 0


def test_dns_answers(tmp_path):
    query = dpkt.dns.DNS(id=0x4242, qd=[dpkt.dns.DNS.Q(name="www.example.com", type=dpkt.dns.DNS_A)])
    frames = [
        pb.udp(C, "10.0.0.53", 33333, 53, bytes(query)),
        pb.udp("10.0.0.53", C, 53, 33333, dns_response()),
    ]
    frames += pb.handshake(C, S, 40000, 443, t0=2.0)[0][1:]
    cap = read_bytes(tmp_path, pcap_bytes([(1, i, pb.ether(f)) for i, f in enumerate(frames)]))
    dns = cap.dns
    answers = dns[dns["response"].astype(bool)]
    got = sorted(
        zip(answers["answer_type"], answers["answer"], answers["ttl"], answers["answer_name"], strict=True)
    )
    assert got == [
        ("A", S, 60, "edge.example.net"),
        ("AAAA", S6, 61, "edge.example.net"),
        ("CNAME", "edge.example.net", 300, "www.example.com"),
    ]
    assert set(answers["qname"]) == {"www.example.com"} and set(answers["txid"]) == {0x4242}
    question = dns[~dns["response"].astype(bool)]
    assert len(question) == 1 and question["qtype"].iloc[0] == "A"
    assert cap.flows["name"].tolist() == ["www.example.com"]
    assert cap.flows["name_source"].tolist() == ["dns"]


def test_tls_client_hello_and_server_hello_from_corpus():
    path = CORPUS / "semantic" / "arkime__curl-enabled-tls13.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    cap = pcapmtu.read(path)
    flow = cap.flows.iloc[0]
    assert (flow["sni"], flow["tls_version"], flow["server_port"]) == ("enabled.tls13.com", "TLS1.3", 443)
    assert flow["name"] == "enabled.tls13.com"


@pytest.mark.parametrize(
    "name", ["arkime__curl-enabled-tls13.pcap", "suricata__tls-client-hello-mtu300.pcap"]
)
def test_tls_facts_agree_with_tshark(name):
    require_tool("tshark")
    path = CORPUS / "semantic" / name
    if not path.exists():
        pytest.skip("corpus not present")
    fields = ["tcp.srcport", "tcp.dstport", "tls.handshake.type", "tls.handshake.extensions_server_name",
              "tls.handshake.version", "tls.handshake.extensions.supported_version"]  # fmt: skip
    ref = tshark.fields(path, fields, "tls.handshake.type == 1 || tls.handshake.type == 2")
    hello = [r for r in ref if r["tls.handshake.type"].split(",")[0] == "1"]
    server = [r for r in ref if "2" in r["tls.handshake.type"].split(",")]
    cap = pcapmtu.read(path)
    flows = cap.flows.set_index("client_port")
    for r in hello:
        assert flows.loc[int(r["tcp.srcport"]), "sni"] == r["tls.handshake.extensions_server_name"]
    names = {0x0303: "TLS1.2", 0x0304: "TLS1.3"}
    for r in server:
        version = r["tls.handshake.extensions.supported_version"] or r["tls.handshake.version"]
        assert flows.loc[int(r["tcp.dstport"]), "tls_version"] == names[int(version.split(",")[-1], 16)]


@pytest.mark.parametrize(
    "name, kind, mtus",
    [
        ("zeek__icmp6-toobig.pcap", "packet_too_big", {1280}),
        ("suricata__filestore-5408.pcap", "frag_needed", {1500}),
        ("suricata__ipv6-atomic-fragments-toobig.pcap", "packet_too_big", None),
    ],
)
def test_corpus_icmp_errors_match_the_manifest(name, kind, mtus):
    path = CORPUS / "semantic" / name
    if not path.exists():
        pytest.skip("corpus not present")
    fact = _manifest()[f"semantic/{name}"]
    cap = pcapmtu.read(path)
    errors = cap.icmp[cap.icmp["kind"] == kind]
    count = int(fact["icmp_frag_needed" if kind == "frag_needed" else "icmpv6_ptb"])
    assert len(errors) == count
    listed = fact["frag_needed_mtus" if kind == "frag_needed" else "ptb_mtus"]
    if listed:
        assert set(errors["mtu"]) == {int(x) for x in listed.split(",")}
    if mtus:
        assert set(errors["mtu"]) == mtus
    assert (errors["status"] == "ok").all()


def test_icmp_quotes_agree_with_tshark():
    require_tool("tshark")
    path = CORPUS / "semantic" / "suricata__filestore-5408.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    fields = ["frame.number", "icmp.mtu", "tcp.srcport", "tcp.dstport", "tcp.seq"]
    ref = tshark.fields(
        path, fields, "icmp.type == 3", occurrence="l", options=["-o", "tcp.relative_sequence_numbers:FALSE"]
    )
    cap = pcapmtu.read(path)
    got = cap.icmp.set_index("frame")
    assert sorted(got.index) == [int(r["frame.number"]) for r in ref]
    for r in ref:
        e = got.loc[int(r["frame.number"])]
        assert e["mtu"] == int(r["icmp.mtu"])
        assert (e["quoted_sport"], e["quoted_dport"]) == (int(r["tcp.srcport"]), int(r["tcp.dstport"]))
        assert e["quoted_seq"] == int(r["tcp.seq"])


# -------------------------------------------------------------------------------------------- overlays
def _sixin4(inner_ip: bytes) -> bytes:
    return ipv4("192.168.1.1", "192.168.1.2", 41, inner_ip)


def _l2tp(inner_ip: bytes, *, flags: int = 0x0002, acf: bool = True, short_proto: bool = False,
          ppp_proto: int | None = None, sport: int = 1701) -> bytes:  # fmt: skip
    """L2TPv2 over UDP/1701 (RFC 2661): optional length, Ns/Nr and offset fields, then PPP."""
    body = struct.pack(">H", flags)
    if flags & 0x4000:
        body += struct.pack(">H", 0)  # length (not checked)
    body += struct.pack(">HH", 7, 9)  # tunnel and session ids
    if flags & 0x0800:
        body += struct.pack(">HH", 1, 2)  # Ns, Nr
    if flags & 0x0200:
        body += struct.pack(">H", 3) + b"\x00" * 3  # offset size and padding
    proto = ppp_proto if ppp_proto is not None else (0x57 if inner_ip[0] >> 4 == 6 else 0x21)
    ppp = (b"\xff\x03" if acf else b"") + (bytes([proto]) if short_proto else struct.pack(">H", proto))
    l2tp = body + ppp + inner_ip
    udp = struct.pack(">HHHH", sport, 1701, 8 + len(l2tp), 0) + l2tp
    return ipv4("192.168.1.1", "192.168.1.2", 17, udp)


@pytest.mark.parametrize(
    "encap, wrap, inner_v6",
    [
        ("vxlan", lambda ip: vxlan(pb.ether(ip), 4789), False),
        ("vxlan", lambda ip: vxlan(pb.ether(ip), 8472), False),
        ("vxlan", lambda ip: vxlan(pb.ether(ip, vlans=[7]), 4789), True),
        ("gre", gre, False),
        ("gre", lambda ip: gre(ip, key=True), True),
        ("ipip", _sixin4, True),
        ("ipip", lambda ip: ipv4("192.168.1.1", "192.168.1.2", 4, ip), False),
        ("l2tp", _l2tp, False),
        ("l2tp", lambda ip: _l2tp(ip, flags=0x4A02, acf=False, short_proto=True), True),
    ],
    ids=[
        "vxlan-4789",
        "vxlan-8472",
        "vxlan-vlan-v6",
        "gre",
        "gre-key-v6",
        "6in4",
        "ipip",
        "l2tp",
        "l2tp-lso-v6",
    ],
)
def test_overlays_become_inner_flows(tmp_path, encap, wrap, inner_v6):
    client, server = (C6, S6) if inner_v6 else (C, S)
    inner = [ip for _t, ip in pb.handshake(client, server, 40000, 443)]
    inner.append(pb.tcp(client, server, 40000, 443, seq=1001, ack=5001, payload=b"g" * 300))
    outer = [wrap(ip) for ip in inner]
    cap = read_bytes(tmp_path, pcap_bytes([(1, i, pb.ether(o)) for i, o in enumerate(outer)]))
    p = cap.packets
    assert p["encap"].tolist() == [encap] * 4
    assert p["outer_ip_len"].tolist() == [len(o) for o in outer]
    assert p["ip_len"].tolist() == [len(ip) for ip in inner]
    assert p["ipv"].tolist() == [6 if inner_v6 else 4] * 4
    assert p["payload_len"].tolist() == [0, 0, 0, 300]
    assert (p["status"] == "ok").all()
    assert len(cap.flows) == 1
    flow = cap.flows.iloc[0]
    assert (flow["client_ip"], flow["client_port"], flow["server_ip"], flow["server_port"]) == (
        client,
        40000,
        server,
        443,
    )
    assert (flow["mss_client"], flow["mss_server"]) == (1460, 1460)


@pytest.mark.parametrize(
    "outer",
    [
        lambda ip: _l2tp(ip, flags=0xC802),  # control message (T bit)
        lambda ip: _l2tp(ip, flags=0x0003),  # L2TPv3 header: not decoded as v2
        lambda ip: _l2tp(ip, ppp_proto=0xC021),  # PPP LCP, not IP
    ],
    ids=["control", "v3", "lcp"],
)
def test_l2tp_that_carries_no_ip_stays_udp(tmp_path, outer):
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(outer(seg())))])), 1)
    assert r["encap"] == "" and r["proto"] == 17 and r["dport"] == 1701 and r["outer_ip_len"] == 0


def test_vxlan_needs_the_i_flag(tmp_path):
    pkt = bytearray(vxlan(pb.ether(seg()), 4789))
    pkt[28] = 0  # VXLAN flags
    r = row(read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(bytes(pkt)))])), 1)
    assert r["encap"] == "" and r["dport"] == 4789 and r["outer_ip_len"] == 0


def test_dns_port_on_a_vxlan_outer_header_is_not_dns(tmp_path):
    """Only the inner packet is described: outer UDP bytes are not parsed as DNS or ICMP."""
    icmp, _quoted = icmp_frag_needed(1300)
    inner = vxlan(pb.ether(icmp), 4789, outer_sport=53)
    cap = read_bytes(tmp_path, pcap_bytes([(1, 0, pb.ether(inner))]))
    assert len(cap.dns) == 0
    assert cap.icmp["mtu"].tolist() == [1300]
    assert row(cap, 1)["encap"] == "vxlan"


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name, encap, least",
    [
        ("zeek__gre-sample.pcap", "gre", 20),
        ("ndpi__6in4tunnel.pcap", "ipip", 20),
        ("dpkt__nb6-http.pcap", "l2tp", 10),
    ],
)
def test_corpus_tunnels_agree_with_tshark(name, encap, least):
    """GRE, 6in4 and L2TP (inside PPPoE) in the corpus: rows describe the innermost IP header tshark shows,
    flows the inner TCP."""
    require_tool("tshark")
    path = CORPUS / "semantic" / name
    if not path.exists():
        pytest.skip("corpus not present")
    cap = pcapmtu.read(path)
    checked = 0
    for i, r in enumerate(oracle(path)):
        layers = r["frame.protocols"].split(":")
        ips = [t for t in layers if t in ("ip", "ipv6")]
        if len(ips) != 2 or "icmp" in layers or "icmpv6" in layers:
            continue
        mine = cap.packets.iloc[i]
        assert mine["encap"] == encap
        assert mine["outer_ip_len"] == int(first(r["ip.len"]))
        family = "ipv6" if ips[-1] == "ipv6" else "ip"
        assert (str(mine["src"]), str(mine["dst"])) == (last(r[f"{family}.src"]), last(r[f"{family}.dst"]))
        if r["tcp.srcport"]:
            assert (mine["sport"], mine["dport"]) == (
                int(last(r["tcp.srcport"])),
                int(last(r["tcp.dstport"])),
            )
        checked += 1
    assert checked >= least
    streams = {
        r["tcp.stream"] for r in oracle(path) if r["tcp.stream"] and "icmp" not in r["frame.protocols"]
    }
    assert len(cap.flows) == len(streams)


# ---------------------------------------------------------------------------------- corpus vs tshark
def epoch_ns(text: str) -> int:
    return int(Decimal(text) * 10**9)


def _manifest() -> dict[str, dict[str, str]]:
    lines = (CORPUS / "MANIFEST.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return {r[0]: dict(zip(head, r, strict=True)) for r in (line.split("\t") for line in lines[1:])}


ORACLE_FIELDS = ["frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols", "ip.src", "ip.dst", "ip.len",
                 "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
                 "tcp.stream"]  # fmt: skip
ORACLE_SEMANTIC = [
    "arkime__pppoe.pcap",
    "arkime__v6.pcap",
    "suricata__ipv6-atomic-fragments-toobig.pcap",
    "tcpdump__bigtcp-ipv4.pcap",
]
ORACLE_TUNNELS = ["zeek__gre-sample.pcap", "ndpi__6in4tunnel.pcap", "dpkt__nb6-http.pcap"]


def _oracle_files():
    files = [p for p in corpus_files("format") if not p.name.endswith(".md")]
    return files + [p for p in corpus_files("semantic") if p.name in ORACLE_SEMANTIC]


def first(value: str) -> str:
    return value.split(",")[0]


def last(value: str) -> str:
    return value.split(",")[-1]


@functools.cache
def _oracle_all() -> dict[str, list[dict[str, str]]]:
    """tshark's view of every oracle file, computed once, a few files at a time (tshark starts slowly)."""
    files = _oracle_files() + [p for p in corpus_files("semantic") if p.name in ORACLE_TUNNELS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda p: tshark.fields(p, ORACLE_FIELDS), files)
        return {str(p): r for p, r in zip(files, results, strict=True)}


def oracle(path) -> list[dict[str, str]]:
    """Every ORACLE_FIELDS value of every frame (all occurrences, comma-separated)."""
    return _oracle_all()[str(path)]


@pytest.mark.oracle
@pytest.mark.parametrize("path", _oracle_files(), ids=lambda p: p.name)
def test_corpus_agrees_with_tshark(path):
    """Packet count, per-frame time, lengths, and for single-IP frames the addresses and ports."""
    require_tool("tshark")
    ref = oracle(path)
    cap = pcapmtu.read(path)
    p = cap.packets
    assert len(p) == len(ref)
    fact = _manifest().get(f"{path.parent.name}/{path.name}")
    if fact:
        assert len(p) == int(fact["packets"])
    ts = p["ts_ns"].to_numpy()
    compared = 0
    for i, r in enumerate(ref):
        where = f"frame {i + 1}"
        if r["frame.time_epoch"]:  # simple packet blocks have no time
            theirs = epoch_ns(first(r["frame.time_epoch"]))
            assert ts[i] == (theirs if theirs < 1 << 62 else 0), where  # beyond 2116: set to 0 (warned)
        assert (p["wirelen"].iloc[i], p["caplen"].iloc[i]) == (
            int(r["frame.len"]),
            int(r["frame.cap_len"]),
        ), where
        layers = r["frame.protocols"].split(":")
        at = [k for k, t in enumerate(layers) if t in ("ip", "ipv6")]
        icmp = [k for k, t in enumerate(layers) if t in ("icmp", "icmpv6")]
        if not at or "ipcomp" in layers:
            continue
        if len(at) > 1 and not (icmp and icmp[0] < at[1]):
            continue  # a tunnel: see test_corpus_tunnels_agree_with_tshark
        v6 = layers[at[0]] == "ipv6"
        src, dst = (r["ipv6.src"], r["ipv6.dst"]) if v6 else (r["ip.src"], r["ip.dst"])
        assert (str(p["src"].iloc[i]), str(p["dst"].iloc[i])) == (first(src), first(dst)), where
        assert p["ipv"].iloc[i] == (6 if v6 else 4), where
        compared += 1
        if icmp:  # the ports tshark shows are the quoted packet's (see test_icmp_quotes_agree_with_tshark)
            continue
        for proto in ("tcp", "udp"):
            if r[f"{proto}.srcport"] and proto in layers:
                ports = (int(first(r[f"{proto}.srcport"])), int(first(r[f"{proto}.dstport"])))
                assert (p["sport"].iloc[i], p["dport"].iloc[i]) == ports, where
                break
    if any(t in ("ip", "ipv6") for r in ref for t in r["frame.protocols"].split(":")):
        assert compared > 0


def test_corpus_format_facts():
    """Facts about the corpus files that need no oracle: formats, interfaces, link types."""
    fmt = CORPUS / "format"
    if not fmt.is_dir():
        pytest.skip("corpus not present")
    cases = {
        "gopacket__pcapng-be-test008.pcapng": ("pcapng", ["EN10MB"], 4),
        "gopacket__pcapng-multisection-test201.pcapng": ("pcapng", ["NULL", "EN10MB"], 4),
        "gopacket__pcapng-tsresol-2pow-8.pcapng": ("pcapng", ["EN10MB"], 1),
        "pcapplusplus__many_interfaces-1.pcapng": ("pcapng", ["NULL", "EN10MB", "RAW"], 64),
        "pcapplusplus__nanosecs_big_endian.pcap": ("pcap-ns", ["EN10MB"], 10),
        "scapy__pfcp-pcapng-be-obsolete-pb.pcap": ("pcapng", ["RAW"], 200),
        "tcpdump__tcp-handshake-nano.pcap": ("pcap-ns", ["LINUX_SLL"], 3),
        "suricata__decode-sll2-01.pcap": ("pcap", ["LINUX_SLL2"], 5),
        "pcapplusplus__linktype_ipv4.pcap": ("pcap", ["IPV4"], 2),
        "tcpdump__LINKTYPE_IPV6.pcap": ("pcap", ["IPV6"], 1),
    }
    for name, (fmt_name, links, count) in cases.items():
        cap = pcapmtu.read(fmt / name)
        assert (cap.format, cap.link_types, len(cap.packets)) == (fmt_name, links, count), name
        assert cap.skipped_bytes == 0, name
    multi = pcapmtu.read(fmt / "gopacket__pcapng-multisection-test201.pcapng")
    assert len(multi.interfaces) == 5  # 3 sections: interface ids restart in each
    assert multi.packets["iface"].tolist() == [0, 2, 2, 4]
    tcp = pcapmtu.read(fmt / "tcpdump__tcp-handshake-nano.pcap").packets
    assert (tcp["ts_ns"] % 1000 != 0).any(), "nanosecond digits were lost"
    sll2 = pcapmtu.read(fmt / "suricata__decode-sll2-01.pcap").packets
    assert (sll2["ifindex"] >= 0).all()
    qinq = pcapmtu.read(fmt / "suricata__eve-flow-vlan-02-qinq.pcap").packets
    assert (qinq["status"] == "ok").all() and (qinq["ipv"] == 4).all()
    ts = pcapmtu.read(fmt / "tcpdump__time_2106_max.pcap").packets["ts_ns"]
    assert ts.tolist() == [4294967295 * 10**9]  # the last second an unsigned 32-bit field holds


def test_corpus_snaplen_truncation():
    path = CORPUS / "format" / "zeek__tcp-truncated-snaplen68.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    p = pcapmtu.read(path).packets
    cut = p[p["truncated"]]
    assert len(cut) > 0
    assert (cut["caplen"] < cut["wirelen"]).all()
    data = cut[cut["proto"] == 6]
    # payload length is what the IP header says, which can exceed what was captured
    assert (data["payload_len"].to_numpy() + 54 > data["caplen"].to_numpy()).any()
    assert (data["ip_len"].to_numpy() + 14 <= data["wirelen"].to_numpy()).all()  # Ethernet pads to 60
