"""The work of one group, the same wherever it runs (a local worker process or a Dask worker): analyse its
captures, write its report and Parquet partitions when asked, and return its line. Nothing here raises for
a capture: a group that cannot be analysed returns its error line, and the scan goes on."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..errors import PcapmtuError
from ..textsafe import printable
from . import line as lines
from .groups import Group

CHUNK = 1 << 20
REPORTS = "reports"  # under --out: reports/<group id>/report.html


@dataclass(frozen=True)
class JobOptions:
    """What every group's job is given."""

    max_packets: int | None = None  # per group (its captures together), as `analyze --max-packets`
    max_memory: int | None = None  # per group, bytes; None: the worker's share (local.py, dask_cluster.py)
    reports: str | None = None  # --out: one report per group in <reports>/reports/<group id>/ (absolute)
    parquet: str | None = None  # --parquet: the directory of the fleet tables (fleet.py; absolute)
    base: str = "."  # the directory relative paths of captures start from (the scan's, not the worker's)


def digest(path: str) -> str:
    """sha256 of a file's contents; "" when it cannot be read (its analysis will say why)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def group_key(group: Group, digests: dict[str, str], options: JobOptions) -> str:
    """The resume key: pcapmtu's version, the facts stated for the group, and each file's role, path and
    content. A file changed or replaced, another pcapmtu: the group is analysed again. (Outputs asked
    for, a report or Parquet, are checked apart: run.py `_still_done`.)"""
    doc = {
        "version": __version__,
        "group": group.id,
        "facts": [group.host_mtu, group.container_mtu],
        "files": [[m.role, m.path, digests.get(m.path, "")] for m in group.members],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def run(group: Group, digests: dict[str, str], options: JobOptions) -> dict:
    """Analyse one group; its line (docs/scan.md). Any failure becomes the line's `errors`."""
    key = group_key(group, digests, options)
    analysis, problems = None, []
    missing = [m.path for m in group.members if not digests.get(m.path)]  # digest(): "" when unreadable
    if missing:
        problems = [
            f"{printable(p, 300)}: cannot be read ({_why_unreadable(options.base, p)})" for p in missing
        ]
    else:
        try:
            analysis = _analyze(group, options)
        except PcapmtuError as exc:
            problems = [printable(exc, 600)]
        except MemoryError:
            problems = ["out of memory; lower --workers or --max-memory"]
        except Exception as exc:  # noqa: BLE001 - a bug in pcapmtu on one group must not stop the fleet
            problems = [f"internal error: {printable(exc, 500)}"]
    if analysis is None:
        line = lines.error_line(group, key, digests, problems)
        _write_outputs(options, group, line, None)
        return line
    report = None
    if options.reports is not None:
        try:
            analysis.save(Path(options.reports) / REPORTS / group.id, force=True)
            report = f"{REPORTS}/{group.id}/report.html"
        except Exception as exc:  # noqa: BLE001 - the verdict stands without its report
            problems.append(f"report not written: {printable(exc, 400)}")
    line = lines.analysis_line(group, key, digests, analysis, report, options.base)
    line["errors"] = problems + _write_outputs(options, group, line, analysis)
    return line


def _write_outputs(options: JobOptions, group: Group, line: dict, analysis) -> list[str]:
    """The group's Parquet partitions, when asked; what went wrong, in words."""
    if options.parquet is None:
        return []
    from . import fleet

    try:
        if analysis is None:
            fleet.write_failed(Path(options.parquet), group, line)
        else:
            fleet.write_group(Path(options.parquet), group, line, analysis)
    except Exception as exc:  # noqa: BLE001 - the verdict stands without its tables
        return [f"Parquet not written: {printable(exc, 400)}"]
    return []


def _analyze(group: Group, options: JobOptions):
    from ..diagnose.analysis import analyze

    def files(role: str) -> list[str]:
        return [os.path.join(options.base, m.path) for m in group.members if m.role == role]

    hosts, containers, servers, unplaced = (
        files("host"),
        files("container"),
        files("server"),
        files("capture"),
    )
    return analyze(
        hosts[0] if hosts else None,
        containers[0] if containers else None,
        *containers[1:],
        server=servers[0] if servers else None,
        captures=unplaced,
        host_mtu=group.host_mtu,
        container_mtu=group.container_mtu,
        max_packets=options.max_packets,
        max_memory=options.max_memory,
    )


def _why_unreadable(base: str, path: str) -> str:
    p = Path(base, path)
    if not p.exists():
        return "no such file"
    if p.is_dir():
        return "a directory"
    return "permission denied or an I/O error"


def with_options(options: JobOptions, **changes) -> JobOptions:
    return JobOptions(**{**asdict(options), **changes})
