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

from .. import schema
from ..textsafe import html_text, printable
from . import decode, http_framing, rare_layers, service_names, tcp
from .budget import ReadBudget
from .formats import CaptureFile
from .memory import collector_paused, release_free_memory
from .packets import PacketStats, build_packets
from .tcp import streams


@dataclass(repr=False)
class Capture:
    """A capture file read into tables. Columns are documented in docs/tables.md."""

    path: str
    format: str
    compression: str
    interfaces: list[dict]
    packets: pd.DataFrame
    flows: pd.DataFrame
    _dns: pd.DataFrame | rare_layers.DnsMessages  # the `dns` table, or the messages it is made from
    icmp: pd.DataFrame
    sack: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    skipped_bytes: int = 0
    stats: PacketStats = field(default_factory=PacketStats)
    packets_kept: bool = True  # False after read(keep_packets=False): `packets` is empty on purpose

    @property
    def dns(self) -> pd.DataFrame:
        """The DNS table (docs/tables.md), laid out from the decoded messages the first time it is read."""
        if isinstance(self._dns, rare_layers.DnsMessages):
            self._dns = self._dns.table()
        return self._dns

    @dns.setter
    def dns(self, table: pd.DataFrame) -> None:
        self._dns = table

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def link_types(self) -> list[str]:
        seen = sorted({i["linktype"] for i in self.interfaces})
        return [decode.LINKTYPE_NAMES.get(lt, f"LINKTYPE_{lt}") for lt in seen]

    @property
    def time_span(self) -> tuple[float | None, float | None]:
        first, last = self.stats.first_ts_ns, self.stats.last_ts_ns
        return (first / 1e9, last / 1e9) if first is not None and last is not None else (None, None)

    def summary(self) -> dict:
        """Facts about the file, JSON-ready (the `inspect --json` capture object minus its flows)."""
        start, end = self.time_span
        status = self.stats.status
        return {
            "path": self.path,
            "format": self.format,
            "compression": self.compression or None,
            "link_types": self.link_types,
            "interfaces": self.interfaces,
            "packets": self.stats.packets,
            "first_ts": start,
            "last_ts": end,
            "duration": (end - start) if start is not None else None,
            "truncated_packets": self.stats.truncated,
            "undecodable_packets": {str(k): int(v) for k, v in status.items() if k != "ok" and v},
            "tcp_connections": int(len(self.flows)),
            "dns_messages": self._dns_messages(),
            "icmp_errors": int(len(self.icmp)),
            "skipped_bytes": self.skipped_bytes,
            "warnings": list(self.warnings),
        }

    def _dns_messages(self) -> int:
        if isinstance(self._dns, rare_layers.DnsMessages):
            return self._dns.messages  # without laying out the table
        return int(self._dns["frame"].nunique()) if len(self._dns) else 0

    def __repr__(self) -> str:
        """One line of facts, not every table (a notebook shows the tables when asked: cap.flows)."""
        s = self.summary()
        span = f", {s['duration']:.3f} s" if s["duration"] is not None else ""
        warnings = f", {len(self.warnings)} warnings" if self.warnings else ""
        return (
            f"Capture({printable(self.name, 120)!r}, {s['format']}, {s['packets']} packets{span}, "
            f"{s['tcp_connections']} TCP connections, {s['dns_messages']} DNS messages, "
            f"{s['icmp_errors']} ICMP errors{warnings})"
        )

    def _repr_html_(self) -> str:
        """The summary as a small table in Jupyter; the tables themselves stay one attribute away."""
        rows = {}
        for key, value in self.summary().items():
            if key in ("first_ts", "last_ts"):  # epoch seconds in summary(); a person reads the UTC time
                ns = self.stats.first_ts_ns if key == "first_ts" else self.stats.last_ts_ns
                key, value = (
                    key.replace("_ts", "_time"),
                    "" if ns is None else pd.Timestamp(ns, tz="UTC").isoformat(),
                )
            if key == "duration" and value is not None:
                value = f"{value:.6f} s"
            if key not in ("interfaces", "path"):
                rows[key] = value
        rows["tables"] = "packets, flows, dns, icmp, sack (pandas DataFrames)"
        left = "style='text-align:left'"
        cells = "".join(
            f"<tr><th {left}>{html_text(k)}</th><td {left}>{html_text(v, 400)}</td></tr>"
            for k, v in rows.items()
        )
        return f"<div><b>pcapmtu capture</b> {html_text(self.name, 200)}<table>{cells}</table></div>"


