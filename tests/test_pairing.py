"""Pairing and the column reads that replaced per-connection rows (0.9.5, 0.9.6): the same answers as the
pandas forms they replaced, on generated inputs and on the sample captures' pairs.

Why: a pair of big captures matches ~10^4 connections; a pandas row or a Python function per connection
made `analyze HOST CONTAINER` of two 1M-packet captures spend seconds there.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapmtu
from pcapmtu.diagnose import pairing, rowkeys
from pcapmtu.diagnose.pairing import _copies
from pcapmtu.ingest import native

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
PAIRS = sorted(d for d in SAMPLES.iterdir() if (d / "host.pcap").exists() and (d / "container.pcap").exists())


def _copies_by_groupby(conn_c: np.ndarray, conn_h: np.ndarray) -> pd.Series:
    """What match_flows computed before: a Python function per container connection."""
    pairs = pd.DataFrame({"conn_c": conn_c, "conn_h": conn_h})
    return pairs.groupby("conn_c")["conn_h"].agg(lambda s: sorted({int(x) for x in s}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 50)), min_size=1, max_size=80))
def test_copies_equal_the_groupby_they_replaced(pairs):
    conn_c = np.array([c for c, _ in pairs], dtype=np.int64)
    conn_h = np.array([h for _, h in pairs], dtype=np.int64)
    want, got = _copies_by_groupby(conn_c, conn_h), _copies(conn_c, conn_h)
    assert got.index.tolist() == want.index.tolist()
    assert got.tolist() == want.tolist()
    # as match_flows reads it: mapped onto every pair's container connection
    assert pd.Series(conn_c).map(got).tolist() == pd.Series(conn_c).map(want).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 40), st.integers(-5, 40)), max_size=80),
    st.sampled_from([0, 2**40, -(2**40), 2**61]),
)
def test_distinct_pairs_equal_unique_of_rows(pairs, shift):
    """One integer per pair where it fits in 62 bits, numpy's row mode where it does not (the big shift)."""
    a = np.array([x + shift for x, _ in pairs], dtype=np.int64)
    b = np.array([y for _, y in pairs], dtype=np.int64)
    got = pairing._distinct_pairs(a, b)
    want = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), dtype=np.int64)
    assert got.dtype == np.int64 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_copies_of_a_host_that_saw_each_connection_twice():
    """`tcpdump -i any` on the host: each container connection matches its copy before and after NAT."""
    got = _copies(np.array([0, 0, 1, 1, 2]), np.array([7, 3, 5, 5, 9]))
    assert got.to_dict() == {0: [3, 7], 1: [5], 2: [9]}


@pytest.fixture(scope="module", params=[d.name for d in PAIRS])
def paired(request):
    d = SAMPLES / request.param
    return pcapmtu.analyze(d / "host.pcap", d / "container.pcap")


def test_sample_pairs_exist():
    assert len(PAIRS) >= 10, PAIRS


@pytest.mark.parametrize("column", ["full_estimated", "handshake_ok", "server_full", "stalled_s", "name"])
def test_flow_values_equal_the_rows(paired, column):
    ctx = paired.context
    for role in ctx.captures:
        conns = ctx.flows(role)["conn"].tolist()
        if not conns:
            continue
        got = ctx.flow_values([role] * len(conns), conns, column)
        want = [ctx.flow(role, c)[column] for c in conns]
        assert [str(v) for v in got] == [str(v) for v in want]
        assert [type(v) is str for v in got] == [type(v) is str for v in want]


def test_flow_values_across_captures_in_the_order_asked(paired):
    ctx = paired.context
    asked = [(role, c) for role in ctx.captures for c in ctx.flows(role)["conn"].tolist()][::-1]
    if not asked:
        pytest.skip("no connections in this pair")
    roles, conns = zip(*asked, strict=True)
    got = ctx.flow_values(roles, conns, "conn")
    assert [int(v) for v in got] == [int(c) for c in conns]


def test_pair_table_columns_after_the_rewrite(paired):
    pairs = paired.pairs
    if not len(pairs):
        pytest.skip("nothing matched in this pair")
    for copies, host_conn in zip(pairs["host_copies"], pairs["host_conn"], strict=True):
        assert copies == sorted(set(copies)) and all(type(c) is int for c in copies)
        assert int(host_conn) in copies


