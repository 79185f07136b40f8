"""The optional C core (`pcapmtu.ingest._native`) gives exactly what the numpy paths give.

C decodes the common shapes and hands every other row back to numpy, and walks pcap records. Both must
be invisible in the results: the same columns, SACK blocks and rare payloads for every packet of every
real capture, of hand-made frames of every layer, and of those frames damaged at random; the same
records, warnings and skipped bytes from every damaged file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapmtu import schema
from pcapmtu.errors import CaptureError
from pcapmtu.ingest import decode, formats, native, packets, tcp
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
    assert list(fast[0]) == list(pure[0]) == [0, 26] and fast[1:] == pure[1:]
    assert fast[1] == 62 and "absurd captured length (300 bytes)" in fast[2]
