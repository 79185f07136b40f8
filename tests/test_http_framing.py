"""HTTP/1.x response framing (RFC 9112 section 6): where a response ends, read from its own headers.

The examples are the shapes servers send; hypothesis throws arbitrary and hostile bytes at the parser, which
must never raise and never claim a length shorter than the headers it read. tshark's HTTP dissector is the
oracle on every corpus and lab capture that carries plain HTTP (test_agrees_with_tshark_on_http_framing).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapmtu
from pcapmtu.ingest.http_framing import response_length
from support import tshark
from support.environment import SAMPLES, corpus_files, require_tool

OK = b"HTTP/1.1 200 OK\r\n"


CHUNKED = OK + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "stream, method, status, more",
    [
        # `more`: how many bytes past `stream` the response ends (None: the framing cannot tell)
        (OK + b"Content-Length: 5\r\n\r\nhello", b"GET", 200, 0),
        (OK + b"content-length:   5  \r\n\r\n", b"GET", 200, 5),
        (OK + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", b"GET", 200, 5),
        (OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", b"GET", 200, None),  # conflicting
        (OK + b"Content-Length: -5\r\n\r\n", b"GET", 200, None),
        (OK + b"Content-Length: 5\r\n\r\n", b"HEAD", 200, 0),  # a HEAD answer has no body
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"GET", 204, 0),
        (b"HTTP/1.0 304 Not Modified\r\nContent-Length: 99\r\n\r\n", b"GET", 304, 0),
        (b"HTTP/1.1 100 Continue\r\n\r\n", b"POST", 100, None),  # the final response is still owed
        (OK + b"Connection: close\r\n\r\nbody", b"GET", 200, None),  # ends with the connection
        (OK + b"Content-Length: 5\r\n", b"GET", 200, None),  # headers cut before their end
        (b"HTTP/2 200\r\n\r\n", b"GET", -1, None),
        (b"\x16\x03\x01\x00\x05hello", b"", -1, None),
        # chunked: exact with the last chunk, else the least it can still be
        (CHUNKED + b"5\r\nhello\r\n0\r\n\r\n", b"GET", 200, 0),
        (CHUNKED + b"5;x=y\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n", b"GET", 200, 0),
        (CHUNKED + b"10\r\nhel", b"GET", 200, 13 + 2 + 5),  # the chunk's rest, its CRLF, a last chunk
        (CHUNKED, b"GET", 200, 5),
        (OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", b"GET", 200, 0),
        (OK + b"Transfer-Encoding: chunked, gzip\r\n\r\n", b"GET", 200, None),  # ends with the connection
        (CHUNKED + b"0x5\r\nhello", b"GET", 200, None),  # not a chunk size
    ],
)
def test_response_length(stream, method, status, more):
    assert response_length(stream, method) == (status, -1 if more is None else len(stream) + more)


@settings(max_examples=400, deadline=None)
@given(
    head=st.lists(st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"X"]), max_size=4),
    values=st.lists(st.binary(max_size=12), min_size=4, max_size=4),
    body=st.binary(max_size=200),
    status=st.integers(0, 999),
)
def test_response_length_never_raises_and_never_ends_inside_the_headers(head, values, body, status):
    fields = b"".join(
        name + b": " + value.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
        for name, value in zip(head, values, strict=False)
    )
    stream = b"HTTP/1.1 %d X\r\n" % status + fields + b"\r\n" + body
    code, length = response_length(stream)
    assert code in (-1, status)
    assert length == -1 or length >= stream.index(b"\r\n\r\n") + 4


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_response_length_takes_any_bytes(data):
    code, length = response_length(OK + b"Transfer-Encoding: chunked\r\n\r\n" + data)
    assert code == 200 and length >= -1
    response_length(data)


# ----------------------------------------------------------------------------------------------- oracle
def _http_captures() -> list[Path]:
    files = [p for p in corpus_files("semantic", "format") if not p.name.endswith(".md")]
    files += sorted(SAMPLES.glob("blackhole_http_large/*.pcap"))
    fresh = os.environ.get("PCAPMTU_LAB_DIR")
    if fresh:
        files += sorted(Path(fresh).glob("blackhole_http_large/*.pcap"))
    return files


@pytest.mark.oracle
@pytest.mark.corpus
def test_agrees_with_tshark_on_http_framing():
    """Each connection's last response, as tshark dissects its segments one by one: the same status code, and
    an end Content-Length past a start inside that response's headers (the same relative sequence numbers).
    Every corpus and lab capture is read; those with plain-HTTP connections the server left open are compared
    (the corpus has several: pcapplusplus's example.pcap alone has 42)."""
    require_tool("tshark")
    if not corpus_files("semantic"):
        pytest.skip("the shared corpus is not on this machine")
    compared = 0
    for path in _http_captures():
        flows = pcapmtu.read(path).flows
        mine = flows[(flows["http_status"] >= 0) & (flows["syn_frame"] >= 0)]
        if not len(mine):
            continue
        rows = tshark.fields(
            path,
            ["tcp.stream", "tcp.seq", "http.response.code", "http.content_length_header"],
            "http.response",
            options=("-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.relative_sequence_numbers:TRUE"),
        )
        last: dict[int, dict] = {}
        for row in rows:
            stream = int(row["tcp.stream"])
            if stream not in last or int(row["tcp.seq"]) >= int(last[stream]["tcp.seq"]):
                last[stream] = row
        for flow in mine.itertuples():
            ref = last.get(int(flow.tcp_stream))
            where = f"{path.name} tcp.stream {flow.tcp_stream}"
            assert ref is not None, f"{where}: tshark sees no HTTP response"
            assert int(ref["http.response.code"]) == flow.http_status, where
            if ref["http.content_length_header"].isdigit() and flow.http_response_end > 0:
                body_from = flow.http_response_end - int(ref["http.content_length_header"])
                assert int(ref["tcp.seq"]) < body_from <= int(ref["tcp.seq"]) + 16 * 1024, where
            compared += 1
    assert compared >= 20, f"only {compared} HTTP connections compared"