# ------------------------------------------------------------------------------------ the two clocks
def _segments_strategy(max_pairs: int = 4):
    row = st.tuples(
        st.integers(0, max_pairs - 1),  # pair
        st.integers(0, 1),  # dir
        st.sampled_from([1, 2, 1461, 2921, 2**32 - 1]),  # seq: few values, so keys repeat and meet
        st.sampled_from([0, 1, 1460]),  # payload_len
        st.sampled_from([0x10, 0x18, 0x02]),  # tcp_flags
        st.integers(-(10**12), 10**12),  # ts_ns
    )
    return st.lists(row, max_size=40).map(_as_segments)


def _as_segments(rows) -> dict[str, np.ndarray]:
    names = ("pair", "dir", "seq", "payload_len", "tcp_flags", "ts_ns")
    dtypes = (np.int64, np.int8, np.uint32, np.int32, np.uint16, np.int64)
    cols = {
        n: np.array([r[i] for r in rows], dtype=t) for i, (n, t) in enumerate(zip(names, dtypes, strict=True))
    }
    cols["hash"] = rowkeys.key_hash(cols, pairing.SEGMENT_KEY)
    return cols


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all((x == y) or (np.isnan(x) and np.isnan(y)) for x, y in zip(a, b, strict=True))


@settings(max_examples=300, deadline=None)
@given(_segments_strategy(), _segments_strategy())
def test_clocks_by_hash_equal_the_pandas_merge(near, far):
    assert _same(pairing._clocks_by_hash(near, far), pairing._clocks_by_merge(near, far))


@settings(max_examples=300, deadline=None)
@given(_segments_strategy(), _segments_strategy())
def test_clocks_by_hash_equal_the_merge_when_hashes_collide(near, far):
    """A hash that maps many keys to one: inside a capture the merge takes over; across the two captures the
    full key comparison drops the false matches."""
    for side in (near, far):
        side["hash"] = (side["seq"].astype(np.uint64) % np.uint64(3)) + side["dir"].astype(np.uint64)
    assert _same(pairing._clocks_by_hash(near, far), pairing._clocks_by_merge(near, far))


def test_clocks_cross_capture_collision_is_not_a_match():
    """Each capture has one key under hash 7: different keys, so no segment was seen at both points."""
    near = _as_segments([(0, 0, 1, 0, 0x10, 100), (0, 1, 5, 0, 0x10, 200)])
    far = _as_segments([(0, 0, 2, 0, 0x10, 150), (0, 1, 6, 0, 0x10, 250)])
    for side in (near, far):
        side["hash"] = np.full(2, 7, dtype=np.uint64) + side["dir"].astype(np.uint64)
    assert _same(pairing._clocks_by_hash(near, far), (float("nan"), float("nan")))
    assert _same(pairing._clocks_by_merge(near, far), (float("nan"), float("nan")))


def test_clocks_skip_a_segment_one_capture_holds_twice():
    """The same clock and no delay: the far capture holds two pure ACKs of one sequence number, the near one
    missed the first. Joining first copies would pair ACKs sent 200 ns apart (a negative one-way delay)."""
    far = _as_segments(
        [(0, 0, 1, 0, 0x10, 100), (0, 1, 9, 10, 0x18, 200), (0, 0, 1, 0, 0x10, 300), (0, 0, 5, 10, 0x18, 400)]
    )
    near = _as_segments([(0, 1, 9, 10, 0x18, 200), (0, 0, 1, 0, 0x10, 300), (0, 0, 5, 10, 0x18, 400)])
    assert pairing._clocks_by_hash(near, far) == (0.0, 0.0)
    assert pairing._clocks_by_merge(near, far) == (0.0, 0.0)


@pytest.mark.parametrize("scenario", ["lossy_link", "blackhole_tls12", "busy_keepalive"])
def test_clocks_of_a_capture_against_itself_less_some_packets(tmp_path, scenario):
    """A capture point that dropped packets (every fifth record gone), against the full capture taken at the
    same place: the same clock and no delay between them, whatever was missed."""
    full = SAMPLES / scenario / "host.pcap"
    data = full.read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    kept, at, i = [data[:24]], 24, 0  # the file header, then every record but each fifth, byte for byte
    while at + 16 <= len(data):
        caplen = struct.unpack(order + "I", data[at + 8 : at + 12])[0]
        if i % 5 != 4:
            kept.append(data[at : at + 16 + caplen])
        at, i = at + 16 + caplen, i + 1
    thinned = tmp_path / "thinned.pcap"
    thinned.write_bytes(b"".join(kept))
    ctx = pcapmtu.analyze(host=full, container=thinned).context
    assert len(ctx.pairs)
    assert ctx.pairs["clock_offset_s"].abs().max() < 1e-6, ctx.pairs[["clock_offset_s", "one_way_delay_s"]]
    assert ctx.pairs["one_way_delay_s"].abs().max() < 1e-6


