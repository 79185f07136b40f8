"""Scan (after render): many captures at once, `pcapmtu scan` (docs/scan.md).

discover (PATH arguments -> capture files and manifests) -> groups (files -> incidents, with roles) -> job
(one group: analyse, report, Parquet, its line) run by an engine: local (a process pool) or dask_cluster (a
Dask distributed cluster); line (the JSON line, a contract), state (what a resumed run skips), fleet (the
partitioned Parquet tables), run (the whole scan, which the CLI calls).
"""
