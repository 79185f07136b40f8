"""The optional C core (`_native.c`, built by setup.py where a C compiler is available) and the one switch
that says whether it runs.

`core` is the extension module, or None when it is not built or `PCAPMTU_PURE=1` is set. `ENABLED` is the
switch: every caller (the record walks, the decoder, address interning, the TCP analysis) reads
`native.ENABLED` when it runs, never a copy taken at import, and keeps its pure numpy path beside the C one,
which gives the same results. tests/test_native.py sets it to False to compare the two; `decode` switches it
off for a stale build whose decoder writes other columns than `schema.PACKETS` describes.
"""

from __future__ import annotations

import os

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


def describe() -> str:
    """One phrase for `--version`: which implementation runs."""
    return "C core" if ENABLED else f"pure numpy: {_WHY}"
