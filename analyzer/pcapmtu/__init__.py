"""pcapmtu: find MTU/MSS black holes in packet captures of container networks.

The public API (guarded by tests/test_api.py; changes need a version bump):

    capture = pcapmtu.read("container.pcap")   # max_packets=, max_memory= (here, analyze, export): the read limits
    capture.packets, capture.flows, capture.dns, capture.icmp   # pandas tables, see docs/tables.md

    result = pcapmtu.analyze(host="host.pcap", container="container.pcap")   # also server=, captures=[...]
    pcapmtu.analyze(..., platform="kubernetes")   # the fix's language: docker, kubernetes, auto (docs/fixes.md)
    result.verdict, result.confidence, result.explanation, result.fix, result.findings, result.pairs
    result.verdict is pcapmtu.Verdict.MTU_BLACKHOLE    # Verdict and Reason: str enums, ranked
    result.vantage, result.role_changes        # where each capture was taken (Vantage), roles corrected
    result.save("report/")                      # the same report as `pcapmtu analyze --out report/`

    pcapmtu.export(["a.pcap", "b.pcap"], to="parquet/")   # tables as Parquet for DuckDB/Spark
"""

from ._version import __version__

# Names are imported on first use (PEP 562), so `import pcapmtu.cli` can start the command line without
# loading pandas, matplotlib and the detectors before it knows which command runs.
_EXPORTS = {
    "Analysis": "diagnose.analysis",
    "analyze": "diagnose.analysis",
    "Capture": "ingest.capture",
    "read": "ingest.capture",
    "KnownFacts": "config",
    "Thresholds": "config",
    "CaptureError": "errors",
    "PcapmtuError": "errors",
    "UsageError": "errors",
    "Reason": "results",
    "Vantage": "diagnose.vantage",
    "Verdict": "results",
    "export": "render.parquet",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pcapmtu' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Analysis",
    "Capture",
    "CaptureError",
    "KnownFacts",
    "PcapmtuError",
    "Reason",
    "Thresholds",
    "UsageError",
    "Vantage",
    "Verdict",
    "__version__",
    "analyze",
    "export",
    "read",
]