def test_clocks_of_the_shifted_sample_pair():
    """blackhole_tls12/host_shifted.pcap: the host's clock is off by minutes; both ways of joining the
    segments find the same offset and delay, the ones the pair table reports."""
    d = SAMPLES / "blackhole_tls12"
    r = pcapmtu.analyze(d / "host_shifted.pcap", d / "container.pcap")
    ctx = r.context
    near, far = ctx.captures[ctx.container_roles[0]], ctx.far
    n = pairing._segments(near, ctx.pairs["container_conn"])
    f = pairing._segments(far, ctx.pairs["host_conn"])
    by_hash = pairing._clocks_by_hash(n, f)
    assert _same(by_hash, pairing._clocks_by_merge(n, f))
    assert abs(by_hash[0]) > 60  # the shift is found, not lost in the join
    assert by_hash == (
        float(ctx.pairs["clock_offset_s"].iloc[0]),
        float(ctx.pairs["one_way_delay_s"].iloc[0]),
    )


# ------------------------------------------------------------------------------------ rows by key
def _keyed(rows) -> dict[str, np.ndarray]:
    return {
        "pair": np.array([r[0] for r in rows], dtype=np.int64),
        "rel_seq": np.array([r[1] for r in rows], dtype=np.int64),
        "payload_len": np.array([r[2] for r in rows], dtype=np.int32),
    }


KEYED_ROWS = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([-5, 0, 1, 1461, 2**33]), st.sampled_from([0, 1, 1460])),
    max_size=30,
)
KEY = ("pair", "rel_seq", "payload_len")


@settings(max_examples=300, deadline=None)
@given(KEYED_ROWS, KEYED_ROWS)
def test_rows_in_equals_python_sets(a, b):
    want = [tuple(r) in set(map(tuple, b)) for r in a]
    assert rowkeys.rows_in(_keyed(a), _keyed(b), KEY).tolist() == want


@settings(max_examples=300, deadline=None)
@given(KEYED_ROWS, KEYED_ROWS)
def test_rows_in_equals_python_sets_when_hashes_collide(a, b):
    """A hash of the pair alone: many keys share one. Inside `b` the pandas merge takes over; keys of `a`
    that meet another key's hash are not taken for it."""
    weak = lambda table, names: (table["pair"] % 2).astype(np.uint64)  # noqa: E731
    real, rowkeys.key_hash = rowkeys.key_hash, weak
    try:
        got = rowkeys.rows_in(_keyed(a), _keyed(b), KEY).tolist()
    finally:
        rowkeys.key_hash = real
    assert got == [tuple(r) in set(map(tuple, b)) for r in a]


def test_rows_in_a_key_under_another_keys_hash_is_not_in():
    a, b = _keyed([(0, 1, 0)]), _keyed([(0, 2, 0)])
    real, rowkeys.key_hash = rowkeys.key_hash, lambda table, names: np.zeros(len(table["pair"]), np.uint64)
    try:
        assert rowkeys.rows_in(a, b, KEY).tolist() == [False]
    finally:
        rowkeys.key_hash = real


def test_numbered_together_first_rows_in_order_of_first_appearance():
    a = _keyed([(1, 5, 0), (0, 5, 0), (1, 5, 0), (2, 7, 1), (0, 5, 0)])
    b = _keyed([(3, 3, 3), (2, 7, 1), (3, 3, 3)])
    a_codes, b_codes, a_first, b_first = rowkeys.number_together(
        {**a, "hash": rowkeys.key_hash(a, KEY)}, {**b, "hash": rowkeys.key_hash(b, KEY)}, KEY
    )
    assert a_codes.tolist() == [0, 1, 0, 2, 1] and b_codes.tolist() == [3, 2, 3]  # (2, 7, 1): one code
    assert a_first.tolist() == [0, 1, 3, -1] and b_first.tolist() == [-1, -1, 1, 0]
    one_hash = np.zeros(5, dtype=np.uint64)  # one hash, three keys in `a`
    assert (
        rowkeys.number_together({**a, "hash": one_hash}, {**b, "hash": rowkeys.key_hash(b, KEY)}, KEY) is None
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=40))
def test_first_positions_are_each_codes_first_index(codes):
    got = rowkeys.first_positions(np.array(codes, dtype=np.int64), 10).tolist()
    assert got == [codes.index(c) if c in codes else -1 for c in range(10)]


