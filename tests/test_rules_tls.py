"""S rules, TLS: a ClientHello whose server's handshake never arrived.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

from support.findings import found, one, verdict_of


# ------------------------------------------------------------------------------------------ S: TLS
def test_S001_positive_only_acks_after_the_client_hello(blackhole):
    r, _ = blackhole
    s = one(r, "S001", "container", 0)
    assert s.message == (
        "198.18.0.10:443: the ClientHello was sent but the server's handshake never arrived - the server "
        "sent only zero-length segments (2 segments, largest 40 bytes) in the container capture"
    )
    assert s.evidence == {"client_hello_len": 508, "largest_server_packet": 40}
    assert not found(r, "S001", "host"), "the host's copy of the same connection is not a second finding"


def test_S001_positive_only_the_tail_of_the_flight(stalled_tls):
    s = one(stalled_tls, "S001", "container", 0)
    assert "the server sent only small segments (3 segments, largest 1240 bytes)" in s.message
    assert s.evidence["largest_server_packet"] == 1240


def test_S001_negative_handshake_completes(quiet):
    flow = quiet.context.flows("container").iloc[3]
    assert flow["client_hello_len"] == 508 and flow["server_hello"]
    assert not found(quiet, "S001")
    assert verdict_of(quiet, "container", 3) == ("healthy", "")


def test_S001_negative_plain_http_stall(slow_full):
    assert not found(slow_full, "S001")
