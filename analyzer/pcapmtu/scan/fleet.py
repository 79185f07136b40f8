"""`scan --parquet DIR`: the fleet's tables, partitioned by group (Hive style), one file per table and group:

    DIR/groups/group=<id>/part.parquet     one row per group: its verdict, confidence, path MTU, files
    DIR/findings/group=<id>/part.parquet   the group's findings (role, code, severity, message, frames...)
    DIR/flows/group=<id>/part.parquet      every connection of every capture of the group, with its file

DuckDB (`read_parquet('DIR/flows/*/*.parquet', hive_partitioning = true)`) and Spark
(`spark.read.parquet('DIR/flows')`) read each table as one, with `group` from the folder name; the files do
not repeat it (Spark refuses a column that is both). Each worker writes its own groups' files, atomically;
a group run again replaces its files, and a table it no longer has rows for loses its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..render.parquet import write_table
from .groups import Group

if TYPE_CHECKING:
    from ..diagnose.analysis import Analysis

PART = "part.parquet"
TABLES = ("groups", "findings", "flows")


def partition(root: Path, table: str, group_id: str) -> Path:
    return root / table / f"group={group_id}" / PART


def write_failed(root: Path, group: Group, line: dict) -> list[Path]:
    """A group that could not be analysed: its row (status `error`, the problems) and no other rows."""
    for table in ("findings", "flows"):
        partition(root, table, group.id).unlink(missing_ok=True)
    return [write_table(_group_row(line), partition(root, "groups", group.id))]


def write_group(root: Path, group: Group, line: dict, analysis: Analysis) -> list[Path]:
    """The three tables' rows of one analysed group; the paths written."""
    file_of = {role: _file(line, role) for role in analysis.captures}
    written = [write_table(_group_row(line), partition(root, "groups", group.id))]
    findings = analysis.findings.drop(columns=["evidence"]).rename(columns={"capture": "role"})
    findings["frames"] = findings["frames"].map(lambda x: [int(v) for v in x])
    findings.insert(0, "file", findings["role"].map(file_of).fillna(""))
    flows = analysis.flows.rename(columns={"capture": "role"})
    flows.insert(0, "file", flows["role"].map(file_of).fillna("") if len(flows) else "")
    for table, frame in (("findings", findings), ("flows", flows)):
        target = partition(root, table, group.id)
        if len(frame):
            written.append(write_table(frame, target))
        else:
            target.unlink(missing_ok=True)  # a group run again with no rows must not keep its old ones
    return written


def _file(line: dict, role: str) -> str:
    return next((f["path"] for f in line["files"] if f.get("analysed_as") == role), "")


def _group_row(line: dict) -> pd.DataFrame:
    window = line["time_window"]
    row = {
        "name": line["name"],
        "grouped_by": line["grouped_by"],
        "status": line["status"],
        "verdict": line["verdict"],
        "reason": line["reason"],
        "confidence": line["confidence"],
        "path_mtu": line["path_mtu"],
        "recommended_mss": line["recommended_mss"],
        "first_ts": pd.Timestamp(window["first"]) if window["first"] else pd.NaT,
        "last_ts": pd.Timestamp(window["last"]) if window["last"] else pd.NaT,
        "files": [f["path"] for f in line["files"]],
        "roles": [f.get("analysed_as") or f["role"] for f in line["files"]],
        "error_findings": line["findings"].get("error", 0),
        "warning_findings": line["findings"].get("warning", 0),
        "top_codes": [f["code"] for f in line["top_findings"]],
        "problems": "; ".join(line["errors"]),
        "key": line["key"],
    }
    frame = pd.DataFrame([row])
    for col in ("path_mtu", "recommended_mss"):
        frame[col] = frame[col].astype("Int64")
    frame["first_ts"] = pd.to_datetime(frame["first_ts"], utc=True)
    frame["last_ts"] = pd.to_datetime(frame["last_ts"], utc=True)
    return frame
