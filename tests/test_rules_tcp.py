"""T rules, TCP: retransmission backoff, unanswered SYNs, refused connections, resets after a stall, a stall
with a SACK hole on a connection captured without its handshake.

How these tests are written: tests/test_rules_registry.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcapmtu
from support.damage import FUZZ_EXAMPLES
from support.environment import SAMPLES, corpus_files
from support.findings import found, one, run, verdict_of
from support.scenes import ACK, CH, CLIENT_HELLO, FIN, RST, T0, Conn, capture, download, midstream


# ------------------------------------------------------------------------------------------ T: TCP
def test_T001_positive_server_segment_backoff(inner_hop):
    t = one(inner_hop, "T001", "host", 0)
    assert t.message == (
        "198.18.0.10:443: the server sent the same segment 5 times with growing gaps "
        "(0.2s, 0.4s, 0.8s, 1.6s) - retransmission timeouts with exponential backoff"
    )
    assert t.evidence == {"segment_ip_len": 1500, "direction": "server"}
    assert len(t.frames) == 5


def test_T001_positive_client_segment_backoff(uploads):
    t = one(uploads, "T001", "container", 0)
    assert t.message.startswith("198.18.0.10:80: the client sent the same segment 5 times with growing gaps")
    assert "(0.2s, 0.4s, 0.8s, 1.6s)" in t.message
    assert t.evidence == {"segment_ip_len": 1500, "direction": "client"}


def test_T001_negative_steady_retries_are_not_backoff(steady_retrans):
    assert steady_retrans.context.flows("container").loc[0, "retrans_s2c"] == 11
    assert not found(steady_retrans, "T001")


def test_T001_negative_each_segment_retransmitted_once(quiet):
    assert quiet.context.flows("container").loc[4, "retrans_s2c"] == 2
    assert not found(quiet, "T001", "container", 4)


def test_T002_positive_unanswered_syns(filtered):
    t = one(filtered, "T002", "container", 0)
    assert (
        t.message
        == "198.18.0.10:443: 4 SYN(s) got no answer - the port is filtered or the server is unreachable"
    )
    assert t.hint.startswith("Check firewalls and routes to 198.18.0.10;")
    assert t.frames == (1,)
    assert not found(filtered, "T002", "host"), "the host's copy of the container's SYNs is the same failure"


def test_T002_negative_refused_connection(refused):
    assert not found(refused, "T002")


def test_T002_negative_syn_retransmitted_then_answered(quiet):
    flow = quiet.context.flows("container").iloc[0]
    assert (flow["retrans_c2s"], flow["state"], flow["syn_frame"]) == (2, "closed", 5)
    assert not found(quiet, "T002")


@pytest.mark.parametrize("waited", [0.0002, 0.9])
def test_T002_negative_capture_ends_before_the_syn_could_time_out(tmp_path, waited):
    """A SYN sent just before the capture ended (here: a finished download, the next connection's SYN, and
    `waited` s later the capture's last packet) may have had its answer on the way: not 'filtered' (it was
    not_mtu (filtered) at 70 %). Healthy, held at 50 % and saying why."""
    done = download()
    late = Conn(cport=40001, isn_c=2_000_000)
    late.c(T0 + 2.0, 0, 0, flags=0x02, mss=1460)
    marker = Conn(cport=40002, isn_c=3_000_000)
    marker.c(T0 + 2.0 + waited, 0, 0, flags=0x02, mss=1460)
    r = run(container=capture(tmp_path, "c", done.render(), late.render(), marker.render()))
    assert not found(r, "T002")
    assert (r.verdict, r.confidence) == ("healthy", 0.5)
    factors = r.to_json()["confidence_factors"]
    assert any("still waited for an answer when the capture ended" in f["why"] for f in factors)


def test_T002_positive_a_lone_syn_the_capture_follows_past_its_timeout(tmp_path):
    done = download()
    late = Conn(cport=40001, isn_c=2_000_000)
    late.c(T0 + 2.0, 0, 0, flags=0x02, mss=1460)
    after = download(T0 + 3.5, cport=40002, isn_c=3_000_000)
    r = run(container=capture(tmp_path, "c", done.render(), late.render(), after.render()))
    assert one(r, "T002", "container", 1).message.endswith(
        "1 SYN(s) got no answer - the port is filtered or the server is unreachable"
    )


def test_T003_positive_refused(refused):
    t = one(refused, "T003", "container", 0)
    assert t.message == "198.18.0.10:443: the connection was refused (RST in answer to the SYN)"
    assert t.hint == "Nothing listens on 198.18.0.10:443, or a firewall rejects it; not an MTU problem."


def test_T003_negative_reset_after_the_handshake(stalled_tls):
    assert found(stalled_tls, "T004", "container", 1)
    assert not found(stalled_tls, "T003")


def test_T004_positive_server_resets_after_a_stall(stalled_tls):
    t = one(stalled_tls, "T004", "container", 1)
    assert t.message == "198.18.0.10:443: the server reset the connection after 3.0 s"
    assert t.frames == (stalled_tls.context.flows("container").loc[1, "last_frame"],)


def test_T004_names_who_sent_the_rst_not_who_closed_first(tmp_path):
    """The client gives up with a FIN after the stall and the server answers with RST: the server reset it
    (T004 once said "the client", from who closed first, and cited the client's FIN frame)."""
    c = Conn(cport=40009, isn_c=2_000_000).hs(T0)
    c.c(T0 + 0.02, 1, 1, payload=CLIENT_HELLO)
    c.s(T0 + 0.03, 1, 1 + CH)
    c.c(T0 + 3.0, 1 + CH, 1, flags=FIN | ACK)
    c.s(T0 + 3.01, 1, 2 + CH, flags=RST | ACK)
    r = run(container=capture(tmp_path, "c", c.render()))
    t = one(r, "T004", "container", 0)
    assert t.message == "198.18.0.10:443: the server reset the connection after 3.0 s"
    p = r.captures["container"].packets
    assert t.frames == (int(p.loc[(p["tcp_flags"] & 4) != 0, "frame"].iloc[0]),)


def test_T004_negative_reset_right_after_a_complete_answer(quiet):
    assert quiet.context.flows("container").loc[1, "state"] == "reset"
    assert not found(quiet, "T004")


def test_T004_negative_refused_is_not_a_reset(refused):
    assert not found(refused, "T004")


# --------------------------------------------------------------------- connections without a handshake
@pytest.fixture(scope="module")
def midstreams(tmp_path_factory):
    """Container capture started mid-transfer: conn 0 stalls with a SACK hole, conn 1 recovers and closes."""
    conns = [midstream(T0, 40000, completes=False), midstream(T0 + 20, 40001, completes=True)]
    return run(container=capture(tmp_path_factory.mktemp("mid"), "c", *(c.render() for c in conns)))


def test_T005_positive_stall_with_a_sack_hole_and_no_handshake(midstreams):
    f = one(midstreams, "T005", "container", 0)
    assert f.frames and "2896 bytes of the server's data missing" in f.message
    assert verdict_of(midstreams, "container", 0)[0] == "inconclusive"
    assert not (midstreams.verdict == "healthy" and midstreams.confidence > 0.5)


def test_T005_negative_recovered_loss_without_handshake(midstreams):
    assert not found(midstreams, "T005", "container", 1)
    assert verdict_of(midstreams, "container", 1)[0] != "inconclusive"


# captures of the lab's plain-HTTP black hole that start late (tests/test_lab_truncated.py sweeps them all)
def _started_late(tmp_path, scenario: str, skip: int):
    from support.cuts import frames_of
    from support.environment import SAMPLES

    cut = frames_of(SAMPLES / scenario / "container.pcap").write(tmp_path / "late.pcap", skip)
    return run(container=cut)


def test_T005_positive_capture_starts_between_the_syn_and_the_syn_ack(tmp_path):
    """The SYN-ACK is captured, the SYN is not: the client's MSS is unknown, so no full size either. This
    connection (holes in the server's data, the client gives up after 8 s) was healthy at 70 %."""
    r = _started_late(tmp_path, "blackhole_http_large", 17)
    flow = r.context.flows("container").iloc[0]
    assert (flow["synack_frame"], flow["syn_frame"], flow["midstream"]) == (1, -1, False)
    t = one(r, "T005", "container", 0)
    assert "stalled 8.0 s with holes in the server's data and never completed" in t.message
    assert r.verdict == "inconclusive"


def test_T005_positive_server_sequence_ahead_of_every_client_ack(tmp_path):
    """The capture starts at the client's ACK of the response headers: none of the lost segments is in it,
    but the server's closing ACK is at byte 17,525 while the client acknowledged 149."""
    r = _started_late(tmp_path, "blackhole_http_large", 22)
    assert r.context.flows("container").iloc[0]["s2c_never_acked"] == 17376
    t = one(r, "T005", "container", 0)
    assert "17376 bytes the server had sent never acknowledged by the client" in t.message
    assert r.verdict == "inconclusive"


def test_T005_negative_capture_holds_only_the_last_ack(tmp_path):
    """One bare ACK of the connection: nothing to judge; healthy says so and stays at 50 % or less."""
    r = _started_late(tmp_path, "blackhole_http_large", 24)
    assert not found(r, "T005")
    assert r.verdict == "healthy" and r.confidence <= 0.5
    factors = [f["why"] for f in r.to_json()["confidence_factors"]]
    assert any("captured without their handshake carried no data here" in w for w in factors)


def _snapped(tmp_path, scenario: str, snap: int):
    from support.cuts import frames_of
    from support.environment import SAMPLES

    cut = {
        role: frames_of(SAMPLES / scenario / f"{role}.pcap").write(tmp_path / f"{role}.pcap", snap=snap)
        for role in ("host", "container")
    }
    return run(**cut)


def test_T005_positive_snap_length_cut_the_mss_option_off(tmp_path):
    """`tcpdump -s 54`: Ethernet, IPv4 and a TCP header without its options. The SYNs' MSS is gone, so no
    size rule can speak; the 8 s stall with holes was healthy at 90 %."""
    r = _snapped(tmp_path, "blackhole_http_large", 54)
    t = one(r, "T005", "container", 1)
    assert t.message.startswith(
        "198.18.0.10:80: captured without an MSS option in its handshake, stalled 8.0 s"
    )
    assert r.verdict == "inconclusive"
    assert "`tcpdump -s 0`" in r.explanation


def test_T005_negative_snap_length_keeps_the_options(tmp_path):
    r = _snapped(tmp_path, "blackhole_http_large", 96)
    assert not found(r, "T005") and r.verdict == "mtu_blackhole"


def test_healthy_holds_at_half_while_the_mss_is_not_in_the_captures(tmp_path):
    r = _snapped(tmp_path, "lossy_link", 54)
    assert (r.verdict, r.confidence) == ("healthy", 0.5)
    factors = [f["why"] for f in r.to_json()["confidence_factors"]]
    assert any(
        w.startswith("the MSS of 2 connection(s) that carried data is not in the captures") for w in factors
    )


# ------------------------------------------------------------------------------------ T001 at scale
def _most_resent_one_by_one(packets, conns) -> dict:
    """What T001 computed before 0.9.5, one connection at a time (the reference for most_resent)."""
    import numpy as np

    out = {}
    conn_col = packets["conn"].to_numpy()
    for k, c in enumerate(conns):
        at = np.flatnonzero(conn_col == c)
        rel_seq = packets["rel_seq"].to_numpy()[at]
        data = packets["payload_len"].to_numpy()[at] > 0
        direction = packets["dir"].to_numpy()[at]
        for d in (1, 0):
            seg = np.flatnonzero(data & (direction == d))
            keys, counts = np.unique(rel_seq[seg], return_counts=True)
            if not len(counts) or counts.max() < 3:
                continue
            out[(k, d)] = at[seg[rel_seq[seg] == keys[np.argmax(counts)]]]
    return out


def _assert_same_resent(packets, conns) -> None:
    from pcapmtu.diagnose.detectors.tcp_rules import most_resent

    want, got = _most_resent_one_by_one(packets, conns), most_resent(packets, conns)
    assert sorted(got) == sorted(want)
    for key, rows in want.items():
        assert got[key].tolist() == rows.tolist(), key


TCP_CAPTURES = sorted(SAMPLES.glob("*/*.pcap*")) + corpus_files("semantic")


@pytest.mark.parametrize("path", TCP_CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_most_resent_equals_the_search_per_connection(path):
    import numpy as np

    cap = pcapmtu.read(path)
    _assert_same_resent(cap.packets, np.arange(len(cap.flows), dtype=np.int64)[::-1].copy())


RESENT_PACKET = st.tuples(
    st.sampled_from([-1, 0, 0, 1, 2, 3]),  # connection (-1: not TCP)
    st.sampled_from([0, 1, 1, -1]),  # direction
    st.sampled_from([0, 1, 1, 1461, 2921]),  # rel_seq: few values, so segments repeat
    st.sampled_from([0, 0, 100, 1460]),  # payload bytes
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None)
@given(rows=st.lists(RESENT_PACKET, max_size=60), picked=st.lists(st.integers(0, 4), unique=True, max_size=4))
def test_most_resent_for_any_packets(rows, picked):
    import numpy as np
    import pandas as pd

    packets = pd.DataFrame(
        {
            "conn": np.array([r[0] for r in rows], dtype=np.int32),
            "dir": np.array([r[1] for r in rows], dtype=np.int8),
            "rel_seq": np.array([r[2] for r in rows], dtype=np.int64),
            "payload_len": np.array([r[3] for r in rows], dtype=np.int32),
        }
    )
    _assert_same_resent(packets, np.array(picked, dtype=np.int64))


def _never_acked_by_groupby(packets, n_flows: int, d: int):
    """T005's measure the plain pandas way: per connection, the furthest sequence number direction `d` sent
    past the other side's highest ACK (0 when the capture lacks either)."""
    import numpy as np

    t = packets[(packets["conn"] >= 0) & ~packets["dup_copy"]]
    mine = t[t["dir"] == d]
    sent = (mine["rel_seq"].astype("int64") + mine["payload_len"]).groupby(mine["conn"]).max()
    theirs = t[(t["dir"] == 1 - d) & ((t["tcp_flags"] & 0x10) != 0)]
    acked = theirs["rel_ack"].astype("int64").groupby(theirs["conn"]).max()
    out = np.zeros(n_flows, dtype=np.int64)
    both = sent.index.intersection(acked.index)
    out[both.to_numpy()] = np.maximum(sent[both].to_numpy() - acked[both].to_numpy(), 0)
    return out


@pytest.mark.parametrize("path", TCP_CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_never_acknowledged_equals_a_groupby(path):
    from pcapmtu.diagnose.delivery import never_acknowledged

    cap = pcapmtu.read(path)
    for d in (0, 1):
        got = never_acknowledged(cap.packets, len(cap.flows), d)
        assert got.tolist() == _never_acked_by_groupby(cap.packets, len(cap.flows), d).tolist(), d


def test_some_capture_has_sequence_numbers_never_acknowledged():
    from pcapmtu.diagnose.delivery import never_acknowledged

    cap = pcapmtu.read(SAMPLES / "blackhole_tls12" / "container.pcap")
    assert never_acknowledged(cap.packets, len(cap.flows), 1).max() > 0
