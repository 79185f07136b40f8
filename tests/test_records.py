"""context.records() is `itertuples()` made fast: the same named tuples, the same Python values and types."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pcapmtu.diagnose.context import records


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "conn": [3, 4, 5],
            "ratio": [0.5, float("nan"), -1.0],
            "ok": [True, False, True],
            "first": pd.to_datetime([1, 2, None], unit="s", utc=True),
            "name": pd.array(["a", None, "ü"], dtype="string"),
            "kind": pd.Categorical(["x", "y", "x"]),
            "anything": [None, b"raw", (1, 2)],
            "small": pd.array([1, 2, 3], dtype="int8"),
            "not an identifier": [1, 2, 3],
            "class": [7, 8, 9],
        },
        index=[10, 20, 30],
    )


def _same(a: object, b: object) -> bool:
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return type(a) is type(b) and (nan or a is b or bool(a == b))


@pytest.mark.parametrize("without_pandas_shortcut", [False, True])
def test_records_are_itertuples(monkeypatch, without_pandas_shortcut):
    if without_pandas_shortcut:
        monkeypatch.delattr(pd.DataFrame, "_get_column_array", raising=False)
    frame = _frame()
    for part in (frame, frame[frame["ok"]], frame.iloc[:0], frame[[]]):
        got, want = list(records(part)), list(part.itertuples())
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g._fields == w._fields and type(g).__name__ == type(w).__name__
            assert all(_same(x, y) for x, y in zip(g, w, strict=True)), (g, w)