U64 = st.one_of(
    st.sampled_from([0, 1, 2**63, 2**64 - 1, 2**32, 3 * 2**32]),  # edges, and values equal in their low bits
    st.integers(0, 2**64 - 1),
)


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "pandas"])
@settings(max_examples=300, deadline=None)
@given(st.lists(U64, max_size=60), st.integers(1, 4))
def test_factorize_numbers_values_as_pandas_does(in_c, values, repeat):
    hashes = np.array(values * repeat, dtype=np.uint64)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", in_c and native.core is not None)
        got = rowkeys.factorize(hashes)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, pd.factorize(hashes)[0])


@pytest.mark.parametrize("distinct", [1023, 1025, 3000, 70_000])
def test_factorize_when_the_table_grows(distinct):
    """The C table starts at the count of values and doubles when half full: all distinct, then repeated."""
    values = np.random.default_rng(distinct).integers(0, 2**64 - 1, distinct, dtype=np.uint64)
    for hashes in (values, np.concatenate([values, values[::-1], values[: distinct // 3]])):
        np.testing.assert_array_equal(rowkeys.factorize(hashes), pd.factorize(hashes)[0])


def test_factorize_of_values_a_capture_made_alike_in_their_low_bits():
    """200,000 distinct values that agree in their low 40 bits, each twice: the seeded mix spreads them."""
    values = (np.arange(200_000, dtype=np.uint64) << np.uint64(40)) | np.uint64(0xABCDE)
    hashes = np.concatenate([values, values[::-1]])
    np.testing.assert_array_equal(rowkeys.factorize(hashes), pd.factorize(hashes)[0])


# ------------------------------------------------------------------------------------ rows by connection
IDS = st.lists(st.tuples(st.integers(0, 6), st.integers(-3, 3)), max_size=60)


@pytest.mark.parametrize("in_c", [True, False], ids=["C", "numpy"])
@settings(max_examples=300, deadline=None)
@given(IDS)
def test_conn_order_is_lexsort(in_c, rows):
    conn = np.array([c for c, _ in rows], dtype=np.int32)
    key = np.array([k for _, k in rows], dtype=np.int64)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(native, "ENABLED", in_c and native.core is not None)
        got = rowkeys.conn_order(conn, key)
    np.testing.assert_array_equal(got, np.lexsort((key, conn)))


def test_conn_order_of_long_runs_out_of_order():
    """Runs reversed and runs in order, with ties: the merge sort keeps ties in row order."""
    conn = np.repeat(np.arange(50), 200)[::-1].copy()
    key = np.tile(np.r_[np.arange(100)[::-1], np.zeros(100, dtype=np.int64)], 50)
    np.testing.assert_array_equal(rowkeys.conn_order(conn, key), np.lexsort((key, conn)))


def test_conn_order_with_ids_the_c_core_does_not_count():
    """Ids far above the row count (a sparse selection of connections): numpy's lexsort answers."""
    conn = np.array([10**9, 3, 10**9, 3], dtype=np.int64)
    key = np.array([2, 1, 1, 0], dtype=np.int64)
    np.testing.assert_array_equal(rowkeys.conn_order(conn, key), [3, 1, 2, 0])


@pytest.mark.skipif(native.core is None, reason="the C core is not built")
def test_conn_order_refuses_what_is_not_its_contract():
    a = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="do not match"):
        native.core.conn_order(a, a[:3], np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="out of range"):
        native.core.conn_order(a - 1, a, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="out of range"):
        native.core.conn_order(a + 10**6, a, np.zeros(4, np.int64))


def _connection_rows_by_sets(conn, conns, where):
    """What connection_rows answers, the plain way: each row's connection looked up in a dict."""
    position = {int(c): i for i, c in enumerate(conns)}
    rows = [r for r, c in enumerate(conn.tolist()) if c in position and (where is None or where[r])]
    return rows, [position[int(conn[r])] for r in rows]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-2, 12), max_size=60),
    st.lists(st.integers(0, 14), unique=True, max_size=10),
    st.sampled_from([None, "even"]),
    st.sampled_from([0, 10**9]),
)
def test_connection_rows_equal_a_lookup_per_row(packet_conns, conns, where, shift):
    """The lookup table (small ids) and pandas' isin (ids far above the row count) against a dict."""
    conn = np.array([c + shift if c >= 0 else c for c in packet_conns], dtype=np.int64)
    ids = np.array([c + shift for c in conns], dtype=np.int64)
    mask = None if where is None else np.arange(len(conn)) % 2 == 0
    rows, at = rowkeys.connection_rows(conn, ids, mask)
    want_rows, want_at = _connection_rows_by_sets(conn, ids, mask)
    assert rows.tolist() == want_rows and at.tolist() == want_at
    assert rows.dtype == np.int64 and at.dtype == np.int64