def read(
    path: str | os.PathLike[str],
    tcp_config: tcp.TcpConfig | None = None,
    progress=None,
    keep_packets: bool = True,
    max_packets: int | None = None,
    max_memory: int | str | None = None,
) -> Capture:
    """Read a pcap/pcapng (optionally compressed) file into a `Capture`. Raises CaptureError.

    `progress(done_bytes, total_bytes)`, if given, is called as the file is read. `keep_packets=False`
    leaves the `packets` table empty and keeps only what flows, dns and icmp need while reading: the same
    flows for a fraction of the memory (what `pcapmtu inspect` does). `analyze()` and `export()` refuse
    such a capture (`Capture.packets_kept` is False).

    The read budget (docs/cli.md#read-limits): a capture of more than `max_packets` packets, or whose
    tables would take more than `max_memory` bytes (an int, or a string such as "8G"), stops early with
    `TooBig`, a CaptureError. None: the defaults derived from the machine's available memory; 0: no limit.
    """
    return read_within(path, ReadBudget(max_packets, max_memory), tcp_config, progress, keep_packets)


def read_within(
    path: str | os.PathLike[str],
    budget: ReadBudget,
    tcp_config=None,
    progress=None,
    keep_packets: bool = True,
) -> Capture:
    """`read()` under a budget the caller holds (`analyze()`: one for all its captures)."""
    with collector_paused():
        return _read(path, tcp_config, progress, keep_packets, budget)


def _read(path, tcp_config, progress, keep_packets: bool, budget: ReadBudget) -> Capture:
    cap = CaptureFile.open(path)
    try:
        check = budget.start(path, keep_packets)
        raw = build_packets(cap, progress, keep_packets=keep_packets, budget=check)
        check.done()
        release_free_memory()  # the reader's freed buffers, before the analysis needs room
        packets = raw.packets
        analysis, flows = tcp.reconstruct(packets, raw.sack, tcp_config, per_packet=keep_packets)
        for col, values in analysis.items():
            packets[col] = values
        if keep_packets:
            packets = packets[list(schema.PACKETS)]  # copy-on-write: a reordered view, no copy
        dns = rare_layers.dns_messages(packets, raw.rare)
        icmp = rare_layers.icmp_table(packets, raw.rare)
        tls = rare_layers.tls_table(packets, lambda rows: _payloads(cap, packets, rows))
        flows = service_names.link_names(flows, dns.answers(), tls)
        http = http_framing.http_table(packets, flows, lambda rows: _payloads(cap, packets, rows))
        flows = http_framing.with_http_columns(flows, http)
        icmp = schema.typed(icmp if len(icmp) else schema.empty(schema.ICMP), schema.ICMP)
        flows["tcp_stream"] = streams.tcp_streams(flows, icmp, raw.stats.first_sflow_frame)
        flows = schema.typed(flows[list(schema.FLOWS)], schema.FLOWS)
        warnings = list(cap.warnings) + _quality_warnings(raw.stats)
        return Capture(
            path=str(path),
            format=cap.format,
            compression=cap.compression,
            interfaces=[
                {"linktype": i.linktype, "name": i.name, "snaplen": i.snaplen} for i in cap.interfaces
            ],
            packets=packets if keep_packets else schema.empty(schema.PACKETS),
            flows=flows,
            _dns=dns,
            icmp=icmp,
            sack=raw.sack,
            warnings=warnings,
            skipped_bytes=cap.skipped_bytes,
            stats=raw.stats,
            packets_kept=keep_packets,
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


def _quality_warnings(stats: PacketStats) -> list[str]:
    notes = []
    if not stats.packets:
        notes.append("the capture holds no packets")
        return notes
    bad = {k: v for k, v in stats.status.items() if k != "ok" and v > 0}
    if bad:
        detail = ", ".join(f"{k}: {v}" for k, v in bad.items())
        notes.append(f"{sum(bad.values())} packet(s) could not be fully decoded ({detail})")
    if stats.backwards:
        notes.append(
            f"{stats.backwards} packet(s) have a timestamp earlier than the packet before; file order is used"
        )
    return notes
