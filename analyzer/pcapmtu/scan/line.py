"""The scan line: one JSON object per group, a contract (docs/scan.md; tests/scan_line_schema.json).

A line holds what the group's analysis concluded and nothing about the run that made it (no timings, no
worker names): the same captures give the same line locally and on a Dask cluster, and a resumed run
re-emits the line it kept. Adding a field is compatible; renaming or removing one bumps SCHEMA_VERSION.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .. import __version__
from ..results import Severity, Verdict
from .groups import Group

if TYPE_CHECKING:
    from ..diagnose.analysis import Analysis

SCHEMA_VERSION = 1
TOP_FINDINGS = 5
ERROR = "error"  # a line's `status` when the group could not be analysed (its `verdict` is null)


def _head(group: Group, key: str, digests: dict[str, str]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "group": group.id,
        "name": group.name,
        "grouped_by": group.grouped_by,
        "key": key,
        "files": [
            {
                "path": m.path,
                "role": m.role,
                "analysed_as": None,
                "vantage": None,
                "sha256": digests.get(m.path) or None,
                "packets": None,
            }
            for m in group.members
        ],
    }


def error_line(group: Group, key: str, digests: dict[str, str], errors: list[str]) -> dict:
    """The line of a group that could not be analysed: its files, and why, in one line each."""
    return {
        **_head(group, key, digests),
        "status": ERROR,
        "verdict": None,
        "reason": None,
        "confidence": None,
        "path_mtu": None,
        "recommended_mss": None,
        "findings": {str(s): 0 for s in Severity},
        "top_findings": [],
        "time_window": {"first": None, "last": None, "seconds": None},
        "report": None,
        "errors": errors,
    }


def analysis_line(
    group: Group, key: str, digests: dict[str, str], analysis: Analysis, report: str | None, base: str = "."
) -> dict:
    d = analysis.diagnosis
    line = _head(group, key, digests)
    by_path = {os.path.abspath(cap.path): role for role, cap in analysis.captures.items()}
    for item in line["files"]:
        role = by_path.get(os.path.abspath(os.path.join(base, item["path"])))
        if role is not None:
            cap = analysis.captures[role]
            vantage = analysis.vantage.get(role)
            item.update(
                analysed_as=role,
                vantage=vantage.position if vantage is not None else None,
                packets=int(cap.stats.packets),
            )
    findings = analysis.findings_list
    loud = sorted(range(len(findings)), key=lambda i: (-Severity(findings[i].severity).rank, i))
    counts = {str(s): 0 for s in Severity}
    for f in findings:
        counts[str(f.severity)] += 1
    starts = [c.stats.first_ts_ns for c in analysis.captures.values() if c.stats.first_ts_ns is not None]
    ends = [c.stats.last_ts_ns for c in analysis.captures.values() if c.stats.last_ts_ns is not None]
    first, last = (min(starts), max(ends)) if starts and ends else (None, None)
    line.update(
        status="ok",
        verdict=str(d.verdict),
        reason=str(d.reason) if d.reason else None,
        confidence=round(float(d.confidence), 4),
        path_mtu=d.path_mtu,
        recommended_mss=d.recommended_mss,
        findings=counts,
        top_findings=[
            {
                "code": findings[i].code,
                "name": findings[i].name,
                "severity": str(findings[i].severity),
                "capture": findings[i].capture,
                "conn": findings[i].conn,
                "message": findings[i].message,
            }
            for i in loud[:TOP_FINDINGS]
        ],
        time_window={
            "first": _iso(first),
            "last": _iso(last),
            "seconds": round((last - first) / 1e9, 6) if first is not None else None,
        },
        report=report,
        errors=[],
    )
    return line


def _iso(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as ISO 8601 UTC with microseconds (what JSON readers parse)."""
    if ns is None:
        return None
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)  # exact: no float
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def rank(line: dict) -> tuple:
    """Worst first: MTU black holes, recovered ones, other problems, could not tell, groups that failed,
    healthy; then the more confident first, then by name."""
    verdict = line.get("verdict")
    severity = Verdict(verdict).rank if verdict else 1.5  # an error: above healthy (1), below inconclusive
    return (-severity, -(line.get("confidence") or 0), line.get("name") or "", line.get("group") or "")
