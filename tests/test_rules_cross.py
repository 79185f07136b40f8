"""X rules, across two captures: connections matched across NAT, segments captured on one side only,
connections one capture lacks.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

from support.findings import found, one


# ------------------------------------------------------------------------------------ X: cross-capture
def test_X001_positive_matched_across_nat(blackhole):
    r, _ = blackhole
    x = one(r, "X001", "container")
    assert x.message == (
        "1 of 1 connections in the container capture were found in the host capture (matched by client "
        "initial sequence number); 1 connections there are the host's own"
    )
    assert x.evidence == {"nat_clients": ["10.66.0.2:61000"]}
    assert list(r.pairs[["container_conn", "host_conn"]].itertuples(index=False, name=None)) == [(0, 0)]


def test_X001_negative_single_capture(blackhole):
    _, single = blackhole
    assert not found(single, "X001")
    assert not found(single, "X003")


def test_X002_positive_server_segments_only_on_the_host(inner_hop):
    x = one(inner_hop, "X002", "host", 0)
    assert x.message == (
        "198.18.0.10:443: 6 server segments were captured on the host side only (largest 1500 bytes) - they "
        "were lost between the two capture points"
    )
    assert len(x.frames) == 6


def test_X002_positive_client_segments_only_in_the_container(uploads):
    x = one(uploads, "X002", "container", 0)
    assert x.message.startswith("198.18.0.10:80: 8 client segments were captured on the container side only")
    assert "(largest 1500 bytes)" in x.message


def test_X002_negative_same_segments_on_both_sides(blackhole, clamped):
    """NAT rewrote address and port (and the clamp the MSS); the segments are the same on both sides."""
    assert not found(blackhole[0], "X002")
    assert not found(clamped, "X002")


def test_X003_positive_connection_missing_from_the_host(slow_full):
    r = slow_full
    x = one(r, "X003", "container")
    assert x.message == "1 connections of the container capture are not in the host capture (198.18.0.11:443)"
    assert x.frames == (r.context.flows("container").loc[1, "first_frame"],)
    assert one(r, "X001", "container").message.startswith("1 of 2 connections")


def test_X003_negative_nat_port_rewrite_still_matches(blackhole):
    assert blackhole[0].pairs.loc[0, "nat_client"] == "10.66.0.2:61000"
    assert not found(blackhole[0], "X003")
