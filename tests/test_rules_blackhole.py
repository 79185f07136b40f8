"""B rules, black holes: downloads (B001) and uploads (B002) whose full-size packets never get through,
a stall after which smaller segments went through (B003), what a sender did after an ICMP size report (B004
working PMTUD, B005 ignored).

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

import pytest

from support import packets as B
from support.findings import codes, found, one, run, verdict_of
from support.scenes import (
    NAT,
    REQ,
    T0,
    Conn,
    R,
    S,
    capture,
    download,
    download_icmp_ignored,
    frag_needed,
    pair,
    syn_retried_then_answered,
)


# ----------------------------------------------------------------------------------- B: black holes
@pytest.fixture(scope="module")
def pauses_small_answers(tmp_path_factory):
    """Container capture, conn 0: a slow server answers 200 bytes after 4 s; conn 1: two SYNs lost, then a
    prompt 800-byte answer. Both complete with an orderly close and never needed a full-size packet.
    Analysed alone, and with `--host-mtu 1450` (an MTU mismatch that is real, but not their problem)."""
    conns = [download(sizes=(200,), pause=4.0), syn_retried_then_answered(T0 + 20, cport=40001)]
    cap = capture(tmp_path_factory.mktemp("pauses"), "c", *(c.render() for c in conns))
    return run(container=cap), run(container=cap, host_mtu=1450)


def test_B001_positive_download_blackhole_pair(blackhole):
    r, _ = blackhole
    b = one(r, "B001", "container", 0)
    assert b.message == (
        "198.18.0.10:443: PMTUD black hole - the server's 1500-byte packets never reached the container; the "
        "largest that did was 48 bytes, and no ICMP size report came back"
    )
    assert b.hint == "Clamp the MSS to 1410 on the docker host, or set the container MTU to 1450."
    ev = b.evidence
    assert (ev["mss_client"], ev["mss_at_server"], ev["mss_server"]) == (1460, 1460, 1460)
    assert (ev["server_full"], ev["largest_delivered"]) == (1500, 48)
    assert ev["stall_s"] == pytest.approx(7.97, abs=0.01)
    assert ev["where"].startswith("before the host's uplink")
    assert any("1450" in why for why in ev["because"])
    assert not found(r, "B001", "host")
    assert verdict_of(r, "container", 0) == ("mtu_blackhole", "")


def test_B001_positive_lost_inside_the_docker_host(inner_hop):
    b = one(inner_hop, "B001", "container", 0)
    assert "the server's 1500-byte packets never reached the container" in b.message
    assert (
        b.evidence["where"]
        == "between the host's uplink and the container (bridge, veth or inside the container)"
    )


def test_B001_positive_sack_holes_in_one_capture(stalled_tls):
    b = one(stalled_tls, "B001", "container", 0)
    assert "the largest that did was 1240 bytes" in b.message
    assert "the client's ACKs show holes in the server's data" in b.evidence["because"]
    assert b.evidence["max_sack_hole"] == 2920
    assert b.evidence["where"].startswith("somewhere between the server and the container")


def test_B001_positive_ipv6(blackhole_v6):
    r = blackhole_v6
    b = one(r, "B001", "container", 0)
    assert b.message.startswith("[fd00:18::10]:443: PMTUD black hole - the server's 1500-byte packets never")
    assert b.hint == "Clamp the MSS to 1390 on the docker host, or set the container MTU to 1450."
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole", 1450, 1390)
    assert one(r, "M001", "container").message.endswith(
        "advertises MSS 1440 in its SYNs, so its interface MTU is 1500"
    )
    assert one(r, "M001", "host").message.endswith(
        "advertises MSS 1390 in its SYNs, so its interface MTU is 1450"
    )
    assert any(
        c["command"].startswith("ip6tables") and "--set-mss 1390" in c["command"] for c in r.fix.commands
    )


def test_B001_negative_full_size_packets_arrive_then_idle(quiet):
    """Loss with SACK holes and then 6 s of keep-alive idling, but full-size packets did arrive."""
    flow = quiet.context.flows("container").iloc[4]
    assert flow["stalled_s"] > 5 and flow["s2c_holes"] and flow["full_delivered_s2c"]
    assert not found(quiet, "B001")


def test_B001_negative_icmp_made_the_server_shrink(tmp_path):
    """docker0 has MTU 1450: the host receives the server's 1500-byte segment, answers it with ICMP
    frag-needed (MTU 1450) and the server re-sends at once in 1410-byte segments: PMTUD working."""
    c = Conn(sport=80).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=REQ)
    c.s(T0 + 0.03, 1, 1 + R)
    c.s(T0 + 0.031, 1, 1 + R, n=1460, where="host")
    n = 1
    for i in range(5):
        c.s(T0 + 0.06 + i * 0.001, n, 1 + R, n=1410)
        n += 1410
        c.c(T0 + 0.0605 + i * 0.001, 1 + R, n)
    c.close(T0 + 0.07, 1 + R, n)
    quoted = B.tcp(S, NAT, 80, 61000, seq=c.isn_s + 1, ack=c.isn_c + 1 + R, payload=b"r" * 1460)
    icmp = [(T0 + 0.0312, frag_needed(NAT, S, quoted, 1450))]
    host, cont = pair(tmp_path, [c], [c.render("host", cport=61000), icmp])
    r = run(host=host, container=cont)
    assert one(r, "M003", "host").evidence["mtu"] == 1450
    assert r.context.flows("container").loc[0, "max_ip_len_s2c"] == 1450
    assert not found(r, "B001")
    assert r.verdict == "healthy"


def test_B001_negative_slow_server(slow_full):
    assert "L002" in codes(slow_full)
    assert not found(slow_full, "B001")


def test_B001_negative_slow_server_small_answer_without_size_evidence(pauses_small_answers):
    r, _ = pauses_small_answers
    assert one(r, "L002", "container", 0)
    assert not found(r, "B001")
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")


def test_B001_negative_slow_server_small_answer_on_a_small_mtu_host(pauses_small_answers):
    _, r = pauses_small_answers
    assert r.path_mtu == 1450
    assert found(r, "L002", "container", 0)
    assert not found(r, "B001", "container", 0)
    assert verdict_of(r, "container", 0) == ("not_mtu", "server_slow")


def test_B001_negative_syn_retries_then_prompt_small_answer_on_a_small_mtu_host(pauses_small_answers):
    _, r = pauses_small_answers
    flow = r.context.flows("container").iloc[1]
    assert flow["state"] == "closed" and flow["bytes_s2c"] == 800
    assert not found(r, "B001", "container", 1)


def test_B001_negative_upload_blackhole(uploads):
    assert found(uploads, "B002", "container", 0)
    assert not found(uploads, "B001")


def test_B002_positive_upload_lost_inside_the_host(uploads):
    r = uploads
    b = one(r, "B002", "container", 0)
    assert b.message == (
        "198.18.0.10:80: PMTUD black hole on upload - the client's 1500-byte packets are sent and re-sent "
        "but never acknowledged; lost inside the docker host: the container sent them, the host's uplink "
        "never did"
    )
    assert b.evidence["client_full"] == 1500 and b.evidence["retrans_c2s"] == 4
    assert any(
        w.startswith("the host capture never shows them (largest there: ") for w in b.evidence["because"]
    )
    assert verdict_of(r, "container", 0) == ("mtu_blackhole", "")
    assert r.verdict == "mtu_blackhole"


def test_B002_positive_upload_lost_beyond_the_host(uploads):
    b = one(uploads, "B002", "container", 1)
    assert b.message.endswith(
        "the client's 1500-byte packets are sent and re-sent but never acknowledged; lost after the host's "
        "uplink, on the path"
    )
    assert not found(uploads, "X002", conn=1)


def test_B002_negative_icmp_reached_the_container(pmtud_upload):
    r = pmtud_upload
    assert not found(r, "B002")
    assert r.verdict == "healthy"


def test_B002_negative_resent_segment_finally_acknowledged(lossy_upload):
    r = lossy_upload
    assert r.context.flows("container").loc[0, "state"] == "closed"
    assert not found(r, "B002")
    assert verdict_of(r, "container", 0) == ("not_mtu", "lossy_link")


def test_B003_positive_stall_then_smaller_segments(host_mtu_1450):
    r = host_mtu_1450
    b = one(r, "B003", "container", 0)
    assert b.message == (
        "198.18.0.10:80: stalled 3.0 s, then the server continued with 1395-byte segments instead of "
        "1460-byte ones - packetization-layer PMTU probing got around a black hole"
    )
    assert b.hint.startswith("It works, slowly: clamp the MSS to 1410")
    assert b.evidence["payload_after"] == 1395
    assert not found(r, "B001")
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole_recovered", 1450, 1410)


def test_B003_negative_full_size_after_the_pause(slow_full):
    assert not found(slow_full, "B003")


def test_B003_negative_server_mss_is_smaller(quiet):
    """The server's own MSS is 1400: 1400-byte segments after a pause are its full size, not probing."""
    assert quiet.context.flows("container").loc[2, "server_full"] == 1440
    assert not found(quiet, "B003")
    assert verdict_of(quiet, "container", 2) == ("not_mtu", "server_slow")


