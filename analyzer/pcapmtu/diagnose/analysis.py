"""The analysis of an incident: captures by role -> path evidence -> detectors -> verdicts -> fix.

This is the one code path behind both the CLI (`pcapmtu analyze`) and notebooks (`pcapmtu.analyze`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import schema
from ..config import KnownFacts, Thresholds
from ..errors import UsageError
from ..ingest.budget import ReadBudget
from ..ingest.capture import Capture, read_within
from ..results import Diagnosis, Finding
from . import detectors, path_mtu, verdicts
from . import roles as roles_mod
from .context import Context
from .platforms import PLATFORMS
from .vantage import Vantage

if TYPE_CHECKING:  # pyshark is optional: wireshark.py loads only when asked
    from .wireshark import WiresharkCheck

Source = str | os.PathLike[str] | Capture
NAT_NS = int(np.iinfo(np.int64).min)  # numpy's NaT as int64 nanoseconds


@dataclass(repr=False)
class Analysis:
    """Everything `analyze()` concluded. Tables are pandas DataFrames; see docs/report-format.md."""

    context: Context
    findings_list: list[Finding]
    verdicts: pd.DataFrame
    diagnosis: Diagnosis
    wireshark_check: WiresharkCheck | None = (
        None  # the last wireshark() result, for report.json and the report
    )

    @property
    def captures(self) -> dict[str, Capture]:
        return self.context.captures

    @property
    def vantage(self) -> dict[str, Vantage]:
        """Where each capture was taken (role -> Vantage: client, server, middle or unknown, with reasons)."""
        return self.context.vantage

    @property
    def role_changes(self) -> list[str]:
        """Roles given wrongly (or not at all) and how they were placed, in words."""
        return self.context.role_changes

    @property
    def verdict(self) -> str:
        return self.diagnosis.verdict

    @property
    def confidence(self) -> float:
        return self.diagnosis.confidence

    @property
    def explanation(self) -> str:
        return self.diagnosis.explanation

    @property
    def fix(self):
        return self.diagnosis.fix

    @property
    def path_mtu(self) -> int | None:
        return self.diagnosis.path_mtu

    @property
    def pairs(self) -> pd.DataFrame:
        """Container connections matched to their host-side twins across NAT."""
        return self.context.pairs

    @cached_property
    def findings(self) -> pd.DataFrame:
        """One row per finding; `time` is when the first frame it cites was captured (UTC), NaT without frames."""
        rows = [asdict(f) for f in self.findings_list]
        cols = [
            "code",
            "name",
            "severity",
            "message",
            "hint",
            "capture",
            "conn",
            "tcp_stream",
            "frames",
            "time",
            "wireshark_filter",
            "evidence",
        ]
        for row in rows:
            row["time"] = self._frame_ns(row["capture"], row["frames"])
        table = pd.DataFrame(rows, columns=cols)
        table["time"] = schema.utc(table["time"].to_numpy(dtype="int64") if len(table) else [])
        return table

    def _frame_ns(self, role: str, frames) -> int:
        """Capture time (ns) of the earliest of `frames` in the capture of `role`; NaT's int64 when unknown."""
        cap = self.captures.get(role)
        if cap is None or not frames or not len(cap.packets):
            return NAT_NS
        numbers = cap.packets["frame"].to_numpy()
        first = min(int(f) for f in frames)
        at = int(numbers.searchsorted(first))
        return int(cap.packets["ts_ns"].iat[at]) if at < len(numbers) and numbers[at] == first else NAT_NS

    @cached_property
    def flows(self) -> pd.DataFrame:
        """Every capture's connections with its role and verdict (one table for all captures)."""
        parts = []
        for role, cap in self.captures.items():
            f = cap.flows.copy()
            f.insert(0, "capture", role)
            v = self.verdicts[self.verdicts["capture"] == role].set_index("conn")
            f["verdict"] = f["conn"].map(v["verdict"]).fillna("")
            f["verdict_reason"] = f["conn"].map(v["reason"]).fillna("")
            parts.append(f)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    # ---------------------------------------------------------------- notebook conveniences (same code path)
    def to_json(self) -> dict:
        """The report.json document (docs/report-format.md)."""
        from ..render.jsondoc import analyze_document

        return analyze_document(self)

    def save(self, out_dir, force: bool = False, svg: bool = False) -> list:
        """Write report.html, report.md, report.json and plots/ exactly as `pcapmtu analyze --out`
        (`svg`: as `--svg`, vector copies of the timeline and MSS plots too)."""
        from ..render.report import write_report

        return write_report(self, out_dir, force=force, svg=svg)

    def wireshark(self, max_frames: int = 200):
        """Wireshark's word on the evidence: each finding's evidence frames as tshark decodes them (through
        pyshark, the `deep` extra), beside what the finding claims, agreeing or not (docs/wireshark.md)."""
        from .wireshark import check

        self.wireshark_check = check(self, max_frames=max_frames)
        return self.wireshark_check

    def plot_time_sequence(self, flow: int | tuple[str, int] | None = None):
        """Time-sequence graph of a connection: a conn id of the container capture, (role, conn), or the worst."""
        from ..render import plots
        from ..render.report import suspects

        if flow is None:
            worst = suspects(self, 1)
            if not worst:
                raise ValueError("no suspect connection to plot; pass (capture, conn)")
            flow = worst[0]
        if isinstance(flow, int):
            flow = (self.context.container_roles[0], flow)
        return plots.time_sequence(self, *flow)

    def plot_timeline(self):
        from ..render import plots

        return plots.timeline(self)

    def plot_sizes(self):
        from ..render import plots

        return plots.sizes(self)

    def plot_mss(self):
        from ..render import plots

        return plots.mss_summary(self)

    def __repr__(self) -> str:
        d = self.diagnosis
        reason = f" ({d.reason})" if d.reason else ""
        return (
            f"Analysis({d.verdict}{reason}, confidence {d.confidence:.0%}, path MTU {d.path_mtu}, "
            f"captures {', '.join(f'{r}={c.name!r}' for r, c in self.captures.items())})"
        )

    def _repr_markdown_(self) -> str:
        from ..textsafe import markdown, md_block

        d = self.diagnosis
        head = (
            f"**pcapmtu: `{d.verdict}`**"
            + (f" ({d.reason})" if d.reason else "")
            + f", confidence {d.confidence:.0%}"
        )
        fix = f"\n\n**Fix:** {markdown(d.fix.summary, 500)}" if d.fix else ""
        return f"{head}\n\n{md_block(markdown(d.explanation, 4000))}{fix}"  # it starts a paragraph

    def _repr_html_(self) -> str:
        """The verdict, the explanation, the fix and one row per capture; the tables stay one attribute away."""
        from ..textsafe import html_text

        d = self.diagnosis
        fix = f"<p><b>Fix:</b> {html_text(d.fix.summary, 500)}</p>" if d.fix else ""
        reason = f" ({html_text(d.reason)})" if d.reason else ""
        mtu = f", path MTU {d.path_mtu}" if d.path_mtu else ""
        counts = self.findings["severity"].value_counts()
        found = ", ".join(f"{int(counts[s])} {s}" for s in ("error", "warning", "info") if s in counts)
        head = "".join(
            f"<th style='text-align:left'>{h}</th>"
            for h in ("role", "capture", "vantage", "packets", "connections", "first packet (UTC)")
        )
        rows = []
        for role, cap in self.captures.items():
            ns = cap.stats.first_ts_ns
            first = "" if ns is None else pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
            where = self.vantage[role].position if role in self.vantage else ""
            cells = (role, cap.name, where, cap.stats.packets, len(cap.flows), first)
            rows.append(
                "<tr>" + "".join(f"<td style='text-align:left'>{html_text(c)}</td>" for c in cells) + "</tr>"
            )
        table = f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        tables = (
            "findings, verdicts, flows, pairs (pandas DataFrames); captures[role].packets, .flows, .dns, "
            ".icmp"
        )
        return (
            f"<div><p><b>pcapmtu: {html_text(d.verdict)}</b>{reason}, confidence {d.confidence:.0%}{mtu}</p>"
            f"<p>{html_text(d.explanation, 4000)}</p>{fix}{table}"
            f"<p>findings: {html_text(found or 'none')}; tables: {tables}</p></div>"
        )


