"""JSON documents other programs parse. These shapes are contracts: docs/json.md, schema_version."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import __version__
from ..ingest.capture import Capture
from . import jsontext
from .jsontext import plain

if TYPE_CHECKING:  # annotations only: render needs no diagnose module loaded to import
    from ..diagnose.analysis import Analysis

INSPECT_SCHEMA_VERSION = 1
ANALYZE_SCHEMA_VERSION = 2

# Flow fields in `inspect --json`, in order. Adding a field is compatible; renaming or removing one is not.
FLOW_FIELDS = [
    "conn",
    "tcp_stream",
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "ipv",
    "name",
    "name_source",
    "sni",
    "tls_version",
    "mss_client",
    "mss_server",
    "wscale_client",
    "wscale_server",
    "sack_perm_client",
    "sack_perm_server",
    "pkts_c2s",
    "pkts_s2c",
    "bytes_c2s",
    "bytes_s2c",
    "max_payload_c2s",
    "max_payload_s2c",
    "max_ip_len_c2s",
    "max_ip_len_s2c",
    "retransmissions",
    "retrans_c2s",
    "retrans_s2c",
    "fast_retrans_c2s",
    "fast_retrans_s2c",
    "out_of_order_c2s",
    "out_of_order_s2c",
    "lost_before_c2s",
    "lost_before_s2c",
    "dup_ack_c2s",
    "dup_ack_s2c",
    "zero_window_c2s",
    "zero_window_s2c",
    "max_sack_hole_c2s",
    "max_sack_hole_s2c",
    "state",
    "conn_state",
    "history",
    "midstream",
    "first_frame",
    "last_frame",
    "first_ts",
    "last_ts",
    "duration",
    "handshake_rtt",
]


COMPACT = (",", ":")
BATCH = 500  # list elements encoded and written at a time by dump()


BIG_DOCUMENT = 2000  # flows above which a document is written compact


def _big(doc: dict) -> bool:
    flows = sum(len(c.get("flows", ())) for c in doc.get("captures", ())) + len(doc.get("flows", ()))
    return flows > BIG_DOCUMENT


def dumps(doc: dict) -> str:
    """Indented for people when small; compact (and ~10x faster: C encoder) when it holds many flows."""
    if _big(doc):
        return json.dumps(doc, separators=COMPACT, allow_nan=False)
    return json.dumps(doc, indent=2, allow_nan=False)


def dump(doc: dict, write: Callable[[str], object]) -> None:
    """`dumps(doc) + "\n"`, the same characters, handed to `write` in pieces: a big document's long lists go
    out BATCH elements at a time (each through the C encoder), so its whole text is never held at once."""
    if not _big(doc):
        write(dumps(doc) + "\n")
        return
    _compact(doc, write, depth=0)
    write("\n")


class _Encoded:
    """A list whose JSON text is already made, in pieces of whole elements (write_analyze's connections)."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self.pieces = pieces


def _compact(value: Any, write: Callable[[str], object], depth: int) -> None:
    """Compact JSON is made of its parts: `{"k":v,...}` and `[a,...]`, so each part can be encoded alone."""
    if isinstance(value, _Encoded):
        first = True
        for piece in value.pieces:
            write(("[" if first else ",") + piece)
            first = False
        write("[]" if first else "]")
    elif depth < 4 and isinstance(value, dict) and value:
        for i, (key, item) in enumerate(value.items()):
            name = json.dumps({key: None}, separators=COMPACT)[1:-5]  # a key as json writes it: "4" for 4
            write(("{" if i == 0 else ",") + name)
            _compact(item, write, depth + 1)
        write("}")
    elif depth < 4 and isinstance(value, list) and len(value) > BATCH:
        encode = json.JSONEncoder(separators=COMPACT, allow_nan=False).encode
        for start in range(0, len(value), BATCH):
            part = encode(value[start : start + BATCH])[
                1:-1
            ]  # a batch in one call: `[a,b]` less its brackets
            write(("[" if start == 0 else ",") + part)
        write("]")
    elif depth < 4 and isinstance(value, list) and value:
        for i, item in enumerate(value):
            write("[" if i == 0 else ",")
            _compact(item, write, depth + 1)
        write("]")
    else:
        write(json.dumps(value, separators=COMPACT, allow_nan=False))


def records(frame: pd.DataFrame, fields: list[str]) -> list[dict]:
    """Rows as JSON-ready dicts. Column by column: `tolist()` already gives Python ints, floats and bools,
    so only floats (NaN, inf) and text or object columns (NA, numpy scalars) need `plain()`."""
    present = [f for f in fields if f in frame.columns]
    if not present:
        return [{} for _ in range(len(frame))]
    columns = []
    for name in present:
        col = frame[name]
        values = col.tolist()
        numpy_dtype = isinstance(col.dtype, np.dtype)  # not a pandas extension type that may hold NA
        if numpy_dtype and col.dtype.kind in "iub":
            pass
        elif numpy_dtype and col.dtype.kind == "f":
            values = [v if math.isfinite(v) else None for v in values]
        else:  # text columns are mostly str, which plain() returns as it is: no call for those
            values = [v if type(v) is str else plain(v) for v in values]
        columns.append(values)
    return [dict(zip(present, row, strict=True)) for row in zip(*columns, strict=True)]


def inspect_document(captures: list[Capture]) -> dict:
    return {
        "schema_version": INSPECT_SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "captures": [{**cap.summary(), "flows": records(cap.flows, FLOW_FIELDS)} for cap in captures],
    }


def inspect_json(captures: list[Capture]) -> str:
    """`inspect --json` as text. Large flow tables are encoded by pandas (C, no dict per flow), spliced in."""
    if sum(len(c.flows) for c in captures) <= 2000:
        return dumps(inspect_document(captures))
    doc = {
        "schema_version": INSPECT_SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "captures": [{**cap.summary(), "flows": f"@@flows-{i}@@"} for i, cap in enumerate(captures)],
    }
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    for i, cap in enumerate(captures):
        present = [f for f in FLOW_FIELDS if f in cap.flows.columns]
        flows = cap.flows[present].to_json(orient="records", double_precision=15)
        text = text.replace(f'"@@flows-{i}@@"', flows, 1)
    return text


VERDICT_FLOW_FIELDS = ["capture", "conn", "service", "client", "server", "verdict", "reason", "codes"]


def analyze_document(analysis: Analysis) -> dict:
    """The whole report as one JSON document (`pcapmtu analyze --json`, report.json)."""
    return {**analyze_summary(analysis), "flows": _flow_records(analysis)}


def write_analyze(analysis: Analysis, write: Callable[[str], object], summary: dict | None = None) -> None:
    """`dump(analyze_document(analysis), write)`, the same characters: a big document's connections are
    encoded column by column (jsontext), without a dict per connection. `summary`: analyze_summary(analysis)
    where the caller has it already (the report reads it too)."""
    summary = summary if summary is not None else analyze_summary(analysis)
    n = len(analysis.verdicts)
    columns = _flow_columns(analysis) if n > BIG_DOCUMENT else None
    if columns is None:
        dump({**summary, "flows": _flow_records(analysis)}, write)
        return
    _compact({**summary, "flows": _Encoded(_flow_text(*columns, n))}, write, depth=0)
    write("\n")


def _flow_records(analysis: Analysis) -> list[dict]:
    """One dict per connection: its verdict, the connection it was matched to, its flow fields."""
    details = {role: records(cap.flows, FLOW_FIELDS) for role, cap in analysis.captures.items()}
    v = analysis.verdicts
    flows = records(v, VERDICT_FLOW_FIELDS)  # column by column, as the flows' details
    twin = analysis.context.twin
    for item, capture, conn, codes in zip(
        flows, v["capture"].tolist(), v["conn"].tolist(), v["codes"].tolist(), strict=True
    ):
        item["codes"] = [c for c in codes.split(",") if c]
        matched = twin(capture, conn)
        item["matched"] = {"capture": matched[0], "conn": matched[1]} if matched else None
        item.update(details[capture][conn])  # flows are numbered 0..n-1 in order
        item["capture"] = capture
    return flows


def _flow_columns(analysis: Analysis) -> tuple[list[str], list[list[str]]] | None:
    """`_flow_records()` as keys and a column of JSON tokens per key, one token per connection; None where
    the tables have a shape the column path does not reproduce exactly (write_analyze then takes the dict
    path)."""
    v = analysis.verdicts
    head_keys = list(VERDICT_FLOW_FIELDS)
    if any(k not in v.columns for k in head_keys):
        return None
    tail_keys: list[str] | None = None
    tail_tokens: dict[str, list[list[str]]] = {}
    span: dict[str, tuple[int, int]] = {}  # role -> where its flows start among all captures', how many
    for role, cap in analysis.captures.items():
        f = cap.flows
        present = [k for k in FLOW_FIELDS if k in f.columns]
        # a flow field the verdict already holds keeps the verdict's place, with the flow's value: only
        # `conn`, whose values agree where flows are numbered 0..n-1 in order
        if [k for k in present if k in head_keys] != ["conn"] or not np.array_equal(
            f["conn"].to_numpy(), np.arange(len(f))
        ):
            return None
        tail = [k for k in present if k not in head_keys]
        if tail_keys is not None and tail != tail_keys:
            return None
        tail_keys = tail
        tail_tokens[role] = [jsontext.column_tokens(f[k]) for k in tail]
        span[role] = (sum(n for _, n in span.values()), len(f))
    capture, conn, codes = v["capture"].tolist(), v["conn"].tolist(), v["codes"].tolist()
    if any(type(c) is not str or c not in span for c in capture) or any(type(c) is not str for c in codes):
        return None
    # each connection's place in the captures' flows, one after the other
    base, size = np.array([span[c] for c in capture], dtype=np.int64).reshape(-1, 2).T
    at = np.asarray(conn, dtype=np.int64)
    if np.any((at < 0) | (at >= size)):
        return None
    place = base + at
    columns = [jsontext.column_tokens(v[k]) for k in head_keys]
    columns[head_keys.index("codes")] = [
        jsontext.list_token(c for c in text.split(",") if c) for text in codes
    ]
    twin = analysis.context.twin
    matched = []
    for role, c in zip(capture, conn, strict=True):
        pair = twin(role, c)
        matched.append(
            "null"
            if pair is None
            else '{"capture":' + jsontext.string_token(pair[0]) + ',"conn":' + int.__repr__(pair[1]) + "}"
        )
    columns.append(matched)
    in_order = np.array_equal(place, np.arange(len(place)))  # one capture's connections, in order
    for k in range(len(tail_keys or [])):
        parts = [tokens[k] for tokens in tail_tokens.values()]
        joined = parts[0] if len(parts) == 1 else [t for part in parts for t in part]
        columns.append(joined if in_order else np.array(joined, dtype=object)[place].tolist())
    return [*head_keys, "matched", *(tail_keys or [])], columns


def _flow_text(keys: list[str], columns: list[list[str]], n: int):
    """The connections' text, BATCH rows at a time."""
    for start in range(0, n, BATCH):
        yield jsontext.rows_text(keys, columns, start, min(start + BATCH, n))


def analyze_summary(analysis: Analysis) -> dict:
    """The analyze document without its connections (`flows` is None, in its place): what the Markdown and
    HTML reports read, without a record per connection."""
    d = analysis.diagnosis
    return {
        "schema_version": ANALYZE_SCHEMA_VERSION,
        "tool": {"name": "pcapmtu", "version": __version__},
        "verdict": str(d.verdict),
        "confidence": d.confidence,
        "confidence_factors": [_jsonable(f) for f in d.confidence_factors],
        "reason": str(d.reason) if d.reason else None,
        "explanation": d.explanation,
        "path_mtu": d.path_mtu,
        "recommended_mss": d.recommended_mss,
        "path": {f"ipv{ipv}": _path(p) for ipv, p in analysis.context.path.items()},
        "fix": _jsonable(asdict(d.fix)) if d.fix else None,
        "findings": [_jsonable(_fields(f)) for f in analysis.findings_list],
        "flows": None,
        "captures": [
            {"role": role, **cap.summary(), "vantage": _vantage(analysis, role)}
            for role, cap in analysis.captures.items()
        ],
        "role_changes": list(analysis.role_changes),
        "pairing": _pairing(analysis),
        "wireshark": _jsonable(analysis.wireshark_check.to_json()) if analysis.wireshark_check else None,
    }


def _vantage(analysis: Analysis, role: str) -> dict | None:
    v = analysis.vantage.get(role)
    return v.to_json() if v is not None else None


PAIRING_FIELDS = ["matched_by", "nat_client", "clock_offset_s", "one_way_delay_s"]


def _pairing(analysis: Analysis) -> list[dict]:
    """One item per connection seen at two capture points: which, how matched, the two clocks."""
    far = analysis.context.far_role
    pairs = analysis.pairs
    out = []
    # column by column (a pair of big captures matches ~10^4 connections): no pandas row per connection
    extra = [[plain(v) for v in pairs[k].tolist()] for k in PAIRING_FIELDS]
    for capture, conn, far_conn, *values in zip(
        pairs["container"].tolist(),
        pairs["container_conn"].tolist(),
        pairs["host_conn"].tolist(),
        *extra,
        strict=True,
    ):
        item = {"capture": capture, "conn": int(conn), "far_capture": far, "far_conn": int(far_conn)}
        item.update(zip(PAIRING_FIELDS, values, strict=True))
        out.append(item)
    return out


def _path(p) -> dict:
    return {
        "value": p.value,
        "low": p.low,
        "high": p.high,
        "decided_by": p.decided_by,
        "signals": [_jsonable(s) for s in p.signals],
    }


def _fields(finding) -> dict:
    """`asdict(finding)` without its deep copy of every value (~0.1 ms a finding, and X002 can report
    thousands): _jsonable makes new containers anyway, and turns a dataclass it meets into its dict."""
    return {f.name: getattr(finding, f.name) for f in fields(finding)}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    return plain(value)
