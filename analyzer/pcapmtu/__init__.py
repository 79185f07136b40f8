"""pcapmtu: find MTU/MSS black holes in packet captures of container networks.

The public API (guarded by tests/test_api.py; changes need a version bump):

    capture = pcapmtu.read("container.pcap")
    capture.packets, capture.flows, capture.dns, capture.icmp   # pandas tables, see docs/tables.md

    result = pcapmtu.analyze(host="host.pcap", container="container.pcap")
    result.verdict, result.confidence, result.explanation, result.fix, result.findings, result.pairs
    result.save("report/")                      # the same report as `pcapmtu analyze --out report/`

    pcapmtu.export(["a.pcap", "b.pcap"], to="parquet/")   # tables as Parquet for DuckDB/Spark
"""

from ._version import __version__
from .analysis import Analysis, analyze
from .capture import Capture, read
from .config import KnownFacts, Thresholds
from .errors import CaptureError, PcapmtuError, UsageError
from .export import export

__all__ = [
    "Analysis",
    "Capture",
    "CaptureError",
    "KnownFacts",
    "PcapmtuError",
    "Thresholds",
    "UsageError",
    "__version__",
    "analyze",
    "export",
    "read",
]
