"""Where an HTTP/1.x response ends, from its own framing (RFC 9112 section 6).

At the transport level a download that hangs after its headers looks like an idle keep-alive connection: the
server's bytes so far are acknowledged and the last turn is the client's. The response's headers say how
long its body is (Content-Length, or the chunk sizes of a chunked body), so the end of the response, as a
relative sequence number of the server's stream, tells whether the server still owed bytes when the capture
ended. Only the headers are needed, not the body: a capture cut to a short snap length still tells it when
the headers fit.

Only connections the server had not closed (no FIN) are looked at, and of each only its last response: the
server segment with the highest sequence number that begins with an HTTP/1.x status line. A body that itself
begins a segment with a status line could be taken for a response; the end found is then wrong, which can
only make a connection look unfinished (inconclusive), never finished.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .rare_layers import reassemble

HTTP_COLUMNS = ["conn", "http_status", "http_response_end"]
HEADER_LIMIT = 16 * 1024  # bytes of a response read for its status line and headers (servers cap at 8-16 KiB)
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])[ \r]")
METHOD = re.compile(rb"([A-Z]{3,10}) ")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
LAST_CHUNK = len(b"0\r\n\r\n")
UNKNOWN = -1


def http_table(packets: pd.DataFrame, flows: pd.DataFrame, read_payloads) -> pd.DataFrame:
    """Per connection with an HTTP/1.x request and response whose server had not closed: HTTP_COLUMNS.

    `http_status` is the last response's status code; `http_response_end` the relative sequence number just
    past its body (a lower bound for a chunked body whose last chunk was not captured; -1 where the framing
    cannot tell: a body delimited by the close, a 1xx, headers not captured). `read_payloads(rows)` returns
    the captured payload bytes of packet rows (re-read from the file).
    """
    if not len(packets) or not len(flows):
        return pd.DataFrame(columns=HTTP_COLUMNS)
    conn = packets["conn"].to_numpy()
    rel = packets["rel_seq"].to_numpy()
    dirn = packets["dir"].to_numpy()
    plen = packets["payload_len"].to_numpy()
    first = packets["payload0"].to_numpy()
    open_conns = flows["conn"].to_numpy()[~flows["fin_server"].to_numpy(dtype=bool)]
    data = (conn >= 0) & (plen > 0) & (rel >= 1) & np.isin(conn, open_conns)
    requests = data & (dirn == 0) & (first >= ord("A")) & (first <= ord("Z"))
    responses = data & (dirn == 1) & (first == ord("H"))
    candidates = np.intersect1d(conn[requests & (rel == 1)], conn[responses])
    if not len(candidates):
        return pd.DataFrame(columns=HTTP_COLUMNS)
    # the last response start (highest sequence) of each candidate, and the request just before it
    rows = np.flatnonzero(responses & np.isin(conn, candidates))
    last = pd.Series(rel[rows], index=rows).groupby(conn[rows]).idxmax()
    start_of = dict(zip(last.index.tolist(), rel[last.to_numpy()].tolist(), strict=True))
    ts = packets["ts_ns"].to_numpy()
    req_rows = np.flatnonzero(requests & np.isin(conn, candidates))
    started = ts[last.reindex(conn[req_rows]).to_numpy()]
    req_rows = req_rows[ts[req_rows] <= started]
    request_of = pd.Series(rel[req_rows], index=req_rows).groupby(conn[req_rows]).idxmax()
    head = np.flatnonzero(data & (dirn == 1) & np.isin(conn, candidates))
    head_start = np.array([start_of.get(int(c), 0) for c in conn[head]], dtype=np.int64)
    head = head[(rel[head] + plen[head] > head_start) & (rel[head] < head_start + HEADER_LIMIT)]
    pick = np.concatenate([head, request_of.to_numpy()])
    payloads = read_payloads(pick)
    seg = pd.DataFrame({"conn": conn[pick], "rel": rel[pick], "bytes": payloads, "dir": dirn[pick]})
    records = []
    for cid, group in seg.groupby("conn", sort=True):
        request = group[group["dir"] == 0]["bytes"]
        method = METHOD.match(request.iloc[0]) if len(request) else None
        stream = reassemble(group[group["dir"] == 1], start=start_of[int(cid)])
        status, length = response_length(stream, method.group(1) if method else b"")
        end = start_of[int(cid)] + length if length >= 0 else UNKNOWN
        records.append((int(cid), status, end))
    return pd.DataFrame.from_records(records, columns=HTTP_COLUMNS)


def with_http_columns(flows: pd.DataFrame, http: pd.DataFrame) -> pd.DataFrame:
    """`flows` with the HTTP columns (-1 for connections the framing says nothing of)."""
    out = flows.drop(columns=HTTP_COLUMNS[1:], errors="ignore")
    for col in HTTP_COLUMNS[1:]:
        values = pd.Series(http[col].to_numpy(dtype=np.int64), index=http["conn"].to_numpy(dtype=np.int64))
        out[col] = out["conn"].map(values).fillna(UNKNOWN).astype(np.int64) if len(http) else UNKNOWN
    return out


def response_length(stream: bytes, method: bytes = b"GET") -> tuple[int, int]:
    """(status, bytes from the status line to the end of the body) of the response `stream` begins with.

    The length is -1 where the framing cannot tell, and for a chunked body a lower bound when the last
    chunk is not in `stream`. The status is -1 when `stream` does not begin with an HTTP/1.x status line.
    """
    line = STATUS_LINE.match(stream)
    if not line:
        return UNKNOWN, UNKNOWN
    status = int(line.group(1))
    head_end = stream.find(b"\r\n\r\n", 0, HEADER_LIMIT)
    if head_end < 0 or 100 <= status < 200:
        return status, UNKNOWN  # headers not (all) captured; or an interim response: the final one is owed
    body = head_end + 4
    if method == b"HEAD" or status in (204, 304):
        return status, body
    fields = _fields(stream[:head_end])
    coding = fields.get(b"transfer-encoding", [])
    if coding:
        last = coding[-1].split(b",")[-1].strip().lower()
        return status, (_chunked_end(stream, body) if last == b"chunked" else UNKNOWN)
    lengths = {v.strip() for v in fields.get(b"content-length", [])}
    if len(lengths) != 1:
        return status, UNKNOWN  # no length (the body ends with the connection), or conflicting ones
    value = lengths.pop()
    if not value.isdigit() or len(value) > 15:
        return status, UNKNOWN
    return status, body + int(value)


def _fields(head: bytes) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


def _chunked_end(stream: bytes, pos: int) -> int:
    """Where a chunked body starting at `pos` ends: exact when its last chunk is in `stream`, else the least
    it can be (the chunk in progress, its CRLF and a last chunk)."""
    while True:
        eol = stream.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            return pos + LAST_CHUNK
        size_text = stream[pos:eol].split(b";")[0].strip(b" \t")
        if not CHUNK_SIZE.fullmatch(size_text):
            return UNKNOWN
        size = int(size_text, 16)
        if size == 0:
            trailers = stream.find(b"\r\n\r\n", eol)
            if stream[eol : eol + 4] == b"\r\n\r\n":
                return eol + 4
            return trailers + 4 if trailers >= 0 else eol + 4
        pos = eol + 2 + size + 2
        if pos > len(stream):
            return pos + LAST_CHUNK
