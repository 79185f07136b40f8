"""Run tshark as the reference and return per-frame TCP analysis flags (test helper, not library code)."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd

FIELDS = {
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


def available() -> bool:
    return shutil.which("tshark") is not None


def tcp_frames(path: str) -> pd.DataFrame:
    """One row per TCP frame tshark decodes, flags as booleans.

    Frames where TCP appears only inside an ICMP error quote or an sFlow sample are left out: tshark gives those a
    stream of their own, while pcapmtu files them under `icmp` and links them to their connection.
    """
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-Y",
        "tcp && !icmp && !icmpv6 && !sflow",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for field in FIELDS.values():
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600).stdout
    rows = [line.split("\t") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=list(FIELDS))
    for col in ("frame", "stream"):
        table[col] = pd.to_numeric(table[col], errors="coerce").fillna(-1).astype(int)
    table["mss"] = pd.to_numeric(table["mss"], errors="coerce").fillna(0).astype(int)
    for col in list(FIELDS)[3:]:
        table[col] = table[col] != ""
    return table
