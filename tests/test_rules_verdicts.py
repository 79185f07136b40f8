"""Verdicts on built captures: the verdict, path MTU, fix and confidence of the analysis as a whole and
per connection, from the scenes the rule tests share; and a test of the scene builder itself.

Connections are written with the scene builders of tests/support/scenes.py; the analysed scenes are the session
fixtures the rule modules share (tests/support/scene_fixtures.py).
"""

from __future__ import annotations

from support.findings import codes, verdict_of
from support.scenes import NAT, C, pair, tls_blackhole


# --------------------------------------------------------------------------------------- the builder
def test_scaffolding_renders_nat_twins_with_the_same_sequence_numbers(tmp_path):
    """The builder itself: the host copy differs in client address/port and clamped MSS, not in sequence."""
    bh = tls_blackhole()
    host, cont = pair(tmp_path, [bh], [bh.render("host", cport=61000, syn_mss=1410)])
    (h,), (c,) = host.flows.itertuples(), cont.flows.itertuples()
    assert (c.client_ip, c.client_port, h.client_ip, h.client_port) == (C, 40000, NAT, 61000)
    assert h.isn_client == c.isn_client == 1_000_000 and h.isn_server == c.isn_server == 7_000_000
    assert (c.mss_client, h.mss_client, h.mss_server) == (1460, 1410, 1460)
    assert c.client_hello_len == 508 and not c.server_hello


# ------------------------------------------------------------------------------------------- verdicts
def test_verdict_blackhole_pair(blackhole):
    r, _ = blackhole
    assert (r.verdict, r.path_mtu, r.diagnosis.recommended_mss) == ("mtu_blackhole", 1450, 1410)
    assert r.fix.mss == 1410 and r.fix.mtu == 1450
    assert any("--set-mss 1410" in c["command"] for c in r.fix.commands)
    assert verdict_of(r, "host", 1) == ("healthy", "")
    assert "1500-byte packets never reached the container" in r.explanation


def test_verdict_clamped_pair_is_healthy(clamped):
    r = clamped
    assert r.verdict == "healthy"
    assert "M002" in codes(r)
    assert verdict_of(r, "container", 0) == ("healthy", "")
    assert r.fix is not None and r.fix.mss == 1410 and "already in effect" in r.fix.summary
    assert "An MSS clamp to 1410" in r.explanation


def test_verdict_filtered(filtered):
    assert (filtered.verdict, filtered.diagnosis.reason) == ("not_mtu", "filtered")
    assert verdict_of(filtered, "container", 0) == ("not_mtu", "filtered")
    assert filtered.fix is None


def test_verdict_refused(refused):
    assert (refused.verdict, refused.diagnosis.reason) == ("not_mtu", "refused")
    assert refused.fix is None


def test_verdict_single_capture_is_less_confident(blackhole):
    both, single = blackhole
    assert both.verdict == single.verdict == "mtu_blackhole"
    assert single.confidence < both.confidence
    assert set(single.captures) == {"container"}


def test_verdict_ipv6_fix_headline_uses_the_ipv6_mss(blackhole_v6):
    r = blackhole_v6
    assert r.fix.mss == r.diagnosis.recommended_mss == 1390
    assert "1390" in r.fix.summary
