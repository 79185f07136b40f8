"""The optional C core (`pcapmtu.ingest._native`) gives exactly what the numpy paths give.

C decodes the common shapes and hands every other row back to numpy, and walks pcap records. Both must
be invisible in the results: the same columns, SACK blocks and rare payloads for every packet of every
real capture, of hand-made frames of every layer, and of those frames damaged at random; the same
records, warnings and skipped bytes from every damaged file; the same fate for every data segment
(diagnose/delivery.py's searches).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapmtu import schema
from pcapmtu.errors import CaptureError
from pcapmtu.ingest import decode, formats, native, packets, rare_layers, tcp
from pcapmtu.ingest.formats import chunks, pcap
from pcapmtu.ingest.tcp import connections
from support import packets as pb
from support.damage import (
    BASES,
    FRAMES,
    FUZZ_EXAMPLES,
    assert_same_reading_without,
    mutate,
    mutation,
    outcome,
)
from support.environment import IN_CI, SAMPLES, corpus_files
from support.pcapwriter import Record, write_pcap

needs_core = pytest.mark.skipif(native.core is None, reason="the C core is not built here")
CAPTURES = sorted(SAMPLES.glob("*/*.pcap*")) + corpus_files("semantic", "format", "malformed")


def test_the_c_core_is_built_where_tests_run_in_ci():
    """CI must test the C core, not silently fall back to numpy everywhere."""
    if not IN_CI and native.core is None:
        pytest.skip("no C compiler here: the pure numpy path is what runs")
    assert native.core is not None
    assert native.ENABLED, native.describe()  # e.g. a stale build that writes other columns


@needs_core
def test_the_c_decoder_writes_the_columns_schema_describes():
    """schema.PACKETS types the decoder's columns (decode.COLUMNS); the C core describes the ones it writes
    (COLUMN_LAYOUT: name, dtype, size and signedness of its C type, in the order it writes them). Changing
    one side alone fails here, not in a silently slower read."""
    written = native.core.COLUMN_LAYOUT
    assert [name for name, *_ in written] == list(decode.COLUMNS)
    for name, dtype, itemsize, signed in written:
        documented = schema.PACKETS[name][0]
        assert np.dtype(dtype) == np.dtype("uint8" if documented == "category" else documented), name
        assert (itemsize, signed) == (np.dtype(dtype).itemsize, np.dtype(dtype).kind == "i"), name
    assert written == decode.layout()


def _open_or_skip(path: Path) -> formats.CaptureFile:
    try:
        return formats.CaptureFile.open(path)
    except CaptureError:
        pytest.skip("not a readable capture")


def _both(buf, data_off, caplen, linktype) -> tuple[decode.Decoded, decode.Decoded]:
    data_off = np.asarray(data_off, dtype=np.int64)
    caplen = np.asarray(caplen, dtype=np.int64)
    linktype = np.asarray(linktype, dtype=np.int64)
    return decode.decode_batch(buf, data_off, caplen, linktype), decode._decode_numpy(
        buf, data_off, caplen, linktype
    )


def _assert_same(fast: decode.Decoded, pure: decode.Decoded) -> None:
    for name in decode.COLUMNS:
        np.testing.assert_array_equal(fast.cols[name], pure.cols[name], err_msg=name)
        assert fast.cols[name].dtype == pure.cols[name].dtype, name
    np.testing.assert_array_equal(fast.addr, pure.addr, err_msg="addr")
    np.testing.assert_array_equal(fast.sack_rows, pure.sack_rows, err_msg="sack_rows")
    np.testing.assert_array_equal(fast.sack_left, pure.sack_left, err_msg="sack_left")
    np.testing.assert_array_equal(fast.sack_right, pure.sack_right, err_msg="sack_right")
    assert list(fast.rare_rows) == list(pure.rare_rows)
    assert list(fast.rare_bytes) == list(pure.rare_bytes)


@needs_core
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_columns_for_every_packet_of_real_captures(path: Path):
    cap = _open_or_skip(path)
    try:
        for batch in cap.batches():
            linktype = np.array([i.linktype for i in cap.interfaces], dtype=np.int64)[batch.iface]
            _assert_same(*_both(batch.buf, batch.data_off, batch.caplen, linktype))
    except CaptureError:
        pass  # damage after some batches: those were compared
    finally:
        cap.close()


def _extra_frames() -> list[tuple[int, bytes]]:
    """Shapes FRAMES leaves out: option variety, IPv6 on cooked links, overlay ports, raw IPv4/IPv6."""
    c, s, c6, s6 = "10.66.0.2", "10.66.0.3", "fd00::2", "fd00::3"
    odd_opts = bytes([1, 2, 4, 5, 180, 3, 3, 14, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0])  # ends in END
    sack4 = pb.tcp_options(sack=[(1, 2), (3, 4), (5, 6), (7, 8)])
    frames = [
        pb.tcp(c, s, 1, 2, seq=7, ack=9, payload=b"data", opts=odd_opts[:20]),
        pb.tcp(c, s, 1, 2, seq=7, ack=9, payload=b"", opts=sack4),
        pb.tcp(c6, s6, 1, 2, seq=7, ack=9, payload=b"v6 data", opts=pb.tcp_options(mss=1220)),
        pb.udp(c, s, 40000, 3544, b"\x00" * 60),  # Teredo port
        pb.udp(c, s, 1701, 1701, b"\x00\x02" + b"\x00" * 40),  # L2TP port
        pb.udp(c, s, 5353, 53, b"\x12\x34" + b"\x00" * 10),  # DNS port, short message
        pb.udp(c6, s6, 53, 5353, b"\x12\x34\x81\x80" + b"\x00" * 8),
    ]
    out = [(1, pb.ether(f)) for f in frames]
    out += [(113, pb.sll(frames[2])), (276, pb.sll2(frames[0], ifindex=0x80000001)), (228, frames[0])]
    out += [(229, frames[2]), (12, frames[1]), (14, frames[2]), (108, struct.pack(">I", 2) + frames[0])]
    out += [(1, pb.ether(frames[0], vlans=[1, 2, 3, 4]))]  # a fourth tag stays unread
    # TSO/GSO super-packets: IPv4 total length 0, IPv6 payload length 0 (lengths come from the capture)
    out += [
        (228, frames[0][:2] + b"\x00\x00" + frames[0][4:]),
        (229, frames[2][:4] + b"\x00\x00" + frames[2][6:]),
    ]
    return out


ALL_FRAMES = FRAMES + _extra_frames()


@needs_core
def test_same_columns_for_hand_made_frames_of_every_layer():
    buf = b"".join(f for _lt, f in ALL_FRAMES)
    lengths = [len(f) for _lt, f in ALL_FRAMES]
    offsets = np.cumsum([0, *lengths[:-1]])
    fast, pure = _both(np.frombuffer(buf, np.uint8), offsets, lengths, [lt for lt, _f in ALL_FRAMES])
    _assert_same(fast, pure)
    assert pure.cols["status"].max() == 0  # the frames are sound; damage comes in the next test
    assert len(pure.sack_rows) >= 6 and len(pure.rare_rows) >= 4


@needs_core
@settings(
    max_examples=FUZZ_EXAMPLES * 2,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from(range(len(ALL_FRAMES))),
            st.lists(
                st.tuples(
                    st.integers(0, 90),  # headers: where damage changes which path decodes the row
                    st.sampled_from([0, 1, 2, 4, 5, 6, 8, 10, 17, 20, 40, 47, 53, 0x45, 0x60, 0x80, 0xFF]),
                ),
                max_size=5,
            ),
            st.integers(0, 200),
            st.sampled_from([None, 0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]),
        ),
        min_size=1,
        max_size=16,
    ),
)
def test_same_columns_for_damaged_frames(frames):
    parts, linktypes, lengths = [], [], []
    for which, pokes, cut, linktype in frames:
        lt, frame = ALL_FRAMES[which]
        frame = bytearray(frame)
        for where, value in pokes:
            frame[where % len(frame)] = value
        parts.append(bytes(frame[:cut]))
        lengths.append(min(cut, len(frame)))
        linktypes.append(lt if linktype is None else linktype)
    buf = np.frombuffer(b"".join(parts) or b"\x00", np.uint8)
    offsets = np.cumsum([0, *lengths[:-1]])
    _assert_same(*_both(buf, offsets, lengths, linktypes))


OPTION = st.one_of(
    st.binary(max_size=6),  # anything, including lengths of 0 and 1 and lengths past the end
    st.sampled_from([b"\x01", b"\x00", b"\x04\x02", b"\x04\x01", b"\x03\x03\xff", b"\x02\x04\x05\xb4"]),
    st.builds(lambda v: b"\x08\x0a" + v, st.binary(min_size=8, max_size=8)),
    st.builds(
        lambda n, v: bytes([5, 2 + 8 * n]) + v[: 8 * n],
        st.integers(0, 5),
        st.binary(min_size=40, max_size=40),
    ),
)


@needs_core
@settings(max_examples=FUZZ_EXAMPLES * 2, deadline=5000, derandomize=True, database=None)
@given(options=st.lists(OPTION, max_size=12), cut=st.integers(40, 140))
def test_same_tcp_options_whatever_their_bytes(options, cut):
    """The option walk: malformed lengths end it, NOPs step, repeated options overwrite, SACK blocks."""
    opts = b"".join(options)[:40]
    opts += b"\x00" * (-len(opts) % 4)
    frame = pb.ether(pb.tcp("10.66.0.2", "10.66.0.3", 1, 2, seq=3, ack=4, payload=b"x" * 20, opts=opts))
    frame = frame[: 14 + cut]
    _assert_same(*_both(np.frombuffer(frame, np.uint8), [0], [len(frame)], [1]))


@needs_core
@settings(
    max_examples=FUZZ_EXAMPLES // 2,
    deadline=10000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(mutation, min_size=1, max_size=6))
def test_the_c_walk_reads_damaged_files_exactly_like_the_python_walk(base, ops):
    assert_same_reading_without(mutate(BASES[base], ops), (native, "ENABLED"))


@needs_core
@pytest.mark.parametrize("path", CAPTURES[:: max(1, len(CAPTURES) // 25)], ids=lambda p: p.name)
def test_whole_read_is_the_same_without_the_c_core(path: Path, monkeypatch):
    fast = outcome(path)
    monkeypatch.setattr(native, "ENABLED", False)
    pure = outcome(path)
    assert fast[0] == pure[0]
    if fast[0] == "read":
        pd.testing.assert_frame_equal(fast[1], pure[1])
        assert fast[2:] == pure[2:]


# ------------------------------------------------------------------------------ address interning
ADDRESSES = [
    (0, 0xFFFF_0A42_0002), (0, 0xFFFF_0A42_0003), (0, 0xFFFF_C612_0001), (0, 0xFFFF_0000_0000),
    (0, 1),  # ::1: high word 0 but not IPv4-mapped
    (0xFD00_0000_0000_0000, 2), (0xFD00_0000_0000_0000, 3), (0x2001_0DB8_0000_0000, 2),
    (0xFE80_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF), (1, 0),
]  # fmt: skip
BATCH = st.lists(
    st.tuples(
        st.integers(0, len(ADDRESSES) - 1), st.integers(0, len(ADDRESSES) - 1), st.booleans(), st.booleans()
    ),
    max_size=30,
)


@needs_core
@settings(max_examples=FUZZ_EXAMPLES, deadline=5000, derandomize=True, database=None)
@given(batches=st.lists(st.tuples(BATCH, st.booleans()), min_size=1, max_size=5))
def test_same_address_codes_for_any_batches(batches):
    """Codes and their order (IPv4 by first appearance, then IPv6 sorted as unsigned words), batch by
    batch, with rows that have no address and rows a lean read leaves out."""
    tables = {True: packets._AddressTable(), False: packets._AddressTable()}
    for rows, lean in batches:
        addr = np.array([[*ADDRESSES[s], *ADDRESSES[d]] for s, d, _, _ in rows], dtype=np.uint64).reshape(
            -1, 4
        )
        valid = np.array([v for _, _, v, _ in rows], dtype=bool)
        keep = np.array([k for _, _, _, k in rows], dtype=bool) if lean else None
        for side in (0, 2):
            got = {}
            for native_on, table in tables.items():
                with pytest.MonkeyPatch.context() as m:
                    m.setattr(native, "ENABLED", native_on)
                    got[native_on] = table.intern(addr, side, keep, valid)
            np.testing.assert_array_equal(got[True], got[False])
            assert got[True].dtype == got[False].dtype == np.int32
    assert tables[True].names == tables[False].names


@needs_core
def test_same_codes_for_thousands_of_distinct_addresses_and_tuples():
    """Enough distinct keys that the C hash tables grow several times (addresses from 64 slots, 5-tuples
    from 1024): the codes and their order stay those of the numpy paths."""
    rng = np.random.default_rng(7)
    n = 40_000
    v6 = rng.random(n) < 0.3
    hi = np.where(v6, np.uint64(0xFD00_0000_0000_0000) | rng.integers(0, 50, n).astype(np.uint64), 0)
    lo = np.where(v6, rng.integers(0, 2000, n), 0xFFFF_0000_0000 | rng.integers(0, 4000, n)).astype(np.uint64)
    other = rng.permutation(n)  # destinations: the same addresses in another order
    addr = np.stack([hi, lo, hi[other], lo[other]], axis=1).astype(np.uint64)
    valid = rng.random(n) < 0.97
    keep = rng.random(n) < 0.9
    tables = {True: packets._AddressTable(), False: packets._AddressTable()}
    for native_on, table in tables.items():
        with pytest.MonkeyPatch.context() as m:
            m.setattr(native, "ENABLED", native_on)
            got = [table.intern(addr, side, k, valid) for side in (0, 2) for k in (None, keep)]
        tables[native_on] = (table.names, got)
    assert tables[True][0] == tables[False][0] and len(tables[True][0]) > 5000
    for fast, pure in zip(tables[True][1], tables[False][1], strict=True):
        np.testing.assert_array_equal(fast, pure)

    names = pd.Index([f"a{i}" for i in range(3000)])
    pool = rng.integers(0, 6000, n)  # each of ~6000 tuples seen several times, in both directions
    src, dst = rng.integers(-1, 3000, 6000)[pool], rng.integers(-1, 3000, 6000)[pool]
    sport, dport = rng.integers(0, 65536, 6000)[pool], rng.choice([80, 443, 53], 6000)[pool]
    turn = rng.random(n) < 0.5
    frame = pd.DataFrame(
        {
            "src": pd.Categorical.from_codes(np.where(turn, dst, src), categories=names),
            "dst": pd.Categorical.from_codes(np.where(turn, src, dst), categories=names),
            "sport": np.where(turn, dport, sport).astype(np.uint16),
            "dport": np.where(turn, sport, dport).astype(np.uint16),
        }
    )
    rows = np.flatnonzero(rng.random(n) < 0.8).astype(np.int32)
    fast = connections.tuple_ids(frame, rows, 1 << 16)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", False)
        pure = connections.tuple_ids(frame, rows, 4096)
    np.testing.assert_array_equal(fast[0], pure[0])
    np.testing.assert_array_equal(fast[1], pure[1])
    assert 5000 < fast[1].max() < 6000


@needs_core
def test_address_interning_refuses_arrays_that_do_not_match():
    addr = np.zeros((3, 4), dtype=np.uint64)
    valid = np.ones(3, dtype=np.uint8)
    for args in [
        (addr, 0, b"", valid, np.empty(2, np.int32)),  # fewer codes than rows
        (addr, 0, b"", valid, np.empty(4, np.int32)),  # more codes than rows
        (addr, 1, b"", valid, np.empty(3, np.int32)),  # a side that is not 0 or 2
        (addr, 0, b"\x01", valid, np.empty(3, np.int32)),  # keep of the wrong length
        (addr[:2], 0, b"", valid, np.empty(3, np.int32)),
    ]:
        with pytest.raises(ValueError):
            native.core.factorize_addresses(*args)


# ------------------------------------------------------------------------------ TCP segment analysis
def _assert_same_reconstruction(raw: packets.RawTables, cfg: tcp.TcpConfig | None = None) -> pd.DataFrame:
    fast_cols, fast_flows = tcp.reconstruct(raw.packets.copy(), raw.sack, cfg)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", False)
        pure_cols, pure_flows = tcp.reconstruct(raw.packets.copy(), raw.sack, cfg)
    assert fast_cols.keys() == pure_cols.keys()
    for name in pure_cols:
        np.testing.assert_array_equal(fast_cols[name], pure_cols[name], err_msg=name)
        assert fast_cols[name].dtype == pure_cols[name].dtype, name
    pd.testing.assert_frame_equal(fast_flows, pure_flows)
    return pure_flows


@needs_core
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_tcp_analysis_on_real_captures(path: Path):
    cap = _open_or_skip(path)
    try:
        raw = packets.build_packets(cap)
    except CaptureError:
        pytest.skip("not a readable capture")
    finally:
        cap.close()
    _assert_same_reconstruction(raw)
    _assert_same_reconstruction(raw, tcp.TcpConfig(slice_rows=64, block_rows=50))  # many slices


SEGMENT = st.tuples(
    st.integers(0, 2),  # which of three connections (two share a 5-tuple, so SYNs split them)
    st.booleans(),  # from the client
    st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x19, 0x00, 0x03]),  # flags
    st.one_of(st.integers(-3, 3000), st.sampled_from([-(1 << 31), 1 << 31, (1 << 32) - 5])),  # seq offset
    st.one_of(st.integers(-3, 3000), st.just(0)),  # ack offset
    st.sampled_from([0, 0, 1, 2, 10, 100, 1448]),  # payload bytes
    st.sampled_from([0, 1, 512, 65535]),  # window
    st.sampled_from([0, 1_000, 500_000, 2_000_000, 4_000_000, 30_000_000, 300_000_000]),  # ns after the last
)


@needs_core
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=10000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(segments=st.lists(SEGMENT, min_size=1, max_size=40), isn=st.sampled_from([0, 7, (1 << 32) - 100]))
def test_same_tcp_analysis_for_any_sequence_of_segments(segments, isn, tmp_path_factory):
    """Retransmissions, out-of-order, duplicate ACKs, keep-alives, zero windows, wraparound, reused tuples."""
    ends = [("10.66.0.2", 40000, "10.66.0.3", 443), ("10.66.0.2", 40000, "10.66.0.3", 443),
            ("fd00::2", 50000, "fd00::3", 80)]  # fmt: skip
    records, t = [], 1_000_000_000
    for conn, from_client, flags, seq_off, ack_off, size, win, gap in segments:
        cip, cport, sip, sport = ends[conn]
        base_c, base_s = isn + 1000 * conn, isn + 777_000 + 1000 * conn
        mine, theirs = (base_c, base_s) if from_client else (base_s, base_c)
        src, sp, dst, dp = (cip, cport, sip, sport) if from_client else (sip, sport, cip, cport)
        ip = pb.tcp(src, dst, sp, dp, seq=mine + seq_off, ack=theirs + ack_off, flags=flags, payload=b"x" * size,
                    win=win, ip_id=len(records))  # fmt: skip
        t += gap
        records.append(Record(t / 1e9, pb.ether(ip)))
    path = tmp_path_factory.mktemp("tcp") / "segments.pcap"
    write_pcap(path, records, nano=True)
    cap = formats.CaptureFile.open(path)
    try:
        raw = packets.build_packets(cap)
    finally:
        cap.close()
    _assert_same_reconstruction(raw)


@needs_core
@pytest.mark.parametrize("big", [False, True])
def test_the_c_walk_stops_at_an_absurd_length_like_the_python_walk(big, monkeypatch):
    """A record claiming more than MAX_RECORD bytes that still fits the chunk: the Python walks trim their
    list there afterwards, the C walk stops there; both then report it."""
    order = ">" if big else "<"
    records = b"".join(struct.pack(order + "IIII", 1, 0, n, n) + b"x" * n for n in (10, 20, 300, 5, 7))
    caplen_at = struct.Struct(order + "I").unpack_from if big else pcap._LITTLE_U32
    monkeypatch.setattr(chunks, "MAX_RECORD", 100)
    fast = pcap._walk_pcap(memoryview(records), caplen_at, 16)
    monkeypatch.setattr(native, "ENABLED", False)
    pure = pcap._walk_pcap(memoryview(records), caplen_at, 16)
    assert list(fast[0]) == list(pure[0]) == [0, 26] and fast[1:3] == pure[1:3]
    assert fast[1] == 62 and "absurd captured length (300 bytes)" in fast[2]
    assert list(np.frombuffer(fast[3], dtype=np.int64)) == [1, 0, 10, 10, 1, 0, 20, 20] and pure[3] is None


# ------------------------------------------------------------------------------------------ DNS messages
# The C core's dns_rows decodes the common message shapes and returns None for every other message, which
# rare_layers then decodes with dpkt. When it returns rows they must be exactly _dns_rows' (dpkt's) rows:
# values and types. Messages are written here byte by byte (dpkt's writer cannot make pointers of our
# choosing, odd labels or wrong lengths).
def _name(labels: list[bytes], out: bytearray, seen: dict[bytes, int], compress: bool) -> bytes:
    """The wire form of a name written at len(out): labels, then a pointer to an earlier copy of the rest."""
    wire = b""
    for i in range(len(labels)):
        rest = b".".join(labels[i:]).lower() + b"/%d" % (len(labels) - i)
        if compress and rest in seen:
            return wire + struct.pack(">H", 0xC000 | seen[rest])
        if len(out) + len(wire) < 0x3FFF:
            seen.setdefault(rest, len(out) + len(wire))
        wire += bytes([len(labels[i])]) + labels[i]
    return wire + b"\x00"


def _rdata(kind: int, value, out: bytearray, seen: dict, compress: bool) -> bytes:
    """rdata written at len(out): an address, a name (CNAME, NS, PTR), MX, SRV, SOA, TXT, or raw bytes."""
    if kind in (2, 5, 12):
        return _name(value, out, seen, compress)
    if kind in (15, 33):
        head = b"\x00\x0a" if kind == 15 else b"\x00\x01\x00\x02\x01\xbb"
        return head + _name(value, out + head, seen, compress)
    if kind == 6:
        first = _name(value, out, seen, compress)
        second = _name([b"hostmaster", *value], out + first, seen, compress)
        return first + second + struct.pack(">5I", 1, 2, 3, 4, 5)
    return value


def dns_message(txid: int, flags: int, question, sections, *, compress=True, counts=None) -> bytes:
    """A DNS message: `question` (labels, qtype) or None; `sections` three lists of records
    (owner labels, type, ttl, value, rdlen change)."""
    records = [rr for section in sections for rr in section]
    real = (int(question is not None), *(len(s) for s in sections))
    out = bytearray(struct.pack(">6H", txid, flags, *(counts or real)))
    seen: dict[bytes, int] = {}
    if question is not None:
        out += _name(question[0], out, seen, compress) + struct.pack(">HH", question[1], 1)
    for owner, kind, ttl, value, change in records:
        out += _name(owner, out, seen, compress)
        at = len(out) + 10
        rdata = _rdata(kind, value, out + bytes(10), seen, compress)
        out += struct.pack(">HHIH", kind, 1, ttl, max(0, len(rdata) + change)) + rdata
        assert at + len(rdata) == len(out)
    return bytes(out)


def _assert_same_dns_rows(message: bytes) -> list | None:
    """dns_rows gives None or exactly _dns_rows' rows (values and their types); rare_layers' C path (the
    columns of dns_columns, with dpkt for what dns_rows hands back) gives _dns_rows' rows always, here behind a
    UDP header and beside a message that needs dpkt. Returns what dns_rows returned."""
    fast = native.core.dns_rows(message)
    pure = rare_layers._dns_rows(message)
    if fast is not None:
        assert fast == pure
        assert [[type(v) for v in row] for row in fast] == [[type(v) for v in row] for row in pure]
    rare = [(0, b"\x00" * 8 + message), (1, b"udp hdr" + b"\xff")]
    first = np.array([0, 1, 0], dtype=np.int64)
    counts, columns = rare_layers._dns_columns_c(rare, first)
    pure_counts, pure_columns = rare_layers._dns_columns(rare, first)
    assert counts.tolist() == pure_counts.tolist() == [len(pure), 1, len(pure)]
    assert [list(c) for c in columns] == [list(c) for c in pure_columns]
    assert [type(v) for c in columns[2:8] + columns[9:] for v in c] == [
        type(v) for c in pure_columns[2:8] + pure_columns[9:] for v in c
    ]
    return fast


WWW, EDGE = [b"www", b"example", b"com"], [b"edge", b"example", b"net"]
A_S = (EDGE, 1, 60, socket.inet_aton("198.18.0.10"), 0)
AAAA_S = (EDGE, 28, 61, socket.inet_pton(socket.AF_INET6, "fd00::10"), 0)
SOA = ([b"example", b"com"], 6, 3600, [b"ns1", b"example", b"com"], 0)
OPT = ([], 41, 0x8000, b"", 0)
RESPONSE, QUERY, NXDOMAIN = 0x8180, 0x0100, 0x8183
DNS_FAST = {  # messages the C core decodes itself
    "cname A AAAA": dns_message(7, RESPONSE, (WWW, 1), [[(WWW, 5, 300, EDGE, 0), A_S, AAAA_S], [], [OPT]]),
    "uncompressed": dns_message(7, RESPONSE, (WWW, 28), [[(WWW, 5, 300, EDGE, 0), AAAA_S], [], []], compress=False),
    "query": dns_message(9, QUERY, (WWW, 1), [[], [], [OPT]]),
    "NXDOMAIN with SOA": dns_message(10, NXDOMAIN, ([b"nope", *WWW], 28), [[], [SOA], [OPT]]),
    "NODATA": dns_message(11, RESPONSE, (WWW, 28), [[], [SOA], []]),
    "odd rcode and qtype": dns_message(12, 0x818B, (WWW, 65), [[], [], []]),
    "MX SRV TXT PTR NS": dns_message(13, RESPONSE, (WWW, 15), [
        [(WWW, 15, 5, EDGE, 0), (WWW, 33, 5, EDGE, 0), (WWW, 16, 5, b"\x03abc\x00\x02de", 0)],
        [(WWW, 2, 5, EDGE, 0)], [(WWW, 12, 5, EDGE, 0), (WWW, 10, 5, b"\x01\x02", 0)]]),
    "root name, no question": dns_message(14, RESPONSE, None, [[([], 1, 1, b"\x01\x02\x03\x04", 0)], [], []]),
    "dots, case, NUL and control bytes in labels": dns_message(
        15, RESPONSE, ([b"a.b", b"WwW", b"x\x00y\x7f", b"\t"], 1),
        [[([b"a.b", b"WwW", b"x\x00y\x7f", b"\t"], 5, 2**32 - 1, [b"C.", b"d"], 0)], [], []]),
    "answers in a query are not read": dns_message(16, QUERY, (WWW, 1), [[A_S], [], []]),
    "A in the authority section only": dns_message(17, RESPONSE, (WWW, 1), [[], [A_S], []]),
}  # fmt: skip
_loop = bytearray(DNS_FAST["query"])
_loop[12:14] = b"\xc0\x0c"  # the question's name points at itself
_forward = bytearray(DNS_FAST["query"])
_forward[12:14] = b"\xc0\x20"
_long = [b"x" * 63] * 4  # 256 bytes of labels: dpkt's limit is 255
DNS_FALLBACK = {  # messages the C core hands to dpkt
    "pointer loop": bytes(_loop),
    "forward pointer": bytes(_forward),
    "pointer past the end": DNS_FAST["query"][:12] + b"\xc3\xff",
    "truncated": DNS_FAST["cname A AAAA"][:-20],
    "header only": DNS_FAST["query"][:12],
    "short header": b"\x00\x07\x81",
    "huge counts": struct.pack(">6H", 1, RESPONSE, 65535, 65535, 65535, 65535) + b"\x00" * 40,
    "name over 255 bytes": dns_message(18, RESPONSE, (_long, 1), [[], [], []]),
    "label type 0x40": DNS_FAST["query"][:12] + b"\x41\x00\x00\x01\x00\x01",
    "non-ASCII label": dns_message(19, RESPONSE, (["é".encode(), b"com"], 1), [[A_S], [], []]),
    "bytes that are not UTF-8": dns_message(19, RESPONSE, ([b"\xff", b"com"], 1), [[A_S], [], []]),
    "A of 5 bytes": dns_message(20, RESPONSE, (WWW, 1), [[(EDGE, 1, 1, b"\x01\x02\x03\x04\x05", 0)], [], []]),
    "AAAA of 4 bytes": dns_message(20, RESPONSE, (WWW, 28), [[(EDGE, 28, 1, b"\x01\x02\x03\x04", 0)], [], []]),
    "CNAME rdlen too long": dns_message(21, RESPONSE, (WWW, 1), [[(WWW, 5, 300, EDGE, 2), A_S], [], []]),
    "CNAME rdlen too short": dns_message(21, RESPONSE, (WWW, 1), [[(WWW, 5, 300, EDGE, -3), A_S], [], []]),
    "CNAME rdlen past the end": dns_message(21, RESPONSE, (WWW, 1), [[(WWW, 5, 300, EDGE, 2)], [], []]),
    "HTTPS answer": dns_message(22, RESPONSE, (WWW, 65), [[(WWW, 65, 300, b"\x00\x01\x00", 0)], [], []]),
    "MX of 1 byte": dns_message(24, RESPONSE, (WWW, 15), [[(WWW, 15, 5, [], -2)], [], []]),
    "TXT overrun": dns_message(23, RESPONSE, (WWW, 16), [[(WWW, 16, 300, b"\x09ab", 0)], [], []]),
}  # fmt: skip


@needs_core
@pytest.mark.parametrize("message", DNS_FAST.values(), ids=DNS_FAST.keys())
def test_the_c_core_decodes_common_dns_messages_exactly_like_dpkt(message):
    assert _assert_same_dns_rows(message) is not None


@needs_core
@pytest.mark.parametrize("message", DNS_FALLBACK.values(), ids=DNS_FALLBACK.keys())
def test_the_c_core_hands_unusual_dns_messages_to_dpkt(message):
    assert _assert_same_dns_rows(message) is None


def test_dns_fallback_examples_are_what_dpkt_makes_of_them():
    """The hostile examples are what they say: dpkt finds them malformed, or drops the odd answer."""
    rows = {name: rare_layers._dns_rows(m) for name, m in DNS_FALLBACK.items()}
    for name in ("pointer loop", "forward pointer", "pointer past the end", "truncated", "short header",
                 "huge counts", "name over 255 bytes", "label type 0x40", "bytes that are not UTF-8",
                 "HTTPS answer", "CNAME rdlen too long", "CNAME rdlen too short", "MX of 1 byte"):  # fmt: skip
        assert [r[-1] for r in rows[name]] == ["malformed"], name
    assert rows["non-ASCII label"][0][3] == "é.com"
    assert rows["A of 5 bytes"] == [(20, True, "NOERROR", "www.example.com", "A", "", "", "", -1, "ok")]
    assert [r[7] for r in rows["CNAME rdlen past the end"]] == ["edge.example.net"]  # dpkt reads the name


LABEL = st.one_of(
    st.binary(min_size=1, max_size=12).map(lambda b: bytes(0x61 + x % 26 for x in b)),  # plain
    st.sampled_from([b"svc", b"cluster", b"local", b"default", b"x-y", b"A1", b"ns1"]),  # shared suffixes
    st.binary(min_size=1, max_size=63),  # any bytes: dots, NULs, non-ASCII, not UTF-8
    st.just(b"y" * 63),
)
NAME = st.lists(LABEL, max_size=6)
RECORD = st.one_of(
    st.tuples(NAME, st.just(1), st.integers(0, 2**32 - 1), st.binary(min_size=4, max_size=4), st.just(0)),
    st.tuples(NAME, st.just(28), st.integers(0, 2**32 - 1), st.binary(min_size=16, max_size=16), st.just(0)),
    st.tuples(NAME, st.sampled_from([5, 5, 2, 12, 15, 33, 6]), st.integers(0, 2**32 - 1), NAME, st.just(0)),
    st.tuples(NAME, st.sampled_from([16, 13, 10, 41, 65, 46, 0]), st.integers(0, 2**32 - 1), st.binary(max_size=20),
              st.just(0)),
    st.tuples(NAME, st.sampled_from([1, 28]), st.integers(0, 2**32 - 1), st.binary(max_size=20),
              st.integers(-3, 3)),  # wrong lengths
    st.tuples(NAME, st.sampled_from([5, 15]), st.integers(0, 2**32 - 1), NAME, st.integers(-3, 3)),
)  # fmt: skip
DNS_MESSAGE = st.builds(
    dns_message,
    st.integers(0, 0xFFFF),
    st.sampled_from([RESPONSE, QUERY, NXDOMAIN, 0x8182, 0x8385, 0x818F, 0x8580]) | st.integers(0, 0xFFFF),
    st.none() | st.tuples(NAME, st.sampled_from([1, 28, 5, 65, 12, 255]) | st.integers(0, 0xFFFF)),
    st.tuples(st.lists(RECORD, max_size=6), st.lists(RECORD, max_size=2), st.lists(RECORD, max_size=2)),
    compress=st.booleans(),
    counts=st.none() | st.tuples(*[st.sampled_from([0, 1, 2, 3, 255, 65535])] * 4),
)
DAMAGE = st.lists(
    st.tuples(st.sampled_from(["cut", "byte", "pointer"]), st.integers(0, 600), st.integers(0, 0x3FFF)),
    max_size=3,
)


def _damage(message: bytes, damage) -> bytes:
    out = bytearray(message)
    for op, at, value in damage:
        at = at % (len(out) + 1)
        if op == "cut":
            del out[at:]
        elif op == "byte" and at < len(out):
            out[at] = value & 0xFF
        elif op == "pointer":
            out[at : at + 2] = struct.pack(">H", 0xC000 | value % (len(out) + 8))
    return bytes(out)


@needs_core
@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES * 5, deadline=5000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(message=DNS_MESSAGE, damage=DAMAGE, noise=st.binary(max_size=80))
def test_same_dns_rows_for_any_message(message, damage, noise):
    """Valid messages (random names and labels, A/AAAA/CNAME chains and every other record type dpkt knows
    or does not, compression or none, any rcode), the same with wrong counts, wrong rdata lengths, cut,
    overwritten or given pointers anywhere; and random bytes."""
    _assert_same_dns_rows(message)
    _assert_same_dns_rows(_damage(message, damage))
    _assert_same_dns_rows(noise)
    _assert_same_dns_rows(message[:2] + noise)


@needs_core
@settings(max_examples=FUZZ_EXAMPLES, deadline=5000, derandomize=True, database=None)
@given(question=st.tuples(st.lists(LABEL.filter(lambda b: max(b) < 0x80), max_size=4), st.sampled_from([1, 28])),
       chain=st.lists(st.lists(LABEL.filter(lambda b: max(b) < 0x80), min_size=1, max_size=3), max_size=4),
       addresses=st.lists(st.sampled_from([1, 28]), max_size=3), rcode=st.sampled_from([RESPONSE, NXDOMAIN]))  # fmt: skip
@pytest.mark.fuzz
def test_clean_cname_chains_never_fall_back(question, chain, addresses, rcode):
    """A clean CNAME chain with its addresses (ASCII names, lengths right) is decoded by the C core."""
    names = [question[0], *chain]
    answers = [(names[i], 5, 30 + i, names[i + 1], 0) for i in range(len(chain))]
    addr = {1: b"\xc6\x12\x00\x01", 28: bytes(15) + b"\x01"}
    answers += [(names[-1], kind, 60, addr[kind], 0) for kind in addresses]
    message = dns_message(1, rcode, question, [answers, [], [OPT]])
    if sum(len(label) + 1 for name in names for label in name) > 255 * len(names):
        return
    fast = _assert_same_dns_rows(message)
    long = any(sum(len(label) + 1 for label in name) > 255 for name in names)
    assert (fast is None) == long


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_dns_table_with_and_without_the_c_core(path: Path, monkeypatch):
    """The DNS table of every capture, from the same packets: the C core's dns_rows on, then off (dpkt)."""
    cap = _open_or_skip(path)
    try:
        raw = packets.build_packets(cap, keep_packets=False)
    except CaptureError:
        pytest.skip("not a readable capture")
    finally:
        cap.close()
    fast = rare_layers.dns_table(raw.packets, raw.rare)
    monkeypatch.setattr(native, "ENABLED", False)
    pure = rare_layers.dns_table(raw.packets, raw.rare)
    pd.testing.assert_frame_equal(fast, pure)


