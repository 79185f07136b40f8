"""M rules, MSS and MTU: what the SYNs say about an interface's MTU, an MSS clamp on the SYN or the SYN-ACK,
ICMP size reports, the server sending more than the path carries, DF pings.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

import pytest

from support import packets as B
from support.findings import found, one, run, verdict_of
from support.scenes import C6, NAT, ROUTER6, S2, S6, T0, S, capture, download, host_own, packet_too_big, ping


# ------------------------------------------------------------------------------------------ M: MSS/MTU
def test_M001_positive_interface_mtu_of_host_and_container(blackhole):
    r, _ = blackhole
    host = one(r, "M001", "host")
    assert (
        host.message
        == "the docker host (10.66.0.2) advertises MSS 1410 in its SYNs, so its interface MTU is 1450"
    )
    assert host.evidence == {"client": NAT, "mss": 1410, "mtu": 1450, "ipv": 4}
    assert host.frames == (r.context.flows("host").set_index("conn").loc[1, "syn_frame"],)
    cont = one(r, "M001", "container")
    assert (
        cont.message
        == "172.17.0.2 in the container capture advertises MSS 1460 in its SYNs, so its interface MTU is 1500"
    )
    assert cont.frames == (1,)


def test_M001_negative_nat_copies_on_the_host_say_nothing_about_the_host(slow_full):
    """The host capture's only SYN is the container's, forwarded (MSS 1460): not the host's own MTU."""
    r = slow_full
    assert r.context.flows("host").loc[0, "mss_client"] == 1460
    assert not found(r, "M001", "host")
    assert len(found(r, "M001", "container")) == 1


def test_M002_positive_clamp_rewrites_the_syn(clamped):
    m = one(clamped, "M002", "container")
    assert m.message == (
        "the host rewrites the SYN's MSS from 1460 to 1410 (1 connections): an MSS clamp is in effect"
    )
    assert m.evidence == {
        "mss_before": 1460,
        "mss_after": 1410,
        "container_syn_frames": [1],
        "host_syn_frames": [1],
    }
    assert "1410 + 40 fits the path" in m.hint


def test_M002_negative_host_mss_of_another_connection_is_not_a_clamp(blackhole):
    """The host's own SYN says 1410 and the container's says 1460, but the forwarded SYN kept 1460."""
    r, _ = blackhole
    assert r.context.flows("host").loc[0, "mss_client"] == 1460
    assert not found(r, "M002")


def test_M003_positive_icmp_frag_needed_reaches_the_container(pmtud_upload):
    r = pmtud_upload
    host = one(r, "M003", "host")
    assert host.message == (
        "1 x ICMP fragmentation needed with next-hop MTU 1450 from 10.66.0.1 in the host capture, about "
        "10.66.0.2:61000 -> 198.18.0.10:80 (1500-byte packets); it reached the container"
    )
    assert host.evidence == {"mtu": 1450, "count": 1, "quoted_ip_len": 1500}
    assert "clamp the MSS to 1410" in host.hint
    cont = one(r, "M003", "container")
    assert cont.message == (
        "1 x ICMP fragmentation needed with next-hop MTU 1450 from 10.66.0.1 in the container capture, about "
        "172.17.0.2:40000 -> 198.18.0.10:80 (1500-byte packets)"
    )
    assert r.path_mtu == 1450


def test_M003_positive_icmpv6_packet_too_big(tmp_path):
    c = download(server=S6, sizes=(1000,))
    quoted = B.tcp(C6, S6, 40000, 80, seq=c.isn_c + 1, ack=c.isn_s + 1, payload=b"q" * 1440)
    ptb = [(T0 + 0.025, packet_too_big(ROUTER6, C6, quoted, 1450))]
    r = run(container=capture(tmp_path, "c", c.render(), ptb))
    m = one(r, "M003", "container")
    assert m.message == (
        "1 x ICMPv6 packet too big with next-hop MTU 1450 from fd00:66::1 in the container capture, about "
        "[fd00:17::2]:40000 -> [fd00:18::10]:80 (1500-byte packets)"
    )
    assert "clamp the MSS to 1390" in m.hint
    assert r.context.path[6].value == 1450