def analyze(
    host: Source | None = None,
    container: Source | None = None,
    *more: Source,
    server: Source | None = None,
    captures: Iterable[Source] = (),
    host_mtu: int | None = None,
    container_mtu: int | None = None,
    platform: str = "auto",
    clamp_rules: Iterable[str] = (),
    recorded_platform: str | None = None,
    thresholds: Thresholds | None = None,
    progress=None,
    max_packets: int | None = None,
    max_memory: int | str | None = None,
) -> Analysis:
    """Diagnose MTU/MSS trouble from captures taken anywhere on the path.

    `host` is the docker host's uplink, `container` (and `more`) inside containers, `server` the server's
    own capture, `captures` any capture of unknown role: each is placed by where it was taken (vantage.py),
    and given roles that contradict the evidence are corrected (`Analysis.role_changes` says so). With one
    capture the verdict rests on that side alone and says so through a lower confidence.
    `platform`: the language of the fix: "docker" (daemon.json, network options), "kubernetes" (the CNI's MTU
    setting, the clamp as a DaemonSet rule) or "auto" (from the captures: Kubernetes only when an interface
    name gives the CNI away, both when an overlay is seen, else Docker); docs/fixes.md.
    `host_mtu`, `container_mtu`: the uplink's and the container interface's MTU, when known; `clamp_rules`:
    the MSS clamp rules the docker host has (`pcapmtu capture` records both); `recorded_platform`: "docker"
    when `pcapmtu capture` took the captures of a Docker container, which the fix then speaks for when
    `platform` is "auto".
    `progress(role, done_bytes, total_bytes)` is called while each capture is read.
    `max_packets`, `max_memory`: the read budget as in `read()`, for the total of the captures it reads (all
    of them are held at once); captures given already read do not count.
    """
    roles: dict[str, Source] = {}
    if host is not None:
        roles["host"] = host
    if container is not None:
        roles["container"] = container
    for i, extra in enumerate(more, start=2):
        roles[f"container{i}"] = extra
    if server is not None:
        roles["server"] = server
    unplaced = list(captures)
    for i, extra in enumerate(unplaced):
        roles[f"capture{i + 1}"] = extra
    if not roles:
        raise UsageError("give at least one capture (host and/or container)")
    if platform not in PLATFORMS:
        raise UsageError(f"platform must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    if recorded_platform not in (None, "docker", "kubernetes"):
        raise UsageError(f"recorded_platform must be docker or kubernetes, not {recorded_platform!r}")
    budget = ReadBudget(max_packets, max_memory, shared=True)
    read_in = {}
    for role, src in roles.items():
        if isinstance(src, Capture) and not src.packets_kept:
            raise UsageError(f"{src.name} was read with keep_packets=False; the diagnosis needs its packets")
        tick = (lambda done, total, role=role: progress(role, done, total)) if progress else None
        read_in[role] = src if isinstance(src, Capture) else read_within(src, budget, progress=tick)
    placed, vantage, changes = roles_mod.place(read_in)
    ctx = Context(
        placed,
        KnownFacts(host_mtu, container_mtu, platform, tuple(clamp_rules), recorded_platform),
        thresholds or Thresholds(),
        vantage=vantage,
        role_changes=changes,
    )
    ctx.path = path_mtu.infer(ctx)
    findings = detectors.run(ctx)
    table = verdicts.verdicts(ctx, findings)
    return Analysis(ctx, findings, table, verdicts.overall(ctx, table, findings))
