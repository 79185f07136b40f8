"""Small valid captures and the damage done to them, for the property-based tests of test_bad_input and
test_native: a frame of every layer the reader decodes (FRAMES), pcap and pcapng files made of them (BASES), the
byte mutations hypothesis draws (`mutation`, applied by `mutate`), and the check that a switch changes nothing
in how a file reads (`assert_same_reading_without`). PCAPMTU_FUZZ_EXAMPLES sets how many examples they draw."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import strategies as st

import pcapmtu
from support import packets as pb
from support.packets import C6, S6, C, S, dns_response, gre, icmp_frag_needed, ipv6, tcp_bytes, vxlan
from support.pcapwriter import Pcapng, pcap_bytes


def _frames() -> list[tuple[int, bytes]]:
    """(linktype, frame): every layer the reader decodes, in small packets."""
    syn = pb.tcp_options(mss=1400, wscale=7, sack_perm=True, ts=(1, 0))
    sack = pb.tcp_options(ts=(5, 1), sack=[(100, 200), (300, 400)])
    tcp = [ip for _t, ip in pb.handshake(C, S, 40000, 443)]
    tcp += [
        pb.tcp(C, S, 40000, 443, seq=1001, ack=5001, payload=b"\x16\x03\x01\x00\x05hello", opts=sack),
        pb.tcp(S, C, 443, 40000, seq=5001, ack=1012, flags=pb.SYN | pb.ACK, opts=syn),
    ]
    icmp, _quoted = icmp_frag_needed(1400)
    ptb_quote = ipv6(C6, S6, 6, tcp_bytes(40000, 443, payload=b"x" * 40))
    frag = struct.pack(">BBHI", 6, 0, 0 | 1, 77)
    v6 = ipv6(C6, S6, 0, bytes([44, 0, 1, 4, 0, 0, 0, 0]) + frag + tcp_bytes(1, 2, payload=b"v6"))
    out = [(1, pb.ether(ip)) for ip in tcp]
    out += [
        (1, pb.ether(pb.udp("10.0.0.53", C, 53, 3333, dns_response()))),
        (1, pb.ether(icmp)),
        (1, pb.ether(ipv6("2001:db8::fe", C6, 58, struct.pack(">BBHI", 2, 0, 0, 1280) + ptb_quote[:48]))),
        (1, pb.ether(vxlan(pb.ether(tcp[0]), 4789))),
        (1, pb.ether(gre(tcp[1]))),
        (1, pb.ether(v6, vlans=[10, 20])),
        (113, pb.sll(tcp[2])),
        (276, pb.sll2(tcp[3], ifindex=4)),
        (101, icmp),
        (0, struct.pack("<I", 2) + tcp[0]),
    ]
    return out


FRAMES = _frames()


def _base_captures() -> list[bytes]:
    eth = [(100 + i, i, f) for i, (lt, f) in enumerate(FRAMES) if lt == 1]
    bases = [
        pcap_bytes(eth),
        pcap_bytes(eth[:6], big_endian=True, nano=True),
        pcap_bytes([(1, 0, f) for lt, f in FRAMES if lt == 113], linktype=113, version=(2, 2)),
    ]
    for big in (False, True):
        ng = Pcapng().shb(big)
        kinds = sorted({lt for lt, _f in FRAMES})
        for k, lt in enumerate(kinds):
            ng.idb(lt, [9, 6, 0x88, 3][k % 4], name=f"if{k}", snaplen=300)
        for i, (lt, f) in enumerate(FRAMES):
            ng.epb(kinds.index(lt), 10**12 + i, f)
        ng.spb(FRAMES[0][1])
        bases.append(ng.bytes())
    return bases


BASES = _base_captures()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8)),
    st.tuples(
        st.just("word"),
        st.integers(0, 1 << 20),
        st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0, 12, 16, 28, 32]),
    ),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, where, arg in ops:
        if not buf:
            break
        pos = where % len(buf)
        if op == "flip":
            buf[pos] ^= 1 << arg
        elif op == "set":
            buf[pos : pos + len(arg)] = arg
        elif op == "word":
            buf[pos : pos + 4] = struct.pack("<I" if where & 1 else ">I", arg)
        elif op == "truncate":
            del buf[pos:]
        else:
            buf[pos:pos] = arg
    return bytes(buf)


FUZZ_EXAMPLES = int(os.environ.get("PCAPMTU_FUZZ_EXAMPLES", "200"))


def outcome(path) -> tuple:
    try:
        cap = pcapmtu.read(path)
    except pcapmtu.CaptureError as exc:
        return ("error", str(exc))
    return ("read", cap.packets, cap.warnings, cap.skipped_bytes)


def assert_same_reading_without(data: bytes, *switches: tuple[object, str]) -> None:
    """Read `data` as a capture as it is, then with each (module, flag) of `switches` set to False: the
    same packets, warnings and skipped bytes, or the same error."""
    with tempfile.TemporaryDirectory(prefix="pcapmtu-fuzz-") as tmp:
        path = Path(tmp) / "mutated.pcap"
        path.write_bytes(data)
        fast = outcome(path)
        with pytest.MonkeyPatch.context() as m:
            for module, flag in switches:
                m.setattr(module, flag, False)
            plain = outcome(path)
    assert fast[0] == plain[0], (fast[:1] + fast[2:] if fast[0] == "read" else fast, plain[0])
    if fast[0] == "error":
        assert fast == plain
    else:
        pd.testing.assert_frame_equal(fast[1], plain[1])
        assert fast[2:] == plain[2:]
