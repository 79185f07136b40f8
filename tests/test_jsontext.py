"""jsontext writes the analyze document's connections column by column: the same characters json.dumps gives
for the dicts jsondoc.records() makes, on every column type, hostile text and the samples' analyses."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames

import pcapmtu
from pcapmtu.render import jsondoc, jsontext
from pcapmtu.render.jsondoc import analyze_document, dump, records, write_analyze
from pcapmtu.results import Finding
from support.environment import SAMPLES

COMPACT = (",", ":")
HOSTILE = ['e\u0301vil "x"\n\x1b[31m', "\u2603", "\ud800", "%s %%", "", "a,b", "</script>", "\x00\x7f"]


def _want(frame: pd.DataFrame, name: str) -> list[str]:
    return [json.dumps(r[name], separators=COMPACT, allow_nan=False) for r in records(frame, [name])]


def _frame_of_every_kind() -> pd.DataFrame:
    n = len(HOSTILE)
    return pd.DataFrame(
        {
            "int": np.array([0, -1, 2**62, 7, 1, 2, 3, 4], dtype=np.int64),
            "uint": np.array([0, 2**64 - 1, 5, 6, 7, 8, 9, 10], dtype=np.uint64),
            "i32": np.arange(n, dtype=np.int32) - 3,
            "bool": np.array([True, False] * (n // 2)),
            "float": [0.1 + 0.2, -0.0, 1e-7, 1e22, 1.5, 1701234567.1234567, 2.0, 5e-324],
            "float_nan": [math.nan, math.inf, -math.inf, 0.5, 1.0, math.nan, 3.25, 1e300],
            "text": pd.Series(HOSTILE, dtype=object),  # object: a lone surrogate kept
            "str": pd.Series([h for h in HOSTILE if h != "\ud800"] + ["z"], dtype="str"),
            "mixed": ["x", None, pd.NA, np.int64(4), np.float64("nan"), 2.5, True, "\u00e9"],
            "category": pd.Categorical(["open", "closed"] * (n // 2)),
            "nullable": pd.array([1, None, 3, 4, None, 6, 7, 8], dtype="Int64"),
            "text_na": pd.array(
                [h for h in HOSTILE if h != "\ud800"] + [None], dtype="string"
            ),  # Arrow: no surrogates
        }
    )


def test_column_tokens_are_what_json_writes_for_records():
    frame = _frame_of_every_kind()
    for name in frame.columns:
        assert jsontext.column_tokens(frame[name]) == _want(frame, name), name


def test_rows_text_is_json_of_the_records_slice():
    frame = _frame_of_every_kind()
    keys = list(frame.columns)
    columns = [jsontext.column_tokens(frame[k]) for k in keys]
    rows = records(frame, keys)
    for start, stop in [(0, len(frame)), (0, 1), (3, 7), (5, 5)]:
        got = jsontext.rows_text(keys, columns, start, stop)
        assert got == json.dumps(rows[start:stop], separators=COMPACT, allow_nan=False)[1:-1]
    assert jsontext.rows_text([], [], 0, 3) == "{},{},{}"
    weird = ['"quoted"', "%d", "\u2603"]  # keys are escaped as json escapes them; % is not a format here
    assert jsontext.rows_text(weird, [["1"], ["2"], ["3"]], 0, 1) == json.dumps(
        {k: i + 1 for i, k in enumerate(weird)}, separators=COMPACT
    )


@settings(max_examples=150, deadline=None)
@given(
    data_frames(
        [
            column("i", dtype=np.int64),
            column("u", dtype=np.uint16),
            column("b", dtype=bool),
            column("f", dtype=float),
            column("t", elements=st.text()),
            column(
                "o",
                elements=st.one_of(st.none(), st.text(max_size=5), st.integers(), st.floats(), st.booleans()),
                dtype=object,
            ),
        ]
    )
)
def test_column_tokens_match_json_on_generated_tables(frame):
    for name in frame.columns:
        assert jsontext.column_tokens(frame[name]) == _want(frame, name), name


def _both(analysis) -> tuple[str, str]:
    old: list[str] = []
    dump(analyze_document(analysis), old.append)
    new: list[str] = []
    write_analyze(analysis, new.append)
    return "".join(old), "".join(new)


PAIRS = sorted(p for p in SAMPLES.iterdir() if (p / "host.pcap").exists() and (p / "container.pcap").exists())


@pytest.mark.parametrize("scenario", PAIRS, ids=lambda p: p.name)
def test_write_analyze_is_dump_of_the_document(scenario, monkeypatch):
    """Every sample pair (two captures: the connections of both, matched across them), the column path forced
    on (real documents that large are compact; here every one is)."""
    monkeypatch.setattr(jsondoc, "BIG_DOCUMENT", 0)
    analysis = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    assert jsondoc._flow_columns(analysis) is not None  # the column path, not the fallback
    old, new = _both(analysis)
    assert new == old
    json.loads(new)


@pytest.fixture
def demo():
    """The demo incident analysed afresh: these tests edit its tables."""
    scene = SAMPLES / "blackhole_tls12"
    return pcapmtu.analyze(host=scene / "host.pcap", container=scene / "container.pcap")


def test_connections_out_of_capture_order_and_hostile_values(demo, monkeypatch):
    """Verdict rows in any order (each connection's flow fields are looked up by its capture and number), and
    text fields holding what a capture can put there (SNI, names): still the same characters."""
    monkeypatch.setattr(jsondoc, "BIG_DOCUMENT", 0)
    shuffled = demo.verdicts.iloc[::-1].reset_index(drop=True)
    assert shuffled["capture"].tolist() != demo.verdicts["capture"].tolist()
    analysis = dataclasses.replace(demo, verdicts=shuffled)
    for cap in analysis.captures.values():
        n = len(cap.flows)
        text = [h for h in HOSTILE if h != "\ud800"]  # the flows' text columns are Arrow strings
        cap.flows["sni"] = [text[i % len(text)] for i in range(n)]
        cap.flows["name"] = pd.Series(([None, pd.NA, np.str_("x")] * n)[:n], dtype=object).to_numpy()
    assert jsondoc._flow_columns(analysis) is not None
    old, new = _both(analysis)
    assert new == old
    assert '\\"x\\"' in new and "\\u2603" in new and "\x1b" not in new


def test_tables_the_column_path_does_not_reproduce_fall_back(demo, monkeypatch):
    """Flows not numbered 0..n-1 in order (a table edited in a notebook): the dict path, the same document."""
    monkeypatch.setattr(jsondoc, "BIG_DOCUMENT", 0)
    role = demo.verdicts["capture"].iloc[0]
    demo.captures[role].flows = demo.captures[role].flows.iloc[::-1].reset_index(drop=True)
    assert jsondoc._flow_columns(demo) is None
    old, new = _both(demo)
    assert new == old


def test_long_integer_columns_take_their_tokens_from_the_table_or_not():
    """Columns long enough for the small-integer table, with values at its edges and past them."""
    rng = np.random.default_rng(5)
    n = jsontext.TABLE_FROM + 7
    low, high = jsontext.SMALL_INTS.start, jsontext.SMALL_INTS.stop
    frame = pd.DataFrame(
        {
            "inside": rng.integers(low, high, n),
            "edges": np.resize(np.array([low, high - 1, 0, -1], dtype=np.int64), n),
            "below": np.resize(np.array([low - 1, 5], dtype=np.int64), n),
            "above": np.resize(np.array([high, 5], dtype=np.int64), n),
            "u16": rng.integers(0, 65536, n).astype(np.uint16),
            "u64": np.resize(np.array([2**64 - 1, 3], dtype=np.uint64), n),
            "i8": rng.integers(-128, 128, n).astype(np.int8),
        }
    )
    for name in frame.columns:
        assert jsontext.column_tokens(frame[name]) == _want(frame, name), name


@pytest.mark.parametrize("scenario", PAIRS, ids=lambda p: p.name)
def test_findings_in_json_as_asdict_makes_them(scenario):
    """The document's findings come from their fields without asdict's deep copy: the same JSON values."""
    analysis = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    assert analysis.findings_list
    for f in analysis.findings_list:
        assert jsondoc._jsonable(jsondoc._fields(f)) == jsondoc._jsonable(dataclasses.asdict(f))


def test_findings_with_numpy_values_and_a_dataclass_inside_their_evidence():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        size: np.int64
        where: tuple

    evidence = {"mtu": np.int64(1450), "frames": (np.int32(3), 4), "inner": Inner(np.int64(7), ("a", 1.5))}
    f = Finding("X999", "name", "info", "message", "hint", frames=(1, 2), evidence=evidence)
    want = jsondoc._jsonable(dataclasses.asdict(f))
    assert jsondoc._jsonable(jsondoc._fields(f)) == want
    assert want["evidence"]["inner"] == {"size": 7, "where": ["a", 1.5]}
    assert json.dumps(want)
