"""Public captures of PMTUD, taken by strangers at their own vantage points: the diagnosis names the outcome.

MANIFEST.tsv (../shared/corpus) describes each: zeek's smtp.pcap is taken at a client whose 1500-byte DF
segments draw ICMP fragmentation-needed (next-hop MTU 1492) from its router, after which it re-sends at
1492 bytes; nDPI's 6in4 tunnel capture holds an ICMPv6 packet-too-big (MTU 1460) about the client's TLS
segment; suricata's filestore capture holds frag-needed with next-hop MTU 1500 quoting offload
super-packets (no real size problem). None of them is a black hole.
"""

from __future__ import annotations

import pytest

import pcapmtu
from support.environment import CORPUS, IN_CI


def _analyze(name: str):
    path = CORPUS / "semantic" / name
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"{path} missing: CI needs the shared corpus")
        pytest.skip(f"{path} not found")
    return pcapmtu.analyze(captures=[path])


def test_pmtud_works_at_the_client_sender_smtp():
    r = _analyze("zeek__smtp.pcap")
    works = r.findings[r.findings["code"] == "B004"]
    assert len(works) == 1, r.findings[["code", "message"]]
    ev = works.iloc[0]["evidence"]
    assert ev["mtu"] == 1492 and ev["sender"] == "client" and ev["resent_ip_len"] == 1492
    assert r.verdict == "healthy" and r.path_mtu == 1492, r.explanation
    assert "Path MTU discovery works" in r.explanation
    assert next(iter(r.vantage.values())).position == "client"


def test_packet_too_big_over_a_6in4_tunnel_is_obeyed():
    r = _analyze("ndpi__6in4tunnel.pcap")
    works = r.findings[r.findings["code"] == "B004"]
    assert len(works) == 1 and works.iloc[0]["evidence"]["mtu"] == 1460
    assert r.verdict not in ("mtu_blackhole", "mtu_blackhole_recovered")
    assert not (r.findings["code"] == "B005").any()


def test_frag_needed_about_offload_super_packets_is_no_black_hole():
    r = _analyze("suricata__filestore-5408.pcap")
    assert not r.findings["code"].isin(["B001", "B002", "B005"]).any(), r.findings[["code", "message"]]
    assert r.verdict not in ("mtu_blackhole", "mtu_blackhole_recovered")
