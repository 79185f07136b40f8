"""Imported first by the local pool's fork server when the scan writes no Parquet: its workers then start
as `pcapmtu analyze` does (cli._start_up), without pyarrow, which pandas would otherwise load to back its
string columns (~40 MiB a worker, the tables the same without it). A fork server is a fresh interpreter:
the scan's own settings do not reach it any other way."""

import sys

sys.modules.setdefault("pyarrow", None)  # type: ignore[arg-type]  # None: "not installed"
