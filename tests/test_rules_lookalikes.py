"""L rules, the look-alikes that are not MTU problems: random loss, a slow server.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

from support.findings import found, one, run, verdict_of


# ------------------------------------------------------------------------------- L: not-MTU look-alikes
def test_L001_positive_lossy_download(quiet):
    x = one(quiet, "L001", "container", 4)
    assert x.message == (
        "198.18.0.10:80: 2 retransmissions, yet full-size 1500-byte packets were delivered - random loss, "
        "not a size limit"
    )
    assert x.wireshark_filter.endswith("&& tcp.analysis.retransmission")
    assert verdict_of(quiet, "container", 4) == ("not_mtu", "lossy_link")


def test_L001_positive_upload_resent_then_acknowledged(lossy_upload):
    x = one(lossy_upload, "L001", "container", 0)
    assert "4 retransmissions, yet full-size 1500-byte packets were delivered" in x.message


def test_L001_negative_full_size_reached_the_host_only(inner_hop):
    """The host saw the server's 1500-byte segments (and their retransmissions), but they died before the
    container: the host's copy of a forwarded connection is no proof that full-size packets pass."""
    r = inner_hop
    twin = r.context.flows("host").iloc[0]
    assert twin["retrans_s2c"] >= 2 and twin["full_sent_s2c"] and not twin["full_delivered_s2c"]
    assert not found(r, "L001")
    assert r.verdict == "mtu_blackhole"


def test_L001_negative_upload_blackhole(uploads):
    assert not found(uploads, "L001")


def test_L002_positive_slow_server(slow_full):
    r = slow_full
    x = one(r, "L002", "container", 0)
    assert x.message == "198.18.0.10:80: the server took 4.0 s to answer the request, with no loss"
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")
    assert (r.verdict, r.diagnosis.reason) == ("not_mtu", "server_slow")


def test_L002_negative_stall_then_smaller_segments(host_mtu_1450):
    """The answer also came 3 s late with no visible loss, but in segments smaller than full size."""
    assert not found(host_mtu_1450, "L002")


def test_L002_negative_blackhole(blackhole):
    assert not found(blackhole[0], "L002")
    assert not found(blackhole[1], "L002")


def test_L001_negative_loss_seen_without_the_handshake(tmp_path):
    """The recovered black hole's container capture, started after the handshake: the full size is estimated
    as the largest packet seen, which at the receiver is delivered by definition. It was not_mtu (lossy_link)
    at 60 %."""
    from support.cuts import frames_of
    from support.environment import SAMPLES

    cut = frames_of(SAMPLES / "blackhole_recovered" / "container.pcap").write(tmp_path / "late.pcap", 18)
    r = run(container=cut)
    assert r.context.flows("container").iloc[0]["full_estimated"]
    assert not found(r, "L001")
    assert r.verdict != "not_mtu"
