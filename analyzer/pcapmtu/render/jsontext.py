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
from functools import lru_cache
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
    dtype = column.dtype
    if isinstance(dtype, np.dtype):  # not a pandas extension type that may hold NA
        array = column.to_numpy()
        if dtype.kind == "b":
            return ["true" if v else "false" for v in array.tolist()]
        if dtype.kind in "iu":
            return _int_tokens(array)
        if dtype.kind == "f":
            if bool(np.isfinite(array).all()):
                return list(map(float.__repr__, array.tolist()))
            return [float.__repr__(v) if math.isfinite(v) else "null" for v in array.tolist()]
    values = column.tolist()
    try:  # text columns are mostly all text: json's escaper over all of them (it refuses anything else)
        return list(map(string_token, values))
    except TypeError:
        return [string_token(v) if type(v) is str else value_token(plain(v)) for v in values]


# Most integer columns (ports, sizes, counts, flags) hold small values: their tokens come from one table,
# made once (~66,000 strings, a few ms) when a long column needs it, instead of int.__repr__ per value.
SMALL_INTS = range(-1024, 65536)
TABLE_FROM = 1000  # a column shorter than this is quicker with int.__repr__ than the table is to make


@lru_cache(maxsize=1)
def _small_int_tokens() -> np.ndarray:
    return np.array(list(map(int.__repr__, SMALL_INTS)), dtype=object)


def _int_tokens(array: np.ndarray) -> list[str]:
    if len(array) >= TABLE_FROM and array.min() >= SMALL_INTS.start and array.max() < SMALL_INTS.stop:
        return _small_int_tokens()[array.astype(np.int64) - SMALL_INTS.start].tolist()
    return list(map(int.__repr__, array.tolist()))


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
