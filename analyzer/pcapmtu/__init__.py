"""pcapmtu: find MTU/MSS black holes in packet captures of container networks.

The public API (guarded by tests/test_api.py; changes need a version bump):

    capture = pcapmtu.read("container.pcap")
    capture.packets, capture.flows, capture.dns, capture.icmp   # pandas tables, see docs/tables.md
"""

from ._version import __version__
from .capture import Capture, read
from .errors import CaptureError, PcapmtuError, UsageError

__all__ = ["Capture", "CaptureError", "PcapmtuError", "UsageError", "__version__", "read"]
