"""Compact JSON text of table rows, made column by column.

`json.dumps` of a list of row dicts builds a dict per row and then encodes every value through the encoder's
type dispatch; for report.json's ~20,000 connections of ~60 fields that is most of `analyze --json`'s
writing time. Here each column is turned into its JSON tokens in one pass (`int.__repr__`, `float.__repr__`,
json's own C string escaper: the very functions json's C encoder calls), and a batch of rows is one list of
key prefixes and tokens, joined once. The characters are those `json.dumps(rows, separators=(",", ":"),
allow_nan=False)` writes for the values `jsondoc.records()` gives (tests/test_jsontext.py holds the two to
the same text).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

try:  # the C escaper json's C encoder uses with ensure_ascii (the default)
    from _json import encode_basestring_ascii as string_token
except ImportError:  # pragma: no cover - CPython always builds _json
    from json.encoder import py_encode_basestring_ascii as string_token

COMPACT = (",", ":")


def value_token(value: Any) -> str:
    """One value as json.dumps writes it (compact, no NaN)."""
    return json.dumps(value, separators=COMPACT, allow_nan=False)


def plain(value: Any) -> Any:
    """numpy/pandas scalars to JSON-safe Python values (NaN and NA become None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def column_tokens(column: pd.Series) -> list[str]:
    """Each value of a column as its JSON text, after `jsondoc.records()`'s conversions: non-finite floats
    and pandas' missing values are null, numpy scalars their Python values."""
    values = column.tolist()
    dtype = column.dtype
    if isinstance(dtype, np.dtype):  # not a pandas extension type that may hold NA
        if dtype.kind == "b":
            return ["true" if v else "false" for v in values]
        if dtype.kind in "iu":
            return list(map(int.__repr__, values))
        if dtype.kind == "f":
            if bool(np.isfinite(column.to_numpy()).all()):
                return list(map(float.__repr__, values))
            return [float.__repr__(v) if math.isfinite(v) else "null" for v in values]
    try:  # text columns are mostly all text: json's escaper over all of them (it refuses anything else)
        return list(map(string_token, values))
    except TypeError:
        return [string_token(v) if type(v) is str else value_token(plain(v)) for v in values]


def rows_text(keys: Sequence[str], columns: Sequence[Sequence[str]], start: int, stop: int) -> str:
    """Rows start..stop-1 as `{"key":token,...},{...}`: the pieces of all rows laid out in one list by slice
    assignment, one key prefix and one token per field, then joined once (no Python step per row)."""
    n = stop - start
    if n <= 0:
        return ""
    if not keys:
        return ",".join(["{}"] * n)
    stride = 2 * len(keys) + 1
    parts: list[str] = [""] * (n * stride)
    for j, (key, column) in enumerate(zip(keys, columns, strict=True)):
        prefix = ("{" if j == 0 else ",") + string_token(key) + ":"
        parts[2 * j :: stride] = [prefix] * n
        parts[2 * j + 1 :: stride] = column[start:stop]
    parts[stride - 1 :: stride] = ["},"] * n
    parts[-1] = "}"
    return "".join(parts)


def list_token(items: Iterable[str]) -> str:
    """A list of strings as JSON text."""
    return "[" + ",".join(map(string_token, items)) + "]"
