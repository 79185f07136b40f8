"""The analysis of an incident: captures by role -> path evidence -> detectors -> verdicts -> fix.

This is the one code path behind both the CLI (`pcapmtu analyze`) and notebooks (`pcapmtu.analyze`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cached_property

import pandas as pd

from . import detectors, diagnosis, path
from .capture import Capture, read
from .config import KnownFacts, Thresholds
from .context import Context
from .errors import UsageError
from .results import Diagnosis, Finding

Source = str | os.PathLike[str] | Capture


@dataclass
class Analysis:
    """Everything `analyze()` concluded. Tables are pandas DataFrames; see docs/report-format.md."""

    context: Context
    findings_list: list[Finding]
    verdicts: pd.DataFrame
    diagnosis: Diagnosis

    @property
    def captures(self) -> dict[str, Capture]:
        return self.context.captures

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
        rows = [asdict(f) for f in self.findings_list]
        cols = [
            "code",
            "name",
            "severity",
            "message",
            "hint",
            "capture",
            "conn",
            "frames",
            "wireshark_filter",
            "evidence",
        ]
        return pd.DataFrame(rows, columns=cols)

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


def analyze(
    host: Source | None = None,
    container: Source | None = None,
    *more: Source,
    host_mtu: int | None = None,
    container_mtu: int | None = None,
    thresholds: Thresholds | None = None,
) -> Analysis:
    """Diagnose MTU/MSS trouble from a host capture, a container capture, or both (plus more containers).

    With one capture the verdict rests on that side alone and says so through a lower confidence.
    """
    roles: dict[str, Source] = {}
    if host is not None:
        roles["host"] = host
    if container is not None:
        roles["container"] = container
    for i, extra in enumerate(more, start=2):
        roles[f"container{i}"] = extra
    if not roles:
        raise UsageError("give at least one capture (host and/or container)")
    captures = {role: src if isinstance(src, Capture) else read(src) for role, src in roles.items()}
    ctx = Context(captures, KnownFacts(host_mtu, container_mtu), thresholds or Thresholds())
    ctx.path = path.infer(ctx)
    findings = detectors.run(ctx)
    table = diagnosis.verdicts(ctx, findings)
    return Analysis(ctx, findings, table, diagnosis.overall(ctx, table, findings))