# dns_index numbers the UDP DNS messages by distinct bytes after the transaction id, as _dns_index does with
# pandas.factorize: the same rows, transaction ids, kinds (by first sight) and first positions, also for
# payloads too short to hold a header or a transaction id, and for many messages that differ in one byte.
def _assert_same_dns_index(rare: list[tuple[int, bytes]], udp: list[bool]) -> None:
    rows = np.array([row for row, _ in rare], dtype=np.int64)
    is_udp = np.array(udp, dtype=bool)
    pure = rare_layers._dns_index(rare, rows, is_udp)
    fast = rare_layers._dns_index_c(rare, rows, is_udp)
    for name, a, b in zip(("rows", "txid", "kinds", "first"), pure, fast, strict=True):
        np.testing.assert_array_equal(a.astype(np.int64), b, err_msg=name)


@needs_core
def test_dns_columns_refuses_what_is_not_its_contract():
    """Bad positions, a fallback that returns no list or rows that are not 10-tuples, and a fallback that
    raises: an exception, never a crash or a half-filled table."""
    query = b"\x00" * 8 + dns_message(9, QUERY, (WWW, 1), [[], [], [OPT]])
    odd = b"\x00" * 8 + b"\xff" * 5  # too short for dns_rows: the fallback decides
    first = np.array([0, 1], dtype=np.int64).tobytes()
    with pytest.raises(ValueError):
        native.core.dns_columns([(0, query)], first, rare_layers._dns_rows)  # position 1 is not there
    with pytest.raises(ValueError):
        native.core.dns_columns([(0, query)], np.array([-1], dtype=np.int64).tobytes(), rare_layers._dns_rows)
    with pytest.raises(TypeError):
        native.core.dns_columns([(0, query), (1, odd)], first, lambda message: "rows")
    with pytest.raises(TypeError):
        native.core.dns_columns([(0, query), (1, odd)], first, lambda message: [(1, 2)])

    def fails(message: bytes) -> list:
        raise RuntimeError("dpkt failed")

    with pytest.raises(RuntimeError, match="dpkt failed"):
        native.core.dns_columns([(0, query), (1, odd)], first, fails)
    counts, *_ = native.core.dns_columns([(0, query), (1, odd)], first, rare_layers._dns_rows)
    assert np.frombuffer(counts, dtype=np.int64).tolist() == [1, 1]


