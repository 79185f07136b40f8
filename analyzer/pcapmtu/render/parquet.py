"""Tables as Parquet, one file per table, with the capture's name as a column: a fleet's worth of captures
can then be queried together (DuckDB, Spark, pandas). See docs/export.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import CaptureError, UsageError
from ..ingest.capture import Capture, read

TABLES = ("packets", "flows", "dns", "icmp")


def export(
    sources: list[str | os.PathLike[str] | Capture],
    to: str | os.PathLike[str],
    findings: bool = True,
    max_packets: int | None = None,
    max_memory: int | str | None = None,
) -> list[Path]:
    """Write <to>/<table>/<capture-stem>.parquet for each capture; return the files written.

    One directory per table makes `read_parquet('<to>/flows/*.parquet')` span every exported capture.
    With `findings`, each capture is also analysed on its own and its findings exported.
    `max_packets`, `max_memory`: the read budget as in `read()`, for each capture (they are read and
    written one at a time); a capture over it is one of the failures `PartialExport` lists.
    """
    out = Path(to)
    written: list[Path] = []
    seen: set[str] = set()
    failed: list[str] = []
    for src in sources:
        if isinstance(src, Capture) and not src.packets_kept:
            raise UsageError(f"{src.name} was read with keep_packets=False; export needs its packets")
        try:
            cap = (
                src if isinstance(src, Capture) else read(src, max_packets=max_packets, max_memory=max_memory)
            )
        except CaptureError as exc:
            failed.append(str(exc))  # go on with the others, like `inspect`
            continue
        name = str(cap.path)
        stem = _unique(_stem(cap.path), seen)
        for table in TABLES:
            frame = _plain(getattr(cap, table))
            frame.insert(0, "capture", name)
            written.append(_write(frame, out / table / f"{stem}.parquet"))
        if findings:
            from ..diagnose.analysis import analyze

            result = analyze(container=cap)
            f = result.findings.drop(columns=["evidence"]).rename(columns={"capture": "role"})
            f["frames"] = f["frames"].map(lambda x: [int(v) for v in x])
            f["time"] = _microseconds(f["time"])
            f.insert(0, "capture", name)
            written.append(_write(f, out / "findings" / f"{stem}.parquet"))
    if failed:
        raise PartialExport(written, failed)
    return written


def planned_files(paths: list[str | os.PathLike[str]], findings: bool = True) -> list[Path]:
    """The files `export` may write for these capture paths, relative to its directory: a superset when
    a capture cannot be read (it names no file then, and the ones after it may take its name)."""
    seen: set[str] = set()
    tables = TABLES + ("findings",) if findings else TABLES
    return [
        Path(table, f"{stem}.parquet")
        for stem in (_unique(_stem(str(p)), seen) for p in paths)
        for table in tables
    ]


class PartialExport(CaptureError):
    """Some captures could not be read; the others were exported."""

    def __init__(self, written: list[Path], failed: list[str]) -> None:
        super().__init__("; ".join(failed))
        self.written = written
        self.failed = failed


def _stem(path: str) -> str:
    """File stem that keeps the parent folder: sample/host.pcap -> sample-host."""
    p = Path(path)
    return f"{p.parent.name}-{p.stem}" if p.parent.name else p.stem


def _unique(stem: str, seen: set[str]) -> str:
    candidate, i = stem, 2
    while candidate in seen:
        candidate, i = f"{stem}-{i}", i + 1
    seen.add(candidate)
    return candidate


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet-friendly copy: text columns become Arrow strings even when empty, so files union cleanly;
    datetimes are written in microseconds, UTC."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = _microseconds(out[col])
        elif (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            values = out[col].astype(object)
            out[col] = (
                values.where(values.notna(), None).map(lambda v: v if v is None else str(v)).astype("string")
            )
    return out


def _microseconds(times: pd.Series) -> pd.Series:
    """UTC datetimes cut to the microsecond: DuckDB reads those as TIMESTAMP WITH TIME ZONE (nanoseconds
    would be TIMESTAMPTZ_NS, which fewer functions take). `ts_ns` keeps the exact value."""
    return times.dt.tz_convert("UTC").dt.floor("us").astype("datetime64[us, UTC]")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """One table as one Parquet file, in the shape `export` writes (`scan --parquet` uses it too)."""
    return _write(_plain(frame), path)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError("Parquet export needs pyarrow: pip install 'pcapmtu[export]'") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path
