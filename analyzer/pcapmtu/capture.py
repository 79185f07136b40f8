"""The `Capture`: one file read into tidy tables (packets, flows, dns, icmp) plus what we know about it.

`read()` runs the per-capture pipeline top to bottom: file format -> packet columns -> TCP connections
-> DNS / ICMP / TLS layers -> service names. Nothing here prints; problems become warnings or errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import decode, layers, names, schema, tcp
from .formats import CaptureFile
from .packets import build_packets


@dataclass
class Capture:
    """A capture file read into tables. Columns are documented in docs/tables.md."""

    path: str
    format: str
    compression: str
    interfaces: list[dict]
    packets: pd.DataFrame
    flows: pd.DataFrame
    dns: pd.DataFrame
    icmp: pd.DataFrame
    sack: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    skipped_bytes: int = 0

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def link_types(self) -> list[str]:
        seen = sorted({i["linktype"] for i in self.interfaces})
        return [decode.LINKTYPE_NAMES.get(lt, f"LINKTYPE_{lt}") for lt in seen]

    @property
    def time_span(self) -> tuple[float | None, float | None]:
        ts = self.packets["ts"]
        return (float(ts.min()), float(ts.max())) if len(ts) else (None, None)

    def summary(self) -> dict:
        """Facts about the file, JSON-ready (the `inspect --json` capture object minus its flows)."""
        start, end = self.time_span
        status = self.packets["status"].value_counts()
        return {
            "path": self.path,
            "format": self.format,
            "compression": self.compression or None,
            "link_types": self.link_types,
            "interfaces": self.interfaces,
            "packets": int(len(self.packets)),
            "first_ts": start,
            "last_ts": end,
            "duration": (end - start) if start is not None else None,
            "truncated_packets": int(self.packets["truncated"].sum()),
            "undecodable_packets": {str(k): int(v) for k, v in status.items() if k != "ok" and v},
            "tcp_connections": int(len(self.flows)),
            "dns_messages": int(self.dns["frame"].nunique()) if len(self.dns) else 0,
            "icmp_errors": int(len(self.icmp)),
            "skipped_bytes": self.skipped_bytes,
            "warnings": list(self.warnings),
        }


def read(path: str | os.PathLike[str], tcp_config: tcp.TcpConfig | None = None, progress=None) -> Capture:
    """Read a pcap/pcapng (optionally compressed) file into a `Capture`. Raises CaptureError.

    `progress(done_bytes, total_bytes)`, if given, is called as the file is read.
    """
    cap = CaptureFile.open(path)
    try:
        raw = build_packets(cap, progress)
        packets = raw.packets
        analysis, flows = tcp.reconstruct(packets, raw.sack, tcp_config)
        for col, values in analysis.items():
            packets[col] = values
        packets = packets[list(schema.PACKETS)]  # copy-on-write: a reordered view, no copy
        dns = layers.dns_table(packets, raw.rare)
        icmp = layers.icmp_table(packets, raw.rare)
        tls = layers.tls_table(packets, lambda rows: _payloads(cap, packets, rows))
        flows = schema.typed(names.link_names(flows, dns, tls)[list(schema.FLOWS)], schema.FLOWS)
        dns = schema.typed(dns if len(dns) else schema.empty(schema.DNS), schema.DNS)
        icmp = schema.typed(icmp if len(icmp) else schema.empty(schema.ICMP), schema.ICMP)
        warnings = list(cap.warnings) + _quality_warnings(packets)
        return Capture(
            path=str(path),
            format=cap.format,
            compression=cap.compression,
            interfaces=[
                {"linktype": i.linktype, "name": i.name, "snaplen": i.snaplen} for i in cap.interfaces
            ],
            packets=packets,
            flows=flows,
            dns=dns,
            icmp=icmp,
            sack=raw.sack,
            warnings=warnings,
            skipped_bytes=cap.skipped_bytes,
        )
    finally:
        cap.close()


def _payloads(cap: CaptureFile, packets: pd.DataFrame, rows: np.ndarray) -> list[bytes]:
    """Re-read the captured TCP payload bytes of a few packets by their file offset."""
    file_off = packets["file_off"].to_numpy()[rows]
    start = packets["payload_off"].to_numpy()[rows].astype(np.int64)
    caplen = packets["caplen"].to_numpy()[rows].astype(np.int64)
    plen = packets["payload_len"].to_numpy()[rows].astype(np.int64)
    size = np.clip(np.minimum(caplen - start, plen), 0, None)
    out: list[bytes] = [b""] * len(rows)
    with cap.reopen() as fh:
        for i in np.argsort(file_off, kind="stable"):
            fh.seek(int(file_off[i] + start[i]))
            out[i] = fh.read(int(size[i]))
    return out


def _quality_warnings(packets: pd.DataFrame) -> list[str]:
    notes = []
    if not len(packets):
        notes.append("the capture holds no packets")
        return notes
    bad = packets["status"].value_counts()
    bad = bad[(bad.index != "ok") & (bad > 0)]
    if len(bad):
        detail = ", ".join(f"{k}: {v}" for k, v in bad.items())
        notes.append(f"{int(bad.sum())} packet(s) could not be fully decoded ({detail})")
    backwards = int(np.count_nonzero(np.diff(packets["ts_ns"].to_numpy()) < 0))
    if backwards:
        notes.append(
            f"{backwards} packet(s) have a timestamp earlier than the packet before; file order is used"
        )
    return notes