@needs_core
def test_dns_index_examples():
    header = b"\x00\x35\x9c\x40\x00\x20\x00\x00"  # a UDP header: 8 bytes the message starts after
    same = b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"
    rare = [
        (3, header + b"\x12\x34" + same),
        (5, header + b"\x43\x21" + same),  # the same message, another transaction id: one kind
        (6, header[:5]),  # shorter than a UDP header
        (7, header + b"\x99"),  # one byte: no transaction id
        (8, header + b"\x12\x34"),  # a transaction id and nothing else: the same (empty) key as the two above
        (9, header + b"\x12\x34" + same[:-1] + b"\x1c"),  # one byte differs: another kind
        (11, header + b"\x12\x34" + same),  # an ICMP payload, not UDP: left out
    ]
    udp = [True] * 6 + [False]
    _assert_same_dns_index(rare, udp)
    rows, txid, kinds, first = rare_layers._dns_index_c(rare, np.array([r for r, _ in rare]), np.array(udp))
    assert rows.tolist() == [3, 5, 6, 7, 8, 9]
    assert txid.tolist() == [0x1234, 0x4321, -1, -1, 0x1234, 0x1234]
    assert kinds.tolist() == [0, 0, 1, 1, 1, 2]
    assert first.tolist() == [0, 2, 5]
    _assert_same_dns_index([], [])
    with pytest.raises(ValueError):
        native.core.dns_index(rare, bytes(3))  # one flag per item


