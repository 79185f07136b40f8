"""The optional C core (`_native.c`, built by setup.py where a C compiler is available) and the one switch
that says whether it runs.

`core` is the extension module, or None when it is not built or `PCAPMTU_PURE=1` is set. `ENABLED` is the
switch: every caller (the record walks, the decoder, address interning, the TCP analysis) reads
`native.ENABLED` when it runs, never a copy taken at import, and keeps its pure numpy path beside the C one,
which gives the same results. tests/test_native.py sets it to False to compare the two; `decode` switches it
off for a stale build whose decoder writes other columns than `schema.PACKETS` describes. `entry(name)` is
that switch for a function a stale build may lack; `as_i64` makes an array the C core reads.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from . import _native as core
except ImportError:  # pragma: no cover - depends on the install
    core = None
    _WHY = "no C core built"
else:
    _WHY = "PCAPMTU_PURE is set"

if os.environ.get("PCAPMTU_PURE", "") not in ("", "0"):
    core = None

ENABLED = core is not None


def switch_off(why: str) -> None:
    """Run the numpy paths from now on; `why` is what `describe()` then says."""
    global ENABLED, _WHY
    ENABLED, _WHY = False, why


def entry(name: str):
    """The C core's function `name`, or None where its numpy twin runs: the core is off (`ENABLED`) or was
    built before it had that function."""
    return getattr(core, name, None) if ENABLED else None


def as_i64(values) -> np.ndarray:
    """The contiguous int64 array the C core reads (no copy when it already is one)."""
    return np.ascontiguousarray(values, dtype=np.int64)


def describe() -> str:
    """One phrase for `--version`: which implementation runs."""
    return "C core" if ENABLED else f"pure numpy: {_WHY}"