# ------------------------------------------------------------------- what a sender did with an ICMP report
@pytest.fixture(scope="module")
def icmp_ignored(tmp_path_factory):
    c, icmp = download_icmp_ignored()
    return run(server=capture(tmp_path_factory.mktemp("ignored"), "server", c.render("host"), icmp))


def test_B004_positive_icmp_then_smaller_segments_acknowledged(pmtud_upload):
    f = one(pmtud_upload, "B004", "container", 0)
    assert f.evidence["mtu"] == 1450 and f.evidence["sender"] == "client"
    assert f.evidence["resent_ip_len"] == 1450 and 0 <= f.evidence["cost_s"] < 0.01
    assert "PMTUD works" in f.message
    assert pmtud_upload.verdict == "healthy" and pmtud_upload.path_mtu == 1450


def test_B004_negative_icmp_ignored_by_the_sender(icmp_ignored):
    assert not found(icmp_ignored, "B004")


def test_B005_positive_full_size_goes_on_after_the_report(icmp_ignored):
    f = one(icmp_ignored, "B005", "server", 0)
    assert (
        f.evidence["mtu"] == 1450
        and f.evidence["sender"] == "server"
        and f.evidence["full_after_report"] == 4
    )
    assert "went on sending 1500-byte packets" in f.message
    assert icmp_ignored.verdict == "mtu_blackhole" and icmp_ignored.path_mtu == 1450
    assert icmp_ignored.fix.mss == 1410


def test_B005_negative_sender_obeys_the_report(pmtud_upload):
    assert not found(pmtud_upload, "B005")
