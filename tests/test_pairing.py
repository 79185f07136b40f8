"""Pairing and the column reads that replaced per-connection rows (0.9.5): the same answers as the pandas
forms they replaced, on generated inputs and on the sample captures' pairs.

Why: a pair of big captures matches ~10^4 connections; a pandas row or a Python function per connection
made `analyze HOST CONTAINER` of two 1M-packet captures spend seconds there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapmtu
from pcapmtu.diagnose.pairing import _copies

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
