"""The optional C core: `_native.c`, built by setup.py where a C compiler is available.

`core` is the extension module, or None when it is not built or `PCAPMTU_PURE=1` is set. Every caller
keeps its pure numpy path, which gives the same results (tests/test_native.py compares the two).
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


def describe() -> str:
    """One phrase for `--version`: which implementation runs."""
    return "C core" if core is not None else f"pure numpy: {_WHY}"