def test_M003_negative_port_unreachable_is_not_a_size_report(quiet):
    """ICMP type 3 too, but code 3 (port unreachable, for a DNS query): nothing about sizes."""
    assert quiet.captures["container"].icmp["kind"].tolist() == ["unreachable"]
    assert not found(quiet, "M003")
    assert not any(s["kind"] == "icmp" for s in quiet.context.path[4].signals)


def test_M004_positive_server_may_send_more_than_the_path_carries(blackhole):
    r, _ = blackhole
    m = one(r, "M004", "container", 0)
    assert m.message == (
        "198.18.0.10:443: the server may send 1500-byte packets (MSS 1460) "
        "but the path carries at most 1450 bytes"
    )
    assert m.hint == "Clamp the MSS to 1410 on the host, or give the container an MTU of 1450."
    assert m.frames == (1, 2)


def test_M004_positive_from_the_engineers_host_mtu(host_mtu_1450):
    """A healthy small download and `--host-mtu 1450`: the risk is there even though nothing broke."""
    r = host_mtu_1450
    m = one(r, "M004", "container", 1)
    assert "may send 1500-byte packets (MSS 1460) but the path carries at most 1450 bytes" in m.message
    assert verdict_of(r, "container", 1) == ("healthy", "")


def test_M004_negative_clamped_connection(clamped):
    assert clamped.path_mtu == 1450
    assert clamped.context.flows("container").loc[0, "server_full"] == 1450
    assert not found(clamped, "M004")


@pytest.fixture(scope="module")
def pings(tmp_path_factory):
    """Host capture: `ping -M do` to 198.18.0.10 of 1450 bytes (answered) and 1500 bytes (twice, never
    answered); the same sizes to 198.18.0.11 without DF (`-M dont`, a router may fragment: no proof)."""
    probes = []
    for dst, df, t in ((S, True, T0 + 1), (S2, False, T0 + 5)):
        probes += [
            (t, ping(NAT, dst, 1450, df=df, seq=1)),
            (t + 0.01, ping(dst, NAT, 1450, reply=True, df=df, seq=1)),
            (t + 1, ping(NAT, dst, 1500, df=df, seq=2)),
            (t + 2, ping(NAT, dst, 1500, df=df, seq=3)),
        ]
    return run(host=capture(tmp_path_factory.mktemp("pings"), "h", host_own(T0).render("host"), probes))


def test_M005_positive_df_pings_bracket_the_path(pings):
    got = sorted(f.message for f in found(pings, "M005", "host"))
    assert got == [
        "DF ping of 1450 bytes to 198.18.0.10 in the host capture: reply",
        "DF ping of 1500 bytes to 198.18.0.10 in the host capture: no reply",
    ]
    lost = next(f for f in found(pings, "M005") if "1500" in f.message)
    assert len(lost.frames) == 2
    path = pings.context.path[4]
    assert (path.low, path.high, path.value) == (1450, 1500, 1450)


def test_M005_negative_pings_without_df(pings):
    assert not [f for f in found(pings, "M005") if S2 in f.message]
    assert not [s for s in pings.context.path[4].signals if s.get("target") == S2]


# ---------------------------------------------------------------------------- SYN-ACK MSS between points
@pytest.fixture(scope="module")
def synack_clamped(tmp_path_factory):
    """A clamp acting on the SYN-ACK on its way in: MSS 1460 at the host's uplink, 1410 in the container."""
    tmp = tmp_path_factory.mktemp("synack")
    far = download(sport=443, sizes=(1410, 1410, 300), mss_s=1460)
    near = download(sport=443, sizes=(1410, 1410, 300), mss_s=1410)
    return run(host=capture(tmp, "host", far.render("host", cport=61000)),
               container=capture(tmp, "container", near.render("container")))  # fmt: skip


def test_M006_positive_synack_mss_rewritten_between_the_points(synack_clamped):
    f = one(synack_clamped, "M006", "container")
    assert f.evidence["mss_far"] == 1460 and f.evidence["mss_near"] == 1410
    assert "1460 in the host capture and 1410 in the container capture" in f.message


def test_M006_negative_only_the_syn_is_clamped(clamped):
    assert not found(clamped, "M006")
