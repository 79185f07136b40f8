"""A scan from start to end: find the captures, group them, skip what is done, run the rest on an engine
(local.py or dask_cluster.py), keep each line as it comes, and write the index. The CLI and notebooks call
`scan()`; it prints nothing (progress and each line go to the callbacks)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import UsageError
from . import job
from . import line as lines
from .discover import discover
from .groups import Group, connection_keys, group
from .state import State

INDEX = "index.html"
STATE = "scan.jsonl"  # under --out: every group's line, and what a resumed run skips
HASH_HERE_BYTES = 64 << 20  # captures this small in total are hashed by the scan itself (~0.1 s of sha256)


@dataclass
class ScanResult:
    lines: list[dict]  # every group's line, worst first
    groups: int
    resumed: int = 0  # groups skipped: done by an earlier run
    index: Path | None = None
    captures: int = 0  # files in the groups


def scan(
    paths: list[str | os.PathLike[str]],
    engine,
    options: job.JobOptions,
    out: Path | None = None,
    state: Path | None = None,
    force: bool = False,
    on_line: Callable[[dict], object] | None = None,
    progress: Callable[[str, int, int], object] | None = None,
) -> ScanResult:
    """Scan `paths` with `engine`; each line goes to `on_line` as its group finishes (resumed ones first).
    `progress(phase, done, total)` follows the run. Raises UsageError when nothing can be scanned."""
    tick = progress or (lambda *_: None)
    found = discover(paths)
    if not found.captures and not found.manifests:
        raise UsageError(
            f"no capture found in {', '.join(map(str, paths))} (.pcap, .pcapng, .cap, compressed ok)"
        )
    base = options.base

    def absolute(p: str) -> str:
        return os.path.join(base, p)

    def pairing_keys(ps: list[str]) -> list[frozenset]:
        tick("pairing captures by their connections", 0, len(ps))
        read = partial(connection_keys, max_packets=options.max_packets, max_memory=options.max_memory)
        keys = engine.map(read, [absolute(p) for p in ps])
        tick("pairing captures by their connections", len(ps), len(ps))
        return keys

    groups = group(found, pairing_keys)
    files = sorted({m.path for g in groups for m in g.members})
    tick("hashing captures", 0, len(files))
    paths_of = [absolute(p) for p in files]
    if _total_size(paths_of) <= HASH_HERE_BYTES:  # a few small files: no worker needs to start for them
        hashed = [job.digest(p) for p in paths_of]
    else:
        hashed = engine.map(job.digest, paths_of)
    digests = dict(zip(files, hashed, strict=True))
    tick("hashing captures", len(files), len(files))
    keys = [job.group_key(g, digests, options) for g in groups]

    kept = State(state)
    done = {} if force else kept.load()
    finished: list[dict] = []
    todo: list[int] = []
    for i, key in enumerate(keys):
        if key in done and _still_done(done[key], groups[i], options):
            finished.append(done[key])
        else:
            todo.append(i)
    resumed = len(finished)
    kept.begin(finished)
    try:
        for line in finished:
            _emit(line, on_line)
        tick("analysing groups", len(finished), len(groups))
        calls = [(groups[i], _digests_of(groups[i], digests), options) for i in todo]

        def died(n: int) -> dict:
            g = groups[todo[n]]
            return lines.error_line(g, keys[todo[n]], _digests_of(g, digests), [engine.died_message])

        for _n, result in engine.run_all(job.run, calls, died):
            kept.record(result)
            finished.append(result)
            _emit(result, on_line)
            tick("analysing groups", len(finished), len(groups))
    finally:
        kept.close()
    finished.sort(key=lines.rank)
    kept.finish(finished)
    index = None
    if out is not None:
        from ..render.scan_index import write_index

        index = write_index(out / INDEX, finished)
    return ScanResult(finished, len(groups), resumed, index, len(files))


def _total_size(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):  # digest() says "" for it, and its group gets the error line
            total += os.path.getsize(p)
    return total


def _still_done(line: dict, g: Group, options: job.JobOptions) -> bool:
    """A line kept from an earlier run counts when the outputs asked for now exist: its report (with
    --out), its Parquet partition (with --parquet)."""
    if options.reports is not None and not (
        line.get("report") and Path(options.reports, line["report"]).is_file()
    ):
        return False
    if options.parquet is not None:
        from .fleet import partition

        return partition(Path(options.parquet), "groups", g.id).is_file()
    return True


def _digests_of(g: Group, digests: dict[str, str]) -> dict[str, str]:
    return {m.path: digests[m.path] for m in g.members}


def _emit(line: dict, on_line) -> None:
    if on_line is not None:
        on_line(line)