@needs_core
@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, deadline=5000, derandomize=True, database=None)
@given(payloads=st.lists(st.tuples(st.binary(max_size=24), st.booleans()), max_size=60),
       repeats=st.lists(st.integers(0, 59), max_size=40))  # fmt: skip
def test_dns_index_is_pandas_factorize(payloads, repeats):
    """Random payloads, some repeated (short ones collide often), UDP or not."""
    items = payloads + [payloads[i % len(payloads)] for i in repeats] if payloads else []
    rare = [(row * 2, data) for row, (data, _udp) in enumerate(items)]
    _assert_same_dns_index(rare, [udp for _data, udp in items])


# ---------------------------------------------------------------------------- delivery's searches in C
def _fates_both_ways(pkts: pd.DataFrame, sack: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from pcapmtu.diagnose import delivery

    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", True)
        in_c = delivery.segment_fate(pkts, sack)
        m.setattr(native, "ENABLED", False)
        in_numpy = delivery.segment_fate(pkts, sack)
    return in_c, in_numpy


@needs_core
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_segment_fates_on_real_captures(path: Path):
    """delivery.segment_fate (delivered, lost, unresolved per data segment) with its three searches in C."""
    import pcapmtu

    try:
        cap = pcapmtu.read(path)
    except CaptureError:
        pytest.skip("not a readable capture")
    in_c, in_numpy = _fates_both_ways(cap.packets, cap.sack)
    np.testing.assert_array_equal(in_c, in_numpy)


def test_the_fate_examples_decide_something():
    """Sample captures with segments of each fate: the comparison above compares decisions, not zeros."""
    import pcapmtu
    from pcapmtu.diagnose import delivery

    for path in (
        SAMPLES / "blackhole_upload" / "container.pcap",
        SAMPLES / "blackhole_tls13" / "server.pcap",
    ):
        cap = pcapmtu.read(path)
        fate = delivery.segment_fate(cap.packets, cap.sack)
        assert (fate == 1).any() and (fate == -1).any(), path


FIVE = 5  # sequence numbers on a grid of 5 bytes: ranges, ACKs and SACK edges meet exactly, often


def _on_grid(low: int, high: int):
    return st.integers(low, high).map(lambda k: FIVE * k)


FATE_PACKET = st.tuples(
    st.sampled_from([-1, 0, 0, 1, 3]),  # connection (2 has no packets; -1 is not TCP)
    st.integers(0, 1),  # direction
    st.sampled_from([0x10, 0x10, 0x18, 0x02, 0x00, 0x11]),  # flags
    _on_grid(-1, 40),  # rel_seq
    st.sampled_from([0, 0, 1, 5, 5, 10, 20]),  # payload bytes
    _on_grid(-2, 30),  # rel_ack: often short of the data, so that SACK blocks decide
    st.integers(0, 6),  # ns after the previous packet (ties included)
    st.sampled_from([False, False, False, True]),  # an interface copy (-i any), now and then
    st.lists(st.tuples(_on_grid(-2, 42), _on_grid(0, 6)), max_size=3),  # SACK blocks (left, length)
)


@needs_core
@settings(max_examples=FUZZ_EXAMPLES * 3, deadline=5000, derandomize=True, database=None)
@given(rows=st.lists(FATE_PACKET, max_size=60), raw_base=st.sampled_from([0, 1000, (1 << 32) - 20]))
def test_same_segment_fates_for_any_packets(rows, raw_base):
    """Overlapping and re-sent ranges, ACKs and SACK blocks in any order and with tied times, connections
    without packets, interface copies: the C searches decide every segment as numpy does."""
    ts, pkts, blocks = 0, [], []
    for i, (conn, d, flags, seq, size, ack, gap, copy, sacks) in enumerate(rows):
        ts += gap
        raw_ack = (raw_base + ack) % (1 << 32)
        pkts.append((conn, d, flags, seq, size, ack, ts, copy, raw_ack))
        for left, length in sacks:
            blocks.append((i, (raw_base + left) % (1 << 32), (raw_base + left + length) % (1 << 32)))
    names = ["conn", "dir", "tcp_flags", "rel_seq", "payload_len", "rel_ack", "ts_ns", "dup_copy", "ack"]
    frame = pd.DataFrame(pkts, columns=names).astype(
        {"conn": "int32", "dir": "int8", "tcp_flags": "uint16", "rel_seq": "int64", "payload_len": "int32",
         "rel_ack": "int64", "ts_ns": "int64", "dup_copy": bool, "ack": "uint32"}
    )  # fmt: skip
    sack = pd.DataFrame(blocks, columns=["row", "left", "right"]).astype(
        {"row": "int64", "left": "uint32", "right": "uint32"}
    )
    in_c, in_numpy = _fates_both_ways(frame, sack)
    np.testing.assert_array_equal(in_c, in_numpy)


def _two_packet_table(rows: list[tuple], blocks: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(dir, flags, rel_seq, payload, rel_ack, ts) rows of connection 0, raw numbers = relative + 1000."""
    names = ["dir", "tcp_flags", "rel_seq", "payload_len", "rel_ack", "ts_ns"]
    frame = pd.DataFrame(rows, columns=names)
    frame["conn"], frame["dup_copy"], frame["ack"] = 0, False, (frame["rel_ack"] + 1000).astype("uint32")
    sack = pd.DataFrame(
        [(r, left + 1000, right + 1000) for r, left, right in blocks], columns=["row", "left", "right"]
    ).astype({"row": "int64", "left": "uint32", "right": "uint32"})
    return frame, sack


DATA, ACK = (0, 0x18), (1, 0x10)
FATE_EDGES = {  # the first segment's fate, at each edge of the rules
    "ACK reaches the end": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, 5, 1)], [], 1),
    "ACK one byte short": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, 4, 1)], [], 0),
    "SACK block exactly the segment": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, -5, 1)], [(1, 0, 5)], 1),
    "SACK block one byte short": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, -5, 1)], [(1, 0, 4)], 0),
    "two SACK blocks that only join up": (
        [(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, -5, 1)],
        [(1, -3, 2), (1, 2, 5)],
        0,
    ),
    "a SACK block from before it": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, -5, 1)], [(1, -3, 2), (1, -1, 5)], 1),
    "SACK block starting one byte late": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, -5, 1)], [(1, 1, 9)], 0),
    "re-sent before the ACK": ([(*DATA, 0, 5, 0, 0), (*DATA, 4, 5, 0, 2), (*ACK, 0, 0, 9, 3)], [], -1),
    "re-sent at the same time": ([(*DATA, 0, 5, 0, 2), (*DATA, 4, 5, 0, 2), (*ACK, 0, 0, 9, 3)], [], 1),
    "next bytes, not a copy": ([(*DATA, 0, 5, 0, 0), (*DATA, 5, 5, 0, 2), (*ACK, 0, 0, 10, 3)], [], 1),
    "re-sent after the ACK": ([(*DATA, 0, 5, 0, 0), (*ACK, 0, 0, 5, 1), (*DATA, 0, 5, 0, 2)], [], 1),
}


@needs_core
@pytest.mark.parametrize("case", FATE_EDGES.values(), ids=FATE_EDGES.keys())
def test_segment_fates_at_the_edges_of_the_rules(case):
    rows, blocks, want = case
    in_c, in_numpy = _fates_both_ways(*_two_packet_table(rows, blocks))
    assert in_c[0] == want and in_numpy[0] == want
    np.testing.assert_array_equal(in_c, in_numpy)


@needs_core
def test_the_delivery_searches_refuse_what_is_not_their_contract():
    """Arrays of different lengths, rows not sorted by connection, negative ids, positions out of range: a
    ValueError, never a read past an array."""
    core = native.core
    a = np.arange(4, dtype=np.int64)
    out = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="do not match"):
        core.first_cumulative_ack(a, a[:3], a, a, a, out)
    with pytest.raises(ValueError, match="not sorted"):
        core.first_cumulative_ack(a, a, a[::-1].copy(), a, a, out)
    with pytest.raises(ValueError, match="negative"):
        core.first_cumulative_ack(a, a, a - 1, a, a, out)
    with pytest.raises(ValueError, match="do not match"):
        core.sack_covered(a, a, a, a, a, a, out)  # the output is one byte per segment
    with pytest.raises(ValueError, match="not sorted"):
        core.sack_covered(a, a, a, a[::-1].copy(), a, a, np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        core.first_later_copy(a, a, a + 1, a, a + 1, out)
    with pytest.raises(ValueError, match="do not match"):
        core.first_later_copy(a, a, a, a, a[:2], out)
    with pytest.raises(ValueError, match="do not match"):
        core.factorize_u64(a.view(np.uint64), out[:3], 0)
    assert core.factorize_u64(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), 0) == 0
    with pytest.raises(ValueError, match="repeats a position"):
        core.first_later_copy(a, a, a + 1, a, np.array([0, 1, 1, 3], dtype=np.int64), out)
    one = np.zeros(4, dtype=np.int64)  # one connection: its starts must ascend in the order given
    with pytest.raises(ValueError, match="does not sort"):
        core.first_later_copy(one, a, a + 1, a, a[::-1].copy(), out)


@needs_core
def test_turn_state_refuses_what_is_not_its_contract():
    """turns._turn_at's passes in C: arrays of other lengths, a kept row or an ordered row whose connection
    is out of range: a ValueError, never a write past the per-connection arrays."""
    rows = np.arange(4, dtype=np.int64)
    keep, is_ack, ts = np.ones(4, np.uint8), np.ones(4, np.uint8), np.zeros(4, np.float64)
    cut = np.zeros(4, np.float64)
    outs = [np.zeros(8, np.int64), np.zeros(8, np.int64), *(np.zeros(4, np.int64) for _ in range(3))]
    with pytest.raises(ValueError, match="do not match"):
        native.core.turn_state(rows, keep, ts, rows, rows, rows, rows, is_ack, cut, rows, *outs[:-1], outs[0])
    with pytest.raises(ValueError, match="connection is out of range"):
        native.core.turn_state(rows + 1, keep, ts, rows, rows, rows, rows, is_ack, cut, rows, *outs)
    with pytest.raises(ValueError, match="ordered row is out of range"):
        native.core.turn_state(rows, keep, ts, rows, rows, rows, rows, is_ack, cut, rows + 4, *outs)
