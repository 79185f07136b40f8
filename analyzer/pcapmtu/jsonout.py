"""JSON documents other programs parse. These shapes are contracts: docs/json.md, schema_version."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .capture import Capture

INSPECT_SCHEMA_VERSION = 1

# Flow fields in `inspect --json`, in order. Adding a field is compatible; renaming or removing one is not.
FLOW_FIELDS = [
    "conn", "client_ip", "client_port", "server_ip", "server_port", "ipv", "name", "name_source", "sni",
    "tls_version", "mss_client", "mss_server", "wscale_client", "wscale_server", "sack_perm_client",
    "sack_perm_server", "pkts_c2s", "pkts_s2c", "bytes_c2s", "bytes_s2c", "max_payload_c2s", "max_payload_s2c",
    "max_ip_len_c2s", "max_ip_len_s2c", "retransmissions", "retrans_c2s", "retrans_s2c", "fast_retrans_c2s",
    "fast_retrans_s2c", "out_of_order_c2s", "out_of_order_s2c", "lost_before_c2s", "lost_before_s2c",
    "dup_ack_c2s", "dup_ack_s2c", "zero_window_c2s", "zero_window_s2c", "max_sack_hole_c2s", "max_sack_hole_s2c",
    "state", "conn_state", "history", "midstream", "first_frame", "last_frame", "first_ts", "last_ts",
    "duration", "handshake_rtt",
]  # fmt: skip


def plain(value: Any) -> Any:
    """numpy/pandas scalars to JSON-safe Python values (NaN and NA become None)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame, fields: list[str]) -> list[dict]:
    present = [f for f in fields if f in frame.columns]
    return [
        {k: plain(v) for k, v in zip(present, row, strict=True)}
        for row in frame[present].itertuples(index=False)
    ]


def inspect_document(captures: list[Capture]) -> dict:
    return {
        "schema_version": INSPECT_SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "captures": [{**cap.summary(), "flows": records(cap.flows, FLOW_FIELDS)} for cap in captures],
    }
