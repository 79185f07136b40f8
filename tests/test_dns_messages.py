"""The DNS messages in compact form (`rare_layers.DnsMessages`) stand for the DNS table exactly.

`read()` keeps each capture's DNS messages decoded once per distinct message and lays out the table only when
`Capture.dns` is read; service names join on `answers()`, and `inspect` counts `messages`. Each must be what
the table says: the answers are the table's A/AAAA rows of responses in its order, and the count is the
table's distinct frames, on every real capture (C core on and off) and on generated layouts.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapmtu.errors import CaptureError
from pcapmtu.ingest import formats, native, packets, rare_layers
from pcapmtu.ingest.capture import read
from support.environment import SAMPLES, corpus_files

CAPTURES = sorted(SAMPLES.glob("*/*.pcap*")) + corpus_files("semantic", "format", "malformed")


def _answers_from_table(table: pd.DataFrame) -> pd.DataFrame:
    """What service names joined on before the compact form: the table's address answers of responses."""
    rows = table[table["response"].astype(bool) & table["answer_type"].isin(["A", "AAAA"])]
    return rows[["ts", "answer", "qname"]].reset_index(drop=True)


def _messages_of(path: Path) -> rare_layers.DnsMessages:
    try:
        cap = formats.CaptureFile.open(path)
        try:
            raw = packets.build_packets(cap, keep_packets=False)
        finally:
            cap.close()
    except CaptureError:
        pytest.skip("not a readable capture")
    return rare_layers.dns_messages(raw.packets, raw.rare)


@pytest.mark.parametrize("core", [True, False], ids=["c-core", "pure"])
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_answers_and_count_are_the_tables(path: Path, core: bool, monkeypatch):
    if not core:
        monkeypatch.setattr(native, "ENABLED", False)
    messages = _messages_of(path)
    table = messages.table()
    pd.testing.assert_frame_equal(messages.answers(), _answers_from_table(table), check_dtype=False)
    assert messages.messages == (table["frame"].nunique() if len(table) else 0)
    for side in ("src", "dst"):  # only the addresses the messages use are kept as text, not the capture's
        assert len(getattr(messages, f"{side}_names")) - 1 == len(set(table[side]) - {""})


def test_the_samples_hold_dns_answers():
    """The comparison above must see answers and several rows per message, or it proves little."""
    corpus = [p for p in CAPTURES if "ndpi__netflix" in p.name or "pcapplusplus__example" in p.name]
    assert len(corpus) == 2, "the corpus captures with CNAME chains are missing"
    for messages in map(_messages_of, corpus):
        assert len(messages.answers()) > 50 and (messages.per_kind > 1).any() and messages.messages > 20


@st.composite
def _layouts(draw) -> rare_layers.DnsMessages:
    """Messages over a few distinct messages, each with 1-4 rows of random response bits and answer types."""
    per_kind = np.array(draw(st.lists(st.integers(1, 4), min_size=1, max_size=6)), dtype=np.int64)
    n_rows = int(per_kind.sum())
    kind = np.array(draw(st.lists(st.integers(0, len(per_kind) - 1), max_size=12)), dtype=np.int64)
    response = draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows))
    answer_type = draw(
        st.lists(st.sampled_from(["A", "AAAA", "CNAME", ""]), min_size=n_rows, max_size=n_rows)
    )
    n = len(kind)
    text = [f"r{i}" for i in range(n_rows)]
    return rare_layers.DnsMessages(
        frame=np.arange(1, n + 1, dtype=np.int64),
        ts_ns=np.arange(n, dtype=np.int64) * 1_000_000_000,
        sport=np.full(n, 53, dtype=np.int32),
        dport=np.full(n, 40000, dtype=np.int32),
        src=np.zeros(n, dtype=np.int32),
        dst=np.full(n, -1, dtype=np.int32),
        src_names=np.array(["10.66.0.1", np.nan], dtype=object),
        dst_names=np.array(["10.66.0.1", np.nan], dtype=object),
        txid=np.arange(n, dtype=np.int64),
        kind=kind,
        per_kind=per_kind,
        columns=[
            np.arange(n_rows, dtype=np.int64),  # txid: every row parsed
            np.array(response, dtype=bool),
            ["NOERROR"] * n_rows,
            [f"q{i}" for i in range(n_rows)],
            ["A"] * n_rows,
            text,
            answer_type,
            [f"a{i}" for i in range(n_rows)],
            np.arange(n_rows, dtype=np.int64),
            ["ok"] * n_rows,
        ],
    )


@given(_layouts())
@settings(max_examples=200, deadline=None)
def test_answers_pick_the_same_rows_as_the_table(messages: rare_layers.DnsMessages):
    table = messages.table()
    assert len(table) == int(messages.per_kind[messages.kind].sum())
    pd.testing.assert_frame_equal(messages.answers(), _answers_from_table(table), check_dtype=False)
    assert messages.messages == len(messages.kind)


def _dns_capture() -> Path:
    for path in CAPTURES:
        try:
            if len(_messages_of(path).answers()):
                return path
        except pytest.skip.Exception:
            continue
    pytest.skip("no capture with DNS answers")


@pytest.mark.parametrize("keep_packets", [True, False])
def test_capture_dns_is_laid_out_when_read(keep_packets: bool):
    path = _dns_capture()
    cap = read(path, keep_packets=keep_packets)
    expected = _messages_of(path).table()
    count = cap.summary()["dns_messages"]
    assert isinstance(cap._dns, rare_layers.DnsMessages), "summary() must not lay out the table"
    shipped = pickle.loads(pickle.dumps(cap))  # a scan's worker sends captures whole
    first = cap.dns
    assert first is cap.dns, "laid out once, then kept"
    pd.testing.assert_frame_equal(first, expected)
    pd.testing.assert_frame_equal(shipped.dns, expected)
    assert count == cap.summary()["dns_messages"] == expected["frame"].nunique() > 0
    cap.dns = first.iloc[:1]  # a notebook may replace the table, as it may packets
    assert len(cap.dns) == 1 and cap.summary()["dns_messages"] == 1
