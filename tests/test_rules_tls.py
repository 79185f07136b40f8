"""S rules, TLS: a ClientHello whose server's handshake never arrived.

One behaviour per test, on small captures built from literal packets and analysed with `analyze()`: a positive
test for each code (the pattern it exists to find, with its numbers) and a negative one (the closest look-alike,
on which it must stay silent), named `test_<code>_positive_*` and `test_<code>_negative_*`
(tests/test_rules_registry.py holds every code to that). Connections are written with the scene builders of
tests/support/scenes.py; the analysed scenes several rule modules read are session fixtures
(tests/support/scene_fixtures.py), the others module fixtures here. Some captures hold several unrelated
connections; those tests assert per connection.
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