# ------------------------------------------------------------------------------------ DF pings
def _pings_row_by_row(cap, ipv: int) -> list[tuple]:
    """The DF echo requests of one capture, per (target, size), and whether a reply of that size came back."""
    req_type, rep_type = (8, 0) if ipv == 4 else (128, 129)
    rows = cap.packets.to_dict("records")
    replied = {
        (str(r["src"]), int(r["ip_len"])) for r in rows if r["ipv"] == ipv and r["icmp_type"] == rep_type
    }
    sent: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        if r["ipv"] == ipv and r["icmp_type"] == req_type and (r["df"] or ipv == 6):
            sent.setdefault((str(r["dst"]), int(r["ip_len"])), []).append(int(r["frame"]))
    return sorted(
        ("ping_reply" if key in replied else "ping_lost", key[1], key[0], frames[:5])
        for key, frames in sent.items()
    )


@pytest.mark.parametrize("scenario", [d.name for d in PAIRS])
def test_ping_signals_equal_a_reading_row_by_row(scenario):
    analysis = pcapmtu.analyze(
        host=SAMPLES / scenario / "host.pcap", container=SAMPLES / scenario / "container.pcap"
    )
    for ipv, path in analysis.context.path.items():
        for role, cap in analysis.context.captures.items():
            got = sorted(
                (s["kind"], s["size"], s["target"], s["frames"])
                for s in path.signals
                if s["kind"] in ("ping_reply", "ping_lost") and s["capture"] == role
            )
            assert got == _pings_row_by_row(cap, ipv), (ipv, role)


def test_some_sample_holds_df_pings_both_answered_and_not():
    analysis = pcapmtu.analyze(
        host=SAMPLES / "blackhole_tls12" / "host.pcap",
        container=SAMPLES / "blackhole_tls12" / "container.pcap",
    )
    kinds = {s["kind"] for s in analysis.context.path[4].signals}
    assert {"ping_reply", "ping_lost"} <= kinds, kinds


# ------------------------------------------------------------------------------------ names from the twin
def test_a_capture_cut_per_packet_takes_its_names_from_the_far_twin(tmp_path):
    """`tcpdump -s 96` in the container: its DNS answers and the TLS SNI are cut, its connections are not.
    The host saw the same lookup whole, so the failing connection is still named in the verdict."""
    from support.cuts import frames_of

    d = SAMPLES / "blackhole_tls12"
    cut = frames_of(d / "container.pcap").write(tmp_path / "container96.pcap", snap=96)
    whole = pcapmtu.analyze(d / "host.pcap", d / "container.pcap")
    r = pcapmtu.analyze(d / "host.pcap", cut)
    own = r.captures["container"].flows
    failing = r.verdicts[(r.verdicts["capture"] == "container") & (r.verdicts["verdict"] == "mtu_blackhole")]
    conn = int(failing["conn"].iloc[0])
    assert own.loc[own["conn"] == conn, "name"].iloc[0] == ""  # the cut took the name away
    named = whole.verdicts.set_index(["capture", "conn"])["service"]
    assert (
        failing["service"].iloc[0]
        == named[("container", conn)]
        == "jenkins-updates.example (198.18.0.11:443)"
    )
    assert r.explanation.startswith("jenkins-updates.example (198.18.0.11:443): PMTUD black hole")
    derived = r.context.flows("container").set_index("conn")
    assert derived.loc[conn, "name_source"] == "dns"
    # a capture alone has no twin to ask
    alone = pcapmtu.analyze(container=cut)
    assert alone.verdicts.loc[alone.verdicts["conn"] == conn, "service"].iloc[0] == "198.18.0.11:443"


@pytest.mark.parametrize("name", [d.name for d in PAIRS])
def test_names_a_capture_found_itself_are_kept(name):
    d = SAMPLES / name
    r = pcapmtu.analyze(d / "host.pcap", d / "container.pcap")
    for role in r.context.container_roles:
        own = r.captures[role].flows.set_index("conn")["name"]
        derived = r.context.flows(role).set_index("conn")["name"]
        found = own != ""
        assert derived[found].tolist() == own[found].tolist()
