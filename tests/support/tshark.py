"""tshark in tests: the one way tests run it, and the per-frame TCP analysis the oracle tests compare with
(test helper, not library code). A test that needs tshark calls `require_tool("tshark")` first
(support/environment.py): a skip locally, a failure in CI.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import pandas as pd

TSHARK = "tshark"


def available() -> bool:
    return shutil.which(TSHARK) is not None


def run(path, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`tshark -n -r PATH ARGS...`, with its output as text."""
    cmd = [TSHARK, "-n", "-r", str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout)


def fields(
    path, names, display_filter=None, occurrence="a", options=(), timeout: float = 120
) -> list[dict[str, str]]:
    """One dict per frame (that `display_filter` selects): field name -> its values (`occurrence`: `a` all of
    them, comma-separated; `f` the first; `l` the last). `options` go before the output options."""
    args = [*options, "-T", "fields", "-E", "separator=\t", "-E", f"occurrence={occurrence}"]
    if display_filter:
        args += ["-Y", display_filter]
    for name in names:
        args += ["-e", name]
    out = run(path, *args, timeout=timeout).stdout
    return [dict(zip(names, line.split("\t"), strict=True)) for line in out.splitlines()]


@functools.cache
def version() -> str:
    """The first line of `tshark --version`."""
    out = subprocess.run([TSHARK, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


# ------------------------------------------------------------------------------ per-frame TCP analysis
TCP_FIELDS = {
    "frame": "frame.number",
    "stream": "tcp.stream",
    "mss": "tcp.options.mss_val",
    "retrans": "tcp.analysis.retransmission",
    "fast_retrans": "tcp.analysis.fast_retransmission",
    "spurious_retrans": "tcp.analysis.spurious_retransmission",
    "out_of_order": "tcp.analysis.out_of_order",
    "lost_before": "tcp.analysis.lost_segment",
    "dup_ack": "tcp.analysis.duplicate_ack",
    "zero_window": "tcp.analysis.zero_window",
    "keepalive": "tcp.analysis.keep_alive",
}


def tcp_frames(path) -> pd.DataFrame:
    """One row per TCP frame tshark decodes, flags as booleans.

    Frames where TCP appears only inside an ICMP error quote or an sFlow sample are left out: tshark gives those a
    stream of their own, while pcapmtu files them under `icmp` and links them to their connection.
    """
    args = [
        "-Y",
        "tcp && !icmp && !icmpv6 && !sflow",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for field in TCP_FIELDS.values():
        args += ["-e", field]
    out = run(path, *args, timeout=600).stdout
    rows = [line.split("\t") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=list(TCP_FIELDS))
    for col in ("frame", "stream"):
        table[col] = pd.to_numeric(table[col], errors="coerce").fillna(-1).astype(int)
    table["mss"] = pd.to_numeric(table["mss"], errors="coerce").fillna(0).astype(int)
    for col in list(TCP_FIELDS)[3:]:
        table[col] = table[col] != ""
    return table
