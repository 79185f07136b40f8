"""Give freed heap memory back to the operating system between pipeline stages.

numpy's per-batch temporaries come from the C heap; once freed, glibc keeps the pages for reuse, so a
stage's peak would stay resident while the next stage runs. `malloc_trim(0)` returns them. Where the C
library is not glibc this does nothing.
"""

from __future__ import annotations

import ctypes
from functools import cache


@cache
def _trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library already loaded into this process
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    trim = _trim()
    if trim is not None:
        trim(0)
