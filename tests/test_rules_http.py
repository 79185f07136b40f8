"""H rules, HTTP: a response its own framing says is unfinished, with no full-size packet delivered.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

import pytest

from support.findings import found, one, run, verdict_of
from support.scenes import capture, http_response

HEAD_60K = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 60000\r\n\r\n"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n" + b"x" * 100


def _alone(tmp_path, conn):
    return run(container=capture(tmp_path, "c", conn.render()))


def test_H001_positive_download_hangs_after_its_headers_and_the_client_gives_up(tmp_path):
    r = _alone(tmp_path, http_response(head=HEAD_60K, client_closes_after=8.0))
    h = one(r, "H001", "container", 0)
    assert h.message == (
        "198.18.0.10:80: 60000 bytes of the HTTP response (200) were still owed when the client closed the "
        "connection 8.0 s after the server's last data, and no full-size (1500-byte) packet from the server "
        "was delivered in the container capture"
    )
    assert h.evidence["owed_bytes"] == 60000 and h.evidence["http_status"] == 200
    assert verdict_of(r, "container", 0) == ("inconclusive", "")
    assert r.verdict == "inconclusive"


def test_H001_positive_capture_ends_after_the_headers(tmp_path):
    """The capture stops while the download hangs: the last packet is the client's ACK of the headers, so
    at the transport level the connection is idle on the client's turn (it was called healthy, 70 %)."""
    r = _alone(tmp_path, http_response(head=HEAD_60K))
    h = one(r, "H001", "container", 0)
    assert "60000 bytes of the HTTP response (200) were still owed when the capture ended" in h.message
    assert r.verdict == "inconclusive"


def test_H001_positive_chunked_body_whose_first_chunk_never_arrived(tmp_path):
    r = _alone(tmp_path, http_response(head=CHUNKED, client_closes_after=5.0))
    h = one(r, "H001", "container", 0)
    # the least it can still owe: the rest of the 0x4000-byte chunk, its CRLF and a last chunk
    assert h.evidence["owed_bytes"] == 0x4000 - 100 + 2 + 5


def test_H001_negative_download_in_progress_with_full_size_packets(tmp_path):
    """The capture ends in the middle of a download whose full-size packets arrive: the path carries them."""
    r = _alone(tmp_path, http_response(head=HEAD_60K, body=(1460, 1460, 1460)))
    assert not found(r, "H001")
    assert r.verdict == "healthy"


def test_H001_negative_keep_alive_after_a_complete_response(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n"
    r = _alone(tmp_path, http_response(head=head, body=(300,), client_closes_after=30.0))
    assert r.context.flows("container").iloc[0]["http_response_end"] == 1 + len(head) + 300
    assert not found(r, "H001")
    assert verdict_of(r, "container", 0) == ("healthy", "")


@pytest.mark.parametrize(
    "request_line, head",
    [
        (b"HEAD /big HTTP/1.1\r\nHost: api.example\r\n\r\n", HEAD_60K),  # a HEAD answer has no body
        (b"GET /big HTTP/1.1\r\nHost: api.example\r\n\r\n", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
        (
            b"GET /big HTTP/1.1\r\nHost: api.example\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 700\r\n\r\n",
        ),
    ],
    ids=["HEAD", "304", "less-than-a-full-segment-owed"],
)
def test_H001_negative_nothing_owed_that_needs_a_full_size_packet(tmp_path, request_line, head):
    r = _alone(tmp_path, http_response(head=head, request=request_line, client_closes_after=10.0))
    assert not found(r, "H001")


@pytest.mark.parametrize("keep", [22, 23, 24])
def test_H001_positive_lab_capture_stopped_while_the_download_hangs(tmp_path, keep):
    """The lab's plain-HTTP black hole, its container capture cut where a user might stop tcpdump: after the
    response's headers, after the client's ACK of them, after the client's FIN 8 s later. Each was called
    healthy at 70 % before H001."""
    from support.cuts import frames_of
    from support.environment import SAMPLES

    cut = frames_of(SAMPLES / "blackhole_http_large" / "container.pcap").write(tmp_path / "cut.pcap", 0, keep)
    r = run(container=cut)
    h = one(r, "H001", "container")
    assert "bytes of the HTTP response (200) were still owed" in h.message
    assert r.verdict == "inconclusive" and r.confidence <= 0.3


def test_a_download_that_stalls_mid_body_is_on_the_servers_turn(tmp_path):
    """Full-size packets arrived (so not H001), then nothing for 8 s and the client gave up with 56,000 bytes
    still owed: at the transport level every byte sent was acknowledged (the client's turn, as an idle
    keep-alive), so it was healthy at 70 %. The framing puts the silence on the server's turn: a stall."""
    r = _alone(tmp_path, http_response(head=HEAD_60K, body=(1460, 1460, 1460), client_closes_after=8.0))
    flow = r.context.flows("container").iloc[0]
    assert (flow["idle_turn"], flow["http_owed_s2c"]) == ("server", 60000 - 3 * 1460)
    assert not found(r, "H001")
    assert verdict_of(r, "container", 0) == ("inconclusive", "")
    assert "the HTTP response stopped for 8.0 s with 55620 bytes of it still owed" in r.explanation
